//! The import request: parsed from JSON by hand so that every problem is
//! reported with its JSON path, all at once, in the public-API envelope.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest `systemName` and image `id`.
pub const MAX_ID_LEN: usize = 256;
/// Longest `fileName`.
pub const MAX_TITLE_LEN: usize = 1024;
/// Longest image URL.
pub const MAX_URL_LEN: usize = 4096;
/// Largest serialized `context`, as the original documents.
pub const MAX_CONTEXT_BYTES: usize = 8192;
/// Largest serialized `metadata` of one image.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// One image of a batch, as validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSpec {
    pub url: String,
    #[serde(rename = "externalId")]
    pub external_id: String,
    pub title: Option<String>,
    pub metadata: Map<String, Value>,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// A validated import request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRequest {
    pub system_name: String,
    pub webhook: Option<String>,
    pub context: Option<Map<String, Value>>,
    pub images: Vec<ItemSpec>,
}

fn http_url(s: &str) -> Result<(), &'static str> {
    if s.len() > MAX_URL_LEN {
        return Err("must be at most 4096 characters");
    }
    if s.trim_start().to_ascii_lowercase().starts_with("data:") {
        return Err("data URLs are not allowed");
    }
    match url::Url::parse(s) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        _ => Err("must be an http or https URL"),
    }
}

