//! Size caps on everything small a request sends: text fields of multipart
//! forms and JSON bodies. Each is read while it streams and refused as soon
//! as it passes its cap, so no field or body is ever held whole in memory
//! beyond its limit. Every API reads its text fields and JSON bodies through
//! these helpers and renders [`ReadError`] in its own envelope (over the cap
//! is always `413`).

use axum::body::{Body, Bytes};
use axum::extract::multipart::Field;
use axum::http::{header, HeaderMap};
use futures::StreamExt;
use serde::de::DeserializeOwned;

/// Largest native `name` field, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Largest native `metadata` field (a JSON object), in bytes.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Largest JSON body of the native API, in bytes.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Why a small field or body could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// Over the cap: answer 413.
    TooLarge { limit: usize },
    /// Unreadable (a broken multipart stream or body, not UTF-8, not the
    /// expected JSON): answer 400 with the message.
    Malformed(String),
}

impl ReadError {
    /// A human-readable message (`what` names the field or body).
    pub fn message(&self, what: &str) -> String {
        match self {
            ReadError::TooLarge { limit } => format!("{what} is larger than {limit} bytes"),
            ReadError::Malformed(m) => format!("{what}: {m}"),
        }
    }

    pub fn is_too_large(&self) -> bool {
        matches!(self, ReadError::TooLarge { .. })
    }
}

/// Reads a multipart field's bytes, at most `cap` of them.
pub async fn read_field_bytes(field: &mut Field<'_>, cap: usize) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(c)) => {
                if buf.len().saturating_add(c.len()) > cap {
                    return Err(ReadError::TooLarge { limit: cap });
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok(buf),
            Err(e) => return Err(ReadError::Malformed(e.body_text())),
        }
    }
}

/// Reads a multipart text field (UTF-8), at most `cap` bytes.
pub async fn read_text_field(field: &mut Field<'_>, cap: usize) -> Result<String, ReadError> {
    let buf = read_field_bytes(field, cap).await?;
    String::from_utf8(buf).map_err(|_| ReadError::Malformed("not UTF-8".into()))
}

/// Reads a whole body, at most `cap` bytes: refused at once when its
/// `Content-Length` says more, else while it streams.
pub async fn read_body(headers: &HeaderMap, body: Body, cap: usize) -> Result<Bytes, ReadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge { limit: cap });
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Malformed(format!("reading the body: {e}")))?;
        if buf.len().saturating_add(chunk.len()) > cap {
            return Err(ReadError::TooLarge { limit: cap });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Reads a JSON body of at most `cap` bytes and parses it.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    cap: usize,
) -> Result<T, ReadError> {
    let bytes = read_body(headers, body, cap).await?;
    serde_json::from_slice(&bytes).map_err(|e| ReadError::Malformed(format!("invalid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_its_cap_is_refused_while_streaming() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..10).map(|_| Ok(Bytes::from(vec![b'a'; 100]))).collect();
        let body = Body::from_stream(futures::stream::iter(chunks));
        let err = read_body(&HeaderMap::new(), body, 999).await.unwrap_err();
        assert_eq!(err, ReadError::TooLarge { limit: 999 });
        let body = Body::from(vec![b'a'; 999]);
        assert_eq!(
            read_body(&HeaderMap::new(), body, 999).await.unwrap().len(),
            999
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_reading() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "5000".parse().unwrap());
        let err = read_body(&h, Body::from("{}"), 100).await.unwrap_err();
        assert!(err.is_too_large());
    }

    #[tokio::test]
    async fn json_is_parsed_within_the_cap() {
        let v: serde_json::Value = read_json(&HeaderMap::new(), Body::from("{\"a\":1}"), 100)
            .await
            .unwrap();
        assert_eq!(v["a"], 1);
        let e = read_json::<serde_json::Value>(&HeaderMap::new(), Body::from("{"), 100)
            .await
            .unwrap_err();
        assert!(matches!(e, ReadError::Malformed(_)));
    }
}
