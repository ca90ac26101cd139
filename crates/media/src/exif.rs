//! EXIF: every tag of the primary image as structured JSON, plus orientation and GPS.
//!
//! Corrupt or hostile EXIF never fails a probe: what can be read is reported.

use exif::{Field, In, Rational, Reader, SRational, Tag, Value};
use serde_json::{Map, Number, Value as Json};

/// Largest EXIF block read from a PNG or WebP chunk (JPEG APP1 is 64 KiB at most).
pub const MAX_EXIF_BYTES: u64 = 1024 * 1024;

/// Most fields reported, whatever the block declares.
const MAX_FIELDS: usize = 1000;

/// Undefined-typed values longer than this are left out (maker notes and the like).
const MAX_UNDEFINED_LEN: usize = 64;

/// Most IFD entries walked in one block, all IFDs together.
const MAX_ENTRIES: usize = 4096;

/// Most IFDs walked in one block (IFD0, IFD1, Exif, GPS, Interop and a few more).
const MAX_IFDS: usize = 16;

/// Checks the TIFF structure before the EXIF reader sees it: every IFD is
/// walked once (a loop of IFDs ends the walk), entries and IFDs are counted,
/// and the values the entries point at may not add up to more than twice
/// the block. Without that, a 1 MiB block of entries that all point at the
/// same megabyte would be read as thousands of megabyte-long values.
pub fn check_structure(tiff: &[u8]) -> Result<(), String> {
    let u16_at = |le: bool, at: usize| {
        tiff.get(at..at + 2).map(|b| {
            let b = [b[0], b[1]];
            if le {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            }
        })
    };
    let u32_at = |le: bool, at: usize| {
        tiff.get(at..at + 4).map(|b| {
            let b = [b[0], b[1], b[2], b[3]];
            if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        })
    };
    let le = match tiff.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Err("no TIFF byte order mark".into()),
    };
    if u16_at(le, 2) != Some(42) {
        return Err("no TIFF magic number".into());
    }
    let first = u32_at(le, 4).ok_or("truncated TIFF header")?;
    let mut pending: Vec<u32> = vec![first];
    let mut seen: Vec<u32> = Vec::new();
    let mut entries = 0usize;
    let mut value_bytes = 0u64;
    let budget = (tiff.len() as u64).saturating_mul(2);
    while let Some(offset) = pending.pop() {
        if offset == 0 || seen.contains(&offset) {
            continue;
        }
        if seen.len() >= MAX_IFDS {
            return Err(format!("more than {MAX_IFDS} IFDs"));
        }
        seen.push(offset);
        let at = offset as usize;
        let Some(count) = u16_at(le, at) else {
            continue;
        };
        for k in 0..usize::from(count) {
            let e = at + 2 + 12 * k;
            let (Some(tag), Some(typ), Some(n)) =
                (u16_at(le, e), u16_at(le, e + 2), u32_at(le, e + 4))
            else {
                break;
            };
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(format!("more than {MAX_ENTRIES} entries"));
            }
            let unit: u64 = match typ {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 | 13 => 4,
                5 | 10 | 12 => 8,
                _ => 0,
            };
            let len = unit.saturating_mul(u64::from(n));
            if len > 4 {
                value_bytes = value_bytes.saturating_add(len);
                if value_bytes > budget {
                    return Err("entries point at more data than the block has".into());
                }
            }
            // Exif, GPS and Interop IFD pointers.
            if matches!(tag, 0x8769 | 0x8825 | 0xA005) {
                if let Some(child) = u32_at(le, e + 8) {
                    pending.push(child);
                }
            }
        }
        if let Some(next) = u32_at(le, at + 2 + 12 * usize::from(count)) {
            pending.push(next);
        }
    }
    Ok(())
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExifFacts {
    pub map: Map<String, Json>,
    pub orientation: Option<u16>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// Reads a TIFF-structured EXIF block (without the `Exif\0\0` prefix).
/// `None` when nothing at all can be read.
pub fn read(tiff: Vec<u8>) -> Option<ExifFacts> {
    let tiff = match tiff.strip_prefix(b"Exif\0\0") {
        Some(rest) => rest.to_vec(),
        None => tiff,
    };
    if let Err(why) = check_structure(&tiff) {
        tracing::debug!("EXIF ignored: {why}");
        return None;
    }
    let parsed = Reader::new()
        .continue_on_error(true)
        .read_raw(tiff)
        .or_else(|e| e.distill_partial_result(|_| {}));
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("EXIF ignored: {e}");
            return None;
        }
    };
    let mut facts = ExifFacts::default();
    let primary: Vec<&Field> = parsed
        .fields()
        .filter(|f| f.ifd_num == In::PRIMARY)
        .take(MAX_FIELDS)
        .collect();
    let find = |tag: Tag| primary.iter().find(|f| f.tag == tag).map(|f| &f.value);
    for field in &primary {
        let Some(key) = key_for(field.tag) else {
            continue;
        };
        if let Some(value) = json_for(field, &find) {
            facts.map.insert(key, value);
        }
    }
    facts.orientation = find(Tag::Orientation)
        .and_then(|v| v.get_uint(0))
        .and_then(|o| u16::try_from(o).ok())
        .filter(|o| (1..=8).contains(o));
    facts.latitude = coordinate(
        find(Tag::GPSLatitude),
        find(Tag::GPSLatitudeRef),
        90.0,
        b'S',
    );
    facts.longitude = coordinate(
        find(Tag::GPSLongitude),
        find(Tag::GPSLongitudeRef),
        180.0,
        b'W',
    );
    Some(facts)
}

