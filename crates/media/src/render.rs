//! Variants: decode once (JPEG at reduced size when that is enough), resize from
//! the largest size down, apply the EXIF orientation, encode without metadata.

use std::io::BufReader;
use std::sync::Arc;

use image::ImageDecoder;
use std::path::Path;

use fast_image_resize as fr;

use crate::check::{turbo_outcome, TurboOutcome};
use crate::probe::swaps_axes;
use crate::{
    colour, guard, heif, svg, FitMode, Format, Limits, MediaError, OutputFormat, Probe, VariantSpec,
};

/// One variant made.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub spec: VariantSpec,
    pub bytes: Vec<u8>,
    /// Display size of the encoded picture.
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    /// A ThumbHash (base64) of the picture, on the smallest variant of a
    /// render (the smallest `fit` one when there is one): a blurred
    /// placeholder clients paint before any variant loads.
    pub thumbhash: Option<String>,
}

/// Pixels in stored orientation, 8-bit RGB or RGBA, rows packed.
#[derive(Clone)]
struct Raster {
    width: u32,
    height: u32,
    alpha: bool,
    data: Vec<u8>,
    /// The picture's ICC profile, still to be applied: each output is
    /// converted to sRGB after its resize ([`colour::ToSrgb`]).
    icc: Option<Arc<[u8]>>,
}

impl Raster {
    fn channels(&self) -> usize {
        if self.alpha {
            4
        } else {
            3
        }
    }

    fn pixel_type(&self) -> fr::PixelType {
        if self.alpha {
            fr::PixelType::U8x4
        } else {
            fr::PixelType::U8x3
        }
    }
}

/// The size a spec produces from a picture of display size `dw` x `dh`, and the
/// size the whole picture must have for it (larger than the output for fill).
fn plan(spec: &VariantSpec, dw: u32, dh: u32) -> ((u32, u32), (f64, f64)) {
    let (sw, sh) = (f64::from(spec.width), f64::from(spec.height));
    let (w, h) = (f64::from(dw), f64::from(dh));
    match spec.mode {
        FitMode::Fit => {
            let scale = (sw / w).min(sh / h).min(1.0);
            let out_w = ((w * scale).round() as u32).clamp(1, spec.width);
            let out_h = ((h * scale).round() as u32).clamp(1, spec.height);
            ((out_w, out_h), (f64::from(out_w), f64::from(out_h)))
        }
        FitMode::Fill => {
            let scale = (sw / w).max(sh / h);
            ((spec.width, spec.height), (w * scale, h * scale))
        }
    }
}

/// Makes every variant from one decode. Results come in the order of `specs`.
/// A panic in a decoder or encoder is an error. Blocking.
pub fn render_file(
    path: &Path,
    probe: &Probe,
    specs: &[VariantSpec],
    limits: &Limits,
) -> Result<Vec<Rendered>, MediaError> {
    guard::contained("rendering", || render_inner(path, probe, specs, limits))
}

fn render_inner(
    path: &Path,
    probe: &Probe,
    specs: &[VariantSpec],
    limits: &Limits,
) -> Result<Vec<Rendered>, MediaError> {
    let (dw, dh) = picture_size(probe, limits)?;
    for spec in specs {
        spec.validate(limits)?;
    }
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let swap = swaps_axes(probe.orientation);
    let plans: Vec<_> = specs.iter().map(|s| plan(s, dw, dh)).collect();
    let need = needed_size(specs, dw, dh, swap);
    let decoded = decode(path, probe, limits, need)?;
    let to_srgb = decoded
        .icc
        .as_deref()
        .and_then(|icc| colour::ToSrgb::new(icc, decoded.alpha));

    // Largest output first, so each can come from the previous full-picture result.
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(u64::from(plans[i].0 .0) * u64::from(plans[i].0 .1)));
    let mut sources: Vec<Raster> = vec![decoded];
    let mut resizer = fr::Resizer::new();
    let mut out: Vec<Option<Rendered>> = vec![None; specs.len()];
    // The output the placeholder is made from: (index, is fit, pixels).
    let mut placeholder: Option<(usize, bool, Raster)> = None;
    for i in order {
        let (spec, ((ow, oh), (nw, nh))) = (&specs[i], plans[i]);
        let (tw, th) = if swap { (oh, ow) } else { (ow, oh) };
        let (nw, nh) = if swap { (nh, nw) } else { (nw, nh) };
        // The smallest full picture still at least as large as this spec needs.
        let source = sources
            .iter()
            .filter(|s| f64::from(s.width) >= nw.floor() && f64::from(s.height) >= nh.floor())
            .min_by_key(|s| u64::from(s.width) * u64::from(s.height))
            .or_else(|| sources.first())
            .ok_or_else(|| MediaError::Corrupt("nothing was decoded".into()))?;
        let resized = resize(&mut resizer, source, tw, th, spec.mode == FitMode::Fill)?;
        let mut oriented = orient(&resized, probe.orientation);
        if let Some(c) = &to_srgb {
            c.apply(&mut oriented.data, oriented.alpha);
        }
        let rendered = encode(&oriented, spec, probe.format)?;
        // Outputs come largest first: the last one kept is the smallest.
        if spec.mode == FitMode::Fit || placeholder.as_ref().is_none_or(|p| !p.1) {
            placeholder = Some((i, spec.mode == FitMode::Fit, oriented));
        }
        if spec.mode == FitMode::Fit {
            sources.push(resized);
        }
        out[i] = Some(rendered);
    }
    if let Some((i, _, img)) = placeholder {
        match thumbhash_of(&mut resizer, &img) {
            Ok(hash) => {
                if let Some(Some(r)) = out.get_mut(i) {
                    r.thumbhash = Some(hash);
                }
            }
            Err(e) => tracing::debug!("no thumbhash: {e}"),
        }
    }
    out.into_iter()
        .map(|r| r.ok_or_else(|| MediaError::Encode("a variant was not made".into())))
        .collect()
}

