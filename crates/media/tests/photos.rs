//! Photos as phones and cameras make them: HEIC and AVIF in (made here with
//! libheif's encoders), wide-gamut and grey ICC profiles converted to sRGB
//! (checked by pixel values against a conversion computed here from the
//! profiles' primaries and curves), lossy WebP and AVIF out.

use std::path::{Path, PathBuf};

use image::ImageEncoder;
use lcms2::{CIExyY, CIExyYTRIPLE, Profile, ToneCurve};
use tintype_media::{
    encode_still, probe_bytes, probe_file, render_file, sniff, Format, Limits, OutputFormat, Probe,
    Rendered, StillOptions, VariantSpec,
};

// ---------- colour reference ----------

type Mat = [[f64; 3]; 3];

/// A reference conversion of one 8-bit colour to sRGB.
type Reference = dyn Fn([u8; 3]) -> [u8; 3];

fn mul(a: &Mat, b: &Mat) -> Mat {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

fn apply(m: &Mat, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn invert(m: &Mat) -> Mat {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    [
        [
            c(1, 1, 2, 2) / det,
            -c(0, 1, 2, 2) / det,
            c(0, 1, 1, 2) / det,
        ],
        [
            -c(1, 0, 2, 2) / det,
            c(0, 0, 2, 2) / det,
            -c(0, 0, 1, 2) / det,
        ],
        [
            c(1, 0, 2, 1) / det,
            -c(0, 0, 2, 1) / det,
            c(0, 0, 1, 1) / det,
        ],
    ]
}

/// RGB to XYZ of a colour space given by its primaries and white (xy).
fn rgb_to_xyz(prim: [(f64, f64); 3], white: (f64, f64)) -> Mat {
    let xyz = |(x, y): (f64, f64)| [x / y, 1.0, (1.0 - x - y) / y];
    let cols = prim.map(xyz);
    let p: Mat = [0, 1, 2].map(|i| [cols[0][i], cols[1][i], cols[2][i]]);
    let s = apply(&invert(&p), xyz(white));
    [0, 1, 2].map(|i| [p[i][0] * s[0], p[i][1] * s[1], p[i][2] * s[2]])
}

const SRGB_PRIM: [(f64, f64); 3] = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)];
const P3_PRIM: [(f64, f64); 3] = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)];
const ADOBE_PRIM: [(f64, f64); 3] = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)];
const BT2020_PRIM: [(f64, f64); 3] = [(0.708, 0.292), (0.170, 0.797), (0.131, 0.046)];
const D65: (f64, f64) = (0.3127, 0.3290);
const ADOBE_GAMMA: f64 = 563.0 / 256.0;

fn srgb_decode(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn srgb_encode(v: f64) -> f64 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// The sRGB value of an 8-bit colour of a D65 RGB space with `decode` as its curve.
fn reference(rgb: [u8; 3], prim: [(f64, f64); 3], decode: impl Fn(f64) -> f64) -> [u8; 3] {
    let to_srgb = mul(&invert(&rgb_to_xyz(SRGB_PRIM, D65)), &rgb_to_xyz(prim, D65));
    let linear = rgb.map(|c| decode(f64::from(c) / 255.0));
    apply(&to_srgb, linear).map(|v| (srgb_encode(v) * 255.0).round() as u8)
}

fn xyy((x, y): (f64, f64)) -> CIExyY {
    CIExyY { x, y, Y: 1.0 }
}

fn rgb_profile(prim: [(f64, f64); 3], curve: &ToneCurve) -> Vec<u8> {
    let primaries = CIExyYTRIPLE {
        Red: xyy(prim[0]),
        Green: xyy(prim[1]),
        Blue: xyy(prim[2]),
    };
    Profile::new_rgb(&xyy(D65), &primaries, &[curve, curve, curve])
        .unwrap()
        .icc()
        .unwrap()
}

fn srgb_curve() -> ToneCurve {
    ToneCurve::new_parametric(4, &[2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045]).unwrap()
}

fn display_p3() -> Vec<u8> {
    rgb_profile(P3_PRIM, &srgb_curve())
}

fn adobe_rgb() -> Vec<u8> {
    rgb_profile(ADOBE_PRIM, &ToneCurve::new(ADOBE_GAMMA))
}

fn grey_profile(gamma: f64) -> Vec<u8> {
    Profile::new_gray(&xyy(D65), &ToneCurve::new(gamma))
        .unwrap()
        .icc()
        .unwrap()
}

fn close(got: &[u8], want: &[u8], tolerance: u8, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.abs_diff(*w) <= tolerance,
            "{what}: got {got:?}, want {want:?} (within {tolerance})"
        );
    }
}

