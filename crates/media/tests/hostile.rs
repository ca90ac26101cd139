//! Hostile and damaged input: refused with a clear error, never the end of
//! the process; corrupt pictures are refused at probe, with the reason.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Instant;

use tintype_media::{
    check_file, check_memory, probe_bytes, probe_file, probe_headers, render_file, Format, Kind,
    Limits, MediaError, Probe, VariantSpec, MAX_SVG_DEPTH,
};

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

fn nested_svg(depth: usize) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">{}<rect width="10" height="10" fill="red"/>{}</svg>"#,
        "<g>".repeat(depth),
        "</g>".repeat(depth)
    )
}

fn svg_probe(w: u32, h: u32) -> Probe {
    Probe {
        format: Format::Svg,
        kind: Kind::Picture,
        width: Some(w),
        height: Some(h),
        orientation: None,
        animated: false,
        exif: None,
        latitude: None,
        longitude: None,
        disk: None,
    }
}

fn assert_too_complex(err: &MediaError, what: &str) {
    assert!(matches!(err, MediaError::TooComplex(_)), "{err}");
    assert!(err.to_string().contains(what), "{err}");
}

#[test]
fn deeply_nested_svg_is_refused_by_probe_and_render() {
    let dir = Dir::new();
    let doc = nested_svg(4000);
    assert!(doc.len() < 30 * 1024);
    let path = dir.file("deep.svg", doc.as_bytes());
    let err = probe_file(&path, &Limits::default()).unwrap_err();
    assert_too_complex(&err, "nested deeper than 256 levels");
    let err = probe_bytes(doc.as_bytes(), &Limits::default()).unwrap_err();
    assert_too_complex(&err, "nested deeper than 256 levels");
    // Render with a probe made elsewhere (an image stored before the limit).
    let err = render_file(
        &path,
        &svg_probe(20, 20),
        &[VariantSpec::fit(10, 10)],
        &Limits::default(),
    )
    .unwrap_err();
    assert_too_complex(&err, "nested deeper than 256 levels");
}

#[test]
fn svg_nested_just_within_the_limit_renders_on_a_small_stack() {
    // The limit is only worth something if usvg and resvg survive it on the
    // 2 MiB stacks of the server's blocking threads.
    let depth = MAX_SVG_DEPTH as usize - 2;
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let dir = Dir::new();
            let path = dir.file("ok.svg", nested_svg(depth).as_bytes());
            let p = probe_file(&path, &Limits::default()).unwrap();
            let out =
                render_file(&path, &p, &[VariantSpec::fit(20, 20)], &Limits::default()).unwrap();
            (out[0].width, out[0].height)
        })
        .unwrap();
    assert_eq!(handle.join().unwrap(), (20, 20));
    let err = probe_bytes(
        nested_svg(MAX_SVG_DEPTH as usize + 1).as_bytes(),
        &Limits::default(),
    )
    .unwrap_err();
    assert_too_complex(&err, "nested deeper");
}