/// A full-size WebP of the picture, orientation applied, metadata stripped,
/// lossless. Blocking.
pub fn to_webp(path: &Path, probe: &Probe, limits: &Limits) -> Result<Rendered, MediaError> {
    to_full(path, probe, limits, OutputFormat::Webp, 100)
}

/// The whole picture in another encoding at full size, orientation
/// applied, converted to sRGB, metadata stripped (`quality` as in
/// [`VariantSpec`]: WebP at 100 is lossless). Blocking.
pub fn to_full(
    path: &Path,
    probe: &Probe,
    limits: &Limits,
    format: OutputFormat,
    quality: u8,
) -> Result<Rendered, MediaError> {
    guard::contained("converting", || {
        to_full_inner(path, probe, limits, format, quality)
    })
}

fn to_full_inner(
    path: &Path,
    probe: &Probe,
    limits: &Limits,
    format: OutputFormat,
    quality: u8,
) -> Result<Rendered, MediaError> {
    let (dw, dh) = picture_size(probe, limits)?;
    let need = if swaps_axes(probe.orientation) {
        (f64::from(dh), f64::from(dw))
    } else {
        (f64::from(dw), f64::from(dh))
    };
    let decoded = decode(path, probe, limits, need)?;
    let mut oriented = orient(&decoded, probe.orientation);
    if let Some(c) = decoded
        .icc
        .as_deref()
        .and_then(|icc| colour::ToSrgb::new(icc, decoded.alpha))
    {
        c.apply(&mut oriented.data, oriented.alpha);
    }
    let spec = VariantSpec {
        mode: FitMode::Fit,
        width: oriented.width,
        height: oriented.height,
        format,
        quality,
        avif_speed: crate::spec::DEFAULT_AVIF_SPEED,
    };
    spec.validate(limits)?;
    encode(&oriented, &spec, probe.format)
}

/// The bytes [`to_full`] allocates at its peak (an upper estimate, as
/// [`render_memory`]).
pub fn full_memory(probe: &Probe, format: OutputFormat) -> u64 {
    let base = render_memory(probe, &[]);
    match (format, probe.width.zip(probe.height)) {
        (OutputFormat::Avif, Some((w, h))) => base
            .saturating_add((u64::from(w) * u64::from(h)).saturating_mul(AVIF_BYTES_PER_PIXEL))
            .saturating_add(AVIF_BASE),
        _ => base,
    }
}

fn picture_size(probe: &Probe, limits: &Limits) -> Result<(u32, u32), MediaError> {
    if probe.format == Format::Qcow2 {
        return Err(MediaError::Unsupported(
            "disk images have no pixels to render".into(),
        ));
    }
    let (w, h) = probe
        .width
        .zip(probe.height)
        .ok_or_else(|| MediaError::Corrupt("the probe has no dimensions".into()))?;
    limits.check(w, h)?;
    Ok((w, h))
}

