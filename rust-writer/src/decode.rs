//! Kafka payload -> typed row, or the reason it is malformed. Pure and allocation-free on the
//! good path.
//!
//! A message is one UTF-8 JSON object:
//! `{"timestamp": "2026-11-23T19:14:44.123456Z", "session_id": 1, "device_id": 1,
//!   "patient_id": 1, "channel": 3, "voltage_uv": -12.5, "spike": false, "quality": 0.98}`
//!
//! Every field is first read as a [`Json`] scalar borrowed from the payload (serde_json with
//! `&str` borrowing, no `Value` tree, no `String`), then converted to its column type with a
//! check of its own. That two-step shape is what lets the dead-letter `reason` name the field
//! and the problem ("field 'channel': 70000 is out of range for int16") instead of serde's
//! generic "invalid type at line 1 column 57". Unknown fields are ignored, so producers can add
//! fields without breaking the writer.

use std::fmt;
use std::marker::PhantomData;

use chrono::DateTime;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One decoded signal sample: the columns that come from the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// Sample time, microseconds since the Unix epoch, UTC.
    pub timestamp_us: i64,
    pub session_id: i32,
    pub device_id: i32,
    pub patient_id: i32,
    pub channel: i16,
    pub voltage_uv: f32,
    pub spike: bool,
    pub quality: f32,
}

/// Microseconds in a day: `date` (the partition column) is `timestamp_us` floored to days.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Signal {
    /// The UTC date of the sample, as days since 1970-01-01 (Arrow `Date32`).
    pub fn date_days(&self) -> i32 {
        // i64 micros / day fits in i32 for any timestamp chrono accepts (+/- 262,000 years).
        self.timestamp_us.div_euclid(MICROS_PER_DAY) as i32
    }
}

/// A JSON value as it appears in the payload, borrowed where possible.
#[derive(Debug, Clone, PartialEq, Default)]
enum Json<'a> {
    /// The key is absent (serde's `default`); distinct from an explicit `null`.
    #[default]
    Missing,
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
    /// A string with escapes, which serde cannot borrow (rare: costs one allocation).
    OwnedStr(String),
    Array,
    Object,
}

impl Json<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Json::Missing => "missing",
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Int(_) | Json::UInt(_) | Json::Float(_) => "number",
            Json::Str(_) | Json::OwnedStr(_) => "string",
            Json::Array => "array",
            Json::Object => "object",
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor(PhantomData))
    }
}

/// Reads any JSON value; strings borrowed from the input live as long as the input (`'de`),
/// which outlives the decoded value (`'a`).
struct JsonVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Json::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::OwnedStr(v.to_string()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Json::Object)
    }
}

/// The payload's fields before type checks ([`Json::Missing`] when a key is absent).
#[derive(Deserialize)]
struct RawSignal<'a> {
    #[serde(borrow, default)]
    timestamp: Json<'a>,
    #[serde(borrow, default)]
    session_id: Json<'a>,
    #[serde(borrow, default)]
    device_id: Json<'a>,
    #[serde(borrow, default)]
    patient_id: Json<'a>,
    #[serde(borrow, default)]
    channel: Json<'a>,
    #[serde(borrow, default)]
    voltage_uv: Json<'a>,
    #[serde(borrow, default)]
    spike: Json<'a>,
    #[serde(borrow, default)]
    quality: Json<'a>,
}

/// Decode one payload. `Err` carries the dead-letter reason.
pub fn decode(payload: &[u8]) -> Result<Signal, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("payload is not UTF-8: {e}"))?;
    // serde's derive would also accept an array as a struct (fields by position): only an
    // object is a valid message.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => "payload is valid JSON but not an object".to_string(),
            Err(e) => format!("payload is not valid JSON: {e}"),
        });
    }
    let raw: RawSignal = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            format!("payload is not a valid JSON object: {e}")
        } else {
            format!("payload is not valid JSON: {e}")
        }
    })?;
    Ok(Signal {
        timestamp_us: timestamp("timestamp", raw.timestamp)?,
        session_id: int::<i32>("session_id", raw.session_id, "int32")?,
        device_id: int::<i32>("device_id", raw.device_id, "int32")?,
        patient_id: int::<i32>("patient_id", raw.patient_id, "int32")?,
        channel: int::<i16>("channel", raw.channel, "int16")?,
        voltage_uv: float32("voltage_uv", raw.voltage_uv)?,
        spike: boolean("spike", raw.spike)?,
        quality: float32("quality", raw.quality)?,
    })
}

/// The field, present and not null.
fn present<'a>(name: &str, value: Json<'a>) -> Result<Json<'a>, String> {
    match value {
        Json::Missing => Err(format!("field '{name}': missing")),
        Json::Null => Err(format!("field '{name}': null")),
        v => Ok(v),
    }
}

fn int<T: TryFrom<i64>>(name: &str, value: Json, type_name: &str) -> Result<T, String> {
    let v = present(name, value)?;
    let wide = match v {
        Json::Int(i) => i,
        Json::UInt(u) => i64::try_from(u)
            .map_err(|_| format!("field '{name}': {u} is out of range for {type_name}"))?,
        other => {
            return Err(format!(
                "field '{name}': expected an integer, got {}",
                other.kind()
            ));
        }
    };
    T::try_from(wide).map_err(|_| format!("field '{name}': {wide} is out of range for {type_name}"))
}

fn float32(name: &str, value: Json) -> Result<f32, String> {
    let wide = match present(name, value)? {
        Json::Float(f) => f,
        Json::Int(i) => i as f64,
        Json::UInt(u) => u as f64,
        other => {
            return Err(format!(
                "field '{name}': expected a number, got {}",
                other.kind()
            ));
        }
    };
    // JSON has no NaN/inf, so the only failure is magnitude.
    if wide.abs() > f32::MAX as f64 {
        return Err(format!(
            "field '{name}': {wide:e} is out of range for float32"
        ));
    }
    Ok(wide as f32)
}

