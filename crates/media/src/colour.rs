//! Colour management: decoded pixels are converted from the picture's
//! embedded ICC profile to sRGB with lcms2 (Display P3, Adobe RGB, ProPhoto,
//! grey and CMYK profiles, any profile lcms2 reads), so variants, written
//! without a profile, show the colours the picture has. A picture without a
//! profile is taken as sRGB; a profile lcms2 refuses, or one that does not
//! fit the pixels, is ignored with a note in the log (the pixels are then
//! taken as sRGB too).
//!
//! The rendering intent is perceptual, as in most photo tools; for the
//! matrix profiles of cameras and phones it is the same as relative
//! colorimetric.

use lcms2::{ColorSpaceSignature, Flags, Intent, PixelFormat, Profile, Transform};

use crate::heif::MAX_ICC_BYTES;

/// The ICC profile of a JPEG: its APP2 `ICC_PROFILE` segments, joined in
/// their sequence order. `None` when there is none or the chunks do not
/// make a whole profile.
pub(crate) fn jpeg_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, &[u8])> = Vec::new();
    let mut total = 0u8;
    let mut i = 2usize;
    loop {
        let (marker, next) = crate::check::next_jpeg_marker(bytes, i)?;
        i = next;
        match marker {
            0x01 | 0xD0..=0xD7 => continue,
            // Start of scan, end of image: no profile comes after.
            0xDA | 0xD9 => break,
            _ => {}
        }
        let len = bytes
            .get(i..i + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))?;
        let body = bytes.get(i + 2..i + len.max(2))?;
        if marker == 0xE2 {
            if let Some([seq, count, data @ ..]) = body.strip_prefix(TAG) {
                total = *count;
                chunks.push((*seq, data));
            }
        }
        i += len;
    }
    if chunks.is_empty() || usize::from(total) != chunks.len() {
        return None;
    }
    chunks.sort_by_key(|c| c.0);
    let mut icc = Vec::new();
    for (n, (seq, data)) in chunks.iter().enumerate() {
        if usize::from(*seq) != n + 1 {
            return None;
        }
        icc.extend_from_slice(data);
        if icc.len() > MAX_ICC_BYTES {
            return None;
        }
    }
    Some(icc)
}

fn profile(icc: &[u8]) -> Option<Profile> {
    if icc.len() > MAX_ICC_BYTES {
        return None;
    }
    match Profile::new_icc(icc) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::debug!("ICC profile ignored: {e}");
            None
        }
    }
}

/// Whether a profile is a form of sRGB (nothing to convert). Named by its
/// description, as the sRGB profiles cameras and tools embed are.
fn is_srgb(p: &Profile) -> bool {
    p.color_space() == ColorSpaceSignature::RgbData
        && p.info(lcms2::InfoType::Description, lcms2::Locale::none())
            .is_some_and(|d| {
                let d = d.to_ascii_lowercase();
                d.contains("srgb") && !d.contains("linear")
            })
}

/// A conversion from a picture's profile to sRGB, made once per render
/// and applied to each output (after its resize: fewer pixels than the
/// decoded picture).
pub(crate) enum ToSrgb {
    /// RGB or RGBA pixels through an lcms2 transform (alpha is kept).
    Rgb(Transform<u8, u8>),
    /// Grey pixels, given as equal RGB: a table of the 256 levels.
    Grey(Box<[[u8; 3]; 256]>),
}

