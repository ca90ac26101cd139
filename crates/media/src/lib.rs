//! tintype-media: bytes to facts and pixels.
//!
//! * [`sniff`] names the format from the first bytes of a file.
//! * [`probe_file`] reads headers and EXIF, checks the limits, and checks
//!   cheaply that every pixel can be decoded (a truncated file is refused);
//!   [`probe_headers`] skips that check, for files checked at upload.
//! * [`render_file`] decodes once and makes every requested variant.
//! * [`to_full`] converts a picture to a full-size WebP, AVIF, JPEG or PNG.
//!
//! Everything here is blocking; the server calls it from a blocking task.
//!
//! No input can end the process: the parsers refuse pathological input
//! (SVG nesting and element counts, EXIF structures) before a decoder could
//! exhaust the stack or the heap, and every entry point turns a panic inside
//! a decoder into an error ([`MediaError::Corrupt`]).

mod check;
mod colour;
mod error;
mod exif;
mod format;
mod guard;
mod heif;
mod probe;
mod qcow2;
mod render;
mod spec;
mod svg;

pub use check::{check_memory, CHECK_MEMORY};
pub use error::MediaError;
pub use format::{sniff, Format, Kind};
pub use heif::{encode_still, StillOptions};
pub use probe::{check_file, probe_bytes, probe_file, probe_headers, DiskInfo, Probe};
pub use render::{full_memory, render_file, render_memory, to_full, to_webp, Rendered};
pub use spec::{parse_size, FitMode, OutputFormat, VariantSpec, AVIF_SPEEDS, DEFAULT_AVIF_SPEED};
pub use svg::{MAX_SVG_DEPTH, MAX_SVG_ELEMENTS, MAX_SVG_NODES};

/// Limits checked before any large allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest width x height of a picture (decompression bombs).
    pub max_pixels: u64,
    /// Largest width of a picture or a variant.
    pub max_width: u32,
    /// Largest height of a picture or a variant.
    pub max_height: u32,
    /// Largest SVG document, in bytes.
    pub max_svg_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: 100_000_000,
            max_width: 65_535,
            max_height: 65_535,
            max_svg_bytes: 10 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Refuses dimensions over the limits, with a message fit for API clients.
    pub fn check(&self, width: u32, height: u32) -> Result<(), MediaError> {
        if width == 0 || height == 0 {
            return Err(MediaError::Corrupt(format!(
                "image declares an empty size of {width}x{height}"
            )));
        }
        if width > self.max_width || height > self.max_height {
            return Err(MediaError::TooLarge(format!(
                "image is {width}x{height}, over the limit of {}x{}",
                self.max_width, self.max_height
            )));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(MediaError::TooLarge(format!(
                "image is {width}x{height} = {pixels} pixels, over the limit of {}",
                self.max_pixels
            )));
        }
        Ok(())
    }
}
