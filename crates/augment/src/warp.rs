//! The resampler: one pass over the output, reading the source through a
//! single affine map.
//!
//! Coordinates are 16.16 fixed point, stepped exactly along each output row
//! (no float per pixel), and the border is handled by per-image lookup
//! tables that map every row and column the transform can reach to a
//! source row and column under the fill mode, so one loop serves the
//! interior and the border alike. The bilinear blend uses 7-bit weights
//! (1/128 pixel, finer than OpenCV's 1/32) in 16-bit integer arithmetic:
//! SSE2 on x86-64, the same arithmetic in scalar code elsewhere, bit for bit.
use gemstones_dataset::ImageSet;

use crate::config::{FillMode, Interpolation};

/// An 8-bit RGB image, row-major, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    data: &'a [u8],
    height: u32,
    width: u32,
}

impl<'a> ImageView<'a> {
    /// Views of images `indices` of a preprocessed [`ImageSet`] (each
    /// `set.size()` pixels a side), as [`crate::BatchAugmenter::batch`]
    /// takes them; an index beyond the set is an error naming it.
    pub fn of_set(set: &'a ImageSet, indices: &[usize]) -> crate::Result<Vec<Self>> {
        indices.iter().map(|&i| Self::new(set.image(i)?, set.size(), set.size())).collect()
    }

    /// A view of `width x height` interleaved RGB pixels, row-major
    /// (width first, as the image crate and the rest of the workspace).
    pub fn new(data: &'a [u8], width: u32, height: u32) -> crate::Result<Self> {
        let want = height as usize * width as usize * 3;
        if data.len() != want || height == 0 || width == 0 {
            return Err(crate::Error::BadImage { width, height, got: data.len(), want });
        }
        Ok(Self { data, height, width })
    }

    /// A view of an [`image::RgbImage`].
    pub fn from_rgb(img: &'a image::RgbImage) -> crate::Result<Self> {
        Self::new(img.as_raw(), img.width(), img.height())
    }

    /// Rows.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The pixels.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// How sampling treats the border.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sampling {
    pub fill: FillMode,
    pub cval: u8,
    pub interp: Interpolation,
}

const ONE: i64 = 1 << 16;

/// Per-image lookup tables, reused across images (one set per thread).
#[derive(Debug, Default)]
pub(crate) struct Tables {
    /// Source row offsets (`row * width * 3`) for rows `rbase..`.
    rows: Vec<u32>,
    /// Source column offsets (`col * 3`) for columns `cbase..`.
    cols: Vec<u32>,
    rbase: i64,
    cbase: i64,
}

/// The fixed-point map of one image: `[r, c] = start(row) + col * step`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedMap {
    m: [[f64; 3]; 2],
    step: (i64, i64),
}

impl FixedMap {
    pub(crate) fn new(m: [[f64; 3]; 2]) -> Self {
        Self { m, step: (to_fixed(m[0][1]), to_fixed(m[1][1])) }
    }

    #[inline]
    fn start(&self, row: usize) -> (i64, i64) {
        let r = row as f64;
        (to_fixed(self.m[0][0] * r + self.m[0][2]), to_fixed(self.m[1][0] * r + self.m[1][2]))
    }

    /// Whether every coordinate of an `oh x ow` output stays within
    /// `limit` pixels of the origin (so the tables stay small and the
    /// arithmetic cannot overflow).
    pub(crate) fn extent(&self, oh: usize, ow: usize) -> ((i64, i64), (i64, i64)) {
        let mut r = (i64::MAX, i64::MIN);
        let mut c = (i64::MAX, i64::MIN);
        for row in [0, oh.saturating_sub(1)] {
            let (r0, c0) = self.start(row);
            for t in [0i64, ow.saturating_sub(1) as i64] {
                let (rr, cc) = (r0 + t * self.step.0, c0 + t * self.step.1);
                r = (r.0.min(rr >> 16), r.1.max(rr >> 16));
                c = (c.0.min(cc >> 16), c.1.max(cc >> 16));
            }
        }
        (r, c)
    }
}

