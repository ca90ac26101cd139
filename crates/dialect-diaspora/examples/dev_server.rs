//! A throwaway server with only the diaspora dialect (and the native API),
//! for trying the README's curl examples:
//! `cargo run -p tintype-diaspora --example dev_server`.
//! It prints its base URL and a token of the user `alice`, then serves
//! until interrupted. Everything lives in a temporary directory.

use tintype_testkit::TestServer;

#[tokio::main]
async fn main() {
    let server = TestServer::start(vec![tintype_diaspora::router()]).await;
    tintype_diaspora::install(&server.engine, tintype_diaspora::Settings::default());
    let token = server.user_token("alice", &[]).await;
    println!("BASE={}", server.base);
    println!("TOKEN={token}");
    let _ = tokio::signal::ctrl_c().await;
}
