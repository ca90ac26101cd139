//! The Fulcrum JSON shapes: the photo, a version of it, and the list page.

use chrono::SecondsFormat;
use serde_json::{json, Value};
use tintype_engine::core::{Image, Record, Timestamp, Variant};
use tintype_http::AppState;

/// The record scope that maps access keys to images.
pub const SCOPE: &str = "fulcrum.photo";

/// The versions a photo has, with the preset that renders each.
pub const VERSIONS: [(&str, &str); 2] = [("thumbnail", "thumbnail"), ("large", "large1080")];

pub fn preset_of(version: &str) -> Option<&'static str> {
    VERSIONS
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, p)| *p)
}

/// Photos are kept per user: the same access key may be used by two users.
pub fn record_key(user_id: i64, access_key: &str) -> String {
    format!("{user_id}:{access_key}")
}

/// ISO 8601 in UTC with a `Z`, to the second, as Fulcrum writes it.
pub fn timestamp(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What the dialect keeps beside the image (the record's `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoData {
    pub access_key: String,
    pub record_id: Option<String>,
    pub form_id: Option<String>,
    pub created_by_id: String,
    pub created_by: String,
}

impl PhotoData {
    pub fn to_json(&self) -> Value {
        json!({
            "access_key": self.access_key,
            "record_id": self.record_id,
            "form_id": self.form_id,
            "created_by_id": self.created_by_id,
            "created_by": self.created_by,
        })
    }

    pub fn from_json(v: &Value) -> PhotoData {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        PhotoData {
            access_key: s("access_key").unwrap_or_default(),
            record_id: s("record_id"),
            form_id: s("form_id"),
            created_by_id: s("created_by_id").unwrap_or_default(),
            created_by: s("created_by").unwrap_or_default(),
        }
    }
}

fn photo_path(access_key: &str) -> String {
    format!("/api/v2/photos/{access_key}")
}

/// The photo object (without the `{"photo": …}` wrapper).
pub fn photo(state: &AppState, record: &Record, image: &Image) -> Value {
    let data = PhotoData::from_json(&record.data);
    let key = &data.access_key;
    let base = photo_path(key);
    let updated_at = [
        Some(record.updated_at),
        Some(image.updated_at),
        image.processed_at,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(record.updated_at);
    let exif = image.content.exif.clone().unwrap_or_default();
    json!({
        "access_key": key,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(updated_at),
        "created_by": data.created_by,
        "created_by_id": data.created_by_id,
        // Photos are never changed after upload: the last to touch one made it.
        "updated_by": data.created_by,
        "updated_by_id": data.created_by_id,
        // The record is written only after the bytes are committed, so a
        // photo that can be seen is both uploaded and stored.
        "uploaded": true,
        "stored": true,
        "processed": image.processed_at.is_some(),
        "record_id": data.record_id,
        "form_id": data.form_id,
        "file_size": image.content.size,
        "content_type": image.content.content_type,
        "latitude": image.content.latitude,
        "longitude": image.content.longitude,
        "url": state.url(&base),
        "thumbnail": state.url(&format!("{base}/thumbnail.jpg")),
        "large": state.url(&format!("{base}/large.jpg")),
        "original": state.url(&format!("{base}.jpg")),
        "exif": Value::Object(exif),
    })
}

/// The metadata of one version of a photo.
pub fn version(state: &AppState, access_key: &str, version: &str, v: &Variant) -> Value {
    json!({
        "photo": {
            "access_key": access_key,
            "version": version,
            "url": state.url(&format!("{}/{version}.jpg", photo_path(access_key))),
            "content_type": v.content_type,
            "width": v.width,
            "height": v.height,
            "file_size": v.size,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_seconds_with_z() {
        let t = tintype_engine::core::from_millis(1_433_607_400_123);
        assert_eq!(timestamp(t), "2015-06-06T16:16:40Z");
    }

    #[test]
    fn data_round_trips() {
        let d = PhotoData {
            access_key: "k".into(),
            record_id: Some("r".into()),
            form_id: None,
            created_by_id: "7".into(),
            created_by: "alice".into(),
        };
        assert_eq!(PhotoData::from_json(&d.to_json()), d);
    }

    #[test]
    fn versions_map_to_presets() {
        assert_eq!(preset_of("thumbnail"), Some("thumbnail"));
        assert_eq!(preset_of("large"), Some("large1080"));
        assert_eq!(preset_of("original"), None);
    }
}
