//! The photo JSON of diaspora's API v1, and the small parsers of its
//! parameters.

use serde_json::{json, Value};
use tintype_engine::core::{Image, Timestamp};
use tintype_http::AppState;

/// The sizes a photo is served in: diaspora's three derived sizes (tintype
/// presets of the same names) and `raw`, the original.
pub(crate) const SIZES: [&str; 4] = ["small", "medium", "large", "raw"];

/// `2016-11-06T03:43:03.382Z`: UTC, milliseconds, `Z`.
pub(crate) fn time(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an ISO 8601 / RFC 3339 time into milliseconds since the epoch.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A guid as diaspora makes them (and tintype image ids are): 32 lowercase
/// hex digits.
pub(crate) fn is_guid(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Form booleans: `true`/`false`/`1`/`0`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The absolute URL a size of a photo is served at.
pub(crate) fn size_url(st: &AppState, guid: &str, size: &str) -> String {
    st.url(&format!("/api/v1/photos/{guid}/sizes/{size}"))
}

/// A photo as diaspora presents it. `post` is never present: tintype has
/// no posts to attach photos to.
pub(crate) fn photo_json(st: &AppState, image: &Image) -> Value {
    json!({
        "guid": image.id,
        "created_at": time(image.created_at),
        "dimensions": {
            "height": image.content.height.unwrap_or(0),
            "width": image.content.width.unwrap_or(0),
        },
        "sizes": {
            "large": size_url(st, &image.id, "large"),
            "medium": size_url(st, &image.id, "medium"),
            "small": size_url(st, &image.id, "small"),
            "raw": size_url(st, &image.id, "raw"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_32_lowercase_hex() {
        assert!(is_guid("0a992a10b9db0133e40e406c8f31e210"));
        assert!(!is_guid("0A992A10B9DB0133E40E406C8F31E210"));
        assert!(!is_guid("0a992a10b9db0133e40e406c8f31e21"));
        assert!(!is_guid("0a992a10b9db0133e40e406c8f31e21g"));
        assert!(!is_guid("../../../../etc/passwd0000000000"));
    }

    #[test]
    fn times_round_trip_with_milliseconds() {
        let ms = parse_time("2016-11-06T03:43:03.382Z");
        assert_eq!(ms, Some(1_478_403_783_382));
        let t = tintype_engine::core::from_millis(1_478_403_783_382);
        assert_eq!(time(t), "2016-11-06T03:43:03.382Z");
        assert_eq!(parse_time("2016-11-06T04:43:03.382+01:00"), ms);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("False"), Some(false));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