fn to_fixed(v: f64) -> i64 {
    // Coordinates are bounded by the validated sizes; clamp anyway so a
    // degenerate transform cannot overflow.
    (v * ONE as f64).round().clamp(-(1i64 << 46) as f64, (1i64 << 46) as f64) as i64
}

/// Largest distance (pixels) outside the source the tables cover; beyond
/// it, coordinates are clamped (only reachable with extreme zoom-outs).
const REACH: i64 = 1 << 14;

impl Tables {
    /// Build the tables for the rows and columns an image's map reaches.
    pub(crate) fn build(&mut self, src: &ImageView<'_>, map: &FixedMap, out: (usize, usize), fill: FillMode) {
        let (h, w) = (i64::from(src.height), i64::from(src.width));
        let ((rmin, rmax), (cmin, cmax)) = map.extent(out.0, out.1);
        let lo_r = (rmin - 1).clamp(-REACH, h + REACH);
        let hi_r = (rmax + 2).clamp(-REACH, h + REACH).max(lo_r);
        let lo_c = (cmin - 1).clamp(-REACH, w + REACH);
        let hi_c = (cmax + 2).clamp(-REACH, w + REACH).max(lo_c);
        // Constant fill decides "outside" per pixel; its taps are clamped.
        let tap_fill = if fill == FillMode::Constant { FillMode::Nearest } else { fill };
        let w3 = (w * 3) as u32;
        self.rbase = lo_r;
        self.cbase = lo_c;
        self.rows.clear();
        self.rows.extend((lo_r..=hi_r).map(|r| map_index(r, h as usize, tap_fill) as u32 * w3));
        self.cols.clear();
        self.cols.extend((lo_c..=hi_c).map(|c| map_index(c, w as usize, tap_fill) as u32 * 3));
    }

    #[inline(always)]
    fn row(&self, r: i64) -> u32 {
        let i = (r - self.rbase).clamp(0, self.rows.len() as i64 - 1);
        self.rows[i as usize]
    }

    #[inline(always)]
    fn col(&self, c: i64) -> u32 {
        let i = (c - self.cbase).clamp(0, self.cols.len() as i64 - 1);
        self.cols[i as usize]
    }
}

/// Resample output row `row` into `out` (`ow * 3` interleaved bytes).
pub(crate) fn warp_row(
    src: &ImageView<'_>,
    map: &FixedMap,
    tables: &Tables,
    row: usize,
    smp: Sampling,
    out: &mut [u8],
) {
    let ow = out.len() / 3;
    let (r0, c0) = map.start(row);
    let (dr, dc) = map.step;
    let (h, w) = (i64::from(src.height), i64::from(src.width));
    // Columns whose four taps all lie inside the source: no table, no fill.
    let (lo, hi) = match smp.interp {
        Interpolation::Bilinear => {
            let (a, b) = span(r0, dr, 0, (h - 1) * ONE - 1, ow);
            let (c, d) = span(c0, dc, 0, (w - 1) * ONE - 1, ow);
            (a.max(c), b.min(d).max(a.max(c)))
        }
        Interpolation::Nearest => (0, 0),
    };
    let border = |t: usize, out: &mut [u8]| {
        let px = sample_border(src, tables, (r0 + t as i64 * dr, c0 + t as i64 * dc), smp);
        out[t * 3..t * 3 + 3].copy_from_slice(&px);
    };
    #[cfg(target_arch = "x86_64")]
    if smp.fill == FillMode::Nearest
        && smp.interp == Interpolation::Bilinear
        && avx2::usable(src.data.len(), (dr, dc))
        && (r0.abs().max(c0.abs()) + ow as i64 * dr.abs().max(dc.abs())) < (1 << 30)
    {
        // Nearest fill is a clamp: the clamping kernel on both sides of
        // the interior, the cheaper interior kernel in between.
        let dims = (h as usize, (w * 3) as usize);
        let clamped = |from: usize, to: usize, out: &mut [u8]| {
            let part = &mut out[from * 3..to * 3];
            // SAFETY: `usable` checked AVX2 and i32 offsets; the coordinates
            // of the whole row fit in i32 (checked above); the image is
            // non-empty.
            let done = unsafe {
                avx2::run_clamped(
                    src.data,
                    dims,
                    (r0 + from as i64 * dr, c0 + from as i64 * dc),
                    (dr, dc),
                    part,
                )
            };
            for t in from + done..to {
                border(t, out);
            }
        };
        // Whole blocks of eight stay on the clamping side, so a row's
        // bytes do not depend on where the interior starts.
        let lo8 = lo.div_ceil(8) * 8;
        if lo8 < hi && hi - lo8 >= 16 {
            clamped(0, lo8, out);
            interior(
                src.data,
                dims.1,
                (r0 + lo8 as i64 * dr, c0 + lo8 as i64 * dc),
                (dr, dc),
                &mut out[lo8 * 3..hi * 3],
            );
            clamped(hi, ow, out);
        } else {
            clamped(0, ow, out);
        }
        return;
    }
    for t in 0..lo {
        border(t, out);
    }
    if lo < hi {
        interior(
            src.data,
            (w * 3) as usize,
            (r0 + lo as i64 * dr, c0 + lo as i64 * dc),
            (dr, dc),
            &mut out[lo * 3..hi * 3],
        );
    }
    for t in hi..ow {
        border(t, out);
    }
}