fn id_like(v: Option<&Value>, errors: &mut Map<String, Value>, path: &str) -> Option<String> {
    match v {
        None | Some(Value::Null) => {
            errors.insert(path.into(), "is required".into());
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.insert(path.into(), "must not be empty".into());
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_ID_LEN => {
            errors.insert(
                path.into(),
                format!("must be at most {MAX_ID_LEN} characters").into(),
            );
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.insert(path.into(), "must be a string".into());
            None
        }
    }
}

/// Validates the whole request; on failure, one message per JSON path.
pub fn parse(body: &Value, max_images: usize) -> Result<ImportRequest, Map<String, Value>> {
    let mut errors = Map::new();
    let Some(obj) = body.as_object() else {
        errors.insert("body".into(), "must be a JSON object".into());
        return Err(errors);
    };
    let system_name = id_like(obj.get("systemName"), &mut errors, "systemName");

    let webhook = match obj.get("webhook") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match http_url(s) {
            Ok(()) => Some(s.clone()),
            Err(m) => {
                errors.insert("webhook".into(), m.into());
                None
            }
        },
        Some(_) => {
            errors.insert("webhook".into(), "must be an http or https URL".into());
            None
        }
    };

    let context = match obj.get("context") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => {
            if Value::Object(m.clone()).to_string().len() > MAX_CONTEXT_BYTES {
                errors.insert(
                    "context".into(),
                    format!("must be at most {MAX_CONTEXT_BYTES} bytes").into(),
                );
                None
            } else {
                Some(m.clone())
            }
        }
        Some(_) => {
            errors.insert("context".into(), "must be an object".into());
            None
        }
    };

    let mut images = Vec::new();
    match obj.get("images") {
        None | Some(Value::Null) => {
            errors.insert("images".into(), "is required".into());
        }
        Some(Value::Array(list)) if list.is_empty() => {
            errors.insert("images".into(), "must contain at least one image".into());
        }
        Some(Value::Array(list)) if list.len() > max_images => {
            errors.insert(
                "images".into(),
                format!("must contain at most {max_images} images").into(),
            );
        }
        Some(Value::Array(list)) => {
            let mut seen = std::collections::HashSet::new();
            for (i, item) in list.iter().enumerate() {
                let p = |k: &str| format!("images[{i}].{k}");
                let Some(o) = item.as_object() else {
                    errors.insert(format!("images[{i}]"), "must be an object".into());
                    continue;
                };
                let url = match o.get("url") {
                    None | Some(Value::Null) => {
                        errors.insert(p("url"), "is required".into());
                        None
                    }
                    Some(Value::String(s)) => match http_url(s) {
                        Ok(()) => Some(s.clone()),
                        Err(m) => {
                            errors.insert(p("url"), m.into());
                            None
                        }
                    },
                    Some(_) => {
                        errors.insert(p("url"), "must be an http or https URL".into());
                        None
                    }
                };
                let id = id_like(o.get("id"), &mut errors, &p("id"));
                if let Some(id) = &id {
                    if !seen.insert(id.clone()) {
                        errors.insert(p("id"), "must be unique within the batch".into());
                    }
                }
                let title = match o.get("fileName") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.chars().count() > MAX_TITLE_LEN => {
                        errors.insert(
                            p("fileName"),
                            format!("must be at most {MAX_TITLE_LEN} characters").into(),
                        );
                        None
                    }
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => {
                        errors.insert(p("fileName"), "must be a string".into());
                        None
                    }
                };
                let metadata = match o.get("metadata") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(m)) => {
                        if Value::Object(m.clone()).to_string().len() > MAX_METADATA_BYTES {
                            errors.insert(
                                p("metadata"),
                                format!("must be at most {MAX_METADATA_BYTES} bytes").into(),
                            );
                        }
                        m.clone()
                    }
                    Some(_) => {
                        errors.insert(p("metadata"), "must be an object".into());
                        Map::new()
                    }
                };
                let media_type = match o.get("mediaType") {
                    None | Some(Value::Null) => "image".to_string(),
                    Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_LEN => s.clone(),
                    Some(_) => {
                        errors.insert(p("mediaType"), "must be a media type handle".into());
                        String::new()
                    }
                };
                if let (Some(url), Some(external_id)) = (url, id) {
                    images.push(ItemSpec {
                        url,
                        external_id,
                        title,
                        metadata,
                        media_type,
                    });
                }
            }
        }
        Some(_) => {
            errors.insert("images".into(), "must be an array".into());
        }
    }

    match (errors.is_empty(), system_name) {
        (true, Some(system_name)) => Ok(ImportRequest {
            system_name,
            webhook,
            context,
            images,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_request_parses() {
        let r = parse(
            &json!({"systemName":"arch","webhook":"https://example.com/h","context":{"a":1},
                    "images":[{"url":"https://example.com/a.png","id":"1","fileName":"A","metadata":{"caption":"c"}}]}),
            10,
        )
        .expect("valid");
        assert_eq!(r.system_name, "arch");
        assert_eq!(r.images[0].external_id, "1");
        assert_eq!(r.images[0].title.as_deref(), Some("A"));
        assert_eq!(r.images[0].media_type, "image");
        assert_eq!(r.context, json!({"a":1}).as_object().cloned());
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let e = parse(
            &json!({"webhook":"ftp://x","context":"no",
                    "images":[{"url":"data:image/png;base64,AAAA","id":"1"},
                              {"url":"file:///etc/passwd","id":"1"},
                              {"id":""}, 7]}),
            10,
        )
        .expect_err("invalid");
        assert_eq!(e["systemName"], "is required");
        assert_eq!(e["webhook"], "must be an http or https URL");
        assert_eq!(e["context"], "must be an object");
        assert_eq!(e["images[0].url"], "data URLs are not allowed");
        assert_eq!(e["images[1].url"], "must be an http or https URL");
        assert_eq!(e["images[1].id"], "must be unique within the batch");
        assert_eq!(e["images[2].url"], "is required");
        assert_eq!(e["images[2].id"], "must not be empty");
        assert_eq!(e["images[3]"], "must be an object");
    }

    #[test]
    fn limits_are_enforced() {
        let big = "x".repeat(MAX_CONTEXT_BYTES);
        let e = parse(
            &json!({"systemName":"s","context":{"k":big},"images":[]}),
            10,
        )
        .expect_err("invalid");
        assert_eq!(e["context"], "must be at most 8192 bytes");
        assert_eq!(e["images"], "must contain at least one image");
        let many: Vec<Value> = (0..3)
            .map(|i| json!({"url":"http://example.com/x","id":i.to_string()}))
            .collect();
        let e = parse(&json!({"systemName":"s","images":many}), 2).expect_err("invalid");
        assert_eq!(e["images"], "must contain at most 2 images");
    }
}
