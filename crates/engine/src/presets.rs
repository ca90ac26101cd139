use serde::{Deserialize, Serialize};
use tintype_media::{FitMode, Format, OutputFormat, VariantSpec};

/// The output format of a preset; `auto` keeps JPEG for photographs
/// (JPEG, WebP sources) and PNG for everything that may carry transparency
/// or sharp edges (PNG, GIF, SVG sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputChoice {
    #[default]
    Auto,
    Jpeg,
    Png,
    Webp,
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
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// Rendered by the job queue right after an upload (otherwise on first request).
    #[serde(default = "default_true")]
    pub on_upload: bool,
}

fn default_quality() -> u8 {
    85
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
            quality: 85,
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

    /// The concrete spec for a source of the given format.
    pub fn spec_for(&self, source: Format) -> VariantSpec {
        let format = match self.format {
            OutputChoice::Jpeg => OutputFormat::Jpeg,
            OutputChoice::Png => OutputFormat::Png,
            OutputChoice::Webp => OutputFormat::Webp,
            OutputChoice::Auto => match source {
                Format::Jpeg | Format::Webp => OutputFormat::Jpeg,
                _ => OutputFormat::Png,
            },
        };
        VariantSpec {
            mode: self.fit_mode().unwrap_or(FitMode::Fit),
            width: self.width,
            height: self.height,
            format,
            quality: self.quality,
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