/// The `t` in `0..n` with `lo <= a + t d <= hi`, as a half-open range.
fn span(a: i64, d: i64, lo: i64, hi: i64, n: usize) -> (usize, usize) {
    let n = n as i64;
    let (first, last) = if d == 0 {
        if (lo..=hi).contains(&a) { (0, n - 1) } else { (1, 0) }
    } else if d > 0 {
        (div_ceil(lo - a, d), (hi - a).div_euclid(d))
    } else {
        (div_ceil(a - hi, -d), (a - lo).div_euclid(-d))
    };
    let (first, end) = (first.clamp(0, n), (last + 1).clamp(0, n));
    if first < end { (first as usize, end as usize) } else { (0, 0) }
}

fn div_ceil(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

/// Interior pixels: every tap inside, offsets computed directly. Eight at
/// a time with AVX2 where the CPU has it, the rest one at a time; both give
/// the same bytes.
fn interior(data: &[u8], w3: usize, (mut r, mut c): (i64, i64), (dr, dc): (i64, i64), out: &mut [u8]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if avx2::usable(data.len(), (dr, dc)) {
        // SAFETY: `usable` checked the CPU has AVX2 and the offsets fit in
        // i32; every pixel of this run is interior (its 2x2 block lies
        // within `data`), which is what `run` needs.
        done = unsafe { avx2::run(data, w3, (r, c), (dr, dc), out) };
        r += done as i64 * dr;
        c += done as i64 * dc;
    }
    for px in out[done * 3..].chunks_exact_mut(3) {
        let idx = (r >> 16) as usize * w3 + (c >> 16) as usize * 3;
        let wr = (((r & 0xFFFF) + 256) >> 9) as i16;
        let wc = (((c & 0xFFFF) + 256) >> 9) as i16;
        // One bounds check: the 2x2 block ends at idx + w3 + 6.
        let q = &data[idx..idx + w3 + 6];
        // Right-hand taps are read from one byte earlier and shifted, so no
        // read passes the end of the image.
        let a = load_u32(&q[0..4]);
        let b = load_u32(&q[2..6]) >> 8;
        let cc = load_u32(&q[w3..w3 + 4]);
        let d = load_u32(&q[w3 + 2..w3 + 6]) >> 8;
        px.copy_from_slice(&blend(a, b, cc, d, wr, wc));
        r += dr;
        c += dc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Whether the AVX2 kernel may run: the CPU has it, and every byte
    /// offset and coordinate step fits in an i32 lane.
    pub(super) fn usable(len: usize, (dr, dc): (i64, i64)) -> bool {
        len < (1 << 30)
            && dr.abs() < (1 << 27)
            && dc.abs() < (1 << 27)
            && std::arch::is_x86_feature_detected!("avx2")
    }

    /// Eight interior pixels at a time; returns how many it did (a multiple
    /// of eight). Same arithmetic as `blend`, so the same bytes.
    ///
    /// # Safety
    /// The CPU must have AVX2, and every pixel `t` of `out` (`out.len() / 3`
    /// pixels) must be interior: with `r = r0 + t dr`, `c = c0 + t dc`,
    /// `0 <= r < (h - 1) 2^16` and `0 <= c < (w - 1) 2^16`, so that the
    /// bytes `idx .. idx + w3 + 6` read for it lie within `data`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run(
        data: &[u8],
        w3: usize,
        start: (i64, i64),
        step: (i64, i64),
        out: &mut [u8],
    ) -> usize {
        // SAFETY: forwarded from the caller; interior pixels need no clamp.
        unsafe { run_any::<false>(data, (0, w3), start, step, out) }
    }

    /// Like [`run`] for any pixels, interior or not, with the taps clamped
    /// to the image (the nearest fill mode).
    ///
    /// # Safety
    /// The CPU must have AVX2; `data` must hold `h x w` RGB pixels with
    /// `w3 = 3 w` and `h, w >= 1`; the row's coordinates must fit in i32.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run_clamped(
        data: &[u8],
        dims: (usize, usize),
        start: (i64, i64),
        step: (i64, i64),
        out: &mut [u8],
    ) -> usize {
        // SAFETY: forwarded from the caller; clamping keeps every tap inside.
        unsafe { run_any::<true>(data, dims, start, step, out) }
    }

    /// Byte `k` of each lane into byte `at` of the lane, zeros elsewhere.
    #[target_feature(enable = "avx2")]
    fn pick(k: i8, at: usize) -> __m256i {
        let mut ctl = [-1i8; 32];
        for lane in 0..8 {
            ctl[lane * 4 + at] = k + 4 * (lane % 4) as i8;
        }
        _mm256_setr_epi8(
            ctl[0], ctl[1], ctl[2], ctl[3], ctl[4], ctl[5], ctl[6], ctl[7], ctl[8], ctl[9], ctl[10], ctl[11],
            ctl[12], ctl[13], ctl[14], ctl[15], ctl[16], ctl[17], ctl[18], ctl[19], ctl[20], ctl[21],
            ctl[22], ctl[23], ctl[24], ctl[25], ctl[26], ctl[27], ctl[28], ctl[29], ctl[30], ctl[31],
        )
    }

    #[target_feature(enable = "avx2")]
    unsafe fn run_any<const CLAMP: bool>(
        data: &[u8],
        (h, w3): (usize, usize),
        (r0, c0): (i64, i64),
        (dr, dc): (i64, i64),
        out: &mut [u8],
    ) -> usize {
        let n = out.len() / 3 / 8 * 8;
        let base = data.as_ptr() as *const i32;
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let dr8 = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(dr as i32));
        let dc8 = _mm256_mullo_epi32(lanes, _mm256_set1_epi32(dc as i32));
        let (frac, half, w128) = (_mm256_set1_epi32(0xFFFF), _mm256_set1_epi32(256), _mm256_set1_epi32(128));
        let round = _mm256_set1_epi32(1 << 13);
        let w3v = _mm256_set1_epi32(w3 as i32);
        let (zero, one) = (_mm256_setzero_si256(), _mm256_set1_epi32(1));
        let rmax = _mm256_set1_epi32(h as i32 - 1);
        let cmax = _mm256_set1_epi32((w3 / 3) as i32 - 1);
        // (a_k, b_k) as a 16-bit pair per lane: byte k of A into byte 0 and
        // of B into byte 2, for madd.
        let picks = [(pick(0, 0), pick(0, 2)), (pick(1, 0), pick(1, 2)), (pick(2, 0), pick(2, 2))];
        // RGBx lanes to packed RGB: 12 bytes per 128-bit half.
        let squeeze = _mm256_setr_epi8(
            0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14,
            -1, -1, -1, -1,
        );
        let gather = |off: __m256i| {
            // SAFETY (caller): 0 <= off and off + 4 <= data.len() per lane.
            unsafe { _mm256_i32gather_epi32::<1>(base, off) }
        };
        let mut t = 0;
        while t < n {
            let r = _mm256_add_epi32(_mm256_set1_epi32((r0 + t as i64 * dr) as i32), dr8);
            let c = _mm256_add_epi32(_mm256_set1_epi32((c0 + t as i64 * dc) as i32), dc8);
            let (ri, ci) = (_mm256_srai_epi32::<16>(r), _mm256_srai_epi32::<16>(c));
            let wr = _mm256_srli_epi32::<9>(_mm256_add_epi32(_mm256_and_si256(r, frac), half));
            let wc = _mm256_srli_epi32::<9>(_mm256_add_epi32(_mm256_and_si256(c, frac), half));
            // madd weights: (128 - w) in the low 16 bits, w in the high.
            let wcp = _mm256_or_si256(_mm256_sub_epi32(w128, wc), _mm256_slli_epi32::<16>(wc));
            let wrp = _mm256_or_si256(_mm256_sub_epi32(w128, wr), _mm256_slli_epi32::<16>(wr));
            let times3 = |v: __m256i| _mm256_add_epi32(v, _mm256_add_epi32(v, v));
            let (a, b, cc, d) = if CLAMP {
                // Taps clamped into the image. Each word is read from one
                // byte earlier where there is one, then shifted, so no read
                // passes the end of the image.
                let clamp = |v: __m256i, max: __m256i| _mm256_min_epi32(_mm256_max_epi32(v, zero), max);
                let ra = _mm256_mullo_epi32(clamp(ri, rmax), w3v);
                let rb = _mm256_mullo_epi32(clamp(_mm256_add_epi32(ri, one), rmax), w3v);
                let ca = times3(clamp(ci, cmax));
                let cb = times3(clamp(_mm256_add_epi32(ci, one), cmax));
                let word = |off: __m256i| {
                    let start = _mm256_max_epi32(_mm256_sub_epi32(off, one), zero);
                    let shift = _mm256_slli_epi32::<3>(_mm256_sub_epi32(off, start));
                    _mm256_srlv_epi32(gather(start), shift)
                };
                (
                    word(_mm256_add_epi32(ra, ca)),
                    word(_mm256_add_epi32(ra, cb)),
                    word(_mm256_add_epi32(rb, ca)),
                    word(_mm256_add_epi32(rb, cb)),
                )
            } else {
                // Interior: each row pair of the 2x2 block is six
                // contiguous bytes, read as one 8-byte word per row (the
                // lower row from two bytes earlier, so no read passes
                // `idx + w3 + 6`). Sixteen plain loads are much cheaper than
                // four 8-lane gathers on the CPUs measured.
                let idx = _mm256_add_epi32(_mm256_mullo_epi32(ri, w3v), times3(ci));
                let mut offs = [0i32; 8];
                // SAFETY: `offs` holds eight i32; the store is unaligned.
                unsafe { _mm256_storeu_si256(offs.as_mut_ptr() as *mut __m256i, idx) };
                let word = |o: i32| {
                    // SAFETY (caller): idx >= 0 and idx + w3 + 6 <= data.len()
                    // for interior pixels, and w3 >= 3, so both 8-byte reads
                    // (at idx and at idx + w3 - 2) lie within `data`.
                    unsafe { std::ptr::read_unaligned(data.as_ptr().add(o as usize) as *const i64) }
                };
                let below = |o: i32| word(o + w3 as i32 - 2) >> 16;
                let rows = |f: &dyn Fn(i32) -> i64| {
                    // Pixels 0-3 and 4-7, one 8-byte word each.
                    let lo = _mm256_set_epi64x(f(offs[3]), f(offs[2]), f(offs[1]), f(offs[0]));
                    let hi = _mm256_set_epi64x(f(offs[7]), f(offs[6]), f(offs[5]), f(offs[4]));
                    // Per 128-bit half: [left p, left p+1, right p, right p+1].
                    let split = _mm256_setr_epi8(
                        0, 1, 2, 3, 8, 9, 10, 11, 3, 4, 5, 6, 11, 12, 13, 14, 0, 1, 2, 3, 8, 9, 10, 11, 3, 4,
                        5, 6, 11, 12, 13, 14,
                    );
                    let (lo, hi) = (_mm256_shuffle_epi8(lo, split), _mm256_shuffle_epi8(hi, split));
                    // Pixel order 0 1 4 5 | 2 3 6 7, then back to 0..7.
                    let left = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_unpacklo_epi64(lo, hi));
                    let right = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_unpackhi_epi64(lo, hi));
                    (left, right)
                };
                let (a, b) = rows(&word);
                let (cc, d) = rows(&below);
                (a, b, cc, d)
            };
            let channel = |(pa, pb): (__m256i, __m256i)| {
                let ab = _mm256_or_si256(_mm256_shuffle_epi8(a, pa), _mm256_shuffle_epi8(b, pb));
                let cd = _mm256_or_si256(_mm256_shuffle_epi8(cc, pa), _mm256_shuffle_epi8(d, pb));
                let top = _mm256_madd_epi16(ab, wcp);
                let bot = _mm256_madd_epi16(cd, wcp);
                let tb = _mm256_or_si256(top, _mm256_slli_epi32::<16>(bot));
                _mm256_srai_epi32::<14>(_mm256_add_epi32(_mm256_madd_epi16(tb, wrp), round))
            };
            let rgb = _mm256_or_si256(
                channel(picks[0]),
                _mm256_or_si256(
                    _mm256_slli_epi32::<8>(channel(picks[1])),
                    _mm256_slli_epi32::<16>(channel(picks[2])),
                ),
            );
            let mut bytes = [0u8; 32];
            // SAFETY: `bytes` holds 32 bytes; the store is unaligned.
            unsafe {
                _mm256_storeu_si256(bytes.as_mut_ptr() as *mut __m256i, _mm256_shuffle_epi8(rgb, squeeze))
            };
            let o = &mut out[t * 3..t * 3 + 24];
            o[..12].copy_from_slice(&bytes[..12]);
            o[12..].copy_from_slice(&bytes[16..28]);
            t += 8;
        }
        n
    }
}

