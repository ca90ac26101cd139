//! Shared helpers: pictures made in code (with EXIF and GPS written by
//! hand into an APP1 segment) and upload shortcuts.

#![allow(dead_code)]

use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tintype_testkit::TestServer;

/// One TIFF field value.
pub enum Val {
    Byte(u8),
    Ascii(&'static str),
    Short(u16),
    Long(u32),
    Rational(Vec<(u32, u32)>),
}

impl Val {
    fn type_and_count(&self) -> (u16, u32) {
        match self {
            Val::Byte(_) => (1, 1),
            Val::Ascii(s) => (2, s.len() as u32 + 1),
            Val::Short(_) => (3, 1),
            Val::Long(_) => (4, 1),
            Val::Rational(v) => (5, v.len() as u32),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Val::Byte(b) => vec![*b],
            Val::Ascii(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                b
            }
            Val::Short(n) => n.to_be_bytes().to_vec(),
            Val::Long(n) => n.to_be_bytes().to_vec(),
            Val::Rational(v) => v
                .iter()
                .flat_map(|(n, d)| n.to_be_bytes().into_iter().chain(d.to_be_bytes()))
                .collect(),
        }
    }
}

fn padded(len: usize) -> usize {
    len + (len % 2)
}

/// Bytes an IFD with these entries takes, its out-of-line values included.
fn ifd_size(entries: &[(u16, Val)]) -> usize {
    let data: usize = entries
        .iter()
        .map(|(_, v)| v.bytes().len())
        .filter(|&l| l > 4)
        .map(padded)
        .sum();
    2 + 12 * entries.len() + 4 + data
}

/// An IFD placed at `start` (offsets count from the TIFF header).
fn ifd(entries: &[(u16, Val)], start: usize) -> Vec<u8> {
    let mut head = Vec::new();
    let mut data = Vec::new();
    let data_start = start + 2 + 12 * entries.len() + 4;
    head.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for (tag, v) in entries {
        let (ty, count) = v.type_and_count();
        head.extend_from_slice(&tag.to_be_bytes());
        head.extend_from_slice(&ty.to_be_bytes());
        head.extend_from_slice(&count.to_be_bytes());
        let b = v.bytes();
        if b.len() <= 4 {
            let mut inline = b.clone();
            inline.resize(4, 0);
            head.extend_from_slice(&inline);
        } else {
            head.extend_from_slice(&((data_start + data.len()) as u32).to_be_bytes());
            data.extend_from_slice(&b);
            if b.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    head.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    head.extend_from_slice(&data);
    head
}

/// A big-endian TIFF block: IFD0, its Exif sub-IFD and its GPS IFD.
pub fn tiff(ifd0: Vec<(u16, Val)>, exif: Vec<(u16, Val)>, gps: Vec<(u16, Val)>) -> Vec<u8> {
    let mut ifd0 = ifd0;
    if !exif.is_empty() {
        ifd0.push((0x8769, Val::Long(0)));
    }
    if !gps.is_empty() {
        ifd0.push((0x8825, Val::Long(0)));
    }
    let ifd0_start = 8;
    let exif_start = ifd0_start + ifd_size(&ifd0);
    let gps_start = exif_start + if exif.is_empty() { 0 } else { ifd_size(&exif) };
    for (tag, v) in ifd0.iter_mut() {
        match tag {
            0x8769 => *v = Val::Long(exif_start as u32),
            0x8825 => *v = Val::Long(gps_start as u32),
            _ => {}
        }
    }
    ifd0.sort_by_key(|(t, _)| *t);
    let mut out = b"MM\0\x2a".to_vec();
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend(ifd(&ifd0, ifd0_start));
    if !exif.is_empty() {
        out.extend(ifd(&exif, exif_start));
    }
    if !gps.is_empty() {
        out.extend(ifd(&gps, gps_start));
    }
    out
}

/// A JPEG photograph of `w`x`h` (a gradient), without metadata.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encode jpeg");
    out
}

/// A PNG of `w`x`h`.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([10, 200, 30, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// The JPEG with an APP1 EXIF segment holding `tiff` right after SOI.
pub fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let len = (2 + 6 + tiff.len()) as u16;
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Degrees, minutes and seconds (seconds in ten-thousandths) as rationals.
pub fn dms(d: u32, m: u32, s_10000: u32) -> Val {
    Val::Rational(vec![(d, 1), (m, 1), (s_10000, 10_000)])
}

/// GPS IFD entries for a position.
pub fn gps(lat_ref: &'static str, lat: Val, lon_ref: &'static str, lon: Val) -> Vec<(u16, Val)> {
    vec![
        (0x0001, Val::Ascii(lat_ref)),
        (0x0002, lat),
        (0x0003, Val::Ascii(lon_ref)),
        (0x0004, lon),
    ]
}

/// The seed example's camera: a 2015 phone photo near Albany, NY.
pub fn seed_example_jpeg() -> Vec<u8> {
    let ifd0 = vec![
        (0x010F, Val::Ascii("samsung")),
        (0x0110, Val::Ascii("SM-G900V")),
        (0x011A, Val::Rational(vec![(72, 1)])),
        (0x011B, Val::Rational(vec![(72, 1)])),
        (0x0128, Val::Short(2)),
        (0x0131, Val::Ascii("G900VVRU1BOC4")),
        (0x0132, Val::Ascii("2015:06:06 12:00:08")),
        (0x0213, Val::Short(1)),
    ];
    let exif = vec![
        (0x829A, Val::Rational(vec![(1, 365)])),
        (0x829D, Val::Rational(vec![(22, 10)])),
        (0x8822, Val::Short(2)),
        (0x8827, Val::Short(40)),
        (0x9003, Val::Ascii("2015:06:06 12:00:08")),
        (0x9004, Val::Ascii("2015:06:06 12:00:08")),
        (0x9207, Val::Short(2)),
        (0x9209, Val::Short(0)),
        (0x920A, Val::Rational(vec![(48, 10)])),
        (0x9290, Val::Ascii("943")),
        (0xA001, Val::Short(1)),
        (0xA420, Val::Ascii("F16QLHF01S")),
    ];
    let mut gps = gps("N", dms(42, 49, 308_953), "W", dms(73, 53, 462_451));
    gps.push((0x0005, Val::Byte(0)));
    gps.push((0x0006, Val::Rational(vec![(107, 1)])));
    gps.push((0x0007, Val::Rational(vec![(16, 1), (0, 1), (5, 1)])));
    gps.push((0x001D, Val::Ascii("2015:06:06")));
    with_exif(&jpeg(640, 480), &tiff(ifd0, exif, gps))
}

/// A multipart form as the official clients send it.
pub fn form(access_key: Option<&str>, file: Option<(&[u8], &str)>) -> Form {
    let mut f = Form::new();
    if let Some(k) = access_key {
        f = f.text("photo[access_key]", k.to_string());
    }
    if let Some((bytes, mime)) = file {
        let part = Part::bytes(bytes.to_vec())
            .file_name("photo.jpg")
            .mime_str(mime)
            .expect("mime");
        f = f.part("photo[file]", part);
    }
    f
}

pub async fn post(server: &TestServer, token: &str, form: Form) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.url("/api/v2/photos.json"))
        .header("X-ApiToken", token)
        .multipart(form)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// Uploads a JPEG under `key` and returns the photo object.
pub async fn upload(server: &TestServer, token: &str, key: &str, bytes: &[u8]) -> Value {
    let (status, body) = post(server, token, form(Some(key), Some((bytes, "image/jpeg")))).await;
    assert_eq!(status, 200, "{body}");
    body["photo"].clone()
}

pub async fn get(server: &TestServer, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url(path))
        .header("X-ApiToken", token)
        .send()
        .await
        .expect("get")
}

pub async fn get_json(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let resp = get(server, token, path).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// A server whose jobs run only when the test drains them.
pub async fn server_without_workers() -> TestServer {
    TestServer::start_with(vec![tintype_fulcrum::router()], |c| c.workers = 0).await
}
