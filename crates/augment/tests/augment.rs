//! Pixel-level checks of the augmentation: identity, flips, rotation,
//! shifts, fill modes by hand; Keras parity from stored references; and
//! determinism across threads, batches and replays.
use gemstones_augment::*;

fn image(h: u32, w: u32, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..h * w * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn px(data: &[u8], w: u32, r: u32, c: u32) -> [u8; 3] {
    let i = ((r * w + c) * 3) as usize;
    [data[i], data[i + 1], data[i + 2]]
}

fn render(cfg: AugmentConfig, p: &AugmentParams, data: &[u8], h: u32, w: u32) -> Vec<u8> {
    let aug = BatchAugmenter::new(cfg, 0, w, h).unwrap();
    let mut out = vec![0u8; aug.image_len()];
    aug.apply(ImageView::new(data, w, h).unwrap(), p, Output::U8Hwc(&mut out)).unwrap();
    out
}

fn params(f: impl FnOnce(&mut AugmentParams)) -> AugmentParams {
    let mut p = AugmentParams::identity();
    f(&mut p);
    p
}

#[test]
fn identity_returns_the_input_exactly() {
    for (h, w) in [(1, 1), (2, 3), (37, 53), (220, 220)] {
        let src = image(h, w, u64::from(h * w));
        assert_eq!(render(AugmentConfig::identity(), &AugmentParams::identity(), &src, h, w), src);
    }
}

#[test]
fn horizontal_and_vertical_flips_mirror_pixels() {
    let (h, w) = (9, 14);
    let src = image(h, w, 1);
    let out = render(AugmentConfig::identity(), &params(|p| p.flip_horizontal = true), &src, h, w);
    let vout = render(AugmentConfig::identity(), &params(|p| p.flip_vertical = true), &src, h, w);
    for r in 0..h {
        for c in 0..w {
            assert_eq!(px(&out, w, r, c), px(&src, w, r, w - 1 - c));
            assert_eq!(px(&vout, w, r, c), px(&src, w, h - 1 - r, c));
        }
    }
}

#[test]
fn rotation_by_90_degrees_moves_whole_pixels() {
    // Keras turns about (h/2 + 0.5, w/2 + 0.5): output (r, c) reads input
    // (h + 1 - c, r) for a square of odd side h; the nearest fill clamps.
    let n = 11;
    let src = image(n, n, 2);
    let out = render(AugmentConfig::identity(), &params(|p| p.theta = 90.0), &src, n, n);
    for r in 0..n {
        for c in 0..n {
            assert_eq!(px(&out, n, r, c), px(&src, n, (n + 1 - c).min(n - 1), r), "({r}, {c})");
        }
    }
}

#[test]
fn integer_shifts_move_whole_pixels() {
    // Keras adds tx (rows) and ty (columns) to the input coordinate.
    let (h, w) = (12, 16);
    let src = image(h, w, 3);
    let out = render(AugmentConfig::identity(), &params(|p| (p.tx, p.ty) = (2.0, -3.0)), &src, h, w);
    for r in 0..h {
        for c in 0..w {
            let (sr, sc) = ((r + 2).min(h - 1), (c as i32 - 3).max(0) as u32);
            assert_eq!(px(&out, w, r, c), px(&src, w, sr, sc), "({r}, {c})");
        }
    }
}

#[test]
fn each_fill_mode_fills_the_border_as_specified() {
    // Shift 3 columns right-to-left: output column c reads input c + 3.
    let (h, w) = (4, 10);
    let src = image(h, w, 4);
    let p = params(|p| p.ty = 3.0);
    for (fill, expect) in [
        (FillMode::Nearest, Box::new(|c: i32| Some(c.min(w as i32 - 1))) as Box<dyn Fn(i32) -> Option<i32>>),
        (FillMode::Reflect, Box::new(|c: i32| Some(if c < w as i32 { c } else { 2 * w as i32 - 1 - c }))),
        (FillMode::Wrap, Box::new(|c: i32| Some(c.rem_euclid(w as i32)))),
        (FillMode::Constant, Box::new(|c: i32| (c < w as i32).then_some(c))),
    ] {
        let cfg = AugmentConfig { fill_mode: fill, cval: 77.0, ..AugmentConfig::identity() };
        let out = render(cfg, &p, &src, h, w);
        for r in 0..h {
            for c in 0..w {
                let want = expect(c as i32 + 3).map_or([77; 3], |sc| px(&src, w, r, sc as u32));
                assert_eq!(px(&out, w, r, c), want, "{fill:?} ({r}, {c})");
            }
        }
    }
}

#[test]
fn matches_keras_apply_transform_away_from_the_borders() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keras");
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let input = image::open(dir.join("input.png")).unwrap().into_rgb8();
    let (h, w) = (input.height(), input.width());
    let margin = 8;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let get = |k: &str, d: f64| case.get(k).and_then(|v| v.as_f64()).unwrap_or(d) as f32;
        let fill = match case["fill_mode"].as_str().unwrap() {
            "nearest" => FillMode::Nearest,
            "reflect" => FillMode::Reflect,
            "wrap" => FillMode::Wrap,
            _ => FillMode::Constant,
        };
        let p = params(|p| {
            (p.theta, p.tx, p.ty, p.shear, p.zx, p.zy) = (
                get("theta", 0.0),
                get("tx", 0.0),
                get("ty", 0.0),
                get("shear", 0.0),
                get("zx", 1.0),
                get("zy", 1.0),
            );
            p.flip_horizontal = case.get("flip_horizontal").and_then(|v| v.as_bool()).unwrap_or(false);
        });
        let cfg = AugmentConfig { fill_mode: fill, cval: get("cval", 0.0), ..AugmentConfig::identity() };
        let ours = render(cfg, &p, input.as_raw(), h, w);
        let keras = image::open(dir.join(format!("{name}.png"))).unwrap().into_rgb8();
        let (mut sum, mut n, mut max) = (0u64, 0u64, 0u8);
        for r in margin..h - margin {
            for c in margin..w - margin {
                let (a, b) = (px(&ours, w, r, c), keras.get_pixel(c, r).0);
                for k in 0..3 {
                    let d = a[k].abs_diff(b[k]);
                    sum += u64::from(d);
                    max = max.max(d);
                    n += 1;
                }
            }
        }
        let mean = sum as f64 / n as f64;
        eprintln!("{name}: mean |diff| {mean:.3}, max {max}");
        assert!(mean < 1.0, "{name}: mean absolute difference {mean:.3} grey levels");
        assert!(max <= 8, "{name}: max difference {max}");
    }
}

