//! Canny edges, as OpenCV computes them, and the bounding box of the edges.
//!
//! The tutorial crops every photograph to the bounding box of
//! `cv2.Canny(img, 220, 220)` on its colour image. This is that detector:
//! 3x3 Sobel gradients per channel with replicated borders, the channel
//! with the largest L1 magnitude at each pixel, non-maximum suppression with
//! OpenCV's tan(22.5 deg) sectors, and hysteresis between the two
//! thresholds over 8-neighbours. Integer arithmetic throughout.

/// An edge map: `true` where an edge pixel is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeMap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major, `width * height` values.
    pub edges: Vec<bool>,
}

impl EdgeMap {
    /// Number of edge pixels.
    pub fn count(&self) -> usize {
        self.edges.iter().filter(|&&e| e).count()
    }

    /// Inclusive bounding box `(x0, y0, x1, y1)` of the edge pixels.
    pub fn bbox(&self) -> Option<(usize, usize, usize, usize)> {
        let mut b: Option<(usize, usize, usize, usize)> = None;
        for (y, row) in self.edges.chunks_exact(self.width.max(1)).enumerate() {
            let Some(first) = row.iter().position(|&e| e) else { continue };
            let last = row.iter().rposition(|&e| e).unwrap_or(first);
            b = Some(match b {
                None => (first, y, last, y),
                Some((x0, y0, x1, _)) => (x0.min(first), y0, x1.max(last), y),
            });
        }
        b
    }
}

/// Gradient buffers: magnitude (padded with a zero border), dx, dy, and
/// per-channel scratch rows.
#[derive(Debug, Default, Clone)]
struct Gradients {
    mag: Vec<i16>,
    dx: Vec<i16>,
    dy: Vec<i16>,
    tmp: Vec<i16>,
}

/// Reusable buffers for [`canny_into`], so repeated calls do not allocate.
#[derive(Debug, Default, Clone)]
pub struct CannyScratch {
    planes: Vec<i16>,
    grad: Gradients,
    state: Vec<u8>,
    stack: Vec<usize>,
}

/// Canny edges of an interleaved 8-bit image with `channels` channels
/// (1 to 4), thresholds on the L1 gradient magnitude as in OpenCV.
pub fn canny(pixels: &[u8], width: usize, height: usize, channels: usize, low: i32, high: i32) -> EdgeMap {
    let mut scratch = CannyScratch::default();
    let mut map = EdgeMap { width, height, edges: Vec::new() };
    canny_into(pixels, width, height, channels, low, high, &mut scratch, &mut map);
    map
}

const TG22: i32 = 13573; // tan(22.5 deg) * 2^15, as OpenCV

