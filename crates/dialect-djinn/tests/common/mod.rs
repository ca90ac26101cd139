//! Shared helpers: a server with the Djinn routes, QCOW2 files made in code.
#![allow(dead_code)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use tintype_engine::core::Scope;
use tintype_testkit::TestServer;

pub const CLUSTER_BITS: u32 = 16;
pub const CLUSTER: usize = 1 << CLUSTER_BITS;

pub async fn server() -> TestServer {
    TestServer::start(vec![tintype_djinn::router()]).await
}

pub async fn token(server: &TestServer, user: &str) -> String {
    server.user_token(user, &Scope::IMAGE).await
}

/// A QCOW2 version 3 header for a disk of `virtual_size` bytes: refcount
/// table in cluster 1, L1 table in cluster 3.
pub fn qcow2_header(virtual_size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 104];
    let put32 = |h: &mut Vec<u8>, at: usize, v: u32| {
        h[at..at + 4].copy_from_slice(&v.to_be_bytes());
    };
    h[0..4].copy_from_slice(b"QFI\xfb");
    put32(&mut h, 4, 3); // version
    put32(&mut h, 20, CLUSTER_BITS);
    h[24..32].copy_from_slice(&virtual_size.to_be_bytes());
    let per_l1 = ((CLUSTER / 8) * CLUSTER) as u64;
    put32(&mut h, 36, virtual_size.div_ceil(per_l1) as u32); // l1_size
    h[40..48].copy_from_slice(&(3 * CLUSTER as u64).to_be_bytes()); // l1_table_offset
    h[48..56].copy_from_slice(&(CLUSTER as u64).to_be_bytes()); // refcount_table_offset
    put32(&mut h, 56, 1); // refcount_table_clusters
    put32(&mut h, 96, 4); // refcount_order
    put32(&mut h, 100, 104); // header_length
    h
}

/// A small QCOW2 file (4 clusters) whose last bytes carry `tag`, so that
/// files with different tags differ.
pub fn qcow2(tag: &str) -> Vec<u8> {
    let mut f = qcow2_header(1 << 30);
    f.resize(4 * CLUSTER, 0);
    let start = f.len() - tag.len();
    f[start..].copy_from_slice(tag.as_bytes());
    f
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(server: &TestServer) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: server.base.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST /images with a raw body and the query.
    pub async fn upload(&self, token: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/images?{query}")))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn delete(&self, token: Option<&str>, path: &str) -> (u16, String) {
        let mut req = self.http.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }
}

pub fn not_found() -> Value {
    serde_json::json!({"message": "Not Found"})
}