/// A little-endian word from a 4-byte slice (one load).
#[inline(always)]
fn load_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    u32::from_le_bytes(w)
}

/// Sample one pixel anywhere through the fill tables.
fn sample_border(src: &ImageView<'_>, tables: &Tables, (r, c): (i64, i64), smp: Sampling) -> [u8; 3] {
    let data = src.data;
    let (hmax, wmax) = ((i64::from(src.height) - 1) * ONE, (i64::from(src.width) - 1) * ONE);
    if smp.fill == FillMode::Constant && (r < 0 || c < 0 || r > hmax || c > wmax) {
        // Outside the image: the constant (scipy's mode='constant').
        return [smp.cval; 3];
    }
    match smp.interp {
        Interpolation::Bilinear => {
            let (ri, ci) = (r >> 16, c >> 16);
            let wr = (((r & 0xFFFF) + 256) >> 9) as i16;
            let wc = (((c & 0xFFFF) + 256) >> 9) as i16;
            let (ra, rb) = (tables.row(ri) as usize, tables.row(ri + 1) as usize);
            let (ca, cb) = (tables.col(ci) as usize, tables.col(ci + 1) as usize);
            let (a, b, c, d) =
                (word(data, ra + ca), word(data, ra + cb), word(data, rb + ca), word(data, rb + cb));
            blend(a, b, c, d, wr, wc)
        }
        Interpolation::Nearest => {
            let i = (tables.row((r + ONE / 2) >> 16) + tables.col((c + ONE / 2) >> 16)) as usize;
            [data[i], data[i + 1], data[i + 2]]
        }
    }
}

