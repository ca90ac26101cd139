//! Mutation tests: every parser of untrusted bytes gets thousands of inputs
//! made by mutating valid files (made here, in code) and must return, Ok or
//! Err, without a panic. A panic inside a decoder is contained by the entry
//! points (it becomes an error), so a panic hook counts them and the tests
//! fail on any.
//!
//! The run is seeded and repeatable. `TINTYPE_FUZZ_CASES` sets the number of
//! cases per test (default 5000), `TINTYPE_FUZZ_SEED` the seed; a failing
//! input is written to the temp directory and its path printed.

use std::cell::{Cell, RefCell};
use std::io::Cursor;
use std::sync::Once;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tintype_media::{
    probe_bytes, probe_file, probe_headers, render_file, sniff, Limits, VariantSpec,
};

// ---------- harness ----------

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}
static HOOK: Once = Once::new();

/// Counts every panic, caught or not, on the thread that panics (the tests
/// run side by side on several threads).
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            LAST_PANIC.with(|l| *l.borrow_mut() = info.to_string());
            previous(info);
        }));
    });
}

fn cases() -> usize {
    std::env::var("TINTYPE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

fn rng(salt: u64) -> StdRng {
    let seed = std::env::var("TINTYPE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x7171_7e00_u64);
    StdRng::seed_from_u64(seed ^ salt)
}

/// Limits small enough that mutated sizes are refused cheaply, large enough
/// for every seed.
fn limits() -> Limits {
    Limits {
        max_pixels: 4_000_000,
        max_width: 4096,
        max_height: 4096,
        max_svg_bytes: 1024 * 1024,
    }
}

/// Runs `f` on the input; a panic (caught here or inside) fails the test
/// with the input saved.
fn must_return(name: &str, n: usize, input: &[u8], f: impl FnOnce(&[u8])) {
    let before = PANICS.with(Cell::get);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input)));
    if outcome.is_err() || PANICS.with(Cell::get) != before {
        let path = std::env::temp_dir().join(format!("tintype-fuzz-{name}-{n}.bin"));
        let _ = std::fs::write(&path, input);
        let last = LAST_PANIC.with(|l| l.borrow().clone());
        panic!(
            "{name} case {n} panicked ({last}); input saved to {}",
            path.display()
        );
    }
}

// ---------- seeds, made in code ----------

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn gradient(w: u32, h: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x * 16) as u8, (y * 16) as u8, ((x + y) * 8) as u8, 200])
    })
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgba8(gradient(w, h)).into_rgb8();
    let mut comp = turbojpeg::Compressor::new().unwrap();
    comp.set_quality(80);
    comp.compress_to_vec(turbojpeg::Image {
        pixels: img.as_raw().as_slice(),
        width: w as usize,
        pitch: w as usize * 3,
        height: h as usize,
        format: turbojpeg::PixelFormat::RGB,
    })
    .unwrap()
}

/// A little-endian TIFF block: IFD0 (orientation, make) pointing at an Exif
/// IFD and a GPS IFD, then IFD1.
fn tiff() -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&typ.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value.to_le_bytes());
    };
    // IFD0 at 8: 4 entries -> 2 + 48 + 4 = 54 bytes, data follows at 62.
    t.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut t, 0x010F, 2, 8, 62); // Make, 8 bytes at 62
    entry(&mut t, 0x0112, 3, 1, 6); // Orientation
    entry(&mut t, 0x8769, 4, 1, 70); // Exif IFD at 70
    entry(&mut t, 0x8825, 4, 1, 100); // GPS IFD at 100
    t.extend_from_slice(&130u32.to_le_bytes()); // IFD1 at 130
    t.extend_from_slice(b"Tintype\0");
    // Exif IFD at 70: 2 entries -> 2 + 24 + 4 = 30 bytes.
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x829A, 5, 1, 160); // ExposureTime at 160
    entry(&mut t, 0x8827, 3, 1, 100); // ISO
    t.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 100: 2 entries.
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, u32::from_le_bytes(*b"N\0\0\0"));
    entry(&mut t, 0x0002, 5, 3, 168); // latitude, 3 rationals at 168
    t.extend_from_slice(&0u32.to_le_bytes());
    // IFD1 at 130: 2 entries.
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0103, 3, 1, 6);
    entry(&mut t, 0x011A, 5, 1, 160);
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len(), 160);
    for (n, d) in [(1u32, 250u32), (42, 1), (49, 1), (308953, 10000)] {
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&d.to_le_bytes());
    }
    t
}

fn with_app1(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend_from_slice(tiff);
    let len = u16::try_from(payload.len() + 2).unwrap_or(u16::MAX);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        for shift in 0..3u32 {
            let frame = image::RgbaImage::from_fn(12, 9, |x, y| {
                image::Rgba([((x + shift) * 20) as u8, (y * 25) as u8, 0, 255])
            });
            enc.encode_frame(image::Frame::new(frame)).unwrap();
        }
    }
    out
}

