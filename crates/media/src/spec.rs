//! Variant requests and their canonical keys, like `fit-1600x1600-q85.jpeg`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{Limits, MediaError};

/// How a variant fills its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FitMode {
    /// Within width x height, aspect kept, never enlarged.
    Fit,
    /// Exactly width x height, centre crop (enlarged when the source is smaller).
    Fill,
}

/// The encodings a variant can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Jpeg,
    Png,
    Webp,
    Avif,
}

impl OutputFormat {
    pub fn mime(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "image/jpeg",
            OutputFormat::Png => "image/png",
            OutputFormat::Webp => "image/webp",
            OutputFormat::Avif => "image/avif",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
        }
    }

    /// The usual file extension ("jpg" for JPEG).
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Jpeg => "jpg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, MediaError> {
        match s.to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Ok(OutputFormat::Jpeg),
            "png" => Ok(OutputFormat::Png),
            "webp" => Ok(OutputFormat::Webp),
            "avif" => Ok(OutputFormat::Avif),
            other => Err(MediaError::InvalidSpec(format!(
                "output format {other:?} is not one of jpeg, png, webp, avif"
            ))),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One variant to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct VariantSpec {
    pub mode: FitMode,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
    /// 1 to 100; used by JPEG, WebP and AVIF (PNG is lossless; WebP at 100
    /// is lossless WebP).
    pub quality: u8,
}

impl VariantSpec {
    pub fn fit(width: u32, height: u32) -> Self {
        VariantSpec {
            mode: FitMode::Fit,
            width,
            height,
            format: OutputFormat::Jpeg,
            quality: 85,
        }
    }

    pub fn fill(width: u32, height: u32) -> Self {
        VariantSpec {
            mode: FitMode::Fill,
            ..Self::fit(width, height)
        }
    }

    /// Refuses empty boxes, boxes over the limits and qualities outside 1..=100.
    pub fn validate(&self, limits: &Limits) -> Result<(), MediaError> {
        if self.width == 0 || self.height == 0 {
            return Err(MediaError::InvalidSpec(format!(
                "size {}x{} is empty",
                self.width, self.height
            )));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(MediaError::InvalidSpec(format!(
                "quality {} is not within 1..=100",
                self.quality
            )));
        }
        limits.check(self.width, self.height).map_err(|e| match e {
            MediaError::TooLarge(m) => MediaError::InvalidSpec(format!("variant {m}")),
            other => other,
        })
    }
}

/// Parses "1600x1600" (also "1600X1600").
pub fn parse_size(s: &str) -> Result<(u32, u32), MediaError> {
    let bad = || MediaError::InvalidSpec(format!("size {s:?} is not WIDTHxHEIGHT"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 {
        return Err(bad());
    }
    Ok((w, h))
}

impl fmt::Display for VariantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            FitMode::Fit => "fit",
            FitMode::Fill => "fill",
        };
        write!(
            f,
            "{mode}-{}x{}-q{}.{}",
            self.width, self.height, self.quality, self.format
        )
    }
}

impl FromStr for VariantSpec {
    type Err = MediaError;
    /// Parses the canonical key, e.g. `fit-1600x1600-q85.jpeg` or `fill-50x50-q90.webp`.
    fn from_str(s: &str) -> Result<Self, MediaError> {
        let bad = || MediaError::InvalidSpec(format!("{s:?} is not like fit-1600x1600-q85.jpeg"));
        let (stem, ext) = s.rsplit_once('.').ok_or_else(bad)?;
        let mut parts = stem.split('-');
        let mode = match parts.next() {
            Some("fit") => FitMode::Fit,
            Some("fill") => FitMode::Fill,
            _ => return Err(bad()),
        };
        let (width, height) = parse_size(parts.next().ok_or_else(bad)?)?;
        let quality = parts
            .next()
            .and_then(|q| q.strip_prefix('q'))
            .and_then(|q| q.parse::<u8>().ok())
            .ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        let format = ext.parse()?;
        Ok(VariantSpec {
            mode,
            width,
            height,
            format,
            quality,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let spec: VariantSpec = "fit-1600x1600-q85.jpeg".parse().unwrap();
        assert_eq!(spec, VariantSpec::fit(1600, 1600));
        assert_eq!(spec.to_string(), "fit-1600x1600-q85.jpeg");
        let fill: VariantSpec = "fill-50x40-q90.webp".parse().unwrap();
        assert_eq!(fill.mode, FitMode::Fill);
        assert_eq!((fill.width, fill.height, fill.quality), (50, 40, 90));
        assert_eq!(fill.format, OutputFormat::Webp);
        assert_eq!(fill.to_string(), "fill-50x40-q90.webp");
        for bad in [
            "fit-1600-q85.jpeg",
            "zoom-1x1-q85.jpeg",
            "fit-1x1-q85.gif",
            "fit-0x1-q85.png",
            "fit-1x1.png",
            "fit-1x1-q85-x.png",
        ] {
            assert!(bad.parse::<VariantSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_validation() {
        assert_eq!(parse_size("1600x900").unwrap(), (1600, 900));
        assert!(parse_size("1600").is_err());
        assert!(parse_size("-1x5").is_err());
        let limits = Limits::default();
        assert!(VariantSpec::fit(100, 100).validate(&limits).is_ok());
        assert!(VariantSpec::fit(70_000, 10).validate(&limits).is_err());
        let mut q = VariantSpec::fit(10, 10);
        q.quality = 0;
        assert!(q.validate(&limits).is_err());
    }
}
