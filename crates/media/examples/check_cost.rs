//! What the upload check costs: times `probe_file` (headers, EXIF and the
//! cheap decode of every pixel) next to one `render_file` of a 1600 fit, on
//! pictures made here: a 20-megapixel JPEG (baseline and progressive are not
//! distinguished by the turbojpeg crate; baseline here), a 12-megapixel PNG,
//! a GIF and a WebP. Prints medians of `RUNS` (default 5).
//!
//!   cargo run --release -p tintype-media --example check_cost

use std::time::{Duration, Instant};

use tintype_media::{probe_file, render_file, Limits, VariantSpec};

fn picture(w: u32, h: u32) -> image::RgbImage {
    let mut state = 0x2545_f491u32;
    image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 31) as u8;
        image::Rgb([
            ((x * 255 / w) as u8).saturating_add(n),
            ((y * 255 / h) as u8).saturating_add(n),
            (((x + y) * 127 / (w + h)) as u8).saturating_add(n),
        ])
    })
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = Limits::default();
    let mut files = Vec::new();

    let img = picture(6000, 3400);
    let mut comp = turbojpeg::Compressor::new().expect("compressor");
    comp.set_quality(90);
    let jpeg = comp
        .compress_to_vec(turbojpeg::Image {
            pixels: img.as_raw().as_slice(),
            width: 6000,
            pitch: 6000 * 3,
            height: 3400,
            format: turbojpeg::PixelFormat::RGB,
        })
        .expect("jpeg");
    files.push(("JPEG 6000x3400", "a.jpg", jpeg));
    let small = picture(4000, 3000);
    for (name, file, format) in [
        ("PNG 4000x3000", "a.png", image::ImageFormat::Png),
        (
            "WebP 4000x3000 (lossless)",
            "a.webp",
            image::ImageFormat::WebP,
        ),
    ] {
        let mut buf = std::io::Cursor::new(Vec::new());
        small.write_to(&mut buf, format).expect("encode");
        files.push((name, file, buf.into_inner()));
    }
    let gif_src = picture(1600, 1200);
    let mut buf = std::io::Cursor::new(Vec::new());
    gif_src
        .write_to(&mut buf, image::ImageFormat::Gif)
        .expect("gif");
    files.push(("GIF 1600x1200", "a.gif", buf.into_inner()));

    println!("| picture | bytes | probe_file (with the check) ms | render fit 1600 ms |");
    println!("|---|---|---|---|");
    for (name, file, bytes) in files {
        let path = dir.path().join(file);
        std::fs::write(&path, &bytes).expect("write");
        let mut probes = Vec::new();
        let mut renders = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let p = probe_file(&path, &limits).expect("probe");
            probes.push(t.elapsed());
            let t = Instant::now();
            render_file(&path, &p, &[VariantSpec::fit(1600, 1600)], &limits).expect("render");
            renders.push(t.elapsed());
        }
        println!(
            "| {name} | {} | {:.1} | {:.1} |",
            bytes.len(),
            median(probes).as_secs_f64() * 1000.0,
            median(renders).as_secs_f64() * 1000.0
        );
    }
}