fn qcow2() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"QFI\xfb");
    h.extend_from_slice(&3u32.to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(&16u32.to_be_bytes());
    h.extend_from_slice(&(1u64 << 30).to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(&2u32.to_be_bytes());
    h.extend_from_slice(&0x30000u64.to_be_bytes());
    h.extend_from_slice(&0x10000u64.to_be_bytes());
    h.extend_from_slice(&1u32.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes());
    h.extend_from_slice(&[0u8; 24]);
    h.extend_from_slice(&4u32.to_be_bytes());
    h.extend_from_slice(&104u32.to_be_bytes());
    h.resize(1024, 0);
    h
}

const SVG: &str = r##"<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="30" viewBox="0 0 40 30">
<style>.a { fill: url(#lg); } .b { stroke: red; }</style>
<defs>
<linearGradient id="lg"><stop offset="0" stop-color="red"/><stop offset="1" stop-color="blue"/></linearGradient>
<linearGradient id="lg2" xlink:href="#lg"/>
<pattern id="pt" width="4" height="4" patternUnits="userSpaceOnUse"><rect width="2" height="2" fill="url(#lg2)"/></pattern>
<clipPath id="cp"><circle cx="20" cy="15" r="12"/></clipPath>
<marker id="mk" markerWidth="4" markerHeight="4"><path d="M0 0L4 2L0 4z"/></marker>
<g id="shape"><rect class="a" x="2" y="2" width="10" height="8"/><path class="b" d="M1 1L30 20L5 25" marker-mid="url(#mk)"/></g>
</defs>
<g clip-path="url(#cp)"><use xlink:href="#shape"/><use href="#shape" x="10"/><rect x="20" y="5" width="15" height="15" fill="url(#pt)"/></g>
<g transform="rotate(10)"><g><g><text x="2" y="28">tintype</text></g></g></g>
</svg>"##;

/// A small HEIC or AVIF still with EXIF and an ICC profile (libheif's encoders).
fn heif(format: tintype_media::Format) -> Vec<u8> {
    let rgb = image::DynamicImage::ImageRgba8(gradient(13, 11)).to_rgb8();
    let icc = lcms2::Profile::new_srgb().icc().unwrap();
    let tiff = tiff();
    tintype_media::encode_still(
        format,
        rgb.as_raw(),
        13,
        11,
        false,
        &tintype_media::StillOptions {
            icc: Some(&icc),
            exif: Some(&tiff),
            ..Default::default()
        },
    )
    .unwrap()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let rgba = image::DynamicImage::ImageRgba8(gradient(13, 11));
    let rgb = image::DynamicImage::ImageRgb8(rgba.to_rgb8());
    vec![
        ("png", encode(rgba.clone(), image::ImageFormat::Png)),
        ("png-rgb", encode(rgb.clone(), image::ImageFormat::Png)),
        ("gif", animated_gif()),
        ("webp", encode(rgba, image::ImageFormat::WebP)),
        ("jpeg", jpeg(17, 9)),
        ("jpeg-exif", with_app1(&jpeg(16, 16), &tiff())),
        ("qcow2", qcow2()),
        ("svg", SVG.as_bytes().to_vec()),
        ("heic", heif(tintype_media::Format::Heic)),
        ("avif", heif(tintype_media::Format::Avif)),
    ]
}

// ---------- mutations ----------

/// Numbers that break length fields.
const HUGE: [u32; 6] = [
    0xFFFF_FFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0x0001_0000,
    0xFFFF,
    0,
];

fn mutate(rng: &mut StdRng, input: &[u8], others: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = rng.gen_range(1..=4);
    for _ in 0..rounds {
        if out.is_empty() {
            out.push(rng.gen());
            continue;
        }
        let len = out.len();
        let at = rng.gen_range(0..len);
        match rng.gen_range(0..10) {
            // Flip a bit.
            0 => out[at] ^= 1 << rng.gen_range(0..8),
            // Set a byte.
            1 => out[at] = rng.gen(),
            // Truncate.
            2 => out.truncate(rng.gen_range(0..len)),
            // Insert random bytes.
            3 => {
                let n = rng.gen_range(1..16);
                let junk: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                out.splice(at..at, junk);
            }
            // Delete a run.
            4 => {
                let end = (at + rng.gen_range(1..64)).min(len);
                out.drain(at..end);
            }
            // Duplicate a run (a chunk, a segment, an element) in place.
            5 => {
                let end = (at + rng.gen_range(1..256)).min(len);
                let copy = out[at..end].to_vec();
                let times = rng.gen_range(1..4);
                for _ in 0..times {
                    out.splice(end..end, copy.iter().copied());
                }
            }
            // A huge length, big- or little-endian.
            6 => {
                let v = HUGE[rng.gen_range(0..HUGE.len())];
                let bytes = if rng.gen() {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let end = (at + 4).min(len);
                out[at..end].copy_from_slice(&bytes[..end - at]);
            }
            // A huge 16-bit field.
            7 => {
                let end = (at + 2).min(len);
                let v = [0xFFu8, rng.gen()];
                out[at..end].copy_from_slice(&v[..end - at]);
            }
            // Splice in a piece of another seed.
            8 if !others.is_empty() => {
                let (_, other) = &others[rng.gen_range(0..others.len())];
                if !other.is_empty() {
                    let from = rng.gen_range(0..other.len());
                    let to = (from + rng.gen_range(1..128)).min(other.len());
                    out.splice(at..at, other[from..to].iter().copied());
                }
            }
            // Copy a run over another place.
            _ => {
                let from = rng.gen_range(0..len);
                let n = rng.gen_range(1..32).min(len - from).min(len - at);
                let copy = out[from..from + n].to_vec();
                out[at..at + n].copy_from_slice(&copy);
            }
        }
    }
    out
}

/// Text-level mutations of SVG: nesting, references, repetition.
fn mutate_svg(rng: &mut StdRng, input: &str) -> String {
    let mut s = input.to_string();
    for _ in 0..rng.gen_range(1..=3) {
        let at = {
            let mut at = rng.gen_range(0..=s.len());
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        match rng.gen_range(0..6) {
            0 => {
                let depth = rng.gen_range(1..400);
                let inner = "<g>".repeat(depth) + &"</g>".repeat(depth);
                s.insert_str(at, &inner);
            }
            1 => s.insert_str(at, r##"<use href="#shape"/>"##),
            2 => s.insert_str(at, r##"<g id="shape"><use href="#shape"/></g>"##),
            3 => s.insert_str(
                at,
                r##"<path d="M0 0L1 1L2 2L3 3" marker-start="url(#mk)"/>"##,
            ),
            4 => {
                let mut end = (at + rng.gen_range(1..200)).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                let copy = s[at..end].to_string();
                s.insert_str(end, &copy);
            }
            _ => s.insert_str(
                at,
                "<g transform=\"scale(1e30)\"><rect width=\"1e30\" height=\"1\"/></g>",
            ),
        }
    }
    s
}

// ---------- properties ----------

#[test]
fn sniff_and_probe_return_on_mutated_files() {
    install_hook();
    let seeds = seeds();
    let limits = limits();
    let mut rng = rng(1);
    let mut outcomes = [0usize; 2];
    for n in 0..cases() {
        let (_, seed) = &seeds[n % seeds.len()];
        let input = mutate(&mut rng, seed, &seeds);
        must_return("probe", n, &input, |bytes| {
            let _ = sniff(bytes);
            let ok = probe_bytes(bytes, &limits).is_ok();
            outcomes[usize::from(ok)] += 1;
        });
    }
    // The mutations reach both answers: the property is not vacuous.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

#[test]
fn exif_blocks_return_when_mutated() {
    install_hook();
    let limits = limits();
    let base = jpeg(8, 8);
    let tiff = tiff();
    let mut rng = rng(2);
    let mut with_exif = 0usize;
    for n in 0..cases() {
        let block = mutate(&mut rng, &tiff, &[("tiff", tiff.clone())]);
        let input = with_app1(&base, &block);
        must_return("exif", n, &input, |bytes| {
            let probe = probe_bytes(bytes, &limits);
            // The picture itself is intact: EXIF never fails the probe.
            let probe = probe.unwrap_or_else(|e| panic!("a valid JPEG was refused: {e}"));
            with_exif += usize::from(probe.exif.is_some());
        });
    }
    assert!(with_exif > 0);
}

#[test]
fn svg_parse_and_render_return_when_mutated() {
    install_hook();
    let limits = limits();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rng(3);
    // Files and rendering are the slow part: a third of the cases.
    let n_cases = cases() / 3;
    for n in 0..n_cases {
        let text = mutate_svg(&mut rng, SVG);
        let input = if n % 4 == 0 {
            mutate(&mut rng, text.as_bytes(), &[])
        } else {
            text.into_bytes()
        };
        must_return("svg", n, &input, |bytes| {
            let path = dir.path().join("case.svg");
            std::fs::write(&path, bytes).unwrap();
            if let Ok(p) = probe_file(&path, &limits) {
                if n % 10 == 0 {
                    let _ = render_file(&path, &p, &[VariantSpec::fit(24, 24)], &limits);
                }
            }
        });
    }
}

#[test]
fn probe_and_render_files_return_when_mutated() {
    install_hook();
    let seeds = seeds();
    let limits = limits();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rng(4);
    let mut rendered = 0usize;
    for n in 0..cases() / 3 {
        let (name, seed) = &seeds[n % seeds.len()];
        let input = mutate(&mut rng, seed, &seeds);
        must_return(name, n, &input, |bytes| {
            let path = dir.path().join("case.bin");
            std::fs::write(&path, bytes).unwrap();
            // Rendering files that only their headers vouch for (stored
            // before the upload check) must return too.
            let probe = if n % 2 == 0 {
                probe_file(&path, &limits)
            } else {
                probe_headers(&path, &limits)
            };
            if let Ok(p) = probe {
                let specs = [VariantSpec::fit(8, 8), VariantSpec::fill(5, 7)];
                if render_file(&path, &p, &specs, &limits).is_ok() {
                    rendered += 1;
                }
            }
        });
    }
    assert!(rendered > 0);
}