/// The snake_case key for a tag, `None` for tags unknown to the reader and maker notes.
fn key_for(tag: Tag) -> Option<String> {
    let fixed = match tag {
        Tag::MakerNote => return None,
        Tag::PhotographicSensitivity => "iso_speed_ratings",
        Tag::SubSecTime => "subsec_time",
        Tag::SubSecTimeOriginal => "subsec_time_original",
        Tag::SubSecTimeDigitized => "subsec_time_digitized",
        Tag::YCbCrPositioning => "ycb_cr_positioning",
        Tag::YCbCrSubSampling => "ycb_cr_sub_sampling",
        Tag::YCbCrCoefficients => "ycb_cr_coefficients",
        Tag::GPSDOP => "gps_dop",
        _ => "",
    };
    if !fixed.is_empty() {
        return Some(fixed.to_string());
    }
    // The reader names a tag it does not know "Tag(Context, number)".
    let name = tag.to_string();
    if name.contains('(') {
        return None;
    }
    Some(snake_case(&name))
}

/// "FocalLengthIn35mmFilm" -> "focal_length_in_35mm_film", "GPSLatitude" -> "gps_latitude".
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
        let next = chars.get(i + 1).copied();
        let boundary = match prev {
            None => false,
            Some(p) if c.is_ascii_uppercase() => {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            }
            Some(p) if c.is_ascii_digit() => p.is_ascii_lowercase(),
            Some(_) => false,
        };
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn decimal(v: f64) -> Json {
    if v.is_finite() {
        Json::String(format!("{v:?}"))
    } else {
        Json::Null
    }
}

fn rational(r: &Rational) -> Json {
    if r.denom == 0 {
        Json::Null
    } else {
        decimal(f64::from(r.num) / f64::from(r.denom))
    }
}

fn srational(r: &SRational) -> Json {
    if r.denom == 0 {
        Json::Null
    } else {
        decimal(f64::from(r.num) / f64::from(r.denom))
    }
}

/// One value as a scalar, several as an array.
fn one_or_many<T>(items: &[T], each: impl Fn(&T) -> Json) -> Option<Json> {
    match items {
        [] => None,
        [one] => Some(each(one)),
        many => Some(Json::Array(many.iter().map(each).collect())),
    }
}

fn ascii_text(strings: &[Vec<u8>]) -> Option<String> {
    let first = strings.first()?;
    let text = String::from_utf8_lossy(first);
    Some(text.trim_end_matches(['\0', ' ']).to_string())
}

/// "2015:06:06 12:00:08" and an optional "+02:00" -> "2015-06-06T12:00:08.000+02:00".
fn iso_date(text: &str, offset: Option<&str>) -> Option<String> {
    let naive = chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y:%m:%d %H:%M:%S").ok()?;
    let offset = offset
        .and_then(|o| o.trim().parse::<chrono::FixedOffset>().ok())
        .or_else(|| chrono::FixedOffset::east_opt(0))?;
    let local = naive.and_local_timezone(offset).single()?;
    Some(local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string())
}

fn json_for<'a>(field: &Field, find: &impl Fn(Tag) -> Option<&'a Value>) -> Option<Json> {
    let date_offset = |offset_tag: Tag| {
        find(offset_tag).and_then(|v| match v {
            Value::Ascii(s) => ascii_text(s),
            _ => None,
        })
    };
    match (&field.tag, &field.value) {
        (&Tag::DateTime, Value::Ascii(s)) => date_json(s, date_offset(Tag::OffsetTime).as_deref()),
        (&Tag::DateTimeOriginal, Value::Ascii(s)) => {
            date_json(s, date_offset(Tag::OffsetTimeOriginal).as_deref())
        }
        (&Tag::DateTimeDigitized, Value::Ascii(s)) => {
            date_json(s, date_offset(Tag::OffsetTimeDigitized).as_deref())
        }
        // APEX values given in the usual units: seconds and f-number.
        (&Tag::ShutterSpeedValue, Value::SRational(r)) => {
            let r = r.first().filter(|r| r.denom != 0)?;
            let apex = f64::from(r.num) / f64::from(r.denom);
            Some(decimal(1.0 / apex.exp2()))
        }
        (&Tag::ApertureValue, Value::Rational(r)) => {
            let r = r.first().filter(|r| r.denom != 0)?;
            let apex = f64::from(r.num) / f64::from(r.denom);
            Some(decimal(((apex / 2.0).exp2() * 10.0).round() / 10.0))
        }
        (&Tag::GPSAltitudeRef, Value::Byte(b)) => {
            b.first().map(|&b| Json::String(char::from(b).to_string()))
        }
        (&Tag::UserComment, Value::Undefined(bytes, _)) => {
            let text = bytes.get(8..).unwrap_or_default();
            let text = String::from_utf8_lossy(text);
            Some(Json::String(text.trim_end_matches(['\0', ' ']).to_string()))
        }
        (_, value) => plain(value),
    }
}

