//! The upload check: a picture is accepted only when all its pixels can be
//! decoded. A file that ends before its image data does (a PNG cut inside
//! IDAT, a JPEG scan cut short, which libjpeg would silently fill with grey)
//! is refused with the decoder's reason, instead of being stored and then
//! failing every variant.
//!
//! The check is cheap in memory: JPEG is decoded at 1/8 scale with
//! libjpeg-turbo's DCT scaling, PNG row by row, GIF one line at a time
//! (palette indices, no canvas), WebP whole only when its buffers fit in
//! [`CHECK_MEMORY`] (past that, its chunk structure is checked). Animation
//! frames are checked until [`crate::Limits::max_pixels`] pixels in all
//! have been decoded. HEIC and AVIF are decoded whole by libheif (in their
//! own colour space, without the RGB conversion). Disk images and SVG (parsed whole by the probe) are not
//! decoded here.
//!
//! What libjpeg allocates besides our buffer: a baseline JPEG is decoded a
//! row of blocks at a time, but a progressive one keeps all its DCT
//! coefficients (2 bytes a sample, whatever the scale: about 3 bytes a pixel
//! for 4:2:0 colour) until the last scan.
//!
//! The engine is getting a process-wide decode memory budget (a semaphore
//! weighted by each decode's allocation); this check is one of its users and
//! is meant to take a small, fixed weight from it. It does not build any
//! budget of its own.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::{Format, Limits, MediaError};

/// Most bytes of pixel buffers the check allocates for one file.
pub const CHECK_MEMORY: u64 = 64 * 1024 * 1024;

fn ends_early(format: &str) -> MediaError {
    MediaError::Corrupt(format!("the {format} file ends before its image data does"))
}

/// The bytes of buffers [`check_pixels`] allocates at most for a probed
/// picture (an upper estimate, without libjpeg's coefficients of a
/// progressive JPEG): the weight the check takes from a decode budget.
pub fn check_memory(probe: &crate::Probe) -> u64 {
    let Some((w, h)) = probe.stored_size() else {
        return 0;
    };
    let (w, h) = (u64::from(w), u64::from(h));
    // Decoder state: zlib and LZW windows, Huffman tables, a row or two.
    let state = 256 * 1024;
    match probe.format {
        Format::Jpeg => w.div_ceil(8) * h.div_ceil(8) * 4 + w * 16 * 3 + state,
        Format::Png => w * 8 * 3 + state,
        Format::Gif => w + state,
        Format::Webp => {
            let needs = w * h * 6;
            if needs > CHECK_MEMORY {
                state
            } else {
                needs + state
            }
        }
        // libheif decodes the whole picture in its own colour space: up to
        // 16 bits a sample in 4:4:4, and the codec's reference frame.
        Format::Heic | Format::Avif => w * h * 12 + 4 * 1024 * 1024,
        Format::Svg | Format::Qcow2 => 0,
    }
}

/// Decodes every pixel of a picture, cheaply; `Ok` when all of them decode.
pub fn check_pixels(path: &Path, format: Format, limits: &Limits) -> Result<(), MediaError> {
    match format {
        Format::Jpeg => check_jpeg(&std::fs::read(path)?, limits),
        Format::Png => check_png(path, limits),
        Format::Gif => check_gif(path, limits),
        Format::Webp => check_webp(&std::fs::read(path)?, limits),
        Format::Heic | Format::Avif => crate::heif::check_decodes(&std::fs::read(path)?, limits),
        Format::Svg | Format::Qcow2 => Ok(()),
    }
}

/// Same as [`check_pixels`], for bytes in memory.
pub fn check_bytes(bytes: &[u8], format: Format, limits: &Limits) -> Result<(), MediaError> {
    match format {
        Format::Jpeg => check_jpeg(bytes, limits),
        Format::Png => check_png_reader(std::io::Cursor::new(bytes), limits),
        Format::Gif => check_gif_reader(bytes, limits),
        Format::Webp => check_webp(bytes, limits),
        Format::Heic | Format::Avif => crate::heif::check_decodes(bytes, limits),
        Format::Svg | Format::Qcow2 => Ok(()),
    }
}

// ---------- JPEG ----------

/// What a libjpeg-turbo error means for a decode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TurboOutcome {
    /// A warning about damaged data that libjpeg worked around (stray bytes
    /// before a marker, a bad Huffman code): every pixel was decoded.
    Decoded,
    /// The data ends before the image does; libjpeg filled the rest with grey.
    Truncated,
    /// The decode failed.
    Failed,
}

/// Sorts a libjpeg-turbo error message: libjpeg reports warnings through
/// the same channel as errors, with these texts (jerror.h, JWRN_*).
pub(crate) fn turbo_outcome(message: &str) -> TurboOutcome {
    let m = message.to_ascii_lowercase();
    if m.contains("premature end") {
        return TurboOutcome::Truncated;
    }
    const WARNINGS: &[&str] = &[
        "corrupt jpeg data",
        "unknown adobe color transform",
        "inconsistent progression sequence",
        "invalid sos parameters for sequential jpeg",
        "application transferred too many scanlines",
        "warning:",
    ];
    if WARNINGS.iter().any(|w| m.contains(w)) {
        TurboOutcome::Decoded
    } else {
        TurboOutcome::Failed
    }
}