/// Decodes the picture in stored orientation, at least `need` in size where
/// the format can decode smaller (JPEG) or must be rasterized (SVG).
fn decode(
    path: &Path,
    probe: &Probe,
    limits: &Limits,
    need: (f64, f64),
) -> Result<Raster, MediaError> {
    let (sw, sh) = probe
        .stored_size()
        .ok_or_else(|| MediaError::Corrupt("the probe has no dimensions".into()))?;
    match probe.format {
        Format::Jpeg => {
            let bytes = std::fs::read(path)?;
            let icc = colour::jpeg_icc(&bytes);
            match decode_jpeg_turbo(&bytes, limits, need, icc.as_deref()) {
                Ok(r) => Ok(r),
                Err(e) => {
                    tracing::debug!(
                        "libjpeg-turbo could not decode ({e}); trying the Rust decoder"
                    );
                    decode_with_image(path, image::ImageFormat::Jpeg, limits)
                }
            }
        }
        Format::Png => decode_with_image(path, image::ImageFormat::Png, limits),
        Format::Gif => decode_with_image(path, image::ImageFormat::Gif, limits),
        Format::Webp => decode_with_image(path, image::ImageFormat::WebP, limits),
        Format::Heic | Format::Avif => {
            let bytes = std::fs::read(path)?;
            let px = heif::decode(&bytes, limits)?;
            Ok(Raster {
                width: px.width,
                height: px.height,
                alpha: px.alpha,
                data: px.data,
                icc: px.icc.map(Arc::from),
            })
        }
        Format::Svg => {
            let bytes = svg::read(path, limits)?;
            let tree = svg::parse(&bytes)?;
            // Vector art is drawn at the size needed, never above its own size
            // unless a fill asks for more.
            let scale = (need.0 / f64::from(sw)).max(need.1 / f64::from(sh));
            let w = ((f64::from(sw) * scale).ceil() as u32).max(1);
            let h = ((f64::from(sh) * scale).ceil() as u32).max(1);
            limits.check(w, h)?;
            let data = svg::rasterize(&tree, w, h)?;
            Ok(Raster {
                width: w,
                height: h,
                alpha: true,
                data,
                icc: None,
            })
        }
        Format::Qcow2 => Err(MediaError::Unsupported(
            "disk images have no pixels to render".into(),
        )),
    }
}

fn turbo_err(e: turbojpeg::Error) -> MediaError {
    MediaError::Corrupt(format!("JPEG cannot be decoded: {e}"))
}

/// libjpeg-turbo with DCT scaling: the smallest of 1/8, 2/8, ... 8/8 that is
/// still at least twice `need` (see [`jpeg_scaled_size`]).
fn decode_jpeg_turbo(
    bytes: &[u8],
    limits: &Limits,
    need: (f64, f64),
    icc: Option<&[u8]>,
) -> Result<Raster, MediaError> {
    let mut dec = turbojpeg::Decompressor::new().map_err(turbo_err)?;
    let header = dec.read_header(bytes).map_err(turbo_err)?;
    let w = u32::try_from(header.width).map_err(|_| MediaError::Corrupt("JPEG width".into()))?;
    let h = u32::try_from(header.height).map_err(|_| MediaError::Corrupt("JPEG height".into()))?;
    limits.check(w, h)?;
    let (out_w, out_h) = jpeg_scaled_size(header.width, header.height, need);
    let (cmyk, mut pixels, decoded) = turbo_decompress(&mut dec, bytes, &header, out_w, out_h);
    if let Err(e) = decoded {
        // A warning about damage libjpeg worked around (stray bytes before
        // a marker) leaves every pixel decoded.
        if turbo_outcome(&e.to_string()) != TurboOutcome::Decoded {
            return Err(turbo_err(e));
        }
    }
    if cmyk {
        // libjpeg-turbo hands out Adobe-style inverted CMYK.
        pixels = colour::cmyk_to_srgb(&pixels, icc);
    }
    Ok(Raster {
        width: out_w as u32,
        height: out_h as u32,
        alpha: false,
        data: pixels,
        // CMYK went through its profile already.
        icc: if cmyk { None } else { icc.map(Arc::from) },
    })
}

/// How much larger than the largest output a JPEG is decoded, at least
/// (up to its full size).
const JPEG_HEADROOM: f64 = 2.0;

