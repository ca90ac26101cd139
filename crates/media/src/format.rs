use serde::Serialize;

/// The formats tintype accepts, named from the bytes, never from a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Webp,
    Svg,
    /// HEIC/HEIF stills (HEVC), as phones save them.
    Heic,
    /// AVIF stills (AV1 in HEIF).
    Avif,
    Qcow2,
}

/// What a file is: a picture (has pixels and variants) or a disk image (stored only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Picture,
    Disk,
}

impl Format {
    pub fn mime(&self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Svg => "image/svg+xml",
            Format::Heic => "image/heic",
            Format::Avif => "image/avif",
            Format::Qcow2 => "application/x-qemu-disk",
        }
    }

    /// The usual file extension: the name, but `jpg` for JPEG.
    pub fn extension(&self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            other => other.name(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Svg => "svg",
            Format::Heic => "heic",
            Format::Avif => "avif",
            Format::Qcow2 => "qcow2",
        }
    }

    /// The format of a [`Format::name`].
    pub fn from_name(name: &str) -> Option<Format> {
        [
            Format::Jpeg,
            Format::Png,
            Format::Gif,
            Format::Webp,
            Format::Svg,
            Format::Heic,
            Format::Avif,
            Format::Qcow2,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Format::Qcow2 => Kind::Disk,
            _ => Kind::Picture,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Names the format from the first bytes of a file (give at least 512 when the
/// file has them). `None` for anything tintype does not accept.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return Some(Format::Webp);
    }
    if let Some(f) = sniff_heif(head) {
        return Some(f);
    }
    if head.starts_with(b"QFI\xfb") {
        return Some(Format::Qcow2);
    }
    if looks_like_svg(head) {
        return Some(Format::Svg);
    }
    None
}

/// An ISO-BMFF `ftyp` box whose brands name a HEIF still: AVIF when any
/// brand is an AV1 one, HEIC for the HEVC brands and plain `mif1`.
fn sniff_heif(head: &[u8]) -> Option<Format> {
    if head.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let size = head
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))? as usize;
    if size < 16 {
        return None;
    }
    // The major brand, the minor version (skipped), then compatible brands.
    let end = size.min(head.len());
    let major = head.get(8..12)?;
    let compatible = head.get(16..end).unwrap_or(&[]);
    let brands = std::iter::once(major).chain(compatible.chunks_exact(4));
    let mut heif = false;
    for brand in brands {
        match brand {
            b"avif" | b"avis" => return Some(Format::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => {
                heif = true
            }
            _ => {}
        }
    }
    heif.then_some(Format::Heic)
}

/// Skips a UTF-8 BOM, whitespace, an XML declaration, comments, processing
/// instructions and a doctype, then wants an `<svg` element.
fn looks_like_svg(head: &[u8]) -> bool {
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    loop {
        rest = trim_start(rest);
        if rest.starts_with(b"<?") {
            match find(rest, b"?>") {
                Some(end) => rest = &rest[end + 2..],
                None => return false,
            }
        } else if rest.starts_with(b"<!--") {
            match find(rest, b"-->") {
                Some(end) => rest = &rest[end + 3..],
                None => return false,
            }
        } else if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case(b"<!DOCTYPE") {
            match doctype_end(rest) {
                Some(end) => rest = &rest[end..],
                None => return false,
            }
        } else {
            break;
        }
    }
    match rest.strip_prefix(b"<svg") {
        Some(after) => matches!(
            after.first(),
            Some(b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/')
        ),
        None => false,
    }
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let Some((first, tail)) = s.split_first() {
        if first.is_ascii_whitespace() {
            s = tail;
        } else {
            break;
        }
    }
    s
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The index just past a doctype's closing `>`, allowing an internal subset in brackets.
fn doctype_end(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'>' if depth == 0 => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_svg_variants() {
        assert_eq!(sniff(b"<svg xmlns='x'/>"), Some(Format::Svg));
        assert_eq!(
            sniff(b"\xEF\xBB\xBF  <?xml version=\"1.0\"?>\n<!-- hi -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\" [ <!ENTITY a \"b\"> ]>\n<svg width=\"1\">"),
            Some(Format::Svg)
        );
        assert_eq!(sniff(b"<svgfoo>"), None);
        assert_eq!(sniff(b"<html><svg>"), None);
        assert_eq!(sniff(b"<!-- unterminated <svg>"), None);
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn sniffs_magic_numbers() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0"), Some(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Some(Format::Png));
        assert_eq!(sniff(b"GIF89a"), Some(Format::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(sniff(b"QFI\xfb\0\0\0\x03"), Some(Format::Qcow2));
        assert_eq!(Format::Qcow2.kind(), Kind::Disk);
        let ftyp = |major: &[u8; 4], compat: &[u8]| {
            let mut b = ((16 + compat.len()) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(b"ftyp");
            b.extend_from_slice(major);
            b.extend_from_slice(&[0, 0, 0, 0]);
            b.extend_from_slice(compat);
            b
        };
        assert_eq!(sniff(&ftyp(b"heic", b"mif1heic")), Some(Format::Heic));
        assert_eq!(sniff(&ftyp(b"mif1", b"mif1miaf")), Some(Format::Heic));
        assert_eq!(sniff(&ftyp(b"avif", b"mif1avif")), Some(Format::Avif));
        assert_eq!(sniff(&ftyp(b"mif1", b"miafavif")), Some(Format::Avif));
        assert_eq!(sniff(&ftyp(b"isom", b"iso2mp41")), None);
        assert_eq!(Format::Heic.kind(), Kind::Picture);
        assert_eq!(Format::Png.kind(), Kind::Picture);
    }
}