/// The next JPEG marker at or after `i` and the index just past it.
/// Stray bytes before a marker are skipped, as libjpeg does (it warns and
/// decodes the picture), and so are fill bytes (repeated 0xFF).
pub(crate) fn next_jpeg_marker(bytes: &[u8], mut i: usize) -> Option<(u8, usize)> {
    while bytes.get(i).is_some_and(|&b| b != 0xFF) {
        i += 1;
    }
    while bytes.get(i) == Some(&0xFF) {
        i += 1;
    }
    bytes.get(i).map(|&m| (m, i + 1))
}

/// Walks the JPEG segments and entropy-coded data to the EOI marker; `false`
/// when the file ends first. libjpeg reports such a file as "premature end"
/// only as its first warning, which an earlier harmless one hides.
pub(crate) fn jpeg_reaches_eoi(bytes: &[u8]) -> bool {
    let mut i = 2usize;
    loop {
        let Some((marker, next)) = next_jpeg_marker(bytes, i) else {
            return false;
        };
        i = next;
        match marker {
            0xD9 => return true,
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = bytes
            .get(i..i + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            return false;
        };
        i += len;
        if i > bytes.len() {
            return false;
        }
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker other than a
            // stuffed zero or a restart marker.
            loop {
                match bytes.get(i) {
                    None => return false,
                    Some(0xFF) => match bytes.get(i + 1) {
                        None => return false,
                        Some(0x00 | 0xD0..=0xD7 | 0xFF) => i += 1,
                        Some(_) => break,
                    },
                    Some(_) => i += 1,
                }
            }
        }
    }
}

fn check_jpeg(bytes: &[u8], limits: &Limits) -> Result<(), MediaError> {
    let turbo = |e: turbojpeg::Error| e.to_string();
    let result = (|| -> Result<Result<(), String>, MediaError> {
        let mut dec = match turbojpeg::Decompressor::new() {
            Ok(d) => d,
            Err(e) => return Ok(Err(turbo(e))),
        };
        let header = match dec.read_header(bytes) {
            Ok(h) => h,
            Err(e) => return Ok(Err(turbo(e))),
        };
        let w = u32::try_from(header.width).unwrap_or(u32::MAX);
        let h = u32::try_from(header.height).unwrap_or(u32::MAX);
        limits.check(w, h)?;
        // 1/8 scale: libjpeg still decodes every block, but keeps only
        // their DC terms: at most max_pixels / 64 pixels here.
        let (out_w, out_h) = (header.width.div_ceil(8), header.height.div_ceil(8));
        let (_, _, decoded) =
            crate::render::turbo_decompress(&mut dec, bytes, &header, out_w, out_h);
        Ok(decoded.map_err(turbo))
    })()?;
    match result {
        Ok(()) => {}
        Err(message) => match turbo_outcome(&message) {
            TurboOutcome::Decoded => {}
            TurboOutcome::Truncated => {
                return Err(MediaError::Corrupt(format!(
                    "the JPEG file ends before its image data does ({message})"
                )))
            }
            TurboOutcome::Failed => {
                // libjpeg-turbo refuses a few files the Rust decoder reads
                // (the renderer falls back to it too).
                if !rust_jpeg_decodes(bytes, limits) {
                    return Err(MediaError::Corrupt(format!(
                        "JPEG cannot be decoded: {message}"
                    )));
                }
            }
        },
    }
    if !jpeg_reaches_eoi(bytes) {
        return Err(ends_early("JPEG"));
    }
    Ok(())
}

/// Whether the image crate decodes the JPEG, when its full-size buffer fits
/// in [`CHECK_MEMORY`].
fn rust_jpeg_decodes(bytes: &[u8], limits: &Limits) -> bool {
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Jpeg);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(CHECK_MEMORY);
    reader.limits(image_limits);
    reader.decode().is_ok()
}

// ---------- PNG ----------

fn png_error(e: png::DecodingError) -> MediaError {
    match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ends_early("PNG")
        }
        png::DecodingError::IoError(io) => MediaError::Io(io),
        png::DecodingError::LimitsExceeded => MediaError::TooLarge(format!(
            "PNG rows need more than {CHECK_MEMORY} bytes to decode"
        )),
        other => MediaError::Corrupt(format!("PNG cannot be decoded: {other}")),
    }
}

fn check_png(path: &Path, limits: &Limits) -> Result<(), MediaError> {
    check_png_reader(BufReader::new(File::open(path)?), limits)
}

