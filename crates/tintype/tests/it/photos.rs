//! Photos as phones make them, through the native API: a HEIC upload, its
//! placeholder, and its variants negotiated from Accept (AVIF, then WebP,
//! then the preset's format) or asked for with `?format=`.

use crate::harness::*;

fn heic(w: u32, h: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            px.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 140]);
        }
    }
    tintype_media::encode_still(
        tintype_media::Format::Heic,
        &px,
        w,
        h,
        false,
        &tintype_media::StillOptions {
            quality: 80,
            ..Default::default()
        },
    )
    .unwrap()
}

fn image_json(
    c: &reqwest::blocking::Client,
    s: &Server,
    token: &str,
    id: &str,
) -> serde_json::Value {
    c.get(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// GET a variant: status, content type, Vary, body.
fn get(
    c: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    accept: Option<&str>,
) -> (u16, String, Option<String>, Vec<u8>) {
    let mut req = c.get(url).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (status, ct, vary) = (r.status().as_u16(), header("content-type"), header("vary"));
    (
        status,
        ct.unwrap_or_default(),
        vary,
        r.bytes().unwrap().to_vec(),
    )
}

#[test]
fn heic_upload_gets_a_thumbhash_and_negotiated_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "hana", &[]);
    let c = client();
    let img = upload_raw(&c, &s, &token, "IMG_0001.HEIC", heic(640, 480));
    assert_eq!(img["format"], "heic");
    assert_eq!(
        (img["width"].as_i64(), img["height"].as_i64()),
        (Some(640), Some(480))
    );
    let id = img["id"].as_str().unwrap().to_string();

    // The on-upload render leaves a ThumbHash in the image JSON.
    let mut json = img;
    for _ in 0..600 {
        if json["thumbhash"].is_string() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        json = image_json(&c, &s, &token, &id);
    }
    let hash = json["thumbhash"]
        .as_str()
        .expect("a thumbhash after the render");
    // ThumbHash of a landscape picture: base64 of 20 to 30 bytes.
    assert!((24..=44).contains(&hash.len()), "{hash}");
    assert!(
        hash.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "+/=".contains(ch)),
        "{hash}"
    );

    let url = s.url(&format!("/v1/images/{id}/variants/medium"));
    let chrome = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";
    let (status, ct, vary, avif) = get(&c, &url, &token, Some(chrome));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&avif));
    assert_eq!(ct, "image/avif");
    assert_eq!(vary.as_deref(), Some("Accept"));
    assert_eq!(
        tintype_media::sniff(&avif),
        Some(tintype_media::Format::Avif)
    );
    let renders = s.metric("tintype_variant_renders_total");
    // Asked again: the AVIF encoding is kept as its own variant.
    let (_, _, _, again) = get(&c, &url, &token, Some(chrome));
    assert_eq!(again, avif);
    assert_eq!(s.metric("tintype_variant_renders_total"), renders);

    let (_, ct, vary, webp) = get(&c, &url, &token, Some("image/webp,*/*"));
    assert_eq!(
        (ct.as_str(), vary.as_deref()),
        ("image/webp", Some("Accept"))
    );
    assert_eq!(
        tintype_media::sniff(&webp),
        Some(tintype_media::Format::Webp)
    );
    let (_, ct, vary, jpeg) = get(&c, &url, &token, Some("*/*"));
    assert_eq!(
        (ct.as_str(), vary.as_deref()),
        ("image/jpeg", Some("Accept"))
    );
    let decoded = image::load_from_memory(&jpeg).unwrap();
    // 640x480 within medium's 100x100.
    assert_eq!((decoded.width(), decoded.height()), (100, 75));

    // An explicit format wins over Accept, and does not vary.
    let (_, ct, vary, png) = get(&c, &format!("{url}?format=png"), &token, Some(chrome));
    assert_eq!((ct.as_str(), vary), ("image/png", None));
    image::load_from_memory(&png).unwrap();
    let (status, _, _, _) = get(&c, &format!("{url}?format=gif"), &token, None);
    assert_eq!(status, 400);
    // A preset with a format of its own is not negotiated...
    let thumb = s.url(&format!("/v1/images/{id}/variants/thumbnail"));
    let (_, ct, vary, _) = get(&c, &thumb, &token, Some(chrome));
    assert_eq!((ct.as_str(), vary), ("image/jpeg", None));
    // ...unless the client asks for auto.
    let (_, ct, vary, _) = get(&c, &format!("{thumb}?format=auto"), &token, Some(chrome));
    assert_eq!(
        (ct.as_str(), vary.as_deref()),
        ("image/avif", Some("Accept"))
    );

    // The image lists its presets, not their other encodings.
    let json = image_json(&c, &s, &token, &id);
    let names: Vec<&str> = json["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["preset"].as_str())
        .collect();
    assert!(names.contains(&"medium"), "{names:?}");
    assert!(names.iter().all(|n| !n.contains('@')), "{names:?}");
}

/// A photograph-like JPEG (gradients and noise), where encoder settings show.
fn noisy_jpeg(w: u32, h: u32) -> Vec<u8> {
    let mut px = image::RgbImage::new(w, h);
    let mut seed = 11u32;
    for (x, y, p) in px.enumerate_pixels_mut() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let n = ((seed >> 16) % 32) as u8;
        *p = image::Rgb([
            ((x * 200 / w) as u8).saturating_add(n),
            ((y * 200 / h) as u8).saturating_add(n),
            90u8.saturating_add(n),
        ]);
    }
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(px)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

#[test]
fn a_presets_avif_speed_reaches_the_encoder_and_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let preset = |name: &str, speed: u8| {
        format!(
            "[[presets]]\nname = \"{name}\"\nmode = \"fit\"\nwidth = 160\nheight = 160\n\
             format = \"avif\"\navif_quality = 60\navif_speed = {speed}\non_upload = false\n"
        )
    };

    // Out of bounds: the server refuses to start and says why.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, preset("slow", 2)).unwrap();
    let mut child = base_command(&data)
        .arg("serve")
        .env("TINTYPE_CONFIG", bad.to_str().unwrap())
        .env("TINTYPE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if exited.is_none() {
        child.kill().unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        exited.is_some_and(|s| !s.success()),
        "started with avif_speed 2: {stderr}"
    );
    assert!(stderr.contains("avif_speed"), "{stderr}");

    // Two presets that differ only in speed give two encodings.
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, preset("careful", 4) + &preset("quick", 9)).unwrap();
    let s = Server::start(
        &data,
        Opts::default().env("TINTYPE_CONFIG", good.to_str().unwrap()),
    );
    let token = user_with_token(&data, "ines", &[]);
    let c = client();
    let img = upload_raw(&c, &s, &token, "photo.jpg", noisy_jpeg(480, 320));
    let id = img["id"].as_str().unwrap().to_string();
    let mut bodies = Vec::new();
    for name in ["careful", "quick"] {
        let url = s.url(&format!("/v1/images/{id}/variants/{name}"));
        let (status, ct, _, body) = get(&c, &url, &token, None);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(ct, "image/avif");
        let path = tmp.path().join(format!("{name}.avif"));
        std::fs::write(&path, &body).unwrap();
        let probe = tintype_media::probe_file(&path, &tintype_media::Limits::default()).unwrap();
        assert_eq!((probe.width, probe.height), (Some(160), Some(107)));
        bodies.push(body);
    }
    assert_ne!(bodies[0], bodies[1], "speed 4 and speed 9 encoded alike");
}
