use serde::{Deserialize, Serialize};
use tintype_media::{FitMode, Format, OutputFormat, VariantSpec, AVIF_SPEEDS, DEFAULT_AVIF_SPEED};

/// The output format of a preset; `auto` keeps JPEG for photographs
/// (JPEG, WebP, HEIC, AVIF sources) and PNG for everything that may carry
/// transparency or sharp edges (PNG, GIF, SVG sources), and where a client
/// lets the server choose (the native variant URL) negotiates AVIF, then
/// WebP, from its `Accept` header (see [`negotiate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputChoice {
    #[default]
    Auto,
    Jpeg,
    Png,
    Webp,
    Avif,
}

/// A named size people ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preset {
    pub name: String,
    /// `fit` (within WxH, never enlarged) or `fill` (exactly WxH, centre crop).
    pub mode: String,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub format: OutputChoice,
    /// JPEG quality (1 to 100).
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Lossy WebP quality (1 to 99; 100 is lossless WebP).
    #[serde(default = "default_webp_quality")]
    pub webp_quality: u8,
    /// AVIF quality (1 to 100).
    #[serde(default = "default_avif_quality")]
    pub avif_quality: u8,
    /// libaom's speed for AVIF (4 to 9; 5 matches libvips' bytes and SSIM
    /// for more CPU, see `DEFAULT_AVIF_SPEED`).
    #[serde(default = "default_avif_speed")]
    pub avif_speed: u8,
    /// Rendered by the job queue right after an upload (otherwise on first request).
    #[serde(default = "default_true")]
    pub on_upload: bool,
}

fn default_quality() -> u8 {
    85
}
fn default_webp_quality() -> u8 {
    80
}
fn default_avif_quality() -> u8 {
    60
}
fn default_avif_speed() -> u8 {
    DEFAULT_AVIF_SPEED
}
fn default_true() -> bool {
    true
}

impl Preset {
    pub fn new(name: &str, mode: FitMode, width: u32, height: u32) -> Self {
        Preset {
            name: name.to_string(),
            mode: match mode {
                FitMode::Fit => "fit".into(),
                FitMode::Fill => "fill".into(),
            },
            width,
            height,
            format: OutputChoice::Auto,
            quality: default_quality(),
            webp_quality: default_webp_quality(),
            avif_quality: default_avif_quality(),
            avif_speed: default_avif_speed(),
            on_upload: true,
        }
    }

    pub fn fit_mode(&self) -> Result<FitMode, String> {
        match self.mode.as_str() {
            "fit" => Ok(FitMode::Fit),
            "fill" => Ok(FitMode::Fill),
            other => Err(format!(
                "preset {}: mode {other:?} is not fit or fill",
                self.name
            )),
        }
    }

    /// The format the preset gives a source of the given format when
    /// nothing is negotiated.
    pub fn default_format(&self, source: Format) -> OutputFormat {
        match self.format {
            OutputChoice::Jpeg => OutputFormat::Jpeg,
            OutputChoice::Png => OutputFormat::Png,
            OutputChoice::Webp => OutputFormat::Webp,
            OutputChoice::Avif => OutputFormat::Avif,
            OutputChoice::Auto => match source {
                Format::Jpeg | Format::Webp | Format::Heic | Format::Avif => OutputFormat::Jpeg,
                _ => OutputFormat::Png,
            },
        }
    }

    /// Whether the preset lets the client's `Accept` choose the encoding.
    pub fn negotiates(&self) -> bool {
        self.format == OutputChoice::Auto
    }

    /// The concrete spec for a source of the given format.
    pub fn spec_for(&self, source: Format) -> VariantSpec {
        self.spec_as(self.default_format(source))
    }

