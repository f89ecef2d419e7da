//! Near-duplicate photographs: perceptual hashes and groups.
//!
//! Scraped gem photos repeat: the same stone re-encoded, resized, cropped
//! or brightened by another page. Byte hashes find only exact copies; two
//! 64-bit perceptual hashes change little under those edits: pHash (the
//! signs of a 32x32 grey image's 8x8 lowest DCT frequencies against their
//! median) and dHash (the signs of horizontal brightness steps in a 9x8
//! grey image). Two photos are near-duplicates when both hashes differ in
//! at most `max_distance` bits; groups are the transitive closure.
//!
//! Both hashes are computed here rather than with `image_hasher`: that
//! crate took 10 ms per photo of the real set (a resize per hash), 15 times
//! the decode; these take a box-filtered 32x32 image from one pass over the
//! pixels, so hashing costs a few percent of `verify` (measured in docs/guide.md, "Dataset health").
use image::DynamicImage;
use serde::{Deserialize, Serialize};

/// The default largest Hamming distance, on both hashes, of two
/// near-duplicates (the distance at which the tutorial's data was
/// measured: 168 pairs in its training folder).
pub const DEFAULT_MAX_DISTANCE: u32 = 4;

/// A photo's two perceptual hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PerceptualHash {
    /// pHash: bit `8v + u` is set when DCT coefficient (u, v) of the 32x32
    /// grey image exceeds the median of the 64 lowest ones.
    pub phash: u64,
    /// dHash: bit `8y + x` is set when pixel (x + 1, y) of the 9x8 grey
    /// image is brighter than pixel (x, y) by more than two grey levels.
    pub dhash: u64,
}

impl PerceptualHash {
    /// The hashes of a decoded image, taken over the image without its
    /// uniform margins (the bounding box of what differs from the corners'
    /// colour), so that a copy cropped a little closer or padded hashes
    /// alike.
    pub fn of(image: &DynamicImage) -> Self {
        Self::of_grey(&grey(image))
    }

    /// [`PerceptualHash::of`] from the image's [`grey`] sample (shared
    /// with the quality measurements).
    pub(crate) fn of_grey(gray: &image::GrayImage) -> Self {
        let (x0, y0, w, h) = subject(gray);
        let small = box_downscale(gray, (x0, y0, w, h), 32, 32);
        Self { phash: phash(&small), dhash: dhash(&box_downscale_f32(&small, 32, 32, 9, 8)) }
    }

    /// Whether `self` and `other` are within `max_distance` bits on both
    /// hashes.
    pub fn is_near(&self, other: &Self, max_distance: u32) -> bool {
        (self.phash ^ other.phash).count_ones() <= max_distance
            && (self.dhash ^ other.dhash).count_ones() <= max_distance
    }

    /// The larger of the two Hamming distances.
    pub fn distance(&self, other: &Self) -> u32 {
        (self.phash ^ other.phash).count_ones().max((self.dhash ^ other.dhash).count_ones())
    }
}

/// The mean of each of `out_w x out_h` cells of the region `(x0, y0, w, h)`
/// of `gray` (area averaging; every source pixel counts once), row-major.
/// A region smaller than the output is sampled at the cells' centres.
fn box_downscale(
    gray: &image::GrayImage,
    (x0, y0, w, h): (u32, u32, u32, u32),
    out_w: usize,
    out_h: usize,
) -> Vec<f32> {
    if (w as usize) < out_w || (h as usize) < out_h {
        let at = |cell: usize, out: usize, len: u32| ((2 * cell + 1) * len as usize / (2 * out)) as u32;
        return (0..out_h)
            .flat_map(|cy| (0..out_w).map(move |cx| (cx, cy)))
            .map(|(cx, cy)| gray.get_pixel(x0 + at(cx, out_w, w), y0 + at(cy, out_h, h))[0] as f32)
            .collect();
    }
    // Integer sums of each cell's run of columns, row by row: a sum per
    // pixel into its cell made each add wait for the last (written by hand
    // for the flags' cost goal, docs/guide.md "Dataset health").
    let (w, h) = (w as usize, h as usize);
    let column_start: Vec<usize> = (0..=out_w).map(|cell| (cell * w).div_ceil(out_w)).collect();
    let mut sum = vec![0u32; out_w * out_h];
    let mut rows_in = vec![0u32; out_h];
    let stride = gray.width() as usize;
    let pixels = gray.as_raw();
    for y in 0..h {
        let cell_row = y * out_h / h;
        rows_in[cell_row] += 1;
        let src = &pixels[(y0 as usize + y) * stride + x0 as usize..][..w];
        for (cell, bounds) in sum[cell_row * out_w..][..out_w].iter_mut().zip(column_start.windows(2)) {
            *cell += src[bounds[0]..bounds[1]].iter().map(|&p| u32::from(p)).sum::<u32>();
        }
    }
    sum.iter()
        .enumerate()
        .map(|(i, &s)| {
            let n = rows_in[i / out_w] as usize * (column_start[i % out_w + 1] - column_start[i % out_w]);
            if n == 0 { 0.0 } else { s as f32 / n as f32 }
        })
        .collect()
}

