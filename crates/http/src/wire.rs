//! Pieces of wire format that several APIs share: field-keyed validation
//! messages and `Link` headers.

use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde_json::{Map, Value};

/// Validation messages keyed by field, every failing field reported at
/// once; a message given twice for one field is kept once. Each API wraps
/// [`FieldErrors::to_map`] in its own envelope.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let message = message.into();
        match self.0.iter_mut().find(|(f, _)| f == field) {
            Some((_, list)) if list.contains(&message) => {}
            Some((_, list)) => list.push(message),
            None => self.0.push((field.to_string(), vec![message])),
        }
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|(f, _)| f == field)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `{field: [message, ...], ...}`
    pub fn to_map(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(f, list)| {
                let list = list.iter().cloned().map(Value::String).collect();
                (f.clone(), Value::Array(list))
            })
            .collect()
    }
}

/// Sets the response's `Link` header to these `(url, rel)` pairs, in
/// order. URLs we build are always valid header text; one that is not is
/// left out rather than failing the response.
pub fn set_links(resp: &mut Response, links: &[(&str, &str)]) {
    let text = links
        .iter()
        .map(|(url, rel)| format!("<{url}>; rel=\"{rel}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&text) {
        resp.headers_mut().insert(header::LINK, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn messages_group_by_field_once_each() {
        let mut e = FieldErrors::default();
        assert!(e.is_empty());
        e.add("name", "is invalid");
        e.add("file", "must be provided");
        e.add("name", "is too long");
        e.add("name", "is invalid");
        assert!(e.has("file") && !e.has("other"));
        assert_eq!(
            Value::Object(e.to_map()),
            serde_json::json!({"name": ["is invalid", "is too long"], "file": ["must be provided"]})
        );
    }

    #[test]
    fn links_are_joined_in_order() {
        let mut r = ().into_response();
        set_links(
            &mut r,
            &[("http://x/a?p=1", "prev"), ("http://x/a?p=3", "next")],
        );
        assert_eq!(
            r.headers().get(header::LINK).and_then(|v| v.to_str().ok()),
            Some("<http://x/a?p=1>; rel=\"prev\", <http://x/a?p=3>; rel=\"next\"")
        );
        let mut bad = ().into_response();
        set_links(&mut bad, &[("http://x/\n", "next")]);
        assert!(bad.headers().get(header::LINK).is_none());
    }
}