fn date_json(s: &[Vec<u8>], offset: Option<&str>) -> Option<Json> {
    let text = ascii_text(s)?;
    Some(Json::String(iso_date(&text, offset).unwrap_or(text)))
}

fn plain(value: &Value) -> Option<Json> {
    let num = |n: i64| Json::Number(Number::from(n));
    let float = |f: f64| Number::from_f64(f).map_or(Json::Null, Json::Number);
    match value {
        Value::Byte(v) => one_or_many(v, |&x| num(x.into())),
        Value::SByte(v) => one_or_many(v, |&x| num(x.into())),
        Value::Short(v) => one_or_many(v, |&x| num(x.into())),
        Value::SShort(v) => one_or_many(v, |&x| num(x.into())),
        Value::Long(v) => one_or_many(v, |&x| num(x.into())),
        Value::SLong(v) => one_or_many(v, |&x| num(x.into())),
        Value::Rational(v) => one_or_many(v, rational),
        Value::SRational(v) => one_or_many(v, srational),
        Value::Float(v) => one_or_many(v, |&x| float(x.into())),
        Value::Double(v) => one_or_many(v, |&x| float(x)),
        Value::Ascii(s) => ascii_text(s).map(Json::String),
        Value::Undefined(bytes, _) => {
            if bytes.len() > MAX_UNDEFINED_LEN {
                None
            } else if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
            {
                Some(Json::String(String::from_utf8_lossy(bytes).into_owned()))
            } else {
                one_or_many(bytes, |&x| num(x.into()))
            }
        }
        Value::Unknown(..) => None,
    }
}

/// Degrees, minutes, seconds and a reference letter -> signed decimal degrees.
fn coordinate(
    dms: Option<&Value>,
    reference: Option<&Value>,
    max: f64,
    negative: u8,
) -> Option<f64> {
    let Some(Value::Rational(parts)) = dms else {
        return None;
    };
    let mut total = 0.0;
    for (part, divisor) in parts.iter().zip([1.0, 60.0, 3600.0]) {
        if part.denom == 0 {
            return None;
        }
        total += f64::from(part.num) / f64::from(part.denom) / divisor;
    }
    if parts.is_empty() || !total.is_finite() || total > max {
        return None;
    }
    let is_negative = match reference {
        Some(Value::Ascii(s)) => s
            .first()
            .and_then(|s| s.first())
            .is_some_and(|c| c.eq_ignore_ascii_case(&negative)),
        _ => false,
    };
    Some(if is_negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_the_usual_keys() {
        for (name, key) in [
            ("Make", "make"),
            ("XResolution", "x_resolution"),
            ("FNumber", "f_number"),
            ("GPSLatitudeRef", "gps_latitude_ref"),
            ("PixelXDimension", "pixel_x_dimension"),
            ("FocalLengthIn35mmFilm", "focal_length_in_35mm_film"),
            ("ImageUniqueID", "image_unique_id"),
            ("DateTimeOriginal", "date_time_original"),
            ("ExposureBiasValue", "exposure_bias_value"),
        ] {
            assert_eq!(snake_case(name), key);
        }
        assert_eq!(
            key_for(Tag::YCbCrPositioning).as_deref(),
            Some("ycb_cr_positioning")
        );
        assert_eq!(
            key_for(Tag::PhotographicSensitivity).as_deref(),
            Some("iso_speed_ratings")
        );
        assert_eq!(key_for(Tag::MakerNote), None);
    }

    #[test]
    fn dates_become_iso() {
        assert_eq!(
            iso_date("2015:06:06 12:00:08", None).as_deref(),
            Some("2015-06-06T12:00:08.000+00:00")
        );
        assert_eq!(
            iso_date("2015:06:06 12:00:08", Some("-05:00")).as_deref(),
            Some("2015-06-06T12:00:08.000-05:00")
        );
        assert_eq!(iso_date("    :  :     :  :  ", None), None);
    }

    #[test]
    fn garbage_is_no_exif() {
        assert_eq!(read(b"not a tiff block at all".to_vec()), None);
        assert_eq!(read(Vec::new()), None);
    }
}