/// The RGB bytes at `i` and one more, as a little-endian word (the fourth
/// byte is the next pixel's red, or 0 at the very end).
#[inline(always)]
fn word(data: &[u8], i: usize) -> u32 {
    match data.get(i..i + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => u32::from_le_bytes([data[i], data[i + 1], data[i + 2], 0]),
    }
}

/// Blend four pixels (a b / c d, RGB in the low three bytes) with 7-bit
/// weights: `top = a(128-wc) + b wc`, `bottom` likewise, then
/// `(top (128-wr) + bottom wr + 2^13) >> 14`. Exact at whole pixels.
#[inline(always)]
fn blend(a: u32, b: u32, c: u32, d: u32, wr: i16, wc: i16) -> [u8; 3] {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline: every CPU this code
        // runs on has it.
        unsafe { bilinear_sse2(a, b, c, d, wr, wc) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bilinear_scalar(a, b, c, d, wr, wc)
    }
}

#[inline(always)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn bilinear_scalar(a: u32, b: u32, c: u32, d: u32, wr: i16, wc: i16) -> [u8; 3] {
    let (wr, wc) = (i32::from(wr), i32::from(wc));
    std::array::from_fn(|k| {
        let byte = |v: u32| ((v >> (8 * k)) & 0xFF) as i32;
        let top = byte(a) * (128 - wc) + byte(b) * wc;
        let bot = byte(c) * (128 - wc) + byte(d) * wc;
        ((top * (128 - wr) + bot * wr + (1 << 13)) >> 14) as u8
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn bilinear_sse2(a: u32, b: u32, c: u32, d: u32, wr: i16, wc: i16) -> [u8; 3] {
    use std::arch::x86_64::*;
    let zero = _mm_setzero_si128();
    // [a0 a1 a2 a3 b0 b1 b2 b3] and [c.. d..] as 16-bit lanes.
    let ab = _mm_unpacklo_epi8(_mm_set_epi32(0, 0, b as i32, a as i32), zero);
    let cd = _mm_unpacklo_epi8(_mm_set_epi32(0, 0, d as i32, c as i32), zero);
    // [128-wc x4, wc x4] and [(128-wr, wr) x4] built from scalars: one
    // insert each instead of eight.
    const LANES: i64 = 0x0001_0001_0001_0001;
    let wx = _mm_set_epi64x(i64::from(wc) * LANES, i64::from(128 - wc) * LANES);
    let pab = _mm_mullo_epi16(ab, wx);
    let pcd = _mm_mullo_epi16(cd, wx);
    // top = a(128-wc) + b wc in lanes 0..4; bottom likewise (<= 32640).
    let top = _mm_add_epi16(pab, _mm_srli_si128::<8>(pab));
    let bot = _mm_add_epi16(pcd, _mm_srli_si128::<8>(pcd));
    // Interleave (top_k, bot_k) pairs and multiply-add by (128-wr, wr).
    let tb = _mm_unpacklo_epi16(top, bot);
    let wy = _mm_set1_epi32((i32::from(wr) << 16) | i32::from(128 - wr));
    let v = _mm_srai_epi32::<14>(_mm_add_epi32(_mm_madd_epi16(tb, wy), _mm_set1_epi32(1 << 13)));
    let packed = _mm_packus_epi16(_mm_packs_epi32(v, zero), zero);
    let [x, y, z, _] = (_mm_cvtsi128_si32(packed) as u32).to_le_bytes();
    [x, y, z]
}

/// Map an integer coordinate into `0..n` by the fill mode (constant fill
/// maps like nearest; the caller decides "outside").
#[inline]
pub(crate) fn map_index(i: i64, n: usize, fill: FillMode) -> usize {
    let n = n as i64;
    if (0..n).contains(&i) {
        return i as usize;
    }
    (match fill {
        FillMode::Nearest | FillMode::Constant => i.clamp(0, n - 1),
        FillMode::Wrap => i.rem_euclid(n),
        FillMode::Reflect => {
            // Half-sample symmetric: ... b a | a b c d | d c ...
            let m = i.rem_euclid(2 * n);
            if m < n { m } else { 2 * n - 1 - m }
        }
    }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_modes_map_indices() {
        let map = |f| (-3..7).map(|i| map_index(i, 4, f)).collect::<Vec<_>>();
        assert_eq!(map(FillMode::Nearest), [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]);
        assert_eq!(map(FillMode::Reflect), [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
        assert_eq!(map(FillMode::Wrap), [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]);
    }

    #[test]
    fn blend_is_exact_at_whole_pixels_and_rounds_halfway_up() {
        let px = |v: u8| u32::from_le_bytes([v, v, v, 0]);
        let (a, b, c, d) = (px(10), px(200), px(30), px(40));
        assert_eq!(bilinear_scalar(a, b, c, d, 0, 0), [10; 3]);
        assert_eq!(bilinear_scalar(a, b, c, d, 0, 128), [200; 3]);
        assert_eq!(bilinear_scalar(a, b, c, d, 128, 128), [40; 3]);
        assert_eq!(bilinear_scalar(px(0), px(255), px(0), px(255), 0, 64), [128; 3]);
    }

    #[test]
    fn the_interior_kernel_matches_the_per_pixel_blend() {
        // Random images and maps: whatever path `interior` takes (AVX2 or
        // not), every pixel equals `blend` of its four taps.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let (h, w) = (5 + (next() % 40) as usize, 5 + (next() % 40) as usize);
            let data: Vec<u8> = (0..h * w * 3).map(|_| next() as u8).collect();
            let w3 = w * 3;
            let n = 1 + (next() % 40) as usize;
            // A line inside the image from (r0, c0) to (r1, c1).
            let pick = |v: u64, max: usize| (v % ((max as u64 - 1) << 16)) as i64;
            let (r0, c0, r1, c1) = (pick(next(), h), pick(next(), w), pick(next(), h), pick(next(), w));
            let (dr, dc) = ((r1 - r0) / n as i64, (c1 - c0) / n as i64);
            let mut out = vec![0u8; n * 3];
            interior(&data, w3, (r0, c0), (dr, dc), &mut out);
            for t in 0..n {
                let (r, c) = (r0 + t as i64 * dr, c0 + t as i64 * dc);
                let idx = (r >> 16) as usize * w3 + (c >> 16) as usize * 3;
                let px = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], 0]);
                let wr = (((r & 0xFFFF) + 256) >> 9) as i16;
                let wc = (((c & 0xFFFF) + 256) >> 9) as i16;
                let want = bilinear_scalar(px(idx), px(idx + 3), px(idx + w3), px(idx + w3 + 3), wr, wc);
                assert_eq!(&out[t * 3..t * 3 + 3], &want, "pixel {t} of {n}");
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sse2_and_scalar_blends_agree_to_the_bit() {
        let mut x = 0x1234_5678u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..100_000 {
            let v = next();
            let (a, b, c, d) = (v as u32, (v >> 32) as u32, next() as u32, next() as u32);
            let (wr, wc) = ((next() % 129) as i16, (next() % 129) as i16);
            // SAFETY: SSE2 is part of the x86-64 baseline.
            let fast = unsafe { bilinear_sse2(a, b, c, d, wr, wc) };
            assert_eq!(fast, bilinear_scalar(a, b, c, d, wr, wc));
        }
    }
}
