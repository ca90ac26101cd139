//! The official Fulcrum Python client (`pip install fulcrum`) against a
//! running tintype server. Runs when `TINTYPE_FULCRUM_PYTHON` names a
//! python that has `fulcrum` installed; otherwise it says it is skipped.

mod common;

use tintype_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_works_unchanged() {
    let Ok(python) = std::env::var("TINTYPE_FULCRUM_PYTHON") else {
        eprintln!("TINTYPE_FULCRUM_PYTHON is not set: the Fulcrum client tier is skipped");
        return;
    };
    let server = TestServer::start(vec![tintype_fulcrum::router()]).await;
    let token = server.user_token("client", &[]).await;
    let image_path = server.dir.path().join("photo.jpg");
    std::fs::write(&image_path, common::seed_example_jpeg()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client/check_client.py");

    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.base)
        .arg(&token)
        .arg(&image_path)
        .output()
        .await
        .expect("run the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "check_client.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("fulcrum client: ok"), "{stdout}");
}
