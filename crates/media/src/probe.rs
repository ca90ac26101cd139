//! Probing: format, dimensions, animation, EXIF, disk header, then the cheap
//! check that every pixel decodes (see [`crate::check`]).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::exif::{self, ExifFacts, MAX_EXIF_BYTES};
use crate::{check, guard, qcow2, sniff, svg, Format, Kind, Limits, MediaError};

/// Facts about a QCOW2 disk image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskInfo {
    pub version: u32,
    pub virtual_size: u64,
    pub cluster_size: u64,
    pub has_backing_file: bool,
    pub encrypted: bool,
}

/// What a probe learns about a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub format: Format,
    pub kind: Kind,
    /// Display width: after EXIF orientation (5 to 8 swap width and height). `None` for disks.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub orientation: Option<u16>,
    pub animated: bool,
    pub exif: Option<Map<String, Value>>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub disk: Option<DiskInfo>,
}

impl Probe {
    /// Width and height as stored, before orientation.
    pub fn stored_size(&self) -> Option<(u32, u32)> {
        let (w, h) = (self.width?, self.height?);
        Some(if swaps_axes(self.orientation) {
            (h, w)
        } else {
            (w, h)
        })
    }
}

/// Orientations 5 to 8 turn the picture a quarter.
pub fn swaps_axes(orientation: Option<u16>) -> bool {
    matches!(orientation, Some(5..=8))
}

/// Bytes handed to [`sniff`].
const HEAD_LEN: usize = 512;

/// Probes a file: reads its header (and EXIF), checks the limits, then
/// decodes every pixel cheaply and refuses a picture that does not decode
/// completely. A panic in a decoder is an error. Blocking.
pub fn probe_file(path: &Path, limits: &Limits) -> Result<Probe, MediaError> {
    guard::contained("probing", || {
        let probe = probe_headers_inner(path, limits)?;
        check::check_pixels(path, probe.format, limits)?;
        Ok(probe)
    })
}

/// The pixel check of [`probe_file`] alone, for a file probed with
/// [`probe_headers`] (a caller that takes [`crate::check_memory`] from a
/// decode budget in between). A panic in a decoder is an error. Blocking.
pub fn check_file(path: &Path, probe: &Probe, limits: &Limits) -> Result<(), MediaError> {
    guard::contained("checking the pixels", || {
        check::check_pixels(path, probe.format, limits)
    })
}

/// Headers and EXIF only, without the pixel check: for a file that was
/// checked when it was uploaded (rendering its variants decodes it anyway).
/// A panic in a parser is an error. Blocking.
pub fn probe_headers(path: &Path, limits: &Limits) -> Result<Probe, MediaError> {
    guard::contained("probing", || probe_headers_inner(path, limits))
}

fn probe_headers_inner(path: &Path, limits: &Limits) -> Result<Probe, MediaError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(16 * 1024, file);
    let head = read_head(&mut reader, HEAD_LEN)?;
    let format = sniff(&head).ok_or_else(|| {
        MediaError::Unsupported(
            "the file is not a JPEG, PNG, GIF, WebP, HEIC, AVIF, SVG or QCOW2 disk image".into(),
        )
    })?;
    reader.seek(SeekFrom::Start(0))?;
    let header = match format {
        Format::Qcow2 => return probe_qcow2(&head, file_len),
        Format::Svg => {
            let bytes = svg::read(path, limits)?;
            let tree = svg::parse(&bytes)?;
            let (w, h) = svg::size(&tree);
            Header::plain(w, h)
        }
        Format::Jpeg => jpeg_header(&mut reader)?,
        Format::Png => png_header(&mut reader)?,
        Format::Gif => gif_header(&mut reader)?,
        Format::Webp => webp_header(&mut reader)?,
        Format::Heic | Format::Avif => {
            drop(reader);
            heif_header(&std::fs::read(path)?, limits)?
        }
    };
    finish(format, header, limits)
}

/// Probes bytes already in memory (the same checks as [`probe_file`]).
pub fn probe_bytes(bytes: &[u8], limits: &Limits) -> Result<Probe, MediaError> {
    guard::contained("probing", || {
        let probe = probe_bytes_headers(bytes, limits)?;
        check::check_bytes(bytes, probe.format, limits)?;
        Ok(probe)
    })
}