/// The size libjpeg-turbo decodes a `w` x `h` JPEG to with DCT scaling:
/// the smallest of 1/8, 2/8, ... 8/8 that is still at least twice `need`.
fn jpeg_scaled_size(w: usize, h: usize, need: (f64, f64)) -> (usize, usize) {
    let scaled = |dim: usize, k: usize| (dim * k).div_ceil(8);
    // Lanczos3 from at least twice the size needed (as libvips leaves a
    // factor of two for its final resize): measured by bench/variants.sh,
    // SSIM +0.001 to +0.002 for a few per cent more CPU.
    let need = (need.0 * JPEG_HEADROOM, need.1 * JPEG_HEADROOM);
    let k = (1..=8usize)
        .find(|&k| scaled(w, k) as f64 >= need.0.floor() && scaled(h, k) as f64 >= need.1.floor())
        .unwrap_or(8);
    (scaled(w, k), scaled(h, k))
}

/// The largest whole-picture size, in stored orientation, that any of
/// `specs` needs from a picture of display size `dw` x `dh`.
fn needed_size(specs: &[VariantSpec], dw: u32, dh: u32, swap: bool) -> (f64, f64) {
    let need = specs
        .iter()
        .map(|s| plan(s, dw, dh))
        .fold((0.0f64, 0.0f64), |acc, (_, (nw, nh))| {
            (acc.0.max(nw), acc.1.max(nh))
        });
    if swap {
        (need.1, need.0)
    } else {
        need
    }
}

/// The bytes of pixel buffers that [`render_file`] allocates at its peak for
/// these specs (an upper estimate): the decoded picture (JPEG at its
/// DCT-scaled size, 4 bytes per pixel plus the colour conversion; other
/// formats 8 bytes per pixel for the decoder's buffer and the converted
/// raster; SVG its raster plus its parsed tree), and for each output its
/// resized, oriented and encoded buffers (and libaom's for AVIF). `specs` empty: a full-size
/// conversion ([`to_full`]; see [`full_memory`] for its encoder).
pub fn render_memory(probe: &Probe, specs: &[VariantSpec]) -> u64 {
    let (Some((sw, sh)), Some(dw), Some(dh)) = (probe.stored_size(), probe.width, probe.height)
    else {
        return 0;
    };
    let swap = swaps_axes(probe.orientation);
    let full = (f64::from(sw), f64::from(sh));
    let need = if specs.is_empty() {
        full
    } else {
        needed_size(specs, dw, dh, swap)
    };
    let px = |w: f64, h: f64| (w.max(1.0).ceil() as u64).saturating_mul(h.max(1.0).ceil() as u64);
    let decoded = match probe.format {
        Format::Jpeg => {
            let (w, h) = jpeg_scaled_size(sw as usize, sh as usize, need);
            // CMYK decodes at 4 bytes per pixel and converts to 3.
            px(w as f64, h as f64).saturating_mul(7)
        }
        Format::Svg => {
            let scale = (need.0 / full.0).max(need.1 / full.1);
            px(full.0 * scale, full.1 * scale).saturating_mul(4)
        }
        Format::Qcow2 => 0,
        // libheif's planes (up to 16 bits a sample) and the RGB(A) result.
        Format::Heic | Format::Avif => px(full.0, full.1).saturating_mul(16),
        _ => px(full.0, full.1).saturating_mul(8),
    };
    let outputs: u64 = if specs.is_empty() {
        px(full.0, full.1).saturating_mul(12)
    } else {
        specs
            .iter()
            .map(|s| {
                let ((ow, oh), _) = plan(s, dw, dh);
                let pixels = px(f64::from(ow), f64::from(oh));
                let encoder = match s.format {
                    // libaom's buffers: measured up to 130 bytes a pixel
                    // (screen-content tools on flat pictures).
                    OutputFormat::Avif => pixels.saturating_mul(AVIF_BYTES_PER_PIXEL) + AVIF_BASE,
                    _ => 0,
                };
                pixels.saturating_mul(12).saturating_add(encoder)
            })
            .fold(0u64, u64::saturating_add)
    };
    decoded.saturating_add(outputs)
}

/// Decompresses a JPEG at `out_w` x `out_h` (one of its DCT scales): RGB,
/// or libjpeg-turbo's CMYK for CMYK and YCCK files. Returns whether the
/// pixels are CMYK, the pixels, and libjpeg-turbo's outcome (an error may be
/// only a warning about damage it worked around; see [`turbo_outcome`]).
pub(crate) fn turbo_decompress(
    dec: &mut turbojpeg::Decompressor,
    bytes: &[u8],
    header: &turbojpeg::DecompressHeader,
    out_w: usize,
    out_h: usize,
) -> (bool, Vec<u8>, Result<(), turbojpeg::Error>) {
    let cmyk = matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    );
    let (format, channels) = if cmyk {
        (turbojpeg::PixelFormat::CMYK, 4)
    } else {
        (turbojpeg::PixelFormat::RGB, 3)
    };
    let mut pixels = vec![0u8; out_w * out_h * channels];
    let decoded = dec.decompress(
        bytes,
        turbojpeg::Image {
            pixels: pixels.as_mut_slice(),
            width: out_w,
            pitch: out_w * channels,
            height: out_h,
            format,
        },
    );
    (cmyk, pixels, decoded)
}