    /// The preset's size in `format`, at the preset's quality for it.
    pub fn spec_as(&self, format: OutputFormat) -> VariantSpec {
        let quality = match format {
            OutputFormat::Webp => self.webp_quality,
            OutputFormat::Avif => self.avif_quality,
            OutputFormat::Jpeg | OutputFormat::Png => self.quality,
        };
        VariantSpec {
            mode: self.fit_mode().unwrap_or(FitMode::Fit),
            width: self.width,
            height: self.height,
            format,
            quality,
            avif_speed: self.avif_speed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presets(Vec<Preset>);

impl Presets {
    /// What the dialects need: diaspora's small/medium/large and Fulcrum's
    /// thumbnail/large1080.
    pub fn builtin() -> Self {
        Presets(vec![
            Preset::new("small", FitMode::Fill, 50, 50),
            Preset::new("medium", FitMode::Fit, 100, 100),
            Preset::new("large", FitMode::Fit, 700, 65_535),
            // Fulcrum's versions are JPEG whatever the source (transparency
            // is flattened onto white).
            Preset {
                format: OutputChoice::Jpeg,
                ..Preset::new("thumbnail", FitMode::Fit, 200, 200)
            },
            Preset {
                format: OutputChoice::Jpeg,
                ..Preset::new("large1080", FitMode::Fit, 1080, 1080)
            },
        ])
    }

    /// Adds or replaces presets (operator configuration).
    pub fn with(mut self, extra: Vec<Preset>) -> Result<Self, String> {
        for p in extra {
            p.fit_mode()?;
            if p.width == 0 || p.height == 0 || p.name.is_empty() {
                return Err(format!(
                    "preset {:?} needs a name and a non-zero size",
                    p.name
                ));
            }
            for (what, v, range) in [
                ("quality", p.quality, 1..=100),
                ("webp_quality", p.webp_quality, 1..=100),
                ("avif_quality", p.avif_quality, 1..=100),
                ("avif_speed", p.avif_speed, AVIF_SPEEDS),
            ] {
                if !range.contains(&v) {
                    return Err(format!(
                        "preset {:?}: {what} {v} is not within {}..={}",
                        p.name,
                        range.start(),
                        range.end()
                    ));
                }
            }
            // Names with a dot are kept for full-size conversions (`full.webp`).
            if !p
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "preset {:?}: a name is letters, digits, '_' and '-' only",
                    p.name
                ));
            }
            self.0.retain(|q| q.name != p.name);
            self.0.push(p);
        }
        Ok(self)
    }

    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.0.iter().find(|p| p.name == name)
    }

    pub fn all(&self) -> &[Preset] {
        &self.0
    }
}

/// The encoding an `Accept` header asks for first among the modern ones:
/// AVIF, then WebP (each named explicitly with a q above 0; wildcards do not
/// count, as browsers name what they decode). `None`: the preset's format.
pub fn negotiate(accept: Option<&str>) -> Option<OutputFormat> {
    accepted_encodings(accept).first().copied()
}

/// Every modern encoding an `Accept` header names, in the order they are
/// preferred (AVIF, then WebP): what [`negotiate`] picks first, then what
/// to fall back on when that one cannot be made.
pub fn accepted_encodings(accept: Option<&str>) -> Vec<OutputFormat> {
    let Some(accept) = accept else {
        return Vec::new();
    };
    let mut avif = false;
    let mut webp = false;
    // Bounded: a header is at most a few KiB, and only 64 entries are read.
    for range in accept.split(',').take(64) {
        let mut parts = range.split(';');
        let kind = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        match kind.as_str() {
            "image/avif" => avif = true,
            "image/webp" => webp = true,
            _ => {}
        }
    }
    [(avif, OutputFormat::Avif), (webp, OutputFormat::Webp)]
        .into_iter()
        .filter_map(|(named, f)| named.then_some(f))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_avif_then_webp() {
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        assert_eq!(negotiate(Some(chrome)), Some(OutputFormat::Avif));
        assert_eq!(negotiate(Some("image/webp,*/*")), Some(OutputFormat::Webp));
        assert_eq!(
            negotiate(Some("image/avif;q=0, image/webp;q=0.5")),
            Some(OutputFormat::Webp)
        );
        assert_eq!(negotiate(Some("image/*,*/*;q=0.8")), None);
        assert_eq!(negotiate(None), None);
    }

    #[test]
    fn qualities_are_per_format() {
        let p = Preset {
            quality: 90,
            webp_quality: 70,
            avif_quality: 50,
            ..Preset::new("x", FitMode::Fit, 10, 10)
        };
        assert_eq!(p.spec_for(Format::Heic).format, OutputFormat::Jpeg);
        assert_eq!(p.spec_for(Format::Heic).quality, 90);
        assert_eq!(p.spec_as(OutputFormat::Webp).quality, 70);
        assert_eq!(p.spec_as(OutputFormat::Avif).quality, 50);
        assert_eq!(p.spec_for(Format::Png).format, OutputFormat::Png);
        let avif = Preset {
            format: OutputChoice::Avif,
            ..p
        };
        assert_eq!(avif.spec_for(Format::Jpeg).format, OutputFormat::Avif);
        assert!(!avif.negotiates());
        assert_eq!(avif.spec_for(Format::Jpeg).avif_speed, DEFAULT_AVIF_SPEED);
    }

    #[test]
    fn avif_speed_is_read_and_bounded() {
        // As the configuration file gives it (TOML, read by serde like this).
        let parse = |extra: &str| -> Preset {
            serde_json::from_str(&format!(
                r#"{{"name": "hero", "mode": "fit", "width": 800, "height": 800{extra}}}"#
            ))
            .unwrap()
        };
        let p = parse(r#", "avif_speed": 5"#);
        assert_eq!(p.spec_as(OutputFormat::Avif).avif_speed, 5);
        assert!(Presets::builtin().with(vec![p]).is_ok());
        let default = parse("");
        assert_eq!(default.avif_speed, DEFAULT_AVIF_SPEED);
        for speed in [0, 3, 10] {
            let p = parse(&format!(r#", "avif_speed": {speed}"#));
            let e = Presets::builtin().with(vec![p]).unwrap_err();
            assert!(e.contains("avif_speed"), "{e}");
        }
    }
}