fn probe_bytes_headers(bytes: &[u8], limits: &Limits) -> Result<Probe, MediaError> {
    let head = bytes.get(..HEAD_LEN).unwrap_or(bytes);
    let format = sniff(head).ok_or_else(|| {
        MediaError::Unsupported(
            "the file is not a JPEG, PNG, GIF, WebP, HEIC, AVIF, SVG or QCOW2 disk image".into(),
        )
    })?;
    let mut reader = std::io::Cursor::new(bytes);
    let header = match format {
        Format::Qcow2 => return probe_qcow2(head, bytes.len() as u64),
        Format::Svg => {
            if bytes.len() as u64 > limits.max_svg_bytes {
                return Err(MediaError::TooLarge(format!(
                    "SVG document is {} bytes, over the limit of {}",
                    bytes.len(),
                    limits.max_svg_bytes
                )));
            }
            let (w, h) = svg::size(&svg::parse(bytes)?);
            Header::plain(w, h)
        }
        Format::Jpeg => jpeg_header(&mut reader)?,
        Format::Png => png_header(&mut reader)?,
        Format::Gif => gif_header(&mut reader)?,
        Format::Webp => webp_header(&mut reader)?,
        Format::Heic | Format::Avif => heif_header(bytes, limits)?,
    };
    finish(format, header, limits)
}

/// The primary image of a HEIF file: its display size (libheif applies the
/// rotation, mirror and crop properties) and its EXIF, whose orientation is
/// then not applied again.
fn heif_header(bytes: &[u8], limits: &Limits) -> Result<Header, MediaError> {
    let info = crate::heif::info(bytes, limits)?;
    Ok(Header {
        width: info.width,
        height: info.height,
        animated: false,
        exif: info.exif,
        oriented: true,
    })
}

fn finish(format: Format, header: Header, limits: &Limits) -> Result<Probe, MediaError> {
    limits.check(header.width, header.height)?;
    let facts: Option<ExifFacts> = header.exif.and_then(exif::read);
    let orientation = if header.oriented {
        None
    } else {
        facts.as_ref().and_then(|f| f.orientation)
    };
    let (width, height) = if swaps_axes(orientation) {
        (header.height, header.width)
    } else {
        (header.width, header.height)
    };
    Ok(Probe {
        format,
        kind: Kind::Picture,
        width: Some(width),
        height: Some(height),
        orientation,
        animated: header.animated,
        latitude: facts.as_ref().and_then(|f| f.latitude),
        longitude: facts.as_ref().and_then(|f| f.longitude),
        exif: facts.map(|f| f.map),
        disk: None,
    })
}

fn probe_qcow2(head: &[u8], file_len: u64) -> Result<Probe, MediaError> {
    let header = qcow2::parse(head, file_len)?;
    Ok(Probe {
        format: Format::Qcow2,
        kind: Kind::Disk,
        width: None,
        height: None,
        orientation: None,
        animated: false,
        exif: None,
        latitude: None,
        longitude: None,
        disk: Some(DiskInfo {
            version: header.version,
            virtual_size: header.virtual_size,
            cluster_size: 1u64 << header.cluster_bits,
            has_backing_file: header.has_backing_file,
            encrypted: header.encrypted,
        }),
    })
}

struct Header {
    width: u32,
    height: u32,
    animated: bool,
    exif: Option<Vec<u8>>,
    /// The decoder hands out pixels in display orientation already (HEIF).
    oriented: bool,
}

impl Header {
    fn plain(width: u32, height: u32) -> Self {
        Header {
            width,
            height,
            animated: false,
            exif: None,
            oriented: false,
        }
    }
}

fn read_head(r: &mut impl Read, len: usize) -> Result<Vec<u8>, MediaError> {
    let mut head = Vec::with_capacity(len);
    r.take(len as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn truncated(format: &str) -> MediaError {
    MediaError::Corrupt(format!("the {format} file is truncated"))
}

/// Reads exactly `N` bytes; end of file is a truncated `format`.
fn bytes<const N: usize>(r: &mut impl Read, format: &str) -> Result<[u8; N], MediaError> {
    let mut buf = [0u8; N];
    r.read_exact(&mut buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            truncated(format)
        } else {
            MediaError::Io(e)
        }
    })?;
    Ok(buf)
}