/// [`canny`] writing into reused buffers.
///
/// Works on planes padded by one replicated pixel, so the inner loops have
/// no border cases and vectorise.
#[allow(clippy::too_many_arguments)]
pub fn canny_into(
    pixels: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    low: i32,
    high: i32,
    s: &mut CannyScratch,
    out: &mut EdgeMap,
) {
    let (w, h, c) = (width, height, channels);
    out.width = w;
    out.height = h;
    out.edges.clear();
    out.edges.resize(w * h, false);
    if w == 0 || h == 0 || c == 0 || c > 4 || pixels.len() < w * h * c {
        return;
    }
    let (low, high) = (low.min(high), low.max(high));
    let pw = w + 2; // padded width
    let ph = h + 2;
    planes_padded(pixels, w, h, c, &mut s.planes);
    gradients(&s.planes, w, h, c, &mut s.grad);

    // Non-maximum suppression on the padded magnitude (zero border).
    // state: 0 = not an edge, 1 = weak, 2 = strong; padded like mag. Every
    // interior element is written, so only the border is cleared.
    s.state.resize(pw * ph, 0);
    s.state[..pw].fill(0);
    s.state[(ph - 1) * pw..].fill(0);
    s.stack.clear();
    let (low32, high32) = (low.max(-1), high.max(-1));
    let mut any_weak = false;
    for y in 0..h {
        let row = (y + 1) * pw;
        let (up, mid, down) =
            (&s.grad.mag[row - pw..row], &s.grad.mag[row..row + pw], &s.grad.mag[row + pw..row + 2 * pw]);
        let (gxr, gyr) = (&s.grad.dx[y * w..(y + 1) * w], &s.grad.dy[y * w..(y + 1) * w]);
        let st = &mut s.state[row..row + pw];
        st[0] = 0;
        st[pw - 1] = 0;
        nms_row([up, mid, down], [gxr, gyr], [low32, high32], &mut st[1..=w]);
        any_weak |= st.iter().fold(0u8, |acc, &v| acc | (v & 1)) != 0;
    }
    if any_weak {
        // Hysteresis starts from every strong pixel. Without weak pixels
        // (always so when low == high) there is nothing to grow into.
        s.stack.extend(s.state.iter().enumerate().filter(|(_, v)| **v == 2).map(|(i, _)| i));
    }
    // Hysteresis: weak pixels 8-connected to a strong one become edges.
    // The zero border of `state` keeps every neighbour index in range.
    let offsets = [pw + 1, pw, pw - 1, 1];
    while let Some(i) = s.stack.pop() {
        for o in offsets {
            for j in [i - o, i + o] {
                if s.state[j] == 1 {
                    s.state[j] = 2;
                    s.stack.push(j);
                }
            }
        }
    }
    for y in 0..h {
        let src = &s.state[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        for (e, &st) in out.edges[y * w..(y + 1) * w].iter_mut().zip(src) {
            *e = st == 2;
        }
    }
}

simd_targets! {
/// Channels as separate i16 planes of `(w + 2) x (h + 2)`, borders
/// replicated.
fn planes_padded(p: &[u8], w: usize, h: usize, c: usize, planes: &mut Vec<i16>) {
    let (pw, ph) = (w + 2, h + 2);
    let n = pw * ph;
    // Every element is written below: no need to clear.
    planes.resize(c * n, 0);
    for k in 0..c {
        let plane = &mut planes[k * n..(k + 1) * n];
        for y in 0..h {
            let src = &p[y * w * c..(y + 1) * w * c];
            let dst = &mut plane[(y + 1) * pw..(y + 2) * pw];
            match c {
                3 => deinterleave::<3>(src, &mut dst[1..=w], k),
                1 => deinterleave::<1>(src, &mut dst[1..=w], k),
                4 => deinterleave::<4>(src, &mut dst[1..=w], k),
                _ => deinterleave::<2>(src, &mut dst[1..=w], k),
            }
            dst[0] = dst[1];
            dst[w + 1] = dst[w];
        }
        plane.copy_within(pw..2 * pw, 0);
        plane.copy_within(h * pw..(h + 1) * pw, (h + 1) * pw);
    }
}

}

simd_targets! {
/// Non-maximum suppression of one row, branch-free so it vectorises:
/// `up`, `mid`, `down` are padded magnitude rows (`w + 2`), `gx`, `gy` and
#[allow(clippy::too_many_arguments)]
fn nms_row([up, mid, down]: [&[i16]; 3], [gx, gy]: [&[i16]; 2], [low, high]: [i32; 2], out: &mut [u8]) {
    let w = out.len();
    let (up, mid, down, gx, gy) = (&up[..w + 2], &mid[..w + 2], &down[..w + 2], &gx[..w], &gy[..w]);
    for x in 0..w {
        let m = i32::from(mid[x + 1]);
        let (gxv, gyv) = (i32::from(gx[x]), i32::from(gy[x]));
        let ax = gxv.abs();
        let ay = gyv.abs() << 15;
        let tg22x = ax * TG22;
        let horizontal = ay < tg22x;
        let vertical = ay > tg22x + (ax << 16);
        let diagonal = !horizontal & !vertical;
        let anti = (gxv ^ gyv) < 0;
        let (l, r) = (i32::from(mid[x]), i32::from(mid[x + 2]));
        let (u, d) = (i32::from(up[x + 1]), i32::from(down[x + 1]));
        let (ul, ur, dl, dr) = (i32::from(up[x]), i32::from(up[x + 2]), i32::from(down[x]), i32::from(down[x + 2]));
        let h_max = horizontal & (m > l) & (m >= r);
        let v_max = vertical & (m > u) & (m >= d);
        let d_max = diagonal & ((anti & (m > ur) & (m > dl)) | (!anti & (m > ul) & (m > dr)));
        let keep = (m > low) & (h_max | v_max | d_max);
        out[x] = u8::from(keep) * (1 + u8::from(m > high));
    }
}
}

fn deinterleave<const C: usize>(src: &[u8], dst: &mut [i16], k: usize) {
    for (d, px) in dst.iter_mut().zip(src.chunks_exact(C)) {
        *d = i16::from(px[k]);
    }
}

simd_targets! {
/// Sobel dx, dy and L1 magnitude of the strongest channel at each pixel.
/// `mag` is padded with a zero border; `dx`, `dy` are `w x h`. `tmp` holds
/// per-channel rows.
fn gradients(planes: &[i16], w: usize, h: usize, c: usize, g: &mut Gradients) {
    let Gradients { mag, dx, dy, tmp } = g;
    let (pw, ph) = (w + 2, h + 2);
    let n = pw * ph;
    // The interior of mag and all of dx, dy are written below; only
    // mag's border must be zero.
    mag.resize(n, 0);
    mag[..pw].fill(0);
    mag[(ph - 1) * pw..].fill(0);
    for y in 1..ph - 1 {
        mag[y * pw] = 0;
        mag[y * pw + pw - 1] = 0;
    }
    dx.resize(w * h, 0);
    dy.resize(w * h, 0);
    // Per channel: vertical sum, vertical difference, gx, gy, magnitude.
    tmp.resize(2 * pw + 3 * w * c, 0);
    let (vs, rest) = tmp.split_at_mut(pw);
    let (dd, rest) = rest.split_at_mut(pw);
    let (gxs, rest) = rest.split_at_mut(w * c);
    let (gys, ms) = rest.split_at_mut(w * c);
    for y in 0..h {
        for k in 0..c {
            let plane = &planes[k * n..(k + 1) * n];
            let a = &plane[y * pw..y * pw + pw];
            let b = &plane[(y + 1) * pw..(y + 1) * pw + pw];
            let cc = &plane[(y + 2) * pw..(y + 2) * pw + pw];
            for ((v, d), ((&a, &b), &cc)) in vs.iter_mut().zip(dd.iter_mut()).zip(a.iter().zip(b).zip(cc)) {
                *v = a + 2 * b + cc;
                *d = cc - a;
            }
            let gx = &mut gxs[k * w..(k + 1) * w];
            for (g, (&l, &r)) in gx.iter_mut().zip(vs[..w].iter().zip(&vs[2..2 + w])) {
                *g = r - l;
            }
            let gy = &mut gys[k * w..(k + 1) * w];
            for (g, ((&d0, &d1), &d2)) in gy.iter_mut().zip(dd[..w].iter().zip(&dd[1..1 + w]).zip(&dd[2..2 + w])) {
                *g = d0 + 2 * d1 + d2;
            }
            let m = &mut ms[k * w..(k + 1) * w];
            for (m, (&x, &y)) in m.iter_mut().zip(gx.iter().zip(gy.iter())) {
                *m = x.abs() + y.abs();
            }
        }
        let mrow = &mut mag[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        let gx_row = &mut dx[y * w..(y + 1) * w];
        let gy_row = &mut dy[y * w..(y + 1) * w];
        mrow.copy_from_slice(&ms[..w]);
        gx_row.copy_from_slice(&gxs[..w]);
        gy_row.copy_from_slice(&gys[..w]);
        for k in 1..c {
            // A strictly larger magnitude wins (the first channel on ties),
            // as a branch-free mask so the loop vectorises.
            let (mk, gxk, gyk) = (&ms[k * w..(k + 1) * w], &gxs[k * w..(k + 1) * w], &gys[k * w..(k + 1) * w]);
            for (((m, gxo), gyo), ((&mn, &gxn), &gyn)) in
                mrow.iter_mut().zip(gx_row.iter_mut()).zip(gy_row.iter_mut()).zip(mk.iter().zip(gxk).zip(gyk))
            {
                let t = -i16::from(mn > *m);
                *m = (mn & t) | (*m & !t);
                *gxo = (gxn & t) | (*gxo & !t);
                *gyo = (gyn & t) | (*gyo & !t);
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(w: usize, h: usize, x0: usize, y0: usize, x1: usize, y1: usize, fg: u8) -> Vec<u8> {
        let mut p = vec![255u8; w * h];
        for y in y0..=y1 {
            for x in x0..=x1 {
                p[y * w + x] = fg;
            }
        }
        p
    }

    #[test]
    fn a_dark_square_on_white_gives_its_outline() {
        let p = square(40, 30, 10, 8, 25, 20, 0);
        let e = canny(&p, 40, 30, 1, 220, 220);
        let (x0, y0, x1, y1) = e.bbox().unwrap();
        // The gradient peak straddles the boundary; ties go to the first
        // pixel, as in OpenCV: within a pixel of the square either way.
        assert!((9..=10).contains(&x0) && (7..=8).contains(&y0), "{:?}", e.bbox());
        assert!((25..=26).contains(&x1) && (20..=21).contains(&y1), "{:?}", e.bbox());
        // Thin edges: about one pixel wide along each side, not a filled area.
        assert!(e.count() < 2 * 2 * (16 + 13) + 8, "{}", e.count());
    }

    #[test]
    fn flat_image_has_no_edges_and_faint_step_is_below_threshold() {
        assert_eq!(canny(&[128u8; 100], 10, 10, 1, 50, 100).count(), 0);
        let p = square(20, 20, 5, 5, 14, 14, 240); // step of 15: magnitude 60
        assert_eq!(canny(&p, 20, 20, 1, 220, 220).count(), 0);
        assert!(canny(&p, 20, 20, 1, 30, 50).count() > 0);
    }

    #[test]
    fn colour_edges_use_the_strongest_channel() {
        // Red square on white: only green and blue change (255 -> 0).
        let (w, h) = (30, 30);
        let mut p = vec![255u8; w * h * 3];
        for y in 10..20 {
            for x in 10..20 {
                let i = (y * w + x) * 3;
                p[i + 1] = 0;
                p[i + 2] = 0;
            }
        }
        let e = canny(&p, w, h, 3, 220, 220);
        let (x0, y0, x1, y1) = e.bbox().unwrap();
        assert!(x0 >= 9 && y0 >= 9 && x1 <= 20 && y1 <= 20 && x1 - x0 >= 9);
    }

    #[test]
    fn hysteresis_keeps_weak_edges_connected_to_strong_ones() {
        // A step whose contrast fades from strong (left) to weak (right).
        let (w, h) = (40, 20);
        let mut p = vec![0u8; w * h];
        for y in 10..h {
            for x in 0..w {
                p[y * w + x] = (200 - 4 * x as i32).max(0) as u8;
            }
        }
        let strict = canny(&p, w, h, 1, 400, 400).count();
        let hyst = canny(&p, w, h, 1, 100, 400).count();
        let loose = canny(&p, w, h, 1, 100, 100).count();
        assert!(strict < hyst && hyst <= loose, "{strict} {hyst} {loose}");
    }
}
