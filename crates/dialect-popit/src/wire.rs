//! PopIt's JSON shapes: how a client's document becomes a stored one (its
//! `image` and `images` normalised, each entry given an `_id`, uploaded
//! files carried over by `_id`) and how a stored one is rendered.

use crate::error::{PopitError, PopitResult};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The collections PopIt serves.
pub const COLLECTIONS: [&str; 4] = ["persons", "organizations", "memberships", "posts"];

/// Largest JSON body accepted for a document.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Longest document or image id accepted.
pub const MAX_ID_LEN: usize = 128;

/// The field of an `images` entry that holds the tintype image id of an
/// uploaded file. It is never rendered and never taken from a client.
pub const FILE_FIELD: &str = "_tintype_image_id";

/// The record scope of a collection's documents.
pub fn scope_of(collection: &str) -> String {
    format!("popit.{collection}")
}

pub fn collection(name: &str) -> PopitResult<&'static str> {
    COLLECTIONS
        .iter()
        .find(|c| **c == name)
        .copied()
        .ok_or_else(|| PopitError::collection_not_found(name))
}

/// A new id: 24 lowercase hex digits, like a MongoDB ObjectId (a seconds
/// timestamp followed by random bytes, so ids sort roughly by creation).
pub fn new_id() -> String {
    let secs = chrono::Utc::now().timestamp().clamp(0, u32::MAX as i64) as u32;
    let tail: [u8; 8] = rand::random();
    let mut s = format!("{secs:08x}");
    for b in tail {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Ids end up in URL paths: 1..=128 characters of letters, digits, '-',
/// '_' and '.'.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s != "."
        && s != ".."
}

/// Parses a JSON body. A body that fails only because commas are missing
/// between members or elements (as in one of PopIt's published examples)
/// is repaired; anything else is refused.
pub fn parse_json(bytes: &[u8]) -> PopitResult<Value> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(first) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| PopitError::bad_request("the body is not UTF-8 JSON"))?;
            let repaired = insert_missing_commas(text);
            serde_json::from_str::<Value>(&repaired)
                .map_err(|_| PopitError::bad_request(format!("invalid JSON body: {first}")))
        }
    }
}

/// Inserts a comma wherever a value ends and another value starts with
/// only whitespace between them (outside strings). A key is followed by
/// ':' and so never gets one.
fn insert_missing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_string = false;
    let mut escaped = false;
    // Whether the last significant thing written ended a value.
    let mut after_value = false;
    // Inside a bare token (number, true, false, null).
    let mut in_bare = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                after_value = true;
            }
            continue;
        }
        let starts_value = c == '"' || c == '{' || c == '[' || c == '-' || c.is_ascii_digit();
        let bare_start = c.is_ascii_alphabetic() || c == '-' || c.is_ascii_digit();
        if in_bare {
            if c.is_ascii_alphanumeric() || "+-.".contains(c) {
                out.push(c);
                continue;
            }
            in_bare = false;
            after_value = true;
        }
        if c.is_whitespace() {
            out.push(c);
            continue;
        }
        if after_value && (starts_value || bare_start) {
            out.push(',');
        }
        out.push(c);
        match c {
            '"' => {
                in_string = true;
                after_value = false;
            }
            '}' | ']' => after_value = true,
            _ if bare_start => {
                in_bare = true;
                after_value = false;
            }
            _ => after_value = false,
        }
    }
    out
}

/// What a PUT or POST of a document changed about its uploaded files.
pub struct Prepared {
    pub doc: Map<String, Value>,
    /// tintype images no longer referenced by the document.
    pub released: Vec<String>,
}

/// The `_id` of an entry, as stored.
pub fn entry_id(entry: &Value) -> Option<&str> {
    entry.get("_id").and_then(Value::as_str)
}

/// The tintype image behind an uploaded entry.
pub fn entry_file(entry: &Value) -> Option<&str> {
    entry.get(FILE_FIELD).and_then(Value::as_str)
}