/// Reads `len` bytes, or `None` at end of file.
fn read_exact_vec(r: &mut impl Read, len: u64) -> Result<Option<Vec<u8>>, MediaError> {
    let mut buf = Vec::new();
    r.take(len).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 == len).then_some(buf))
}

fn skip(r: &mut impl Seek, n: u64) -> Result<(), MediaError> {
    let n = i64::try_from(n).map_err(|_| MediaError::Corrupt("a length is out of range".into()))?;
    r.seek(SeekFrom::Current(n))?;
    Ok(())
}

/// Walks JPEG markers up to the frame header, keeping the first EXIF APP1.
fn jpeg_header<R: Read + Seek>(r: &mut R) -> Result<Header, MediaError> {
    const F: &str = "JPEG";
    let _soi: [u8; 2] = bytes(r, F)?;
    let mut exif_block = None;
    loop {
        // Stray bytes before a marker are skipped, as libjpeg does (it
        // warns and decodes the picture).
        let [mut ff] = bytes(r, F)?;
        while ff != 0xFF {
            [ff] = bytes(r, F)?;
        }
        let [mut marker] = bytes(r, F)?;
        while marker == 0xFF {
            [marker] = bytes(r, F)?;
        }
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => {
                return Err(MediaError::Corrupt(
                    "JPEG has no frame header before its image data".into(),
                ))
            }
            _ => {}
        }
        let len = u16::from_be_bytes(bytes(r, F)?);
        let body = u64::from(len)
            .checked_sub(2)
            .ok_or_else(|| MediaError::Corrupt("JPEG segment length is invalid".into()))?;
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let [_precision, h1, h0, w1, w0] = bytes(r, F)?;
            let height = u32::from(u16::from_be_bytes([h1, h0]));
            let width = u32::from(u16::from_be_bytes([w1, w0]));
            return Ok(Header {
                width,
                height,
                animated: false,
                exif: exif_block,
                oriented: false,
            });
        }
        if marker == 0xE1 && exif_block.is_none() {
            let body = read_exact_vec(r, body)?.ok_or_else(|| truncated(F))?;
            if body.starts_with(b"Exif\0\0") {
                exif_block = Some(body);
            }
        } else {
            skip(r, body)?;
        }
    }
}

/// Walks PNG chunks: IHDR for the size, eXIf for EXIF, acTL for animation.
fn png_header<R: Read + Seek>(r: &mut R) -> Result<Header, MediaError> {
    const F: &str = "PNG";
    let _sig: [u8; 8] = bytes(r, F)?;
    let len = u32::from_be_bytes(bytes(r, F)?);
    let kind: [u8; 4] = bytes(r, F)?;
    if &kind != b"IHDR" || len != 13 {
        return Err(MediaError::Corrupt("PNG does not start with IHDR".into()));
    }
    let ihdr: [u8; 13] = bytes(r, F)?;
    let width = u32::from_be_bytes([ihdr[0], ihdr[1], ihdr[2], ihdr[3]]);
    let height = u32::from_be_bytes([ihdr[4], ihdr[5], ihdr[6], ihdr[7]]);
    let mut header = Header::plain(width, height);
    skip(r, 4)?;
    // Chunks after IHDR: stop at IEND or at the end of the file.
    while let Ok(len) = bytes::<4>(r, F).map(u32::from_be_bytes) {
        let Ok(kind) = bytes::<4>(r, F) else {
            break;
        };
        match &kind {
            b"IEND" => break,
            b"acTL" => header.animated = true,
            b"eXIf" if u64::from(len) <= MAX_EXIF_BYTES && header.exif.is_none() => {
                match read_exact_vec(r, u64::from(len))? {
                    Some(block) => header.exif = Some(block),
                    None => break,
                }
                skip(r, 4)?;
                continue;
            }
            _ => {}
        }
        skip(r, u64::from(len) + 4)?;
    }
    Ok(header)
}

