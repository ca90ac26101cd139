//! SVG: size and rasterization with resvg, never loading anything outside the document.
//!
//! roxmltree, usvg and resvg walk the document recursively, so a deeply
//! nested document (4000 nested `<g>` fit in 28 KB) would exhaust the stack
//! and end the process, which no `catch_unwind` can stop. Before any of them
//! sees a document, [`parse`] scans its bytes once without recursion
//! ([`scan_nesting`]): the element nesting must stay within
//! [`MAX_SVG_DEPTH`], there are at most [`MAX_SVG_NODES`] elements, and
//! entities may not carry markup or character references (their expansion
//! nests without showing it).
//! Then roxmltree parses it (at most [`MAX_SVG_NODES`] nodes), and the tree
//! is measured, again without recursion:
//!
//! * the nesting depth, counting what references add (`<use>`, `href`
//!   chains of gradients and patterns, `url(#…)` in attributes and in style
//!   sheets), must stay within [`MAX_SVG_DEPTH`];
//! * the element count once every `<use>` is expanded and every marker is
//!   drawn at each vertex must stay within [`MAX_SVG_ELEMENTS`] (a few
//!   `<use>` of `<use>` multiply without end).
//!
//! The same roxmltree document is then handed to usvg, so the XML is parsed once.

use std::collections::HashMap;
use std::path::Path;

use resvg::usvg::roxmltree;
use resvg::{tiny_skia, usvg};

use crate::{Limits, MediaError};

/// Deepest nesting accepted, references included.
pub const MAX_SVG_DEPTH: u32 = 256;
/// Most elements accepted once `<use>` and markers are expanded.
pub const MAX_SVG_ELEMENTS: u64 = 200_000;
/// Most XML nodes (elements, text, comments) parsed at all.
pub const MAX_SVG_NODES: u32 = 1_000_000;

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