/// Side (pixels) the grey image is sampled down to, at least: the hashes
/// need 32x32, and every later pass then costs a fixed ~20k pixels
/// whatever the photo's size.
const SAMPLED_SIDE: u32 = 128;

/// The grey levels of `image`, on a grid of every `s`-th pixel so that the
/// shorter side keeps at least [`SAMPLED_SIDE`] pixels (integer BT.601
/// weights for 8-bit RGB, the common case from JPEG; `image`'s conversion
/// otherwise). Sampling keeps hashing a small share of decoding.
pub(crate) fn grey(image: &DynamicImage) -> image::GrayImage {
    let (w, h) = (image.width(), image.height());
    let step = (w.min(h) / SAMPLED_SIDE).max(1) as usize;
    let (sw, sh) = (w.div_ceil(step as u32), h.div_ceil(step as u32));
    let mut px = Vec::with_capacity(sw as usize * sh as usize);
    match image {
        DynamicImage::ImageRgb8(rgb) => {
            let stride = w as usize * 3;
            for row in rgb.as_raw().chunks_exact(stride).step_by(step) {
                match step {
                    1 => luma_row(row, &mut px),
                    _ => px.extend(every_nth_pixel(row, step).map(|p| luma(p[0], p[1], p[2]))),
                }
            }
        }
        _ => {
            let full = image.to_luma8();
            for row in full.as_raw().chunks_exact(w as usize).step_by(step) {
                px.extend(row.iter().step_by(step));
            }
        }
    }
    image::GrayImage::from_raw(sw, sh, px).unwrap_or_else(|| image.to_luma8())
}

/// Pixels `0, n, 2n, ...` of a row of RGB pixels: the first pixel of each
/// chunk of `n` (chunks rather than `step_by`, which kept this loop from
/// being compiled tightly and made it most of the health measurements'
/// cost; written by hand for that goal, docs/guide.md "Dataset health").
pub(crate) fn every_nth_pixel(row: &[u8], n: usize) -> impl Iterator<Item = &[u8]> {
    let chunks = row.chunks_exact(3 * n);
    let last = chunks.remainder();
    chunks.map(|c| &c[..3]).chain((last.len() >= 3).then(|| &last[..3]))
}

simd_targets! {
/// The luma of every pixel of a row: a plain loop over pixels, compiled
/// for AVX2 too (chosen at run time), where the compiler deinterleaves
/// the channels with vector shuffles; the portable SSE2 build loads each
/// byte alone, which made this a third of the health measurements' cost
/// (written by hand for that goal, docs/guide.md "Dataset health").
fn luma_row(row: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + row.len() / 3, 0);
    for (y, p) in out[start..].iter_mut().zip(row.chunks_exact(3)) {
        *y = luma(p[0], p[1], p[2]);
    }
}
}

/// Integer BT.601 luma of an 8-bit RGB pixel.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b)) >> 8) as u8
}