fn check_png_reader<R: std::io::BufRead + std::io::Seek>(
    reader: R,
    limits: &Limits,
) -> Result<(), MediaError> {
    let budget = png::Limits {
        bytes: usize::try_from(CHECK_MEMORY).unwrap_or(usize::MAX),
    };
    let decoder = png::Decoder::new_with_limits(reader, budget);
    let mut reader = decoder.read_info().map_err(png_error)?;
    let info = reader.info();
    limits.check(info.width, info.height)?;
    let frames = info.animation_control().map_or(1, |a| a.num_frames.max(1));
    let mut pixels = u64::from(info.width) * u64::from(info.height);
    // The image (the default image, or the first frame), then more frames
    // while the pixel budget lasts.
    while reader.next_row().map_err(png_error)?.is_some() {}
    for _ in 1..frames {
        if pixels >= limits.max_pixels {
            break;
        }
        // An animation that declares more frames than it has still has
        // all the pixels of the frames it has.
        let Ok(frame) = reader.next_frame_info() else {
            break;
        };
        pixels += u64::from(frame.width) * u64::from(frame.height);
        while reader.next_row().map_err(png_error)?.is_some() {}
    }
    Ok(())
}

// ---------- GIF ----------

fn gif_error(e: gif::DecodingError) -> MediaError {
    match e {
        gif::DecodingError::UnexpectedEof => ends_early("GIF"),
        gif::DecodingError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ends_early("GIF")
        }
        gif::DecodingError::Io(io) => MediaError::Io(io),
        other => MediaError::Corrupt(format!("GIF cannot be decoded: {other}")),
    }
}

fn check_gif(path: &Path, limits: &Limits) -> Result<(), MediaError> {
    check_gif_reader(BufReader::new(File::open(path)?), limits)
}

fn check_gif_reader<R: std::io::Read>(reader: R, limits: &Limits) -> Result<(), MediaError> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(CHECK_MEMORY).unwrap_or(std::num::NonZeroU64::MIN),
    ));
    let mut decoder = options.read_info(reader).map_err(gif_error)?;
    let mut pixels = 0u64;
    let mut frames = 0u32;
    let mut line = Vec::new();
    loop {
        let frame = match decoder.next_frame_info() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            // A file that stops between two frames (no trailer, a cut
            // extension) still has all the pixels of the frames it has.
            Err(_) if frames > 0 => break,
            Err(e) => return Err(gif_error(e)),
        };
        let (w, h) = (u32::from(frame.width), u32::from(frame.height));
        if w == 0 || h == 0 {
            continue;
        }
        limits.check(w, h)?;
        frames += 1;
        line.resize(w as usize, 0);
        for _ in 0..h {
            if !decoder.fill_buffer(&mut line).map_err(gif_error)? {
                return Err(MediaError::Corrupt(format!(
                    "GIF frame {frames} ends before its image data does"
                )));
            }
        }
        pixels += u64::from(w) * u64::from(h);
        if pixels >= limits.max_pixels {
            break;
        }
    }
    if frames == 0 {
        return Err(MediaError::Corrupt("GIF has no image".into()));
    }
    Ok(())
}

// ---------- WebP ----------

/// Every RIFF chunk lies within the file.
fn webp_structure(bytes: &[u8]) -> Result<(), MediaError> {
    let mut i = 12usize;
    while i < bytes.len() {
        let Some(len) = bytes
            .get(i + 4..i + 8)
            .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        else {
            return Err(ends_early("WebP"));
        };
        let end = (i as u64 + 8).saturating_add(len);
        if end > bytes.len() as u64 {
            return Err(ends_early("WebP"));
        }
        // Chunks are padded to an even length; a missing final pad byte is tolerated.
        i = usize::try_from(end + (len & 1)).unwrap_or(usize::MAX);
    }
    Ok(())
}

fn check_webp(bytes: &[u8], limits: &Limits) -> Result<(), MediaError> {
    webp_structure(bytes)?;
    let webp_err = |e: image_webp::DecodingError| match e {
        image_webp::DecodingError::IoError(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            ends_early("WebP")
        }
        other => MediaError::Corrupt(format!("WebP cannot be decoded: {other}")),
    };
    let mut decoder =
        image_webp::WebPDecoder::new(std::io::Cursor::new(bytes)).map_err(webp_err)?;
    let (w, h) = decoder.dimensions();
    limits.check(w, h)?;
    let Some(size) = decoder.output_buffer_size() else {
        return Err(MediaError::TooLarge(format!(
            "WebP of {w}x{h} is too large"
        )));
    };
    // The lossy decoder keeps its own planes besides the output (about 1.5
    // bytes a pixel).
    let needs = (size as u64).saturating_add(u64::from(w) * u64::from(h) * 2);
    if needs > CHECK_MEMORY {
        // Too large to decode cheaply: the chunk structure was checked above.
        return Ok(());
    }
    decoder.set_memory_limit(usize::try_from(CHECK_MEMORY).unwrap_or(usize::MAX));
    let mut buf = vec![0u8; size];
    if decoder.is_animated() {
        let mut pixels = 0u64;
        for _ in 0..decoder.num_frames() {
            decoder.read_frame(&mut buf).map_err(webp_err)?;
            pixels += u64::from(w) * u64::from(h);
            if pixels >= limits.max_pixels {
                break;
            }
        }
    } else {
        decoder.read_image(&mut buf).map_err(webp_err)?;
    }
    Ok(())
}