#[test]
fn svg_reference_chains_and_use_bombs_are_refused() {
    // A flat document whose <use> chain is 1000 deep.
    let mut chain = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><defs><rect id="u0" width="1" height="1"/>"#,
    );
    for i in 1..1000 {
        chain.push_str(&format!(r##"<g id="u{i}"><use href="#u{}"/></g>"##, i - 1));
    }
    chain.push_str(r##"</defs><use href="#u999"/></svg>"##);
    let err = probe_bytes(chain.as_bytes(), &Limits::default()).unwrap_err();
    assert_too_complex(&err, "nested deeper");

    // Ten uses of ten uses of ... : 10^8 elements from a few hundred bytes.
    let mut bomb = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><defs><rect id="b0" width="1" height="1"/>"#,
    );
    for i in 1..9 {
        bomb.push_str(&format!(r#"<g id="b{i}">"#));
        for _ in 0..10 {
            bomb.push_str(&format!(r##"<use href="#b{}"/>"##, i - 1));
        }
        bomb.push_str("</g>");
    }
    bomb.push_str(r##"</defs><use href="#b8"/></svg>"##);
    let started = Instant::now();
    let err = probe_bytes(bomb.as_bytes(), &Limits::default()).unwrap_err();
    assert_too_complex(&err, "elements once <use> and markers are expanded");
    println!("use bomb refused in {:?}", started.elapsed());

    // Pattern fills that chain through each other, from a flat document.
    let mut patterns = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><defs><pattern id="p0" width="1" height="1"/>"#,
    );
    for i in 1..600 {
        patterns.push_str(&format!(
            r##"<pattern id="p{i}" width="1" height="1"><rect width="1" height="1" fill="url(#p{})"/></pattern>"##,
            i - 1
        ));
    }
    patterns.push_str(r##"</defs><rect width="10" height="10" fill="url(#p599)"/></svg>"##);
    let err = probe_bytes(patterns.as_bytes(), &Limits::default()).unwrap_err();
    assert_too_complex(&err, "nested deeper");

    // Nesting hidden in entities, as markup or as character references
    // (short enough for the doctype to fit in the bytes the sniffer reads).
    for value in ["<g>", "&#60;g>", "&#x3c;g>"] {
        let doc = format!(
            r#"<!DOCTYPE svg [<!ENTITY e "{}">]><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">&e;</svg>"#,
            value.repeat(40)
        );
        let err = probe_bytes(doc.as_bytes(), &Limits::default()).unwrap_err();
        assert_too_complex(&err, "entity that contains markup");
    }
    // Plain text entities, as Illustrator writes them, are fine.
    let text_entity = r#"<!DOCTYPE svg [<!ENTITY ns_svg "http://www.w3.org/2000/svg">]><svg xmlns="&ns_svg;" width="10" height="10"><rect width="5" height="5"/></svg>"#;
    assert!(probe_bytes(text_entity.as_bytes(), &Limits::default()).is_ok());

    // A use that refers to its own ancestor is a loop usvg cuts: accepted.
    let looped = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g id="a"><rect width="3" height="3"/><use href="#a"/></g></svg>"##;
    let p = probe_bytes(looped.as_bytes(), &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (Some(10), Some(10)));
}

// ---------- corrupt pictures ----------

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

/// Noise, so that the compressed data is long and a cut lands in it.
fn noisy(w: u32, h: u32) -> image::RgbImage {
    let mut state = 0x1234_5678u32;
    image::RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    })
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = noisy(w, h);
    let mut comp = turbojpeg::Compressor::new().unwrap();
    comp.set_quality(90);
    comp.compress_to_vec(turbojpeg::Image {
        pixels: img.as_raw().as_slice(),
        width: w as usize,
        pitch: w as usize * 3,
        height: h as usize,
        format: turbojpeg::PixelFormat::RGB,
    })
    .unwrap()
}

fn position(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

#[test]
fn truncated_png_is_refused_at_probe_with_the_reason() {
    let dir = Dir::new();
    let png = encode(
        image::DynamicImage::ImageRgb8(noisy(64, 64)),
        image::ImageFormat::Png,
    );
    let idat = position(&png, b"IDAT");
    let whole = probe_file(&dir.file("whole.png", &png), &Limits::default()).unwrap();
    assert_eq!((whole.width, whole.height), (Some(64), Some(64)));
    // Cut inside the IDAT data: the header is intact, the pixels are not.
    let cut = &png[..idat + 4 + (png.len() - idat) / 2];
    let err = probe_file(&dir.file("cut.png", cut), &Limits::default()).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt(_)), "{err}");
    assert!(
        err.to_string()
            .contains("the PNG file ends before its image data does"),
        "{err}"
    );
    let err = probe_bytes(cut, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("ends before"), "{err}");
    // The header alone is intact: what rendering of a checked file uses.
    let cut2 = dir.file("cut2.png", cut);
    let p = probe_headers(&cut2, &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (Some(64), Some(64)));
    // The check alone, as a caller with a decode budget runs it.
    let err = check_file(&cut2, &p, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("ends before"), "{err}");
    // Row by row: a few rows of room, not the picture.
    assert!(check_memory(&p) < 1 << 20, "{}", check_memory(&p));
    assert!(check_memory(&p) > 64 * 3);
}

#[test]
fn truncated_jpeg_is_refused_at_probe_with_the_reason() {
    let dir = Dir::new();
    let full = jpeg(128, 96);
    assert!(probe_file(&dir.file("whole.jpg", &full), &Limits::default()).is_ok());
    // Cut inside the scan: libjpeg would fill the rest with grey.
    let sos = position(&full, &[0xFF, 0xDA]);
    let cut = &full[..sos + (full.len() - sos) / 2];
    let err = probe_file(&dir.file("cut.jpg", cut), &Limits::default()).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt(_)), "{err}");
    assert!(
        err.to_string()
            .contains("the JPEG file ends before its image data does"),
        "{err}"
    );
    // Only the final EOI missing is a premature end for libjpeg too.
    let err = probe_bytes(&full[..full.len() - 2], &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("ends before"), "{err}");
}

#[test]
fn jpeg_with_stray_bytes_between_segments_is_accepted() {
    let dir = Dir::new();
    let full = jpeg(64, 48);
    // Junk before the DQT marker and before SOS: libjpeg warns about
    // "extraneous bytes before marker" and decodes every pixel.
    let mut stray = full.clone();
    let sos = position(&stray, &[0xFF, 0xDA]);
    stray.splice(sos..sos, [0x12, 0x34, 0x56]);
    let dqt = position(&stray, &[0xFF, 0xDB]);
    stray.splice(dqt..dqt, [0xAB, 0xCD]);
    let path = dir.file("stray.jpg", &stray);
    let p = probe_file(&path, &Limits::default()).unwrap();
    assert_eq!((p.width, p.height), (Some(64), Some(48)));
    let out = render_file(&path, &p, &[VariantSpec::fit(16, 16)], &Limits::default()).unwrap();
    assert_eq!((out[0].width, out[0].height), (16, 12));

    // The same stray bytes in a file cut short are still refused.
    let cut = &stray[..sos + 3 + (stray.len() - sos) / 2];
    let err = probe_bytes(cut, &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("ends before"), "{err}");
}

#[test]
fn truncated_gif_and_webp_are_refused() {
    let gif = encode(
        image::DynamicImage::ImageRgb8(noisy(40, 40)),
        image::ImageFormat::Gif,
    );
    assert!(probe_bytes(&gif, &Limits::default()).is_ok());
    let err = probe_bytes(&gif[..gif.len() * 2 / 3], &Limits::default()).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt(_)), "{err}");
    // Only the trailer missing: every pixel is there.
    assert!(probe_bytes(&gif[..gif.len() - 1], &Limits::default()).is_ok());

    let webp = encode(
        image::DynamicImage::ImageRgb8(noisy(40, 40)),
        image::ImageFormat::WebP,
    );
    assert!(probe_bytes(&webp, &Limits::default()).is_ok());
    let err = probe_bytes(&webp[..webp.len() * 2 / 3], &Limits::default()).unwrap_err();
    assert!(matches!(err, MediaError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("WebP"), "{err}");
}