#[test]
fn same_seed_same_pixels_at_any_thread_count_and_batch_composition() {
    let (h, w) = (64, 48);
    let srcs: Vec<Vec<u8>> = (0..10).map(|i| image(h, w, 100 + i)).collect();
    let views: Vec<ImageView> = srcs.iter().map(|s| ImageView::new(s, w, h).unwrap()).collect();
    let idx: Vec<u64> = (0..10).collect();
    let aug = BatchAugmenter::new(AugmentConfig::strong(), 99, 40, 40).unwrap();
    let norm = Normalize::imagenet();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut out = vec![0f32; 10 * aug.image_len()];
        pool.install(|| aug.batch(&views, &idx, 3, Output::F32Chw(&mut out, &norm))).unwrap();
        out
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(7));
    // Image 4 alone gets the same pixels as in the batch.
    let mut alone = vec![0f32; aug.image_len()];
    aug.batch(&views[4..5], &idx[4..5], 3, Output::F32Chw(&mut alone, &norm)).unwrap();
    assert_eq!(alone, one[4 * aug.image_len()..5 * aug.image_len()]);
    // Another epoch, other pixels.
    let mut other = vec![0f32; 10 * aug.image_len()];
    aug.batch(&views, &idx, 4, Output::F32Chw(&mut other, &norm)).unwrap();
    assert_ne!(one, other);
}

