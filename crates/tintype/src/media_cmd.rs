//! `tintype probe` and `tintype render` (owned by the media work).

use std::path::PathBuf;

use anyhow::{bail, Context};
use tintype_media::{
    parse_size, probe_file, probe_headers, render_file, FitMode, Limits, OutputFormat, VariantSpec,
    DEFAULT_AVIF_SPEED,
};

/// Print what tintype learns about a file (format, size, EXIF, GPS) as JSON.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// The file to probe.
    pub file: PathBuf,
}

/// Make variants of a picture into a directory.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The picture.
    pub file: PathBuf,
    /// Directory for the variants (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Fit within WIDTHxHEIGHT, never enlarged (repeatable).
    #[arg(long, value_name = "WxH")]
    pub fit: Vec<String>,
    /// Fill exactly WIDTHxHEIGHT, centre crop (repeatable).
    #[arg(long, value_name = "WxH")]
    pub fill: Vec<String>,
    /// Quality, 1 to 100 (JPEG, lossy WebP below 100, AVIF).
    #[arg(long, default_value_t = 85)]
    pub quality: u8,
    /// jpeg, png, webp or avif.
    #[arg(long, default_value = "jpeg")]
    pub format: String,
    /// libaom's speed for AVIF, 4 (smaller, slower) to 9.
    #[arg(long, default_value_t = DEFAULT_AVIF_SPEED)]
    pub avif_speed: u8,
}

pub fn run_probe(a: ProbeArgs) -> anyhow::Result<()> {
    let probe = probe_file(&a.file, &Limits::default())
        .with_context(|| format!("probing {}", a.file.display()))?;
    println!("{}", serde_json::to_string_pretty(&probe)?);
    Ok(())
}

pub fn run_render(a: RenderArgs) -> anyhow::Result<()> {
    let format: OutputFormat = a.format.parse()?;
    let mut specs = Vec::new();
    for (mode, sizes) in [(FitMode::Fit, &a.fit), (FitMode::Fill, &a.fill)] {
        for size in sizes {
            let (width, height) = parse_size(size)?;
            specs.push(VariantSpec {
                mode,
                width,
                height,
                format,
                quality: a.quality,
                avif_speed: a.avif_speed,
            });
        }
    }
    if specs.is_empty() {
        bail!("nothing to make: give at least one --fit WxH or --fill WxH");
    }
    let limits = Limits::default();
    let probe =
        // Headers only: rendering decodes the picture anyway, and refuses
        // one whose pixels do not all decode.
        probe_headers(&a.file, &limits)
            .with_context(|| format!("probing {}", a.file.display()))?;
    let rendered = render_file(&a.file, &probe, &specs, &limits)
        .with_context(|| format!("rendering {}", a.file.display()))?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for r in rendered {
        let ext = match r.content_type {
            "image/png" => "png",
            "image/webp" => "webp",
            "image/avif" => "avif",
            _ => "jpg",
        };
        let mode = match r.spec.mode {
            FitMode::Fit => "fit",
            FitMode::Fill => "fill",
        };
        let name = format!(
            "{mode}-{}x{}-q{}.{ext}",
            r.spec.width, r.spec.height, r.spec.quality
        );
        let path = a.out.join(name);
        std::fs::write(&path, &r.bytes).with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{}\t{}x{}\t{} bytes\t{}",
            path.display(),
            r.width,
            r.height,
            r.bytes.len(),
            r.content_type
        );
    }
    Ok(())
}