fn too_deep() -> MediaError {
    MediaError::TooComplex(format!(
        "SVG document is nested deeper than {MAX_SVG_DEPTH} levels"
    ))
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// One pass over the bytes, no recursion: element nesting depth, element
/// count, and no markup inside entity declarations. Malformed markup is left
/// for the XML parser to report.
pub fn scan_nesting(bytes: &[u8]) -> Result<(), MediaError> {
    let mut depth = 0u32;
    let mut elements = 0u32;
    let mut i = 0usize;
    while let Some(lt) = find_from(bytes, i, b"<") {
        let rest = &bytes[lt..];
        if rest.starts_with(b"<!--") {
            match find_from(bytes, lt + 4, b"-->") {
                Some(end) => i = end + 3,
                None => return Ok(()),
            }
        } else if rest.starts_with(b"<![CDATA[") {
            match find_from(bytes, lt + 9, b"]]>") {
                Some(end) => i = end + 3,
                None => return Ok(()),
            }
        } else if rest.starts_with(b"<?") {
            match find_from(bytes, lt + 2, b"?>") {
                Some(end) => i = end + 2,
                None => return Ok(()),
            }
        } else if rest.starts_with(b"<!") {
            // A doctype, with an optional internal subset in brackets.
            let mut j = lt + 2;
            let mut bracket = 0u32;
            let mut quote: Option<u8> = None;
            let mut in_entity = false;
            loop {
                let Some(&b) = bytes.get(j) else {
                    return Ok(());
                };
                match (quote, b) {
                    (Some(q), _) if b == q => quote = None,
                    // Markup, or a character reference that becomes markup
                    // when the declaration is read (`&#60;`).
                    (Some(_), b'<') | (Some(_), b'&')
                        if in_entity && (b == b'<' || bytes.get(j + 1) == Some(&b'#')) =>
                    {
                        return Err(MediaError::TooComplex(
                            "SVG document declares an entity that contains markup".into(),
                        ))
                    }
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(b),
                    (None, b'[') => bracket += 1,
                    (None, b']') => bracket = bracket.saturating_sub(1),
                    (None, b'<') if bytes[j..].starts_with(b"<!ENTITY") => in_entity = true,
                    (None, b'<') if bytes[j..].starts_with(b"<!--") => {
                        j = find_from(bytes, j + 4, b"-->").map_or(bytes.len(), |e| e + 2);
                    }
                    (None, b'>') if in_entity => in_entity = false,
                    (None, b'>') if bracket == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            i = j + 1;
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            match find_from(bytes, lt + 2, b">") {
                Some(end) => i = end + 1,
                None => return Ok(()),
            }
        } else {
            // A start tag: to its `>`, outside quoted attribute values.
            let mut j = lt + 1;
            let mut quote: Option<u8> = None;
            loop {
                let Some(&b) = bytes.get(j) else {
                    return Ok(());
                };
                match (quote, b) {
                    (Some(q), _) if b == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(b),
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            elements += 1;
            if elements > MAX_SVG_NODES {
                return Err(MediaError::TooComplex(format!(
                    "SVG document has more than {MAX_SVG_NODES} elements"
                )));
            }
            if bytes.get(j.wrapping_sub(1)) != Some(&b'/') {
                depth += 1;
                if depth > MAX_SVG_DEPTH {
                    return Err(too_deep());
                }
            }
            i = j + 1;
        }
    }
    Ok(())
}

/// Parses a document, refusing one too deep or too large for usvg and resvg
/// (see the module docs).
pub fn parse(bytes: &[u8]) -> Result<usvg::Tree, MediaError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| MediaError::Corrupt("SVG document is not valid UTF-8".into()))?;
    scan_nesting(bytes)?;
    let xml_options = roxmltree::ParsingOptions {
        allow_dtd: true,
        nodes_limit: MAX_SVG_NODES,
    };
    let doc = roxmltree::Document::parse_with_options(text, xml_options).map_err(|e| match e {
        roxmltree::Error::NodesLimitReached => MediaError::TooComplex(format!(
            "SVG document has more than {MAX_SVG_NODES} XML nodes"
        )),
        other => MediaError::Corrupt(format!("SVG document cannot be parsed: {other}")),
    })?;
    check_complexity(&doc)?;
    usvg::Tree::from_xmltree(&doc, &options())
        .map_err(|e| MediaError::Corrupt(format!("SVG document cannot be parsed: {e}")))
}

/// The id in `#id` or `url(#id)` (with optional quotes and spaces).
fn local_ref(value: &str) -> Option<&str> {
    let v = value.trim();
    let inner = match v.strip_prefix("url(") {
        Some(rest) => rest.split(')').next()?.trim().trim_matches(['"', '\'']),
        None => v,
    };
    inner.strip_prefix('#').filter(|id| !id.is_empty())
}

/// Every `url(#id)` in a text (a style attribute or sheet).
fn url_refs(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.match_indices("url(")
        .filter_map(|(at, _)| local_ref(text.get(at..)?))
}

/// Rough count of the vertices of a shape, from the numbers in its geometry.
fn vertices(node: roxmltree::Node) -> u64 {
    let numbers = |s: &str| {
        s.as_bytes()
            .split(|b| !(b.is_ascii_digit() || *b == b'.'))
            .filter(|t| !t.is_empty())
            .count() as u64
    };
    let d = node.attribute("d").map_or(0, numbers);
    let points = node.attribute("points").map_or(0, numbers);
    (d + points) / 2 + 2
}

/// Measures depth and expanded size without recursion (see the module docs).
fn check_complexity(doc: &roxmltree::Document) -> Result<(), MediaError> {
    let elements: Vec<roxmltree::Node> = doc.descendants().filter(|n| n.is_element()).collect();
    // Dense indices for elements, by roxmltree node id.
    let mut index_of: HashMap<usize, usize> = HashMap::with_capacity(elements.len());
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, n) in elements.iter().enumerate() {
        index_of.insert(n.id().get_usize(), i);
        if let Some(id) = n.attribute("id") {
            by_id.entry(id).or_insert(i);
        }
    }
    let has_markers = elements.iter().any(|n| n.tag_name().name() == "marker");
    let mut css_targets: Vec<usize> = Vec::new();

    // The edges of each element: children, and references that usvg follows
    // into other elements. `copies` marks edges whose content is copied
    // (`<use>`), which count towards the size; others are converted once.
    let mut edges: Vec<Vec<(usize, bool)>> = Vec::with_capacity(elements.len());
    for n in &elements {
        let mut out: Vec<(usize, bool)> = n
            .children()
            .filter(|c| c.is_element())
            .filter_map(|c| index_of.get(&c.id().get_usize()).map(|&i| (i, true)))
            .collect();
        let is_use = n.tag_name().name() == "use";
        if n.tag_name().name() == "style" {
            for text in n.children().filter_map(|c| c.text()) {
                css_targets.extend(url_refs(text).filter_map(|id| by_id.get(id).copied()));
            }
        }
        for attr in n.attributes() {
            let targets: Vec<usize> = if attr.name() == "href" {
                local_ref(attr.value())
                    .and_then(|id| by_id.get(id).copied())
                    .into_iter()
                    .collect()
            } else {
                url_refs(attr.value())
                    .filter_map(|id| by_id.get(id).copied())
                    .collect()
            };
            out.extend(targets.into_iter().map(|t| (t, is_use)));
        }
        edges.push(out);
    }

    // Post-order walk with an explicit stack. An edge into an element still
    // being walked is a loop, which usvg cuts: it adds nothing.
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; elements.len()];
    let mut size = vec![0u64; elements.len()];
    let mut height = vec![0u32; elements.len()];
    let mut max_marker = 0u64;
    let too_many = || {
        MediaError::TooComplex(format!(
            "SVG document has more than {MAX_SVG_ELEMENTS} elements once <use> and markers are expanded"
        ))
    };
    // Markers first, so shapes know what a marker costs.
    let markers = (0..elements.len()).filter(|&i| elements[i].tag_name().name() == "marker");
    let others = (0..elements.len()).filter(|&i| elements[i].tag_name().name() != "marker");
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for start in markers.chain(others) {
        stack.push((start, false));
        while let Some((i, finished)) = stack.pop() {
            if !finished {
                if state[i] != NEW {
                    continue;
                }
                state[i] = OPEN;
                stack.push((i, true));
                for &(t, _) in &edges[i] {
                    if state[t] == NEW {
                        stack.push((t, false));
                    }
                }
                continue;
            }
            let mut s = 1u64;
            let mut h = 0u32;
            for &(t, copies) in &edges[i] {
                if state[t] != DONE {
                    continue;
                }
                if copies {
                    s = s.saturating_add(size[t]);
                }
                h = h.max(height[t]);
            }
            let node = elements[i];
            if has_markers
                && matches!(
                    node.tag_name().name(),
                    "path" | "line" | "polyline" | "polygon"
                )
            {
                s = s.saturating_add(vertices(node).saturating_mul(max_marker));
            }
            let h = h.saturating_add(1);
            if h > MAX_SVG_DEPTH {
                return Err(too_deep());
            }
            if s > MAX_SVG_ELEMENTS {
                return Err(too_many());
            }
            size[i] = s;
            height[i] = h;
            if node.tag_name().name() == "marker" {
                max_marker = max_marker.max(s);
            }
            state[i] = DONE;
        }
    }
    // References made from style sheets may apply to any element: each
    // element they name can add its whole height to a chain once.
    css_targets.sort_unstable();
    css_targets.dedup();
    let root = height.iter().copied().max().unwrap_or(0);
    let css: u32 = css_targets
        .iter()
        .filter(|&&t| {
            matches!(
                elements[t].tag_name().name(),
                "pattern" | "mask" | "clipPath" | "marker" | "filter" | "symbol" | "g" | "svg"
            )
        })
        .map(|&t| height[t])
        .fold(0u32, u32::saturating_add);
    if root.saturating_add(css) > MAX_SVG_DEPTH {
        return Err(too_deep());
    }
    let total: u64 = doc
        .root()
        .children()
        .filter_map(|c| index_of.get(&c.id().get_usize()))
        .map(|&i| size[i])
        .fold(0u64, u64::saturating_add);
    if total > MAX_SVG_ELEMENTS {
        return Err(too_many());
    }
    Ok(())
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