impl ToSrgb {
    /// The conversion for packed 8-bit RGB (or RGBA when `alpha`) pixels
    /// from `icc`; `None` when there is nothing to convert (an sRGB
    /// profile) or the profile cannot be used (logged).
    pub(crate) fn new(icc: &[u8], alpha: bool) -> Option<ToSrgb> {
        let src = profile(icc)?;
        if is_srgb(&src) {
            return None;
        }
        let srgb = Profile::new_srgb();
        let made = match src.color_space() {
            ColorSpaceSignature::RgbData => {
                let (fmt, flags) = if alpha {
                    (PixelFormat::RGBA_8, Flags::COPY_ALPHA)
                } else {
                    (PixelFormat::RGB_8, Flags::default())
                };
                Transform::new_flags(&src, fmt, &srgb, fmt, Intent::Perceptual, flags)
                    .map(ToSrgb::Rgb)
            }
            ColorSpaceSignature::GrayData => Transform::<u8, u8>::new(
                &src,
                PixelFormat::GRAY_8,
                &srgb,
                PixelFormat::RGB_8,
                Intent::Perceptual,
            )
            .map(|t| {
                let levels: Vec<u8> = (0..=255u8).collect();
                let mut rgb = vec![0u8; 256 * 3];
                t.transform_pixels(&levels, &mut rgb);
                let mut lut = Box::new([[0u8; 3]; 256]);
                for (entry, px) in lut.iter_mut().zip(rgb.chunks_exact(3)) {
                    entry.copy_from_slice(px);
                }
                ToSrgb::Grey(lut)
            }),
            other => {
                tracing::debug!("ICC profile of {other:?} ignored for RGB pixels");
                return None;
            }
        };
        match made {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::debug!("ICC profile ignored: {e}");
                None
            }
        }
    }

    /// Converts packed pixels in place (`alpha` as given to [`ToSrgb::new`]).
    pub(crate) fn apply(&self, data: &mut [u8], alpha: bool) {
        match self {
            ToSrgb::Rgb(t) => t.transform_in_place(data),
            ToSrgb::Grey(lut) => {
                let ch = if alpha { 4 } else { 3 };
                for px in data.chunks_exact_mut(ch) {
                    let rgb = lut[usize::from(px[1])];
                    px[..3].copy_from_slice(&rgb);
                }
            }
        }
    }
}

/// Converts packed 8-bit RGB or RGBA pixels from `icc` to sRGB, in place
/// (alpha is kept). Returns whether a conversion was made.
#[cfg(test)]
pub(crate) fn to_srgb(data: &mut [u8], alpha: bool, icc: &[u8]) -> bool {
    match ToSrgb::new(icc, alpha) {
        Some(t) => {
            t.apply(data, alpha);
            true
        }
        None => false,
    }
}

/// Converts libjpeg-turbo's CMYK (Adobe's inverted samples, as CMYK JPEGs
/// store them) to 8-bit sRGB: through the CMYK profile when there is one,
/// otherwise with the naive formula R = C' * K' / 255.
pub(crate) fn cmyk_to_srgb(cmyk: &[u8], icc: Option<&[u8]>) -> Vec<u8> {
    let pixels = cmyk.len() / 4;
    if let Some(src) = icc.and_then(profile) {
        if src.color_space() == ColorSpaceSignature::CmykData {
            match Transform::<u8, u8>::new(
                &src,
                PixelFormat::CMYK_8_REV,
                &Profile::new_srgb(),
                PixelFormat::RGB_8,
                Intent::Perceptual,
            ) {
                Ok(t) => {
                    let mut rgb = vec![0u8; pixels * 3];
                    t.transform_pixels(&cmyk[..pixels * 4], &mut rgb);
                    return rgb;
                }
                Err(e) => tracing::debug!("CMYK profile ignored: {e}"),
            }
        }
    }
    let mut rgb = Vec::with_capacity(pixels * 3);
    for px in cmyk.chunks_exact(4) {
        let k = u32::from(px[3]);
        for &c in &px[..3] {
            rgb.push(((u32::from(c) * k + 127) / 255) as u8);
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_jpeg_icc_chunks_in_order() {
        let seg = |seq: u8, data: &[u8]| {
            let mut body = b"ICC_PROFILE\0".to_vec();
            body.extend_from_slice(&[seq, 2]);
            body.extend_from_slice(data);
            let mut s = vec![0xFF, 0xE2];
            s.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(&body);
            s
        };
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(seg(2, b"world"));
        jpeg.extend(seg(1, b"hello "));
        jpeg.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_icc(&jpeg).as_deref(), Some(&b"hello world"[..]));
        // A missing chunk: no profile.
        let mut half = vec![0xFF, 0xD8];
        half.extend(seg(1, b"hello "));
        half.extend([0xFF, 0xDA, 0, 2]);
        assert_eq!(jpeg_icc(&half), None);
        // Cut inside a segment.
        assert_eq!(jpeg_icc(&jpeg[..10]), None);
    }

    #[test]
    fn srgb_profiles_are_left_alone_and_garbage_is_ignored() {
        let srgb = Profile::new_srgb().icc().unwrap();
        let mut px = vec![10u8, 200, 30];
        assert!(!to_srgb(&mut px, false, &srgb));
        assert_eq!(px, [10, 200, 30]);
        assert!(!to_srgb(&mut px, false, b"not a profile"));
        assert_eq!(px, [10, 200, 30]);
    }
}
