//! Captioned image grids (sample sheets, augmentation previews, galleries of
//! misclassified stones), written as PNG, and the font they use.
use std::path::Path;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use crate::error::{Error, Result};

/// The bundled font (DejaVu Sans, free licence), for captions and plots.
pub fn font_bytes() -> &'static [u8] {
    dejavu::sans::regular()
}

/// Draw `text` with its top-left corner at `(x, y)`, `px` pixels tall.
/// Text running off the image is clipped.
pub fn draw_text(img: &mut RgbImage, x: i32, y: i32, px: f32, color: [u8; 3], text: &str) {
    let Ok(font) = FontRef::try_from_slice(font_bytes()) else { return };
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = x as f32;
    let baseline = y as f32 + scaled.ascent();
    let mut last = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(prev) = last {
            caret += scaled.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(px), ab_glyph::point(caret, baseline));
        caret += scaled.h_advance(id);
        last = Some(id);
        let Some(outline) = font.outline_glyph(glyph) else { continue };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, cov| {
            let (px_, py_) = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
            if px_ < 0 || py_ < 0 || px_ >= img.width() as i32 || py_ >= img.height() as i32 {
                return;
            }
            let p = img.get_pixel_mut(px_ as u32, py_ as u32);
            for k in 0..3 {
                p[k] = (f32::from(p[k]) * (1.0 - cov) + f32::from(color[k]) * cov).round() as u8;
            }
        });
    }
}

/// Width in pixels of `text` at `px` pixels tall.
pub fn text_width(px: f32, text: &str) -> f32 {
    let Ok(font) = FontRef::try_from_slice(font_bytes()) else { return 0.0 };
    let scaled = font.as_scaled(PxScale::from(px));
    text.chars().map(|c| scaled.h_advance(scaled.glyph_id(c))).sum()
}

/// A grid of equally sized tiles, each with up to two caption lines.
///
/// ```
/// use gemstones_dataset::ImageGrid;
/// let mut grid = ImageGrid::new(64, 3);
/// grid.push(&image::RgbImage::new(64, 64), "original");
/// let sheet = grid.render();
/// assert_eq!(sheet.width(), 3 * 64 + 4 * 8);
/// ```
#[derive(Debug, Clone)]
pub struct ImageGrid {
    tile: u32,
    cols: usize,
    title: Option<String>,
    items: Vec<(RgbImage, String)>,
}

const GAP: u32 = 8;
const CAPTION_PX: f32 = 13.0;
const CAPTION_LINES: usize = 3;

impl ImageGrid {
    /// A grid of `cols` columns of `tile x tile` tiles.
    pub fn new(tile: u32, cols: usize) -> Self {
        Self { tile: tile.max(8), cols: cols.max(1), title: None, items: Vec::new() }
    }

    /// A title line above the grid.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Add a tile (resized to the tile size if needed) with a caption; a
    /// `\n` splits the caption into lines (three at most).
    pub fn push(&mut self, img: &RgbImage, caption: impl Into<String>) {
        let t = self.tile;
        let img = if img.dimensions() == (t, t) {
            img.clone()
        } else {
            image::imageops::resize(img, t, t, image::imageops::FilterType::Triangle)
        };
        self.items.push((img, caption.into()));
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no tiles.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Compose the sheet.
    pub fn render(&self) -> RgbImage {
        let rows = self.items.len().div_ceil(self.cols).max(1) as u32;
        let lines =
            self.items.iter().map(|(_, c)| c.lines().count().min(CAPTION_LINES)).max().unwrap_or(0) as u32;
        let cap_h = (lines as f32 * (CAPTION_PX + 3.0)).ceil() as u32;
        let title_h = if self.title.is_some() { 26 } else { 0 };
        let cell_h = self.tile + cap_h + GAP;
        let w = self.cols as u32 * (self.tile + GAP) + GAP;
        let h = title_h + rows * cell_h + GAP;
        let mut sheet = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
        if let Some(t) = &self.title {
            draw_text(&mut sheet, GAP as i32, 5, 17.0, [20, 20, 20], t);
        }
        for (i, (img, cap)) in self.items.iter().enumerate() {
            let (c, r) = ((i % self.cols) as u32, (i / self.cols) as u32);
            let (x, y) = (GAP + c * (self.tile + GAP), title_h + GAP + r * cell_h);
            image::imageops::replace(&mut sheet, img, i64::from(x), i64::from(y));
            for (l, line) in cap.lines().take(CAPTION_LINES).enumerate() {
                let line = fit_text(line, self.tile as f32);
                let tw = text_width(CAPTION_PX, &line);
                let tx = x as f32 + (self.tile as f32 - tw).max(0.0) / 2.0;
                let ty = y + self.tile + 2 + l as u32 * (CAPTION_PX as u32 + 3);
                draw_text(&mut sheet, tx as i32, ty as i32, CAPTION_PX, [30, 30, 30], &line);
            }
        }
        sheet
    }

    /// Compose the sheet and write it as PNG.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        save_png(&self.render(), path.as_ref())
    }
}

/// Shorten `text` with an ellipsis until it fits `width` pixels.
fn fit_text(text: &str, width: f32) -> String {
    if text_width(CAPTION_PX, text) <= width {
        return text.to_string();
    }
    let mut s: String = text.to_string();
    while !s.is_empty() && text_width(CAPTION_PX, &format!("{s}…")) > width {
        s.pop();
    }
    format!("{s}…")
}

/// Write an RGB image as PNG, atomically, creating parent folders. The PNG
/// carries a `Software: gemstones` text chunk: the output rule
/// ([`crate::outputs`]) replaces a PNG only when it has that mark.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let encode_err = |e: png::EncodingError| Error::Image {
        path: path.to_path_buf(),
        source: image::ImageError::Encoding(image::error::EncodingError::new(
            image::error::ImageFormatHint::Exact(image::ImageFormat::Png),
            e,
        )),
    };
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, img.width(), img.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.add_text_chunk("Software".into(), crate::outputs::WRITER.into()).map_err(encode_err)?;
    let mut writer = encoder.write_header().map_err(encode_err)?;
    writer.write_image_data(img.as_raw()).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    crate::fsutil::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_and_clipped() {
        let mut img = RgbImage::from_pixel(60, 20, Rgb([255, 255, 255]));
        draw_text(&mut img, 2, 2, 14.0, [0, 0, 0], "Ruby / Garnet Red");
        let dark = img.pixels().filter(|p| p[0] < 128).count();
        assert!(dark > 20, "{dark}");
        assert!(text_width(14.0, "abc") > 10.0);
    }

    #[test]
    fn grid_layout_and_png() {
        let mut g = ImageGrid::new(32, 2).title("samples");
        for i in 0..3 {
            g.push(&RgbImage::from_pixel(50, 40, Rgb([i * 80, 0, 0])), format!("class {i}\n0.{i}"));
        }
        let sheet = g.render();
        assert_eq!(sheet.width(), 2 * 32 + 3 * 8);
        // Tile 1 (red 80) sits at column 1, row 0, below the title.
        assert_eq!(sheet.get_pixel(8 + 40 + 16, 26 + 8 + 16).0, [80, 0, 0]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        g.save_png(&p).unwrap();
        assert_eq!(image::open(&p).unwrap().to_rgb8(), sheet);
        let outputs = crate::outputs::Outputs::default();
        outputs.file(&p, crate::outputs::FileKind::Png).unwrap();
        // A PNG from elsewhere (a photograph) is not replaced.
        sheet.save(&p).unwrap();
        assert!(outputs.file(&p, crate::outputs::FileKind::Png).is_err());
    }
}
