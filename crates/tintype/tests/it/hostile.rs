//! Hostile and damaged uploads through the native API: a clear 415 with the
//! reason, nothing stored, and the server still answers afterwards.

use crate::harness::*;
use reqwest::blocking::multipart;
use serde_json::Value;

fn refused_415(r: reqwest::blocking::Response) -> String {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    assert_eq!(status, 415, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], 415);
    v["detail"].as_str().unwrap_or_default().to_string()
}

#[test]
fn nested_svg_and_truncated_png_are_refused_and_the_server_lives_on() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "alice", &[]);
    let c = client();

    // 4000 nested groups: 28 KB that used to overflow the stack and end the process.
    let deep = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">{}<rect width="1" height="1"/>{}</svg>"#,
        "<g>".repeat(4000),
        "</g>".repeat(4000)
    );
    let png = noisy_png(64, 64, 3);
    let idat = png.windows(4).position(|w| w == b"IDAT").unwrap();
    let cut = png[..idat + (png.len() - idat) / 2].to_vec();

    for _ in 0..2 {
        let r = c
            .post(s.url("/v1/images?name=deep.svg"))
            .bearer_auth(&token)
            .body(deep.clone())
            .send()
            .unwrap();
        let detail = refused_415(r);
        assert!(detail.contains("nested deeper than 256 levels"), "{detail}");
        let form = multipart::Form::new().part(
            "file",
            multipart::Part::bytes(deep.clone().into_bytes()).file_name("deep.svg"),
        );
        let r = c
            .post(s.url("/v1/images"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .unwrap();
        let detail = refused_415(r);
        assert!(detail.contains("nested deeper"), "{detail}");

        let r = c
            .post(s.url("/v1/images?name=cut.png"))
            .bearer_auth(&token)
            .body(cut.clone())
            .send()
            .unwrap();
        let detail = refused_415(r);
        assert!(
            detail.contains("the PNG file ends before its image data does"),
            "{detail}"
        );
    }

    // Nothing was stored, and the same server still serves.
    assert!(list_all(&c, &s, &token, 100).is_empty());
    let img = upload_raw(&c, &s, &token, "whole", png);
    assert_eq!(img["width"], 64);
    let r = c.get(s.url("/healthz")).send().unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(list_all(&c, &s, &token, 100).len(), 1);
}