/// Reads the GIF screen size and counts image descriptors up to two.
fn gif_header<R: Read + Seek>(r: &mut R) -> Result<Header, MediaError> {
    const F: &str = "GIF";
    let _sig: [u8; 6] = bytes(r, F)?;
    let [w0, w1, h0, h1, flags, _bg, _aspect] = bytes(r, F)?;
    let mut header = Header::plain(
        u32::from(u16::from_le_bytes([w0, w1])),
        u32::from(u16::from_le_bytes([h0, h1])),
    );
    if flags & 0x80 != 0 {
        skip(r, 3 << ((flags & 7) + 1))?;
    }
    let mut frames = 0u32;
    // A truncated tail only limits what we learn about animation.
    while let Ok([block]) = bytes::<1>(r, F) {
        match block {
            0x21 => {
                if bytes::<1>(r, F).is_err() || skip_sub_blocks(r).is_err() {
                    break;
                }
            }
            0x2C => {
                frames += 1;
                if frames > 1 {
                    header.animated = true;
                    break;
                }
                let Ok(desc) = bytes::<9>(r, F) else { break };
                let local = desc[8];
                if local & 0x80 != 0 && skip(r, 3 << ((local & 7) + 1)).is_err() {
                    break;
                }
                if bytes::<1>(r, F).is_err() || skip_sub_blocks(r).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(header)
}

fn skip_sub_blocks<R: Read + Seek>(r: &mut R) -> Result<(), MediaError> {
    loop {
        let [size] = bytes::<1>(r, "GIF")?;
        if size == 0 {
            return Ok(());
        }
        skip(r, u64::from(size))?;
    }
}

/// Walks RIFF chunks of a WebP: VP8X, VP8, VP8L for the size, EXIF, ANIM.
fn webp_header<R: Read + Seek>(r: &mut R) -> Result<Header, MediaError> {
    const F: &str = "WebP";
    let _riff: [u8; 12] = bytes(r, F)?;
    let mut size: Option<(u32, u32)> = None;
    let mut header = Header::plain(0, 0);
    while let Ok(kind) = bytes::<4>(r, F) {
        let Ok(len) = bytes::<4>(r, F).map(u32::from_le_bytes) else {
            break;
        };
        let padded = u64::from(len) + u64::from(len & 1);
        match &kind {
            b"VP8X" if len >= 10 => {
                let x: [u8; 10] = bytes(r, F)?;
                header.animated = x[0] & 0x02 != 0;
                let w = u32::from_le_bytes([x[4], x[5], x[6], 0]) + 1;
                let h = u32::from_le_bytes([x[7], x[8], x[9], 0]) + 1;
                size = Some((w, h));
                skip(r, padded - 10)?;
            }
            b"VP8 " if len >= 10 => {
                let x: [u8; 10] = bytes(r, F)?;
                if x[3..6] != [0x9d, 0x01, 0x2a] {
                    return Err(MediaError::Corrupt(
                        "WebP VP8 frame header is invalid".into(),
                    ));
                }
                let w = u32::from(u16::from_le_bytes([x[6], x[7]]) & 0x3fff);
                let h = u32::from(u16::from_le_bytes([x[8], x[9]]) & 0x3fff);
                size.get_or_insert((w, h));
                skip(r, padded - 10)?;
            }
            b"VP8L" if len >= 5 => {
                let x: [u8; 5] = bytes(r, F)?;
                if x[0] != 0x2f {
                    return Err(MediaError::Corrupt(
                        "WebP lossless header is invalid".into(),
                    ));
                }
                let bits = u32::from_le_bytes([x[1], x[2], x[3], x[4]]);
                let w = (bits & 0x3fff) + 1;
                let h = ((bits >> 14) & 0x3fff) + 1;
                size.get_or_insert((w, h));
                skip(r, padded - 5)?;
            }
            b"ANIM" => {
                header.animated = true;
                skip(r, padded)?;
            }
            b"EXIF" if u64::from(len) <= MAX_EXIF_BYTES && header.exif.is_none() => {
                match read_exact_vec(r, u64::from(len))? {
                    Some(block) => header.exif = Some(block),
                    None => break,
                }
                skip(r, u64::from(len & 1))?;
            }
            _ => skip(r, padded)?,
        }
    }
    let (w, h) = size.ok_or_else(|| MediaError::Corrupt("WebP has no image header".into()))?;
    header.width = w;
    header.height = h;
    Ok(header)
}