fn decode_with_image(
    path: &Path,
    format: image::ImageFormat,
    limits: &Limits,
) -> Result<Raster, MediaError> {
    let file = std::fs::File::open(path)?;
    let mut reader = image::ImageReader::with_format(BufReader::new(file), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    // The decoded picture plus room for the decoder's own buffers.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let image_err = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => {
            MediaError::TooLarge(format!("image is over the limits: {l}"))
        }
        image::ImageError::IoError(io) => MediaError::Io(io),
        other => MediaError::Corrupt(format!(
            "{} cannot be decoded: {other}",
            format_name(format)
        )),
    };
    let max_alloc = limits.max_pixels.saturating_mul(8);
    let mut decoder = reader.into_decoder().map_err(image_err)?;
    // What ImageReader::decode checks before it allocates.
    let (w, h) = decoder.dimensions();
    limits.check(w, h)?;
    if decoder.total_bytes() > max_alloc {
        return Err(MediaError::TooLarge(format!(
            "{} of {w}x{h} needs {} bytes to decode, over the limit of {max_alloc}",
            format_name(format),
            decoder.total_bytes()
        )));
    }
    // A profile that cannot be read is no reason to refuse the pixels.
    let icc = decoder.icc_profile().ok().flatten();
    let img = image::DynamicImage::from_decoder(decoder).map_err(image_err)?;
    limits.check(img.width(), img.height())?;
    let alpha = img.color().has_alpha();
    let (width, height) = (img.width(), img.height());
    let data = if alpha {
        img.into_rgba8().into_raw()
    } else {
        img.into_rgb8().into_raw()
    };
    Ok(Raster {
        width,
        height,
        alpha,
        data,
        icc: icc.map(Arc::from),
    })
}

fn format_name(format: image::ImageFormat) -> &'static str {
    match format {
        image::ImageFormat::Jpeg => "JPEG",
        image::ImageFormat::Png => "PNG",
        image::ImageFormat::Gif => "GIF",
        image::ImageFormat::WebP => "WebP",
        _ => "image",
    }
}

fn resize_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Encode(format!("resizing failed: {e}"))
}

/// Resizes to exactly `w` x `h`; `crop` keeps the aspect by cutting the centre.
fn resize(
    resizer: &mut fr::Resizer,
    src: &Raster,
    w: u32,
    h: u32,
    crop: bool,
) -> Result<Raster, MediaError> {
    if src.width == w && src.height == h {
        return Ok(src.clone());
    }
    let src_image = fr::images::ImageRef::new(src.width, src.height, &src.data, src.pixel_type())
        .map_err(resize_err)?;
    let mut dst = fr::images::Image::new(w, h, src.pixel_type());
    let mut options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    if crop {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    resizer
        .resize(&src_image, &mut dst, &options)
        .map_err(resize_err)?;
    Ok(Raster {
        width: w,
        height: h,
        alpha: src.alpha,
        data: dst.into_vec(),
        icc: src.icc.clone(),
    })
}

/// Applies an EXIF orientation: the result is in display orientation.
fn orient(src: &Raster, orientation: Option<u16>) -> Raster {
    let o = orientation.unwrap_or(1);
    if !(2..=8).contains(&o) {
        return src.clone();
    }
    let (rw, rh) = (src.width as usize, src.height as usize);
    let (dw, dh) = if o >= 5 { (rh, rw) } else { (rw, rh) };
    let ch = src.channels();
    let mut data = vec![0u8; src.data.len()];
    for dy in 0..dh {
        for dx in 0..dw {
            // The stored pixel shown at (dx, dy).
            let (sx, sy) = match o {
                2 => (rw - 1 - dx, dy),
                3 => (rw - 1 - dx, rh - 1 - dy),
                4 => (dx, rh - 1 - dy),
                5 => (dy, dx),
                6 => (dy, rh - 1 - dx),
                7 => (rw - 1 - dy, rh - 1 - dx),
                _ => (rw - 1 - dy, dx),
            };
            let from = (sy * rw + sx) * ch;
            let to = (dy * dw + dx) * ch;
            data[to..to + ch].copy_from_slice(&src.data[from..from + ch]);
        }
    }
    Raster {
        width: dw as u32,
        height: dh as u32,
        alpha: src.alpha,
        data,
        icc: src.icc.clone(),
    }
}

/// Flattens transparency onto white (for JPEG).
fn flatten(src: &Raster) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.data.len() / 4 * 3);
    for px in src.data.chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