// ---------- files ----------

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Four solid quadrants, so a resized picture keeps its colours in the middle of each.
const QUADS: [[u8; 3]; 4] = [
    [200, 100, 50],
    [40, 180, 90],
    [70, 60, 220],
    [128, 128, 128],
];

fn quadrants(w: u32, h: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let q = usize::from(x >= w / 2) + 2 * usize::from(y >= h / 2);
            data.extend_from_slice(&QUADS[q]);
        }
    }
    data
}

/// The colour at the centre of each quadrant of an RGB(A) picture.
fn quadrant_colours(img: &image::DynamicImage) -> [[u8; 3]; 4] {
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ]
    .map(|(x, y)| rgb.get_pixel(x, y).0)
}

fn png_with_icc(img: image::DynamicImage, icc: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    enc.set_icc_profile(icc.to_vec()).unwrap();
    enc.write_image(
        img.as_bytes(),
        img.width(),
        img.height(),
        img.color().into(),
    )
    .unwrap();
    out
}

/// A JPEG (quality 98, no subsampling) with `icc` as APP2 chunks of at most 60000 bytes.
fn jpeg_with_icc(pixels: &[u8], w: u32, h: u32, icc: Option<&[u8]>) -> Vec<u8> {
    let mut comp = turbojpeg::Compressor::new().unwrap();
    comp.set_quality(98);
    comp.set_subsamp(turbojpeg::Subsamp::None);
    let jpeg = comp
        .compress_to_vec(turbojpeg::Image {
            pixels,
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap();
    match icc {
        Some(icc) => with_icc_segments(&jpeg, icc),
        None => jpeg,
    }
}

/// A JPEG with `icc` as APP2 chunks of at most 60000 bytes right after SOI.
fn with_icc_segments(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = icc.chunks(60_000).collect();
    let mut out = jpeg[..2].to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut body = b"ICC_PROFILE\0".to_vec();
        body.push(i as u8 + 1);
        body.push(chunks.len() as u8);
        body.extend_from_slice(chunk);
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn render_one(path: &Path, spec: VariantSpec) -> (Probe, Rendered) {
    let limits = Limits::default();
    let probe = probe_file(path, &limits).unwrap();
    let mut out = render_file(path, &probe, &[spec], &limits).unwrap();
    (probe, out.remove(0))
}

fn png_spec(w: u32, h: u32) -> VariantSpec {
    VariantSpec {
        format: OutputFormat::Png,
        ..VariantSpec::fit(w, h)
    }
}

fn decode(r: &Rendered) -> image::DynamicImage {
    image::load_from_memory(&r.bytes).unwrap()
}

/// A little-endian TIFF block: Make, Model, Orientation 6 and a GPS position.
fn camera_exif() -> Vec<u8> {
    // Hand-laid: IFD0 at 8 with 4 entries, the GPS IFD after it.
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    let ifd0_len = 2 + 4 * 12 + 4;
    let strings_at = 8 + ifd0_len;
    let make = b"Phone\0\0\0";
    let model = b"Pro 15\0\0";
    let gps_at = strings_at + make.len() + model.len();
    t.extend_from_slice(&4u16.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&typ.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    entry(&mut t, 0x010F, 2, 6, strings_at as u32);
    entry(&mut t, 0x0110, 2, 7, (strings_at + make.len()) as u32);
    entry(&mut t, 0x0112, 3, 1, 6);
    entry(&mut t, 0x8825, 4, 1, gps_at as u32);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(make);
    t.extend_from_slice(model);
    // GPS IFD: latitude 48 deg 30 min N, longitude 2 deg 15 min E.
    let rationals_at = gps_at + 2 + 4 * 12 + 4;
    t.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0"));
    entry(&mut t, 0x0002, 5, 3, rationals_at as u32);
    entry(&mut t, 0x0003, 2, 2, u32::from_le_bytes(*b"E\0\0\0"));
    entry(&mut t, 0x0004, 5, 3, (rationals_at + 24) as u32);
    t.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(48, 1), (30, 1), (0, 1), (2, 1), (15, 1), (0, 1)] {
        t.extend_from_slice(&(n as u32).to_le_bytes());
        t.extend_from_slice(&(d as u32).to_le_bytes());
    }
    t
}

// ---------- CMYK ----------

/// A CMYK printing profile from a Debian package (CI installs it, see
/// scripts/apt-packages.txt): a LUT profile, not a formula.
const CMYK_PROFILE: &str = "/usr/share/color/icc/ghostscript/default_cmyk.icc";

fn cmyk_profile() -> Vec<u8> {
    std::fs::read(CMYK_PROFILE).unwrap_or_else(|e| {
        panic!(
            "{CMYK_PROFILE} cannot be read ({e}): install the Debian package libgs-common \
             (listed in scripts/apt-packages.txt)"
        )
    })
}

/// Ink amounts (C, M, Y, K; 255 is full ink) of four quadrants.
const INKS: [[u8; 4]; 4] = [
    [0, 0, 0, 0],
    [255, 0, 0, 0],
    [0, 200, 255, 0],
    [40, 90, 30, 100],
];

#[test]
fn cmyk_jpeg_is_converted_through_its_profile() {
    let icc = cmyk_profile();
    // The reference: lcms2 directly from the profile, on the ink amounts
    // (not the inverted samples the file stores), perceptual intent.
    let reference = lcms2::Transform::<[u8; 4], [u8; 3]>::new(
        &Profile::new_icc(&icc).unwrap(),
        lcms2::PixelFormat::CMYK_8,
        &Profile::new_srgb(),
        lcms2::PixelFormat::RGB_8,
        lcms2::Intent::Perceptual,
    )
    .unwrap();
    let mut want = [[0u8; 3]; 4];
    reference.transform_pixels(&INKS, &mut want);
    // The profile gives other colours than the naive formula.
    let naive = INKS.map(|[c, m, y, k]| {
        [c, m, y].map(|v| ((255 - u32::from(v)) * (255 - u32::from(k)) / 255) as u8)
    });
    assert!(
        want.iter()
            .zip(&naive)
            .any(|(a, b)| a.iter().zip(b).any(|(x, y)| x.abs_diff(*y) > 12)),
        "the profile must differ from the naive conversion: {want:?} vs {naive:?}"
    );

    // An Adobe-style CMYK JPEG as Photoshop writes it: inverted samples,
    // YCCK with the APP14 Adobe marker (transform 2), the profile in APP2
    // chunks (this one is larger than one segment).
    let (w, h) = (64u32, 64u32);
    let mut samples = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let q = usize::from(x >= w / 2) + 2 * usize::from(y >= h / 2);
            samples.extend(INKS[q].map(|v| 255 - v));
        }
    }
    let mut comp = turbojpeg::Compressor::new().unwrap();
    comp.set_quality(100);
    comp.set_subsamp(turbojpeg::Subsamp::None);
    let jpeg = comp
        .compress_to_vec(turbojpeg::Image {
            pixels: samples.as_slice(),
            width: w as usize,
            pitch: w as usize * 4,
            height: h as usize,
            format: turbojpeg::PixelFormat::CMYK,
        })
        .unwrap();
    let adobe = jpeg
        .windows(11)
        .position(|s| s[..2] == [0xFF, 0xEE] && &s[4..9] == b"Adobe")
        .expect("libjpeg-turbo writes the Adobe marker for CMYK");
    assert_eq!(jpeg.get(adobe + 15), Some(&2), "YCCK (Adobe transform 2)");
    assert!(icc.len() > 60_000);
    let dir = Dir::new();
    let path = dir.file("cmyk.jpg", &with_icc_segments(&jpeg, &icc));
    let (probe, out) = render_one(&path, png_spec(32, 32));
    assert_eq!(probe.format, Format::Jpeg);
    for (q, (g, want)) in quadrant_colours(&decode(&out))
        .iter()
        .zip(&want)
        .enumerate()
    {
        close(g, want, 3, &format!("CMYK quadrant {q} {:?}", INKS[q]));
    }
    // A JPEG variant (re-encoded) comes out the same.
    let jpeg_out = render_one(
        &path,
        VariantSpec {
            quality: 100,
            ..VariantSpec::fit(32, 32)
        },
    )
    .1;
    for (g, want) in quadrant_colours(&decode(&jpeg_out)).iter().zip(&want) {
        close(g, want, 4, "CMYK to a JPEG variant");
    }
}

// ---------- HEIC and AVIF in ----------

#[test]
fn heic_and_avif_stills_are_probed_with_their_exif_and_rendered() {
    let dir = Dir::new();
    let (w, h) = (96, 64);
    let exif = camera_exif();
    for format in [Format::Heic, Format::Avif] {
        let bytes = encode_still(
            format,
            &quadrants(w, h),
            w,
            h,
            false,
            &StillOptions {
                quality: 90,
                exif: Some(&exif),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(sniff(&bytes), Some(format), "{format}");
        let path = dir.file(&format!("photo.{format}"), &bytes);
        let (probe, jpeg) = render_one(&path, VariantSpec::fit(48, 48));
        assert_eq!(probe.format, format);
        // The EXIF orientation of a HEIF file is not applied: libheif's
        // rotation properties are (none here).
        assert_eq!((probe.width, probe.height), (Some(w), Some(h)), "{format}");
        assert_eq!(probe.orientation, None);
        let exif_map = probe.exif.as_ref().expect("EXIF read");
        let text = serde_json::to_string(exif_map).unwrap();
        assert!(text.contains("Phone") && text.contains("Pro 15"), "{text}");
        let (lat, lon) = (probe.latitude.unwrap(), probe.longitude.unwrap());
        assert!(
            (lat - 48.5).abs() < 1e-6 && (lon - 2.25).abs() < 1e-6,
            "{lat} {lon}"
        );
        // Every variant is a web format.
        assert_eq!(jpeg.content_type, "image/jpeg");
        assert_eq!((jpeg.width, jpeg.height), (48, 32));
        let got = quadrant_colours(&decode(&jpeg));
        for (g, want) in got.iter().zip(QUADS) {
            close(g, &want, 12, &format!("{format} quadrant"));
        }
    }
}

#[test]
fn deep_heic_and_avif_are_reduced_to_eight_bits() {
    let dir = Dir::new();
    let (w, h) = (32, 32);
    // 10-bit HEIC as phones write it; 12-bit AVIF (libheif 1.15 cannot
    // drive libaom at 10 bits, see encode_still).
    for (format, bits) in [(Format::Heic, 10u8), (Format::Avif, 12)] {
        let max = f64::from((1u32 << bits) - 1);
        let sample = [0.78, 0.39, 0.1].map(|f: f64| (f * max).round() as u16);
        let mut pixels = Vec::new();
        for _ in 0..w * h {
            for s in sample {
                pixels.extend_from_slice(&s.to_ne_bytes());
            }
        }
        let want = sample.map(|s| (f64::from(s) * 255.0 / max).round() as u8);
        let bytes = encode_still(
            format,
            &pixels,
            w,
            h,
            false,
            &StillOptions {
                quality: 95,
                bits,
                ..Default::default()
            },
        )
        .unwrap();
        let path = dir.file(&format!("deep.{format}"), &bytes);
        let (_, png) = render_one(&path, png_spec(16, 16));
        let got = decode(&png).to_rgb8().get_pixel(8, 8).0;
        close(&got, &want, 6, &format!("{bits}-bit {format}"));
    }
}

#[test]
fn heif_with_alpha_keeps_it() {
    let dir = Dir::new();
    let (w, h) = (16, 16);
    let mut rgba = Vec::new();
    for i in 0..w * h {
        rgba.extend_from_slice(&[30, 160, 90, if i % w < w / 2 { 255 } else { 0 }]);
    }
    let bytes = encode_still(
        Format::Avif,
        &rgba,
        w,
        h,
        true,
        &StillOptions {
            quality: 95,
            ..Default::default()
        },
    )
    .unwrap();
    let path = dir.file("alpha.avif", &bytes);
    let (_, png) = render_one(&path, png_spec(16, 16));
    let img = decode(&png).to_rgba8();
    assert!(img.get_pixel(2, 8).0[3] > 240, "{:?}", img.get_pixel(2, 8));
    assert!(img.get_pixel(13, 8).0[3] < 15, "{:?}", img.get_pixel(13, 8));
}

#[test]
fn truncated_and_garbled_heif_is_refused() {
    let (w, h) = (64, 64);
    let bytes = encode_still(
        Format::Heic,
        &quadrants(w, h),
        w,
        h,
        false,
        &Default::default(),
    )
    .unwrap();
    let limits = Limits::default();
    assert!(probe_bytes(&bytes, &limits).is_ok());
    // Cut inside the coded image: the header is there, the pixels are not.
    let cut = &bytes[..bytes.len() - bytes.len() / 3];
    assert!(probe_bytes(cut, &limits).is_err());
    // Over the pixel limit: refused before decoding.
    let small = Limits {
        max_pixels: 1000,
        ..Limits::default()
    };
    let err = probe_bytes(&bytes, &small).unwrap_err();
    assert!(err.to_string().contains("too large"), "{err}");
}

// ---------- colour ----------

#[test]
fn display_p3_and_adobe_rgb_are_converted_to_srgb() {
    let dir = Dir::new();
    let (w, h) = (64, 64);
    let pixels = quadrants(w, h);
    let img =
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels.clone()).unwrap());
    let cases: [(&str, Vec<u8>, Box<Reference>); 2] = [
        (
            "Display P3",
            display_p3(),
            Box::new(|c| reference(c, P3_PRIM, srgb_decode)),
        ),
        (
            "Adobe RGB",
            adobe_rgb(),
            Box::new(|c| reference(c, ADOBE_PRIM, |v| v.powf(ADOBE_GAMMA))),
        ),
    ];
    for (name, icc, want) in &cases {
        let want = QUADS.map(want);
        // The conversion changes these colours well beyond the tolerance.
        assert!(want
            .iter()
            .zip(QUADS)
            .any(|(a, b)| a.iter().zip(b).any(|(x, y)| x.abs_diff(y) > 8)));
        // PNG: lossless, so only lcms2's rounding is allowed.
        let png = dir.file("p.png", &png_with_icc(img.clone(), icc));
        let (_, out) = render_one(&png, png_spec(32, 32));
        for (g, want) in quadrant_colours(&decode(&out)).iter().zip(&want) {
            close(g, want, 2, &format!("{name} PNG"));
        }
        // JPEG (APP2 chunks), lossy at quality 98.
        let jpeg = dir.file("p.jpg", &jpeg_with_icc(&pixels, w, h, Some(icc)));
        let (_, out) = render_one(&jpeg, png_spec(32, 32));
        for (g, want) in quadrant_colours(&decode(&out)).iter().zip(&want) {
            close(g, want, 4, &format!("{name} JPEG"));
        }
        // HEIC from a phone: the profile in the colr box.
        let heic = encode_still(
            Format::Heic,
            &pixels,
            w,
            h,
            false,
            &StillOptions {
                quality: 95,
                icc: Some(icc),
                ..Default::default()
            },
        )
        .unwrap();
        let heic = dir.file("p.heic", &heic);
        let (_, out) = render_one(&heic, png_spec(32, 32));
        for (g, want) in quadrant_colours(&decode(&out)).iter().zip(&want) {
            close(g, want, 10, &format!("{name} HEIC"));
        }
    }
    // Without a profile the pixels are sRGB and stay as they are.
    let plain = dir.file("plain.png", &{
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    });
    let (_, out) = render_one(&plain, png_spec(32, 32));
    for (g, want) in quadrant_colours(&decode(&out)).iter().zip(&QUADS) {
        close(g, want, 0, "untagged PNG");
    }
}

/// The inverse of the BT.709 camera curve.
fn bt709_decode(v: f64) -> f64 {
    if v < 0.081 {
        v / 4.5
    } else {
        ((v + 0.099) / 1.099).powf(1.0 / 0.45)
    }
}

#[test]
fn avif_and_heic_with_nclx_colour_are_converted_to_srgb() {
    let dir = Dir::new();
    let (w, h) = (64, 64);
    let pixels = quadrants(w, h);
    // (primaries, transfer) as H.273 code points, and the reference.
    let cases: [(&str, (u16, u16), Box<Reference>); 3] = [
        (
            "Display P3 (12, 13)",
            (12, 13),
            Box::new(|c| reference(c, P3_PRIM, srgb_decode)),
        ),
        (
            "BT.2020 with the BT.709 curve (9, 1)",
            (9, 1),
            Box::new(|c| reference(c, BT2020_PRIM, bt709_decode)),
        ),
        (
            "sRGB primaries, linear light (1, 8)",
            (1, 8),
            Box::new(|c| reference(c, SRGB_PRIM, |v| v)),
        ),
    ];
    for (name, (primaries, transfer), want) in &cases {
        let want = QUADS.map(want);
        assert!(
            want.iter()
                .zip(QUADS)
                .any(|(a, b)| a.iter().zip(b).any(|(x, y)| x.abs_diff(y) > 10)),
            "{name}: the conversion must change the colours: {want:?}"
        );
        for format in [Format::Avif, Format::Heic] {
            let bytes = encode_still(
                format,
                &pixels,
                w,
                h,
                false,
                &StillOptions {
                    quality: 95,
                    nclx: Some((*primaries, *transfer, 6)),
                    ..Default::default()
                },
            )
            .unwrap();
            let path = dir.file("nclx.img", &bytes);
            let (_, out) = render_one(&path, png_spec(32, 32));
            for (g, want) in quadrant_colours(&decode(&out)).iter().zip(&want) {
                close(g, want, 10, &format!("{name} {format:?}"));
            }
        }
    }
    // nclx sRGB (what the AVIF output writes) stays as it is.
    let bytes = encode_still(
        Format::Avif,
        &pixels,
        w,
        h,
        false,
        &StillOptions {
            quality: 95,
            nclx: Some((1, 13, 6)),
            ..Default::default()
        },
    )
    .unwrap();
    let (_, out) = render_one(&dir.file("srgb.avif", &bytes), png_spec(32, 32));
    for (g, want) in quadrant_colours(&decode(&out)).iter().zip(&QUADS) {
        close(g, want, 10, "nclx sRGB");
    }
}

#[test]
fn sixteen_bit_png_with_a_profile_is_converted() {
    let dir = Dir::new();
    let (w, h) = (32u32, 32u32);
    let c8 = [200u8, 100, 50];
    // Samples that are exact 8-bit values (x * 257).
    let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(w, h, |_, _| {
        image::Rgb(c8.map(|c| u16::from(c) * 257))
    });
    let png = png_with_icc(image::DynamicImage::ImageRgb16(img), &display_p3());
    let path = dir.file("deep.png", &png);
    let (_, out) = render_one(&path, png_spec(16, 16));
    let got = decode(&out).to_rgb8().get_pixel(8, 8).0;
    close(
        &got,
        &reference(c8, P3_PRIM, srgb_decode),
        2,
        "16-bit P3 PNG",
    );
}

#[test]
fn grey_with_alpha_and_a_grey_profile_is_converted_and_keeps_its_alpha() {
    let dir = Dir::new();
    let (w, h) = (16u32, 16u32);
    let img =
        image::ImageBuffer::<image::LumaA<u8>, _>::from_fn(w, h, |_, _| image::LumaA([100, 128]));
    let gamma = 1.8;
    let png = png_with_icc(image::DynamicImage::ImageLumaA8(img), &grey_profile(gamma));
    let path = dir.file("grey.png", &png);
    let (_, out) = render_one(&path, png_spec(16, 16));
    let px = decode(&out).to_rgba8().get_pixel(8, 8).0;
    let want = (srgb_encode((100.0f64 / 255.0).powf(gamma)) * 255.0).round() as u8;
    close(&px[..3], &[want; 3], 2, "grey gamma 1.8");
    assert_eq!(px[3], 128, "alpha kept");
    // The conversion is real: gamma 1.8 grey 100 is not sRGB grey 100.
    assert!(want.abs_diff(100) > 10, "{want}");
}

// ---------- lossy WebP and AVIF out ----------

#[test]
fn lossy_webp_and_avif_variants() {
    let dir = Dir::new();
    let (w, h) = (256, 192);
    // A photograph-like gradient with noise, where lossless is large.
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    let mut seed = 7u32;
    for y in 0..h {
        for x in 0..w {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = ((seed >> 16) % 24) as u8;
            pixels.extend_from_slice(&[
                (x as u8).saturating_add(n),
                (y as u8).saturating_add(n),
                120u8.saturating_add(n),
            ]);
        }
    }
    let path = dir.file("photo.jpg", &jpeg_with_icc(&pixels, w, h, None));
    let limits = Limits::default();
    let probe = probe_file(&path, &limits).unwrap();
    let spec = |format, quality| VariantSpec {
        format,
        quality,
        ..VariantSpec::fit(128, 128)
    };
    let out = render_file(
        &path,
        &probe,
        &[
            spec(OutputFormat::Webp, 80),
            spec(OutputFormat::Webp, 100),
            spec(OutputFormat::Avif, 60),
            spec(OutputFormat::Png, 85),
            VariantSpec {
                avif_speed: 9,
                ..spec(OutputFormat::Avif, 60)
            },
        ],
        &limits,
    )
    .unwrap();
    let (lossy, lossless, avif, png) = (&out[0], &out[1], &out[2], &out[3]);
    // The preset's AVIF speed reaches libaom: the same picture and quality
    // at another speed is another encoding.
    let fastest = &out[4];
    assert_eq!(fastest.spec.avif_speed, 9);
    assert_eq!(sniff(&fastest.bytes), Some(Format::Avif));
    assert_ne!(fastest.bytes, avif.bytes, "speed 9 encoded as speed 6 did");
    assert_eq!(lossy.content_type, "image/webp");
    assert_eq!(avif.content_type, "image/avif");
    assert_eq!(sniff(&avif.bytes), Some(Format::Avif));
    for r in [lossy, lossless, avif] {
        assert_eq!((r.width, r.height), (128, 96));
    }
    // Lossy is several times smaller than lossless for a photograph.
    assert!(
        lossy.bytes.len() * 2 < lossless.bytes.len(),
        "lossy {} vs lossless {}",
        lossy.bytes.len(),
        lossless.bytes.len()
    );
    // Both decode to the picture.
    let reference = decode(png).to_rgb8();
    let webp = decode(lossy).to_rgb8();
    let avif_path = dir.file("v.avif", &avif.bytes);
    let (_, avif_png) = render_one(&avif_path, png_spec(128, 128));
    let avif_px = decode(&avif_png).to_rgb8();
    for (name, img) in [("webp", &webp), ("avif", &avif_px)] {
        let mut diff = 0u64;
        for (a, b) in img.as_raw().iter().zip(reference.as_raw()) {
            diff += u64::from(a.abs_diff(*b));
        }
        let mean = diff as f64 / reference.as_raw().len() as f64;
        assert!(mean < 8.0, "{name}: mean difference {mean}");
    }
}
