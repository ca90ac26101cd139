//! The published PopIt client for Python, `PopIt-Python` 0.1.11, unchanged,
//! against a running tintype server: it reads the API entry point, then
//! creates, reads, updates and deletes documents, sets remote images, and
//! uploads, replaces and deletes image files through its own calls.
//!
//! The client is Python 2 only. `TINTYPE_POPIT_PYTHON` names the python of
//! a Python 2.7 virtual environment that has it (scripts/test.sh makes one);
//! without it this test fails: it is never skipped.

use tintype_testkit::TestServer;

fn picture(rgb: [u8; 3], format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 12, |x, y| {
        image::Rgb([
            rgb[0].wrapping_add(x as u8 * 9),
            rgb[1].wrapping_add(y as u8 * 13),
            rgb[2],
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .expect("encode a picture");
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_python_client_works_unchanged() {
    let python = std::env::var("TINTYPE_POPIT_PYTHON").unwrap_or_default();
    assert!(
        !python.is_empty(),
        "TINTYPE_POPIT_PYTHON is not set: it must name the python of a Python 2.7 \
         virtual environment with PopIt-Python==0.1.11, requests==2.6.0 and slumber \
         installed (scripts/test.sh sets one up under ~/.cache/tintype-tools/popit-py27)"
    );
    let probe = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, popit_api, requests, slumber; \
             assert sys.version_info[:2] == (2, 7), sys.version; \
             assert requests.__version__ == '2.6.0', requests.__version__",
        ])
        .output()
        .unwrap_or_else(|e| panic!("TINTYPE_POPIT_PYTHON={python} does not run: {e}"));
    assert!(
        probe.status.success(),
        "TINTYPE_POPIT_PYTHON={python} is not a Python 2.7 with the PopIt client:\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );

    let server = TestServer::start(vec![tintype_popit::router()]).await;
    let key = server.user_token("popit-client", &[]).await;
    let jpeg = server.dir.path().join("portrait.jpg");
    let png = server.dir.path().join("front.png");
    std::fs::write(&jpeg, picture([200, 40, 40], image::ImageFormat::Jpeg)).unwrap();
    std::fs::write(&png, picture([30, 90, 200], image::ImageFormat::Png)).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/popit_python_client.py");

    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.base)
        .arg(&key)
        .arg(&jpeg)
        .arg(&png)
        .output()
        .await
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "popit_python_client.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("popit client: ok"), "{stdout}");
}