#[test]
fn recorded_parameters_replay_the_same_pixels() {
    let (h, w) = (30, 30);
    let srcs: Vec<Vec<u8>> = (0..4).map(|i| image(h, w, i)).collect();
    let views: Vec<ImageView> = srcs.iter().map(|s| ImageView::new(s, w, h).unwrap()).collect();
    let aug = BatchAugmenter::new(AugmentConfig::strong(), 5, w, h).unwrap();
    let mut a = vec![0u8; 4 * aug.image_len()];
    let rec = aug.batch(&views, &[7, 8, 9, 10], 0, Output::U8Hwc(&mut a)).unwrap();
    let json = serde_json::to_string(&rec).unwrap();
    let back: Vec<AugmentParams> = serde_json::from_str(&json).unwrap();
    let mut b = vec![0u8; 4 * aug.image_len()];
    aug.replay(&views, &back, Output::U8Hwc(&mut b)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn f32_output_is_the_normalised_u8_output() {
    let (h, w) = (20, 24);
    let src = image(h, w, 8);
    let view = ImageView::new(&src, w, h).unwrap();
    let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 1, 16, 16).unwrap();
    let p = aug.sample(0, 0, &view);
    let mut u = vec![0u8; aug.image_len()];
    let mut f = vec![0f32; aug.image_len()];
    aug.apply(view, &p, Output::U8Hwc(&mut u)).unwrap();
    let norm = Normalize { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
    aug.apply(view, &p, Output::F32Chw(&mut f, &norm)).unwrap();
    let mut hwc = vec![0f32; aug.image_len()];
    aug.batch(&[view], &[0], 0, Output::F32Hwc(&mut hwc, &norm)).unwrap();
    for i in 0..16 * 16 {
        for k in 0..3 {
            let want = (f32::from(u[i * 3 + k]) / 255.0 - norm.mean[k]) / norm.std[k];
            assert!((f[k * 256 + i] - want).abs() < 1e-4);
            assert!((hwc[i * 3 + k] - want).abs() < 1e-4);
        }
    }
}

#[test]
fn colour_operations_do_what_they_say() {
    let (h, w) = (8, 8);
    let flat = vec![100u8; (h * w * 3) as usize];
    let bright = render(AugmentConfig::identity(), &params(|p| p.brightness = Some(1.5)), &flat, h, w);
    assert!(bright.iter().all(|&v| v == 150));
    let jitter = render(AugmentConfig::identity(), &params(|p| p.jitter = [0.5, 1.0, 1.0, 0.0]), &flat, h, w);
    assert!(jitter.iter().all(|&v| v == 50));
    // Channel shift is clipped to the image's own range.
    let mut two = flat.clone();
    two[..3].copy_from_slice(&[200, 200, 200]);
    let shifted = render(AugmentConfig::identity(), &params(|p| p.channel_shift = Some(150.0)), &two, h, w);
    assert!(shifted.iter().all(|&v| v == 200));
    // Saturation 0 makes grey.
    let red: Vec<u8> = (0..h * w).flat_map(|_| [200u8, 0, 0]).collect();
    let grey = render(AugmentConfig::identity(), &params(|p| p.jitter = [1.0, 1.0, 0.0, 0.0]), &red, h, w);
    assert!(grey.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2] && p[0] == 60));
    // Cutout fills its rectangle only.
    let erase =
        Erase { top: 2, left: 3, height: 2, width: 4, fill: EraseFill::Constant([1, 2, 3]), noise_seed: 0 };
    let cut = render(AugmentConfig::identity(), &params(|p| p.erase = Some(erase)), &flat, h, w);
    for r in 0..h {
        for c in 0..w {
            let inside = (2..4).contains(&r) && (3..7).contains(&c);
            assert_eq!(px(&cut, w, r, c), if inside { [1, 2, 3] } else { [100; 3] });
        }
    }
}

#[test]
fn trivial_augments_pointwise_operations_match_pillows_imageops() {
    // References: tests/pil/make_references.py (Pillow 11.3.0), on the
    // Keras test's input; the source is the output here, so equal values.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let input = image::open(dir.join("keras/input.png")).unwrap().into_rgb8();
    let (h, w) = (input.height(), input.width());
    let cases = [
        ("posterize3", PointOp::Posterize { bits: 3 }),
        ("solarize128", PointOp::Solarize { threshold: 128.0 }),
        ("autocontrast", PointOp::AutoContrast),
        ("equalize", PointOp::Equalize),
    ];
    for (name, op) in cases {
        let ours = render(AugmentConfig::identity(), &params(|p| p.point = Some(op)), input.as_raw(), h, w);
        let pil = image::open(dir.join(format!("pil/{name}.png"))).unwrap().into_rgb8();
        assert_ne!(pil.as_raw(), input.as_raw(), "{name} changes the test image");
        assert_eq!(&ours, pil.as_raw(), "{name}");
    }
}

