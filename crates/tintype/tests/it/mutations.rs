//! Mutation tests of the request parsers every API shares: multipart forms
//! and JSON bodies, mutated from valid requests of each API (bytes flipped,
//! cut, repeated, boundaries and lengths broken), sent to a real server.
//! Every answer must be an answer (never a dropped connection or a 5xx),
//! and the server must stay up. `TINTYPE_MUTATION_CASES` (default 150 per
//! request kind) and `TINTYPE_MUTATION_SEED` change the run.

use crate::harness::*;

/// xorshift64*: a seeded generator, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\r\n",
    b"--",
    b"\"",
    b"{",
    b"}",
    b"[",
    b"\x00",
    b"\xff\xfe",
    b"99999999999999999999",
    b"-1",
    b"null",
    b"Content-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n",
    b"\\u0000",
    b"1e999",
];

/// One mutation of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.truncate(at),
            2 => {
                let s = INTERESTING[rng.below(INTERESTING.len())];
                b.splice(at..at, s.iter().copied());
            }
            3 if at < b.len() => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let piece = b[at..end].to_vec();
                for _ in 0..rng.below(50) {
                    b.splice(at..at, piece.iter().copied());
                }
            }
            4 if at < b.len() => {
                let end = (at + rng.below(32)).min(b.len());
                b.drain(at..end);
            }
            _ => {
                let i = rng.below(b.len() + 1);
                b.insert(i, (rng.next() & 0xff) as u8);
            }
        }
    }
    b
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, body) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[test]
fn mutated_multipart_forms_and_json_bodies_never_crash_or_fail_the_server() {
    let cases: usize = std::env::var("TINTYPE_MUTATION_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let seed: u64 = std::env::var("TINTYPE_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    eprintln!("mutation seed {seed}, {cases} cases per request kind");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_WORKERS", "0"));
    let token = user_with_token(&data, "mut", &[]);
    let c = client();
    let small = png(12, 9, 7);
    let boundary = "tintypeBoundary7MA4YWxk";
    let ct = format!("multipart/form-data; boundary={boundary}");
    let id = upload_raw(&c, &s, &token, "base.png", small.clone())["id"]
        .as_str()
        .unwrap()
        .to_string();

    // (method, path, content type, a valid body)
    let kinds: Vec<(&str, String, String, Vec<u8>)> = vec![
        (
            "POST",
            "/v1/images".into(),
            ct.clone(),
            multipart(
                boundary,
                &[
                    ("name", None, b"holiday"),
                    ("metadata", None, br#"{"album":"2026","n":[1,2,{"x":null}]}"#),
                    ("file", Some("a.png"), &small),
                ],
            ),
        ),
        (
            "PATCH",
            format!("/v1/images/{id}"),
            "application/json".into(),
            br#"{"name":"renamed","metadata":{"album":"2027","deep":{"a":[true,false,1.5]}}}"#
                .to_vec(),
        ),
        (
            "POST",
            "/api/v1/photos".into(),
            ct.clone(),
            multipart(
                boundary,
                &[("pending", None, b"true"), ("image", Some("a.png"), &small)],
            ),
        ),
        (
            "POST",
            "/api/v2/photos.json".into(),
            ct.clone(),
            multipart(
                boundary,
                &[
                    ("photo[access_key]", None, b"k-1"),
                    ("photo[file]", Some("a.png"), &small),
                ],
            ),
        ),
        (
            "POST",
            "/api/v1/import/images".into(),
            "application/json".into(),
            br#"{"systemName":"s","webhook":"http://127.0.0.1:9/h","images":[{"url":"http://127.0.0.1:9/a.png","id":"a","fileName":"a.png","metadata":{"caption":"x"}}]}"#
                .to_vec(),
        ),
        (
            "POST",
            "/api/v0.1/persons".into(),
            "application/json".into(),
            br#"{"name":"Ada","images":[{"url":"http://example.org/a.jpg","note":"n"}],"other":{"a":[1,2,3]}}"#
                .to_vec(),
        ),
        (
            "POST",
            "/images".into(),
            "application/json".into(),
            br#"{"name":"disk","download_url":"http://127.0.0.1:9/d.qcow2","namespace":"x"}"#
                .to_vec(),
        ),
    ];

    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut answered = std::collections::BTreeMap::<(String, u16), usize>::new();
    for (method, path, content_type, valid) in &kinds {
        for n in 0..cases {
            let body = if n == 0 {
                valid.clone()
            } else {
                mutate(&mut rng, valid)
            };
            let req = c
                .request(method.parse().unwrap(), s.url(path))
                .bearer_auth(&token)
                .header("X-ApiToken", &token)
                .header("Apikey", &token)
                .header("content-type", content_type)
                .body(body.clone());
            let r = req.send().unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: no answer to a mutated body ({e}); body: {:?}",
                    String::from_utf8_lossy(&body)
                )
            });
            let status = r.status().as_u16();
            assert!(
                status < 500,
                "{method} {path} answered {status} to a mutated body: {}\nbody: {:?}",
                r.text().unwrap_or_default(),
                String::from_utf8_lossy(&body)
            );
            *answered.entry((path.clone(), status)).or_default() += 1;
        }
    }
    for ((path, status), n) in &answered {
        eprintln!("{path}: {status} x{n}");
    }
    let r = c.get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    // The server still takes a good upload.
    upload_raw(&c, &s, &token, "after.png", png(10, 10, 3));
}