fn boolean(name: &str, value: Json) -> Result<bool, String> {
    match present(name, value)? {
        Json::Bool(b) => Ok(b),
        other => Err(format!(
            "field '{name}': expected a boolean, got {}",
            other.kind()
        )),
    }
}

/// RFC 3339 with an offset (`Z` or `+02:00`), or an integer of epoch microseconds.
fn timestamp(name: &str, value: Json) -> Result<i64, String> {
    let parse = |s: &str| -> Result<i64, String> {
        DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                format!("field '{name}': '{s}' is not an RFC 3339 timestamp with offset: {e}")
            })
            .map(|t| t.timestamp_micros())
    };
    match present(name, value)? {
        Json::Str(s) => parse(s),
        Json::OwnedStr(s) => parse(&s),
        Json::Int(us) => Ok(us),
        Json::UInt(u) => i64::try_from(u)
            .map_err(|_| format!("field '{name}': {u} is out of range for epoch microseconds")),
        other => Err(format!(
            "field '{name}': expected an RFC 3339 string or epoch microseconds, got {}",
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"timestamp": "2026-11-23T19:14:44.123456Z", "session_id": 1,
        "device_id": 2, "patient_id": 3, "channel": 4, "voltage_uv": -12.5, "spike": false,
        "quality": 0.98}"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    }

    fn without(field: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v.as_object_mut().unwrap().remove(field);
        v.to_string()
    }

    #[test]
    fn decodes_a_good_message() {
        let s = decode(GOOD.as_bytes()).unwrap();
        assert_eq!(s.timestamp_us, 1_795_461_284_123_456);
        assert_eq!(
            (s.session_id, s.device_id, s.patient_id, s.channel),
            (1, 2, 3, 4)
        );
        assert_eq!(s.voltage_uv, -12.5);
        assert!(!s.spike);
        assert!((s.quality - 0.98).abs() < 1e-6);
        // 2026-11-23 is day 20,780 since 1970-01-01.
        assert_eq!(s.date_days(), 20_780);
    }

    #[test]
    fn accepts_offsets_and_epoch_micros() {
        let a = decode(with("timestamp", r#""2026-11-23T20:14:44.123456+01:00""#).as_bytes());
        assert_eq!(a.unwrap().timestamp_us, 1_795_461_284_123_456);
        let b = decode(with("timestamp", "1795461284123456").as_bytes());
        assert_eq!(b.unwrap().timestamp_us, 1_795_461_284_123_456);
    }

    #[test]
    fn dates_before_1970_floor_to_the_previous_day() {
        let s = decode(with("timestamp", "-1").as_bytes()).unwrap();
        assert_eq!(s.date_days(), -1);
    }

    #[test]
    fn ignores_unknown_fields_and_accepts_integral_floats() {
        let s = decode(with("extra", r#"{"a": [1, 2]}"#).as_bytes()).unwrap();
        assert_eq!(s.channel, 4);
        assert_eq!(
            decode(with("quality", "1").as_bytes()).unwrap().quality,
            1.0
        );
    }

    #[test]
    fn reasons_name_the_field_and_the_problem() {
        let cases = [
            (
                with("channel", "70000"),
                "field 'channel': 70000 is out of range for int16",
            ),
            (
                with("session_id", "1.5"),
                "field 'session_id': expected an integer, got number",
            ),
            (
                with("spike", "\"yes\""),
                "field 'spike': expected a boolean, got string",
            ),
            (with("quality", "null"), "field 'quality': null"),
            (without("device_id"), "field 'device_id': missing"),
            (
                with("voltage_uv", "1e300"),
                "field 'voltage_uv': 1e300 is out of range for float32",
            ),
            (
                with("patient_id", "18446744073709551615"),
                "out of range for int32",
            ),
        ];
        for (payload, expected) in cases {
            let reason = decode(payload.as_bytes()).unwrap_err();
            assert!(
                reason.contains(expected),
                "{reason} should contain {expected}"
            );
        }
    }

    #[test]
    fn bad_timestamps_are_explained() {
        let r = decode(with("timestamp", r#""2026-11-23T19:14:44""#).as_bytes()).unwrap_err();
        assert!(
            r.starts_with("field 'timestamp': '2026-11-23T19:14:44' is not an RFC 3339"),
            "{r}"
        );
        let r = decode(with("timestamp", "true").as_bytes()).unwrap_err();
        assert!(r.contains("got boolean"), "{r}");
    }

    #[test]
    fn non_json_and_non_utf8_are_malformed() {
        assert!(
            decode(b"\xff\xfe")
                .unwrap_err()
                .starts_with("payload is not UTF-8")
        );
        assert!(
            decode(b"{not json")
                .unwrap_err()
                .starts_with("payload is not valid JSON")
        );
        assert!(
            decode(b"[1, 2]")
                .unwrap_err()
                .starts_with("payload is valid JSON but not an object")
        );
        let duplicate = br#"{"channel": 1, "channel": 2}"#;
        assert!(
            decode(duplicate)
                .unwrap_err()
                .contains("duplicate field `channel`")
        );
        assert!(
            decode(b"")
                .unwrap_err()
                .starts_with("payload is not valid JSON")
        );
    }

    #[test]
    fn escaped_strings_still_decode() {
        let s = decode(with("timestamp", r#""2026-11-23T19:14:44.123456\u005A""#).as_bytes());
        assert_eq!(s.unwrap().timestamp_us, 1_795_461_284_123_456);
    }
}
