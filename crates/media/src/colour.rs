//! Colour management: decoded pixels are converted from the picture's
//! embedded ICC profile to sRGB with lcms2 (Display P3, Adobe RGB, ProPhoto,
//! grey and CMYK profiles, any profile lcms2 reads), so variants, written
//! without a profile, show the colours the picture has. A picture without a
//! profile is taken as sRGB; a profile lcms2 refuses, or one that does not
//! fit the pixels, is ignored with a note in the log (the pixels are then
//! taken as sRGB too).
//!
//! HEIF and AVIF files may state their colour as `nclx` code points
//! instead of an ICC profile (ITU-T H.273: colour primaries, transfer
//! characteristics, matrix coefficients); [`nclx_profile`] builds the
//! matching lcms2 RGB profile for the common cases, converted like an
//! embedded one.
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

/// The primaries (red, green, blue xy, white D65) of an H.273 colour
/// primaries code point; `None` for sRGB and BT.709 (1), unspecified (2)
/// and those not handled (taken as sRGB).
fn nclx_primaries(code: u16) -> Option<[(f64, f64); 3]> {
    match code {
        // ITU-R BT.2020 and BT.2100.
        9 => Some([(0.708, 0.292), (0.170, 0.797), (0.131, 0.046)]),
        // SMPTE EG 432-1: Display P3 (D65), as phones write it.
        12 => Some([(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)]),
        _ => None,
    }
}

/// The tone curve (encoded value to linear light) of an H.273 transfer
/// characteristics code point; `None` for sRGB (13), unspecified (2) and
/// those not handled, taken as sRGB: PQ (16) and HLG (18) are HDR and
/// would need tone mapping, which is not done.
fn nclx_curve(code: u16) -> Option<lcms2::ToneCurve> {
    match code {
        // BT.709 (1), BT.601 (6), BT.2020 10 and 12 bits (14, 15): the
        // inverse of their camera curve, V = 1.099 L^0.45 - 0.099 above
        // 0.018 and 4.5 L below.
        1 | 6 | 14 | 15 => lcms2::ToneCurve::new_parametric(
            4,
            &[1.0 / 0.45, 1.0 / 1.099, 0.099 / 1.099, 1.0 / 4.5, 0.081],
        )
        .ok(),
        // BT.470 System M: gamma 2.2.
        4 => Some(lcms2::ToneCurve::new(2.2)),
        // BT.470 System B/G: gamma 2.8.
        5 => Some(lcms2::ToneCurve::new(2.8)),
        // Linear light.
        8 => Some(lcms2::ToneCurve::new(1.0)),
        _ => None,
    }
}

/// An ICC profile for pixels described by nclx `primaries` and `transfer`
/// code points (H.273; the matrix coefficients are applied by the decoder
/// already), to convert like an embedded profile. `None` when they are
/// sRGB, unspecified or not handled (the pixels are taken as sRGB).
pub(crate) fn nclx_profile(primaries: u16, transfer: u16) -> Option<Vec<u8>> {
    let prim = nclx_primaries(primaries);
    let curve = nclx_curve(transfer);
    if prim.is_none() && curve.is_none() {
        return None;
    }
    const SRGB: [(f64, f64); 3] = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)];
    let prim = prim.unwrap_or(SRGB);
    let curve = match curve {
        Some(c) => c,
        None => lcms2::ToneCurve::new_parametric(
            4,
            &[2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045],
        )
        .ok()?,
    };
    let xyy = |(x, y): (f64, f64)| lcms2::CIExyY { x, y, Y: 1.0 };
    let triple = lcms2::CIExyYTRIPLE {
        Red: xyy(prim[0]),
        Green: xyy(prim[1]),
        Blue: xyy(prim[2]),
    };
    let d65 = xyy((0.3127, 0.3290));
    let made = Profile::new_rgb(&d65, &triple, &[&curve, &curve, &curve]).and_then(|p| p.icc());
    match made {
        Ok(icc) => Some(icc),
        Err(e) => {
            tracing::debug!("nclx ({primaries}, {transfer}) ignored: {e}");
            None
        }
    }
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
    fn nclx_srgb_and_unknown_codes_need_no_profile() {
        assert_eq!(nclx_profile(1, 13), None);
        assert_eq!(nclx_profile(2, 2), None);
        assert!(nclx_profile(1, 4).is_some(), "gamma 2.2");
        // HDR curves are left as sRGB.
        assert_eq!(nclx_profile(1, 16), None);
        let p3 = nclx_profile(12, 13).expect("P3");
        let mut px = vec![255u8, 0, 0];
        assert!(to_srgb(&mut px, false, &p3));
        // P3 red is outside sRGB: clipped to full red.
        assert_eq!(px, [255, 0, 0]);
        let mut px = vec![0u8, 255, 0];
        assert!(to_srgb(&mut px, false, &p3));
        assert!(px[0] == 0 && px[1] == 255, "{px:?}");
        // Linear light of sRGB primaries: mid grey gets lighter.
        let linear = nclx_profile(1, 8).expect("linear");
        let mut px = vec![128u8, 128, 128];
        assert!(to_srgb(&mut px, false, &linear));
        assert!(px.iter().all(|&v| (186..=189).contains(&v)), "{px:?}");
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
