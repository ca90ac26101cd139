//! SVG: size and rasterization with resvg, never loading anything outside the document.

use std::path::Path;

use resvg::{tiny_skia, usvg};

use crate::{Limits, MediaError};

/// Reads an SVG file, refusing one over `limits.max_svg_bytes` before reading it.
pub fn read(path: &Path, limits: &Limits) -> Result<Vec<u8>, MediaError> {
    let len = std::fs::metadata(path)?.len();
    if len > limits.max_svg_bytes {
        return Err(MediaError::TooLarge(format!(
            "SVG document is {len} bytes, over the limit of {}",
            limits.max_svg_bytes
        )));
    }
    Ok(std::fs::read(path)?)
}

/// Options that resolve no external reference: no files, no nested images, no fonts.
fn options() -> usvg::Options<'static> {
    usvg::Options {
        resources_dir: None,
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: Box::new(|_, _, _| None),
            resolve_string: Box::new(|_, _| None),
        },
        ..usvg::Options::default()
    }
}

pub fn parse(bytes: &[u8]) -> Result<usvg::Tree, MediaError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| MediaError::Corrupt("SVG document is not valid UTF-8".into()))?;
    usvg::Tree::from_str(text, &options())
        .map_err(|e| MediaError::Corrupt(format!("SVG document cannot be parsed: {e}")))
}

/// The intrinsic size in whole pixels (rounded up, at least 1).
pub fn size(tree: &usvg::Tree) -> (u32, u32) {
    let size = tree.size();
    let whole = |v: f32| -> u32 {
        if v.is_finite() && v >= 1.0 {
            // Saturating float to int conversion; limits are checked by the caller.
            v.ceil() as u32
        } else {
            1
        }
    };
    (whole(size.width()), whole(size.height()))
}

/// Rasterizes the whole document scaled to exactly `width` x `height`, as
/// straight (not premultiplied) RGBA.
pub fn rasterize(tree: &usvg::Tree, width: u32, height: u32) -> Result<Vec<u8>, MediaError> {
    let mut pixmap = tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| MediaError::TooLarge(format!("cannot rasterize SVG at {width}x{height}")))?;
    let size = tree.size();
    let sx = width as f32 / size.width();
    let sy = height as f32 / size.height();
    resvg::render(
        tree,
        tiny_skia::Transform::from_scale(sx, sy),
        &mut pixmap.as_mut(),
    );
    let mut data = pixmap.take();
    for px in data.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a != 0 && a != 255 {
            for c in &mut px[..3] {
                *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
    Ok(data)
}
