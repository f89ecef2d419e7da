//! Decoding by content, with limits, and the reasons a file is not usable.
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageError, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

/// Why a file could not be used as an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file has zero bytes.
    Empty,
    /// The content is not a known image format (text, HTML, anything else).
    NotAnImage,
    /// An image format this build cannot decode, or a feature of it.
    Unsupported,
    /// The data is damaged.
    Corrupt,
    /// The data ends early.
    Truncated,
    /// Its dimensions exceed the configured limit (a decompression bomb is
    /// refused before it is decoded).
    TooLarge,
    /// The file could not be read.
    Unreadable,
    /// The file's or its folder's name is not valid UTF-8: skipped.
    NameNotUtf8,
    /// An interrupted rename holds files of the folder in hidden
    /// temporaries (the path is its journal): run the rename again.
    RenamePending,
}

impl ProblemKind {
    /// A short stable name (`not_an_image`, ...), as in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotAnImage => "not_an_image",
            Self::Unsupported => "unsupported",
            Self::Corrupt => "corrupt",
            Self::Truncated => "truncated",
            Self::TooLarge => "too_large",
            Self::Unreadable => "unreadable",
            Self::NameNotUtf8 => "name_not_utf8",
            Self::RenamePending => "rename_pending",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file that could not be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// The kind of problem.
    pub kind: ProblemKind,
    /// What the decoder said.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.kind, self.detail)
    }
}

/// Limits that keep a hostile or broken file from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecodeLimits {
    /// Largest accepted width x height, read from the header before any
    /// pixel is decoded. Default 50 megapixels.
    pub max_pixels: u64,
    /// Largest accepted width or height. Default 20,000.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_pixels: 50_000_000, max_side: 20_000 }
    }
}

/// A successfully decoded file.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub image: DynamicImage,
    pub format: &'static str,
}

pub(crate) fn format_name(f: image::ImageFormat) -> &'static str {
    f.extensions_str().first().copied().unwrap_or("unknown")
}

/// Decode bytes by their content (never by the file name).
pub(crate) fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    limits: &DecodeLimits,
) -> std::result::Result<Decoded, Problem> {
    let problem = |kind, detail: String| Problem { path: path.to_path_buf(), kind, detail };
    if bytes.is_empty() {
        return Err(problem(ProblemKind::Empty, "file has 0 bytes".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| problem(ProblemKind::Unreadable, e.to_string()))?;
    let Some(format) = reader.format() else {
        return Err(problem(ProblemKind::NotAnImage, describe_non_image(bytes)));
    };
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    // Decoded RGBA16 is the largest buffer any format needs, plus slack.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    let (w, h) = match reader.into_dimensions() {
        Ok(d) => d,
        Err(e) => return Err(refine_truncation(classify(e, path), bytes, format)),
    };
    if u64::from(w) * u64::from(h) > limits.max_pixels || w > limits.max_side || h > limits.max_side {
        return Err(problem(
            ProblemKind::TooLarge,
            format!(
                "{w}x{h} exceeds the limit of {} pixels / {} per side",
                limits.max_pixels, limits.max_side
            ),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(lim);
    let image = reader.decode().map_err(|e| refine_truncation(classify(e, path), bytes, format))?;
    if format == image::ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        return Err(problem(ProblemKind::Truncated, "JPEG data ends without an end-of-image marker".into()));
    }
    Ok(Decoded { image, format: format_name(format) })
}

/// Decode a photograph's bytes by their content, within `limits`, to RGB
/// on white (transparency composited on white): how every reader of a
/// user's photos in the workspace turns bytes into pixels. `path` names
/// the photo in the [`Problem`].
pub fn decode_rgb(
    bytes: &[u8],
    path: &Path,
    limits: &DecodeLimits,
) -> std::result::Result<RgbImage, Problem> {
    decode_bytes(bytes, path, limits).map(|d| to_rgb_on_white(d.image))
}

fn classify(e: ImageError, path: &Path) -> Problem {
    let kind = match &e {
        ImageError::Limits(_) => ProblemKind::TooLarge,
        ImageError::Unsupported(_) => ProblemKind::Unsupported,
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => ProblemKind::Truncated,
        ImageError::IoError(_) => ProblemKind::Unreadable,
        ImageError::Decoding(_) | ImageError::Parameter(_) | ImageError::Encoding(_) => {
            let msg = e.to_string().to_ascii_lowercase();
            if ["eof", "end of file", "truncated", "not enough", "no more data", "unexpected end"]
                .iter()
                .any(|s| msg.contains(s))
            {
                ProblemKind::Truncated
            } else {
                ProblemKind::Corrupt
            }
        }
    };
    // The decoders' messages may end in (or hold) line breaks: a problem is
    // one line wherever it is printed.
    let detail = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    Problem { path: path.to_path_buf(), kind, detail }
}

/// Running out of data means a truncated file only if the file's end
/// marker is missing too; a complete file that runs the decoder off its end
/// has damaged length fields: corrupt.
fn refine_truncation(mut p: Problem, bytes: &[u8], format: image::ImageFormat) -> Problem {
    if p.kind == ProblemKind::Truncated {
        let tail = &bytes[bytes.len().saturating_sub(32)..];
        let complete = match format {
            image::ImageFormat::Jpeg => tail.windows(2).any(|w| w == [0xFF, 0xD9]),
            image::ImageFormat::Png => tail.windows(4).any(|w| w == b"IEND"),
            _ => false,
        };
        if complete {
            p.kind = ProblemKind::Corrupt;
        }
    }
    p
}

/// A JPEG's entropy-coded data may stop anywhere and still decode to a
/// grey-filled picture; a complete file has an EOI marker after its scans.
/// Found by walking the marker segments from the start: bytes appended
/// after the EOI (a camera's or an editor's trailer) leave the file
/// complete, and an EXIF thumbnail's EOI, inside its APP1 segment, is not
/// taken for the image's. Written by hand: the decoders do not say whether
/// they met the EOI.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let mut at = 2; // after SOI
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            return false;
        }
        let marker = bytes[at + 1];
        match marker {
            0xD9 => return true,
            // A fill byte, or a marker without a length (TEM, RSTn).
            0xFF => at += 1,
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let Some(len) = bytes.get(at + 2..at + 4) else { return false };
                at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
                if marker == 0xDA {
                    at = end_of_entropy_coded_data(bytes, at);
                }
            }
        }
    }
    false
}