/// [`box_downscale`] of an `in_w x in_h` float image (cells may share
/// source pixels when `out` is not a divisor; each pixel goes to the cell
/// its centre falls in).
fn box_downscale_f32(img: &[f32], in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let mut sum = vec![0f32; out_w * out_h];
    let mut count = vec![0u32; out_w * out_h];
    for y in 0..in_h {
        for x in 0..in_w {
            let cell = (y * out_h / in_h) * out_w + x * out_w / in_w;
            sum[cell] += img[y * in_w + x];
            count[cell] += 1;
        }
    }
    sum.iter().zip(&count).map(|(s, &n)| if n == 0 { 0.0 } else { s / n as f32 }).collect()
}

/// pHash of a 32x32 image: the 8x8 lowest frequencies of its DCT-II
/// (separable, computed directly: 10k multiply-adds), thresholded at their
/// median.
fn phash(img: &[f32]) -> u64 {
    const N: usize = 32;
    const K: usize = 8;
    let cos: Vec<f32> = (0..K)
        .flat_map(|u| {
            (0..N).map(move |x| ((2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / (2 * N) as f32).cos())
        })
        .collect();
    // Rows first: r[y][u] = sum_x img[y][x] cos_u(x).
    let mut rows = [[0f32; K]; N];
    for (y, r) in rows.iter_mut().enumerate() {
        for (u, c) in r.iter_mut().enumerate() {
            *c = img[y * N..(y + 1) * N].iter().zip(&cos[u * N..(u + 1) * N]).map(|(a, b)| a * b).sum();
        }
    }
    let mut coeffs = [0f32; K * K];
    for v in 0..K {
        for u in 0..K {
            coeffs[v * K + u] = (0..N).map(|y| rows[y][u] * cos[v * N + y]).sum();
        }
    }
    let mut sorted = coeffs;
    sorted.sort_unstable_by(f32::total_cmp);
    let median = (sorted[K * K / 2 - 1] + sorted[K * K / 2]) / 2.0;
    bits(coeffs.iter().map(|&c| c > median))
}

/// How much brighter (grey levels) a dHash cell must be than its left
/// neighbour to set its bit: on a flat or softly graded background the
/// plain comparison is a coin toss that re-encoding flips.
const DHASH_STEP: f32 = 2.0;

/// dHash of a 9x8 image.
fn dhash(img: &[f32]) -> u64 {
    bits((0..8).flat_map(|y| (0..8).map(move |x| img[y * 9 + x + 1] > img[y * 9 + x] + DHASH_STEP)))
}

fn bits(set: impl Iterator<Item = bool>) -> u64 {
    set.enumerate().fold(0, |word, (i, on)| word | (u64::from(on) << i))
}

/// How far from the background colour a pixel must be to belong to the
/// subject (grey levels).
const SUBJECT_CONTRAST: i16 = 24;

/// The box `(x, y, width, height)` of `gray` without its margins of
/// background colour (the mean of the four
/// corners): the bounding box of the pixels that differ from it. Gem photos
/// are mostly a stone on a plain background, and copies differ in how
/// closely they are framed. The whole image when that box is tiny (a
/// uniform image) or the corners disagree (no plain background).
fn subject(gray: &image::GrayImage) -> (u32, u32, u32, u32) {
    let (w, h) = gray.dimensions();
    let whole = (0, 0, w, h);
    if w < 8 || h < 8 {
        return whole;
    }
    let corners =
        [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)].map(|(x, y)| gray.get_pixel(x, y)[0] as i16);
    let (lo, hi) = (corners.iter().min().copied().unwrap_or(0), corners.iter().max().copied().unwrap_or(0));
    if hi - lo > SUBJECT_CONTRAST {
        return whole;
    }
    let background = corners.iter().sum::<i16>() / 4;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (y, row) in gray.as_raw().chunks_exact(w as usize).enumerate() {
        let differs = |p: &u8| (*p as i16 - background).abs() > SUBJECT_CONTRAST;
        if let (Some(first), Some(last)) = (row.iter().position(differs), row.iter().rposition(differs)) {
            (x0, x1) = (x0.min(first as u32), x1.max(last as u32));
            (y0, y1) = (y0.min(y as u32), y1.max(y as u32));
        }
    }
    if x1 < x0 || (x1 - x0 + 1) * (y1 - y0 + 1) < w * h / 100 {
        return whole;
    }
    (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
}

/// Groups (two or more items, indices ascending, groups ordered by their
/// first item) of near-duplicates among `hashes`, transitively closed.
///
/// Not all pairs are compared: two hashes within `d` bits agree exactly on
/// at least one of `d + 1` disjoint bit ranges of the pHash (pigeonhole), so
/// items are sorted by each range in turn and only runs that agree on it
/// are compared (multi-index hashing). A million random hashes group in
/// about a second on one core (`cargo bench --bench dataset`).
pub fn near_duplicate_groups(hashes: &[PerceptualHash], max_distance: u32) -> Vec<Vec<usize>> {
    let mut sets = UnionFind::new(hashes.len());
    let chunks = (max_distance + 1).min(64);
    let mut order: Vec<u32> = (0..hashes.len() as u32).collect();
    for chunk in 0..chunks {
        let (from, to) = (chunk * 64 / chunks, (chunk + 1) * 64 / chunks);
        let width = to - from;
        let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
        let key = |i: u32| (hashes[i as usize].phash >> from) & mask;
        order.sort_unstable_by_key(|&i| key(i));
        for run in order.chunk_by(|&a, &b| key(a) == key(b)) {
            for (n, &a) in run.iter().enumerate() {
                for &b in &run[n + 1..] {
                    if hashes[a as usize].is_near(&hashes[b as usize], max_distance) {
                        sets.union(a as usize, b as usize);
                    }
                }
            }
        }
    }
    sets.groups()
}

/// The indices of `query` items with no near-duplicate among `reference`
/// (for a "clean" test score: test photos without a near-copy in the
/// training data).
pub fn without_near_copies(
    query: &[PerceptualHash],
    reference: &[PerceptualHash],
    max_distance: u32,
) -> Vec<usize> {
    let all: Vec<PerceptualHash> = query.iter().chain(reference).copied().collect();
    let mut matched = vec![false; query.len()];
    for group in near_duplicate_groups(&all, max_distance) {
        if group.iter().any(|&i| i >= query.len()) {
            for &i in group.iter().filter(|&&i| i < query.len()) {
                matched[i] = true;
            }
        }
    }
    (0..query.len()).filter(|&i| !matched[i]).collect()
}

/// For each of `n` items, the id of its group: `groups` (as from
/// [`near_duplicate_groups`]) numbered first, every other item alone.
pub fn group_ids(n: usize, groups: &[Vec<usize>]) -> Vec<usize> {
    let mut ids = vec![usize::MAX; n];
    for (g, members) in groups.iter().enumerate() {
        for &i in members {
            ids[i] = g;
        }
    }
    let mut next = groups.len();
    for id in &mut ids {
        if *id == usize::MAX {
            *id = next;
            next += 1;
        }
    }
    ids
}

/// Disjoint sets with path halving and union by size (ours: twenty lines
/// are not worth a dependency).
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self { parent: (0..n).collect(), size: vec![1; n] }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }

    /// Sets of two or more, members ascending, ordered by first member.
    fn groups(mut self) -> Vec<Vec<usize>> {
        let n = self.parent.len();
        let mut by_root: std::collections::HashMap<usize, Vec<usize>> = std::collections::HashMap::new();
        for i in 0..n {
            let root = self.find(i);
            if self.size[root] > 1 {
                by_root.entry(root).or_default().push(i);
            }
        }
        let mut groups: Vec<Vec<usize>> = by_root.into_values().collect();
        groups.sort_unstable_by_key(|g| g[0]);
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(phash: u64, dhash: u64) -> PerceptualHash {
        PerceptualHash { phash, dhash }
    }

    #[test]
    fn a_row_s_luma_is_each_pixel_s_luma() {
        for width in [1usize, 15, 16, 17, 250] {
            let row: Vec<u8> = (0..width * 3).map(|i| (i * 37 % 256) as u8).collect();
            let mut ours = vec![7];
            luma_row(&row, &mut ours);
            let plain: Vec<u8> = row.chunks_exact(3).map(|p| luma(p[0], p[1], p[2])).collect();
            assert_eq!(ours[0], 7);
            assert_eq!(ours[1..], plain, "width {width}");
        }
    }

    #[test]
    fn every_nth_pixel_is_step_by_over_pixels() {
        for width in [1usize, 2, 5, 7, 64, 251] {
            let row: Vec<u8> = (0..width * 3).map(|i| (i % 251) as u8).collect();
            for n in 1..5 {
                let ours: Vec<&[u8]> = every_nth_pixel(&row, n).collect();
                let plain: Vec<&[u8]> = row.chunks_exact(3).step_by(n).collect();
                assert_eq!(ours, plain, "width {width}, every {n}");
            }
        }
    }

    #[test]
    fn box_downscale_averages_every_pixel_of_its_cell() {
        let (gw, gh) = (101u32, 77u32);
        let gray = image::GrayImage::from_fn(gw, gh, |x, y| image::Luma([((x * 7 + y * 13) % 256) as u8]));
        let (x0, y0, w, h) = (3u32, 2u32, 95usize, 70usize);
        let (out_w, out_h) = (32usize, 32usize);
        let mut sum = vec![0u32; out_w * out_h];
        let mut count = vec![0u32; out_w * out_h];
        for y in 0..h {
            for x in 0..w {
                let cell = (y * out_h / h) * out_w + x * out_w / w;
                sum[cell] += u32::from(gray.get_pixel(x0 + x as u32, y0 + y as u32)[0]);
                count[cell] += 1;
            }
        }
        let naive: Vec<f32> = sum.iter().zip(&count).map(|(&s, &n)| s as f32 / n as f32).collect();
        assert_eq!(box_downscale(&gray, (x0, y0, w as u32, h as u32), out_w, out_h), naive);
    }

    #[test]
    fn groups_are_transitive_and_need_both_hashes_close() {
        let hashes = [
            h(0, 0),
            h(0b1111, 0b11),   // 4 and 2 bits from item 0
            h(0b1111_1111, 0), // 4 bits from item 1, 8 from item 0: joined through 1
            h(0, u64::MAX),    // pHash equal to item 0, dHash far
            h(u64::MAX, u64::MAX),
            h(u64::MAX ^ 1, u64::MAX ^ (1 << 63)),
        ];
        assert_eq!(near_duplicate_groups(&hashes, 4), [vec![0, 1, 2], vec![4, 5]]);
        assert_eq!(near_duplicate_groups(&hashes, 0), Vec::<Vec<usize>>::new());
        assert_eq!(group_ids(6, &near_duplicate_groups(&hashes, 4)), [0, 0, 0, 2, 1, 1]);
    }

    #[test]
    fn clean_queries_have_no_near_copy_in_the_reference() {
        let reference = [h(0, 0), h(u64::MAX, u64::MAX)];
        // A near-copy of reference 0, one of another query only, and a copy
        // of reference 1 reached through another query (transitively).
        let query = [h(1, 1), h(0xF0F0, 0xF0F0), h(0xF0F1, 0xF0F0), h(u64::MAX ^ 3, u64::MAX)];
        assert_eq!(without_near_copies(&query, &reference, 4), [1, 2]);
    }

    #[test]
    fn the_index_finds_every_pair_that_all_pairs_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        // Clusters of hashes with a few flipped bits, among random ones.
        let mut hashes = Vec::new();
        for _ in 0..300 {
            let base = h(rng.random(), rng.random());
            for _ in 0..rng.random_range(1..4) {
                let mut x = base;
                for _ in 0..rng.random_range(0..4) {
                    x.phash ^= 1 << rng.random_range(0..64);
                    x.dhash ^= 1 << rng.random_range(0..64);
                }
                hashes.push(x);
            }
        }
        for d in [2, 4, 6] {
            let mut sets = UnionFind::new(hashes.len());
            for a in 0..hashes.len() {
                for b in a + 1..hashes.len() {
                    if hashes[a].is_near(&hashes[b], d) {
                        sets.union(a, b);
                    }
                }
            }
            assert_eq!(near_duplicate_groups(&hashes, d), sets.groups(), "distance {d}");
        }
    }
}