pub fn images_of(doc: &Map<String, Value>) -> Vec<Value> {
    match doc.get("images") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

/// Every uploaded file a stored document references.
pub fn files_of(doc: &Map<String, Value>) -> Vec<String> {
    images_of(doc)
        .iter()
        .filter_map(|e| entry_file(e).map(str::to_string))
        .collect()
}

/// Turns a client's document into the stored one. `id` is the document's
/// id; `old` the stored document it replaces, if any.
pub fn prepare(
    mut body: Map<String, Value>,
    id: &str,
    old: Option<&Map<String, Value>>,
) -> PopitResult<Prepared> {
    body.remove("apikey");
    body.insert("id".into(), Value::String(id.to_string()));
    let image = body.remove("image");
    let images = body.remove("images");
    let entries: Option<Vec<Value>> = match (images, image) {
        (Some(Value::Array(a)), _) => Some(a),
        (Some(Value::Null), _) => Some(Vec::new()),
        (Some(_), _) => return Err(PopitError::bad_request("images must be an array")),
        (None, Some(Value::String(url))) if !url.is_empty() => {
            let mut e = Map::new();
            e.insert("url".into(), Value::String(url));
            Some(vec![Value::Object(e)])
        }
        (None, Some(Value::Null)) => Some(Vec::new()),
        (None, Some(Value::String(_))) => Some(Vec::new()),
        (None, Some(_)) => return Err(PopitError::bad_request("image must be a URL string")),
        (None, None) => None,
    };
    let old_entries = old.map(images_of).unwrap_or_default();
    let mut kept_files: HashSet<String> = HashSet::new();
    if let Some(entries) = entries {
        let mut seen: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(entries.len());
        for (i, raw) in entries.into_iter().enumerate() {
            let mut e = match raw {
                Value::Object(m) => m,
                Value::String(url) => {
                    let mut m = Map::new();
                    m.insert("url".into(), Value::String(url));
                    m
                }
                _ => {
                    return Err(PopitError::bad_request(format!(
                        "images[{i}] must be an object"
                    )))
                }
            };
            e.remove(FILE_FIELD);
            let given = match (e.remove("_id"), e.remove("id")) {
                (Some(v), _) | (None, Some(v)) => match v {
                    Value::String(s) if valid_id(&s) => Some(s),
                    Value::Null => None,
                    _ => {
                        return Err(PopitError::bad_request(format!(
                        "images[{i}]._id must be 1-{MAX_ID_LEN} letters, digits, '-', '_' or '.'"
                    )))
                    }
                },
                (None, None) => None,
            };
            let iid = given.unwrap_or_else(new_id);
            if !seen.insert(iid.clone()) {
                return Err(PopitError::bad_request(format!(
                    "images[{i}]._id '{iid}' appears twice"
                )));
            }
            if let Some(prev) = old_entries.iter().find(|o| entry_id(o) == Some(&iid)) {
                if let Some(file) = entry_file(prev) {
                    // An uploaded file keeps its URL; what the client sent
                    // as `url` is the rendered one.
                    e.remove("url");
                    for k in ["created", "mime_type"] {
                        if !e.contains_key(k) {
                            if let Some(v) = prev.get(k) {
                                e.insert(k.into(), v.clone());
                            }
                        }
                    }
                    e.insert(FILE_FIELD.into(), Value::String(file.to_string()));
                    kept_files.insert(file.to_string());
                }
            }
            e.insert("_id".into(), Value::String(iid));
            out.push(Value::Object(e));
        }
        if out.is_empty() {
            body.insert("image".into(), Value::Null);
        }
        body.insert("images".into(), Value::Array(out));
    }
    let released = old_entries
        .iter()
        .filter_map(entry_file)
        .filter(|f| !kept_files.contains(*f))
        .map(str::to_string)
        .collect();
    Ok(Prepared {
        doc: body,
        released,
    })
}

/// The URL at which an uploaded file is served, relative to the public
/// base.
pub fn file_path(collection: &str, doc_id: &str, image_id: &str) -> String {
    format!("/{collection}/{doc_id}/image/{image_id}")
}

/// A stored document as clients see it: uploaded entries get their URL,
/// the hidden field goes, and `image` is the first entry's URL.
pub fn render(public_url: &str, collection: &str, doc: &Map<String, Value>) -> Value {
    let mut out = doc.clone();
    let doc_id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(Value::Array(entries)) = out.get_mut("images") {
        for e in entries.iter_mut() {
            if let Value::Object(m) = e {
                if m.remove(FILE_FIELD).is_some() {
                    let iid = m
                        .get("_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    m.insert(
                        "url".into(),
                        Value::String(format!(
                            "{public_url}{}",
                            file_path(collection, &doc_id, &iid)
                        )),
                    );
                }
            }
        }
        if let Some(first) = entries.first() {
            let url = first.get("url").cloned().unwrap_or(Value::Null);
            out.insert("image".into(), url);
        } else {
            out.insert("image".into(), Value::Null);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn missing_commas_are_repaired() {
        let v = parse_json(
            br#"{ "name": "Joe Bloggs"
              "images": [ { "url": "u" "n": 1 } {"a": true} ] "x": null "y": -1.5e3 }"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"name": "Joe Bloggs", "images": [{"url": "u", "n": 1}, {"a": true}], "x": null, "y": -1500.0})
        );
    }

    #[test]
    fn broken_json_stays_broken() {
        assert!(parse_json(br#"{"a": }"#).is_err());
        assert!(parse_json(br#"{"a" "b"}"#).is_err());
        assert!(parse_json(b"[1, 2").is_err());
    }

    #[test]
    fn strings_with_quotes_are_not_touched() {
        let v = parse_json(br#"{"a": "x \" y" "b": "}{"}"#).unwrap();
        assert_eq!(v, json!({"a": "x \" y", "b": "}{"}));
    }

    #[test]
    fn image_alone_becomes_an_entry() {
        let p = prepare(
            obj(json!({"name": "J", "image": "http://e/i.jpg"})),
            "d1",
            None,
        )
        .unwrap();
        let out = render("http://h", "persons", &p.doc);
        assert_eq!(out["image"], "http://e/i.jpg");
        assert_eq!(out["images"][0]["url"], "http://e/i.jpg");
        assert_eq!(out["images"][0]["_id"].as_str().map(str::len), Some(24));
        assert_eq!(out["id"], "d1");
    }

    #[test]
    fn files_follow_their_id_and_dropped_ones_are_released() {
        let old = obj(json!({"id": "d", "images": [
            {"_id": "a", FILE_FIELD: "img-a", "created": "t", "mime_type": "image/png"},
            {"_id": "b", FILE_FIELD: "img-b"},
        ]}));
        let p = prepare(
            obj(json!({"images": [{"id": "a", "url": "http://h/persons/d/image/a", "notes": "n"}, {"url": "http://x"}], "apikey": "k"})),
            "d",
            Some(&old),
        )
        .unwrap();
        assert_eq!(p.released, vec!["img-b".to_string()]);
        assert!(!p.doc.contains_key("apikey"));
        let out = render("http://h", "persons", &p.doc);
        assert_eq!(out["image"], "http://h/persons/d/image/a");
        assert_eq!(out["images"][0]["mime_type"], "image/png");
        assert_eq!(out["images"][0]["notes"], "n");
        assert!(out["images"][0].get(FILE_FIELD).is_none());
        assert_eq!(out["images"][1]["url"], "http://x");
    }

    #[test]
    fn clients_cannot_claim_files() {
        let p = prepare(
            obj(json!({"images": [{"url": "u", FILE_FIELD: "someone-elses"}]})),
            "d",
            None,
        )
        .unwrap();
        assert!(files_of(&p.doc).is_empty());
    }

    #[test]
    fn bad_images_are_refused() {
        assert!(prepare(obj(json!({"images": 3})), "d", None).is_err());
        assert!(prepare(obj(json!({"images": [1]})), "d", None).is_err());
        assert!(prepare(obj(json!({"images": [{"_id": "a/b"}]})), "d", None).is_err());
        assert!(prepare(
            obj(json!({"images": [{"_id": "a"}, {"_id": "a"}]})),
            "d",
            None
        )
        .is_err());
        assert!(prepare(obj(json!({"image": 5})), "d", None).is_err());
    }

    #[test]
    fn ids_look_like_object_ids() {
        let id = new_id();
        assert_eq!(id.len(), 24);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert!(valid_id("50d1f2e1c03858f9f6000006"));
        assert!(!valid_id(".."));
        assert!(!valid_id("a b"));
    }
}