fn encode(img: &Raster, spec: &VariantSpec, source: Format) -> Result<Rendered, MediaError> {
    // Vector art keeps its transparency: a JPEG request gives a PNG.
    let format = match (source, spec.format) {
        (Format::Svg, OutputFormat::Jpeg) => OutputFormat::Png,
        (_, f) => f,
    };
    let enc_err = |e: &dyn std::fmt::Display| MediaError::Encode(e.to_string());
    let bytes = match format {
        OutputFormat::Jpeg => {
            let flat;
            let rgb: &[u8] = if img.alpha {
                flat = flatten(img);
                &flat
            } else {
                &img.data
            };
            let mut comp = turbojpeg::Compressor::new().map_err(|e| enc_err(&e))?;
            comp.set_quality(i32::from(spec.quality));
            comp.set_subsamp(turbojpeg::Subsamp::Sub2x2);
            comp.compress_to_vec(turbojpeg::Image {
                pixels: rgb,
                width: img.width as usize,
                pitch: img.width as usize * 3,
                height: img.height as usize,
                format: turbojpeg::PixelFormat::RGB,
            })
            .map_err(|e| enc_err(&e))?
        }
        OutputFormat::Png => {
            use image::ImageEncoder;
            let mut buf = Vec::new();
            let enc = image::codecs::png::PngEncoder::new_with_quality(
                &mut buf,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            enc.write_image(&img.data, img.width, img.height, color_type(img))
                .map_err(|e| enc_err(&e))?;
            buf
        }
        OutputFormat::Webp if spec.quality >= 100 => {
            let mut buf = Vec::new();
            image::codecs::webp::WebPEncoder::new_lossless(&mut buf)
                .encode(&img.data, img.width, img.height, color_type(img))
                .map_err(|e| enc_err(&e))?;
            buf
        }
        OutputFormat::Webp => {
            let encoder = if img.alpha {
                webp::Encoder::from_rgba(&img.data, img.width, img.height)
            } else {
                webp::Encoder::from_rgb(&img.data, img.width, img.height)
            };
            let memory = encoder
                .encode_simple(false, f32::from(spec.quality))
                .map_err(|e| enc_err(&format!("{e:?}")))?;
            memory.to_vec()
        }
        OutputFormat::Avif => heif::encode_still(
            Format::Avif,
            &img.data,
            img.width,
            img.height,
            img.alpha,
            &heif::StillOptions {
                quality: spec.quality,
                speed: spec.avif_speed,
                ..Default::default()
            },
        )?,
    };
    Ok(Rendered {
        spec: *spec,
        bytes,
        width: img.width,
        height: img.height,
        content_type: format.mime(),
        thumbhash: None,
    })
}

/// The ThumbHash of a picture (display orientation), from at most 100x100
/// pixels of it, base64-encoded.
fn thumbhash_of(resizer: &mut fr::Resizer, img: &Raster) -> Result<String, MediaError> {
    use base64::Engine as _;
    let scale = (100.0 / f64::from(img.width.max(img.height))).min(1.0);
    let w = ((f64::from(img.width) * scale).round() as u32).clamp(1, 100);
    let h = ((f64::from(img.height) * scale).round() as u32).clamp(1, 100);
    let small = resize(resizer, img, w, h, false)?;
    let rgba: Vec<u8> = if small.alpha {
        small.data
    } else {
        small
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    };
    let hash = thumbhash::rgba_to_thumb_hash(w as usize, h as usize, &rgba);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash))
}

/// What an AVIF encode allocates besides the output's pixels, for the
/// decode budget: bytes a pixel, and a fixed part.
const AVIF_BYTES_PER_PIXEL: u64 = 160;
const AVIF_BASE: u64 = 32 * 1024 * 1024;

fn color_type(img: &Raster) -> image::ExtendedColorType {
    if img.alpha {
        image::ExtendedColorType::Rgba8
    } else {
        image::ExtendedColorType::Rgb8
    }
}
