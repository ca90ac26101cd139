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
    /// libaom's speed for AVIF, [`AVIF_SPEEDS`] (lower: smaller files and
    /// higher fidelity for more CPU); other formats ignore it.
    pub avif_speed: u8,
}

/// The AVIF speed of a variant unless a preset says otherwise: 6 makes a
/// 1600-pixel AVIF of a photograph in 0.3 to 0.7 of libvips' CPU (which
/// uses 5); 5 matches libvips' bytes and SSIM at about its CPU (measured
/// by `bench/variants.sh`, see the README).
pub const DEFAULT_AVIF_SPEED: u8 = 6;

/// The AVIF speeds a variant may ask for. Below 4 libaom takes many times
/// longer for little gain, which a render (under the decode budget, on a
/// worker) should not spend.
pub const AVIF_SPEEDS: std::ops::RangeInclusive<u8> = 4..=9;

impl VariantSpec {
    pub fn fit(width: u32, height: u32) -> Self {
        VariantSpec {
            mode: FitMode::Fit,
            width,
            height,
            format: OutputFormat::Jpeg,
            quality: 85,
            avif_speed: DEFAULT_AVIF_SPEED,
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
        if !AVIF_SPEEDS.contains(&self.avif_speed) {
            return Err(MediaError::InvalidSpec(format!(
                "AVIF speed {} is not within {}..={}",
                self.avif_speed,
                AVIF_SPEEDS.start(),
                AVIF_SPEEDS.end()
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
        write!(f, "{mode}-{}x{}-q{}", self.width, self.height, self.quality)?;
        if self.format == OutputFormat::Avif && self.avif_speed != DEFAULT_AVIF_SPEED {
            write!(f, "-s{}", self.avif_speed)?;
        }
        write!(f, ".{}", self.format)
    }
}

impl FromStr for VariantSpec {
    type Err = MediaError;
    /// Parses the canonical key, e.g. `fit-1600x1600-q85.jpeg`,
    /// `fill-50x50-q90.webp` or `fit-800x800-q60-s5.avif` (an AVIF speed
    /// other than [`DEFAULT_AVIF_SPEED`]).
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
        let format: OutputFormat = ext.parse()?;
        let avif_speed = match parts.next() {
            None => DEFAULT_AVIF_SPEED,
            Some(s) if format == OutputFormat::Avif => s
                .strip_prefix('s')
                .and_then(|s| s.parse::<u8>().ok())
                .ok_or_else(bad)?,
            Some(_) => return Err(bad()),
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(VariantSpec {
            mode,
            width,
            height,
            format,
            quality,
            avif_speed,
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
        let avif: VariantSpec = "fit-800x600-q60-s5.avif".parse().unwrap();
        assert_eq!((avif.quality, avif.avif_speed), (60, 5));
        assert_eq!(avif.to_string(), "fit-800x600-q60-s5.avif");
        let plain: VariantSpec = "fit-800x600-q60.avif".parse().unwrap();
        assert_eq!(plain.avif_speed, DEFAULT_AVIF_SPEED);
        assert_eq!(plain.to_string(), "fit-800x600-q60.avif");
        for bad in [
            "fit-1x1-q85-s5.jpeg",
            "fit-1x1-q85-5.avif",
            "fit-1x1-q85-sx.avif",
            "fit-1x1-q85-s5-s6.avif",
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
        for (speed, ok) in [(3, false), (4, true), (9, true), (10, false)] {
            let mut s = VariantSpec::fit(10, 10);
            s.avif_speed = speed;
            assert_eq!(s.validate(&limits).is_ok(), ok, "speed {speed}");
        }
    }
}