/// Where a scan's entropy-coded data starting at `at` ends: at the next
/// marker that is neither a stuffed `FF 00` nor a restart `FF D0..D7`.
fn end_of_entropy_coded_data(bytes: &[u8], mut at: usize) -> usize {
    while at + 1 < bytes.len() {
        if bytes[at] == 0xFF && bytes[at + 1] != 0x00 && !(0xD0..=0xD7).contains(&bytes[at + 1]) {
            return at;
        }
        at += 1;
    }
    bytes.len()
}

fn describe_non_image(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_ascii_lowercase();
    if head.contains("<html") || head.contains("<!doctype") {
        "content is HTML, not an image".into()
    } else if bytes[..bytes.len().min(512)]
        .iter()
        .all(|&b| b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b))
    {
        "content is text, not an image".into()
    } else {
        "content is not a recognised image format".into()
    }
}

/// Convert any decoded image to 8-bit RGB, compositing transparency over
/// white (gem photographs sit on white backgrounds).
pub fn to_rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // Exact rounding of (c*a + 255*(255-a)) / 255.
            let v = u32::from(src[c]) * a + 255 * (255 - a);
            dst[c] = ((v + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([100, 0, 200, 128]));
        let rgb = to_rgb_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        // 100*128/255 + 255*127/255 = 50.2 + 127 = 177.2
        assert_eq!(rgb.get_pixel(1, 0).0, [177, 127, 227]);
    }

    #[test]
    fn decodes_by_content_and_reports_problems() {
        let limits = DecodeLimits::default();
        let p = Path::new("x.jpg");
        let png = png_bytes(&DynamicImage::new_rgb8(4, 3));
        let d = decode_bytes(&png, p, &limits).unwrap();
        assert_eq!((d.format, d.image.width()), ("png", 4));
        assert_eq!(decode_bytes(b"", p, &limits).unwrap_err().kind, ProblemKind::Empty);
        let html = decode_bytes(b"<!DOCTYPE html><html>404</html>", p, &limits).unwrap_err();
        assert_eq!(
            (html.kind, html.detail.as_str()),
            (ProblemKind::NotAnImage, "content is HTML, not an image")
        );
        let truncated = decode_bytes(&png[..png.len() / 2], p, &limits).unwrap_err();
        assert_eq!(truncated.kind, ProblemKind::Truncated);
        assert!(!truncated.to_string().contains('\n'), "{truncated:?}");
        let jpeg = {
            let mut bytes = Vec::new();
            DynamicImage::new_rgb8(64, 48)
                .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
                .unwrap();
            bytes
        };
        for cut in [20, jpeg.len() / 2, jpeg.len() - 3] {
            let problem = decode_bytes(&jpeg[..cut], p, &limits).unwrap_err();
            assert!(!problem.to_string().contains('\n'), "{problem:?}");
        }
    }

    #[test]
    fn a_jpeg_with_bytes_after_its_end_is_whole_and_one_cut_short_is_truncated() {
        let limits = DecodeLimits::default();
        let p = Path::new("x.jpg");
        let mut noisy = image::RgbImage::new(96, 64);
        for (i, px) in noisy.pixels_mut().enumerate() {
            *px = image::Rgb([(i * 7) as u8, (i * 13) as u8, (i * 29) as u8]);
        }
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(noisy)
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .unwrap();
        // A trailer longer than any fixed window, holding marker-like bytes.
        let mut trailed = jpeg.clone();
        trailed.extend((0..100_000u32).map(|i| if i % 97 == 0 { 0xFF } else { (i % 200) as u8 }));
        assert!(decode_bytes(&trailed, p, &limits).is_ok());
        // Cut inside the scan: no EOI after it, whatever precedes.
        let cut = &jpeg[..jpeg.len() * 3 / 4];
        assert_eq!(decode_bytes(cut, p, &limits).unwrap_err().kind, ProblemKind::Truncated);
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // 8000 x 8000 grey PNG: tiny on disk, 64 megapixels decoded.
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, 8_000, 8_000);
            enc.set_color(png::ColorType::Grayscale);
            let mut w = enc.write_header().unwrap();
            let mut stream = w.stream_writer().unwrap();
            let row = vec![0u8; 8_000];
            for _ in 0..8_000 {
                std::io::Write::write_all(&mut stream, &row).unwrap();
            }
            stream.finish().unwrap();
        }
        assert!(out.len() < 2_000_000);
        let err = decode_bytes(&out, Path::new("bomb.png"), &DecodeLimits::default()).unwrap_err();
        assert_eq!(err.kind, ProblemKind::TooLarge, "{err}");
    }
}