#[test]
fn disk_images_are_not_decoded() {
    let mut h = b"QFI\xfb".to_vec();
    h.extend_from_slice(&2u32.to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(&16u32.to_be_bytes());
    h.extend_from_slice(&(1u64 << 30).to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(&2u32.to_be_bytes());
    h.extend_from_slice(&0x30000u64.to_be_bytes());
    h.extend_from_slice(&0x10000u64.to_be_bytes());
    h.extend_from_slice(&1u32.to_be_bytes());
    h.resize(0x40000, 0);
    let p = probe_bytes(&h, &Limits::default()).unwrap();
    assert_eq!(p.kind, Kind::Disk);
}

// ---------- EXIF ----------

fn app1(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(tiff);
    let len = u16::try_from(payload.len() + 2).unwrap();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn entry(t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32) {
    t.extend_from_slice(&tag.to_le_bytes());
    t.extend_from_slice(&typ.to_le_bytes());
    t.extend_from_slice(&count.to_le_bytes());
    t.extend_from_slice(&value.to_le_bytes());
}

#[test]
fn exif_ifd_loops_terminate() {
    // IFD0 at 8 names itself as its next IFD and as its Exif IFD.
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, 6);
    entry(&mut t, 0x8769, 4, 1, 8);
    t.extend_from_slice(&8u32.to_le_bytes());
    let bytes = app1(&jpeg(16, 16), &t);
    let started = Instant::now();
    let p = probe_bytes(&bytes, &Limits::default()).unwrap();
    assert!(started.elapsed().as_secs() < 10);
    // Whatever the loop, the picture is probed (EXIF never fails a probe).
    assert_eq!((p.width, p.height), (Some(16), Some(16)));
}

#[test]
fn exif_entries_pointing_at_the_same_data_are_ignored() {
    // 5000 entries, each a 60 KB value at the same offset: read naively,
    // 300 MB of values from a 64 KB block.
    let n = 5000u16;
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&n.to_le_bytes());
    for k in 0..n {
        entry(&mut t, 0x1000 + k, 1, 60_000, 8);
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    t.resize(65_000, 0);
    let bytes = app1(&jpeg(16, 16), &t);
    let p = probe_bytes(&bytes, &Limits::default()).unwrap();
    assert_eq!(p.exif, None);
    assert_eq!((p.width, p.height), (Some(16), Some(16)));
}