#[test]
fn trivial_augment_draws_one_operation_per_image_from_all_twelve() {
    let src = image(32, 32, 9);
    let view = ImageView::new(&src, 32, 32).unwrap();
    let aug = BatchAugmenter::new(AugmentConfig::trivial(), 1, 32, 32).unwrap();
    let base = AugmentConfig { trivial_augment: false, ..AugmentConfig::trivial() };
    let plain = BatchAugmenter::new(base, 1, 32, 32).unwrap();
    let mut counts = [0usize; 12];
    for i in 0..2400 {
        let (p, q) = (aug.sample(0, i, &view), plain.sample(0, i, &view));
        assert_eq!(
            (p.crop, p.flip_horizontal, p.flip_vertical, p.erase),
            (q.crop, q.flip_horizontal, q.flip_vertical, q.erase)
        );
        let changed = [
            p.shear != 0.0,
            p.tx != 0.0,
            p.ty != 0.0,
            p.theta != 0.0,
            p.jitter[0] != 1.0,
            p.jitter[2] != 1.0,
            p.jitter[1] != 1.0,
            matches!(p.point, Some(PointOp::Posterize { .. })),
            matches!(p.point, Some(PointOp::Solarize { .. })),
            p.point == Some(PointOp::AutoContrast),
            p.point == Some(PointOp::Equalize),
        ];
        assert!(changed.iter().filter(|&&c| c).count() <= 1, "one operation at most: {p:?}");
        match changed.iter().position(|&c| c) {
            Some(op) => counts[op + 1] += 1,
            None => counts[0] += 1, // identity, or a magnitude of zero
        }
        assert!(p.theta.abs() <= 135.0 && p.shear.abs() <= 44.8 && p.tx.abs() <= 32.0 / 224.0 * 32.0);
        assert!(p.jitter.iter().take(3).all(|f| (0.01 - 1e-6..=1.99 + 1e-6).contains(f)), "{p:?}");
        if let Some(PointOp::Posterize { bits }) = p.point {
            assert!((2..=8).contains(&bits));
        }
    }
    // 200 expected of each; the identity also gets the zero magnitudes.
    assert!(counts.iter().all(|&n| (140..=320).contains(&n)), "{counts:?}");
    assert_eq!(aug.sample(3, 5, &view), aug.sample(3, 5, &view));
}

#[test]
fn hue_jitter_is_off_in_every_preset_and_ranges_are_respected() {
    let src = image(32, 32, 9);
    let view = ImageView::new(&src, 32, 32).unwrap();
    for cfg in [AugmentConfig::tutorial(), AugmentConfig::strong()] {
        let aug = BatchAugmenter::new(cfg, 1, 32, 32).unwrap();
        for i in 0..200 {
            assert_eq!(aug.sample(0, i, &view).jitter[3], 0.0);
        }
    }
}

#[test]
fn a_whole_image_crop_is_the_identity_and_resizing_halves_cleanly() {
    let (h, w) = (16, 16);
    let src = image(h, w, 10);
    let out =
        render(AugmentConfig::identity(), &params(|p| p.crop = Some([0.0, 0.0, 16.0, 16.0])), &src, h, w);
    assert_eq!(out, src);
    // Halving a 2x2-block image reads the middle of each block: its colour.
    let blocks: Vec<u8> = (0..h * w)
        .flat_map(|i| {
            let (r, c) = (i / w, i % w);
            let v = ((r / 2) * 8 + c / 2) as u8 * 3;
            [v, v, v]
        })
        .collect();
    let aug = BatchAugmenter::new(AugmentConfig::identity(), 0, 8, 8).unwrap();
    let mut half = vec![0u8; aug.image_len()];
    aug.apply(ImageView::new(&blocks, w, h).unwrap(), &AugmentParams::identity(), Output::U8Hwc(&mut half))
        .unwrap();
    for r in 0..8u32 {
        for c in 0..8u32 {
            assert_eq!(half[((r * 8 + c) * 3) as usize], (r * 8 + c) as u8 * 3);
        }
    }
}

#[test]
fn bad_buffers_and_settings_are_errors_not_panics() {
    assert!(ImageView::new(&[0u8; 10], 2, 2).is_err());
    let aug = BatchAugmenter::new(AugmentConfig::tutorial(), 0, 8, 8).unwrap();
    let src = image(8, 8, 0);
    let view = ImageView::new(&src, 8, 8).unwrap();
    let mut short = vec![0u8; 10];
    assert!(matches!(
        aug.apply(view, &AugmentParams::identity(), Output::U8Hwc(&mut short)),
        Err(Error::BadOutput { .. })
    ));
    let mut out = vec![0f32; aug.image_len()];
    assert!(aug.batch(&[view], &[0, 1], 0, Output::F32Chw(&mut out, &Normalize::default())).is_err());
    assert!(
        BatchAugmenter::new(AugmentConfig { shear_range: 95.0, ..AugmentConfig::identity() }, 0, 8, 8)
            .is_err()
    );
}

#[test]
fn preview_writes_the_tutorials_figure() {
    let dir = tempfile::tempdir().unwrap();
    let src = image(64, 64, 11);
    let path = dir.path().join("preview.png");
    preview(ImageView::new(&src, 64, 64).unwrap(), &AugmentConfig::tutorial(), 1, 6, &path).unwrap();
    let png = image::open(&path).unwrap();
    assert_eq!(png.width(), 4 * 64 + 5 * 8);
}
