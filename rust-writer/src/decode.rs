//! Kafka payload -> typed row, or the reason it is malformed. Pure and allocation-free on the
//! good path.
//!
//! A message is one UTF-8 JSON object:
//! `{"timestamp": "2026-11-23T19:14:44.123456Z", "session_id": 1, "device_id": 1,
//!   "patient_id": 1, "channel": 3, "voltage_uv": -12.5, "spike": false, "quality": 0.98}`
//!
//! What "malformed" means is defined once, by the Python reference
//! (`neuralake.streaming.wire.decode`), and both decoders run the shared corpus
//! `tests/data/wire_corpus.json`: the same verdict and the same field for every case. The
//! checks, in order (the first one broken is the reason): UTF-8; nested at most [`MAX_DEPTH`]
//! levels of objects and arrays; strict JSON; an object; no field of the message twice; then
//! each field in schema order: present, not null, of its type, in its column's range, and a
//! timestamp within years 1..9999 UTC (so no row can break the `date` partition). A reason
//! about one field starts with `field '<name>'`; a reason about the whole payload names no
//! field. Unknown fields are ignored, so producers can add fields without breaking the writer.
//!
//! Two paths, one answer. The **fast path** reads every field as a [`Json`] scalar borrowed
//! from the payload (serde_json with `&str` borrowing, no `Value` tree, no `String`) and
//! converts it to its column type. If serde_json rejects the payload at all, the **exact path**
//! ([`decode_exact`]) works out why: it reads the object as key -> raw JSON text first (which
//! checks the syntax of the whole payload), then parses each field's text on its own, so that a
//! number beyond float64 or a broken string escape is blamed on its field, in schema order,
//! like the reference does, and never on the payload.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One decoded signal sample: the columns that come from the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// Sample time, microseconds since the Unix epoch, UTC, within years 1..9999.
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

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in epoch microseconds: the dates a
/// Delta `date` partition value can hold (delta-rs panics formatting one outside them).
pub const MIN_TIMESTAMP_US: i64 = -62_135_596_800_000_000;
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999;

/// Deepest nesting of objects and arrays a message may have, the message object counting as
/// level 1 (the same limit as the Python reference; serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 64;

/// The message's fields, in schema order.
const FIELDS: [&str; 8] = [
    "timestamp",
    "session_id",
    "device_id",
    "patient_id",
    "channel",
    "voltage_uv",
    "spike",
    "quality",
];

impl Signal {
    /// The UTC date of the sample, as days since 1970-01-01 (Arrow `Date32`).
    pub fn date_days(&self) -> i32 {
        // Years 1..9999 are within +/- 3 million days: i32 holds them.
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

/// The payload's fields before type checks ([`Json::Missing`] when a key is absent). serde's
/// derive rejects a known field given twice, which sends the payload to the exact path.
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

/// Decode one payload. `Err` carries the dead-letter reason (one line).
pub fn decode(payload: &[u8]) -> Result<Signal, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("payload is not UTF-8: {e}"))?;
    if nests_deeper_than(payload, MAX_DEPTH) {
        return Err(format!(
            "payload is not JSON this writer accepts: nested deeper than {MAX_DEPTH} levels"
        ));
    }
    // serde's derive would also accept an array as a struct (fields by position): the fast
    // path takes objects only.
    if text.trim_start_matches(JSON_WHITESPACE).starts_with('{')
        && let Ok(raw) = serde_json::from_str::<RawSignal>(text)
    {
        let mut fields = [
            raw.timestamp,
            raw.session_id,
            raw.device_id,
            raw.patient_id,
            raw.channel,
            raw.voltage_uv,
            raw.spike,
            raw.quality,
        ];
        // serde_json reads `-0` as the float -0.0, which it also is for `-0.0`; only the
        // field's text tells the integer from the float.
        if !fields.iter().any(is_negative_zero) {
            return convert(|i| Ok(std::mem::take(&mut fields[i])));
        }
    }
    decode_exact(text)
}

fn is_negative_zero(value: &Json) -> bool {
    matches!(value, Json::Float(f) if *f == 0.0 && f.is_sign_negative())
}

/// JSON's four whitespace characters (Rust's `trim_start` would also take Unicode spaces).
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The fields converted in schema order; `field(i)` reads field `i` of [`FIELDS`].
fn convert<'a>(mut field: impl FnMut(usize) -> Result<Json<'a>, String>) -> Result<Signal, String> {
    // Struct expressions are evaluated in the order written: schema order.
    Ok(Signal {
        timestamp_us: timestamp(FIELDS[0], field(0)?)?,
        session_id: int::<i32>(FIELDS[1], field(1)?, "int32")?,
        device_id: int::<i32>(FIELDS[2], field(2)?, "int32")?,
        patient_id: int::<i32>(FIELDS[3], field(3)?, "int32")?,
        channel: int::<i16>(FIELDS[4], field(4)?, "int16")?,
        voltage_uv: float32(FIELDS[5], field(5)?)?,
        spike: boolean(FIELDS[6], field(6)?)?,
        quality: float32(FIELDS[7], field(7)?)?,
    })
}

/// The slow path, for payloads serde_json rejected as a whole: which check fails first?
fn decode_exact(text: &str) -> Result<Signal, String> {
    let pairs = match serde_json::from_str::<TopLevel>(text) {
        Ok(TopLevel::Object(pairs)) => pairs,
        Ok(TopLevel::Other(kind)) => {
            return Err(format!("payload is valid JSON but not an object: {kind}"));
        }
        Err(e) => return Err(format!("payload is not valid JSON: {e}")),
    };
    let mut raw: [Option<&RawValue>; 8] = [None; 8];
    for (key, value) in pairs {
        if let Some(i) = FIELDS.iter().position(|f| f.as_bytes() == key.as_ref())
            && raw[i].replace(value).is_some()
        {
            return Err(format!("field '{}': appears more than once", FIELDS[i]));
        }
    }
    convert(|i| match raw[i] {
        None => Ok(Json::Missing),
        // The integer zero, written with a sign (JSON allows it; serde_json reads a float).
        Some(value) if value.get() == "-0" => Ok(Json::Int(0)),
        Some(value) => serde_json::from_str::<Json>(value.get())
            .map_err(|e| format!("field '{}': {}", FIELDS[i], without_position(&e))),
    })
}

/// A whole payload as the exact path reads it: an object's keys (as bytes: a key with a lone
/// UTF-16 surrogate escape is still a key, as in Python) with their raw values, or the kind of
/// the non-object value.
enum TopLevel<'a> {
    Object(Vec<(Cow<'a, [u8]>, &'a RawValue)>),
    Other(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for TopLevel<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor(PhantomData))
    }
}

struct TopLevelVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TopLevelVisitor<'a> {
    type Value = TopLevel<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("null"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(TopLevel::Other("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            pairs.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(TopLevel::Object(pairs))
    }
}

/// An object key as bytes (escapes decoded, lone surrogates kept as WTF-8).
struct Key<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_vec())))
            }
        }
        deserializer.deserialize_bytes(KeyVisitor(PhantomData))
    }
}

/// serde_json's message without its " at line L column C" (which would point into one
/// field's text, not into the payload).
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&position) {
        Some(bare) => bare.to_string(),
        None => message,
    }
}

/// Does the payload nest objects and arrays deeper than `limit` (brackets outside strings)?
/// Checked before parsing, on every payload: a cheap count first, since a message whose only
/// bracket is its own `{` cannot nest (`limit` is at least 1).
pub fn nests_deeper_than(payload: &[u8], limit: usize) -> bool {
    if payload.iter().filter(|&&b| b == b'{' || b == b'[').count() <= 1 {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in payload {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
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
                describe(&other)
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
                describe(&other)
            ));
        }
    };
    // serde_json never yields NaN or infinity (a number beyond float64 is an error of its
    // own), so the only failure here is magnitude.
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
            describe(&other)
        )),
    }
}

/// The kind of a value, with the value itself when it is a short scalar.
fn describe(value: &Json) -> String {
    match value {
        Json::Bool(b) => format!("boolean {b}"),
        Json::Int(i) => format!("number {i}"),
        Json::UInt(u) => format!("number {u}"),
        Json::Float(f) => format!("number {f}"),
        Json::Str(s) => format!("string {}", quoted(s)),
        Json::OwnedStr(s) => format!("string {}", quoted(s)),
        other => other.kind().to_string(),
    }
}

/// A string for a reason: its first 40 characters, quoted and escaped (so a reason stays one
/// line whatever the payload holds).
fn quoted(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((end, _)) => format!("{:?}...", &s[..end]),
        None => format!("{s:?}"),
    }
}

/// RFC 3339 with an offset (`Z` or `+02:00`), or an integer of epoch microseconds; either way
/// within years 1..9999 UTC.
fn timestamp(name: &str, value: Json) -> Result<i64, String> {
    let parse = |s: &str| -> Result<i64, String> {
        let us = parse_rfc3339(s).ok_or_else(|| {
            format!(
                "field '{name}': {} is not RFC 3339 with a UTC offset (like 2026-11-23T19:14:44.123456Z)",
                quoted(s)
            )
        })?;
        if (MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&us) {
            Ok(us)
        } else {
            Err(format!(
                "field '{name}': {} is out of range (years 1..9999 in UTC)",
                quoted(s)
            ))
        }
    };
    let out_of_range = |us: &dyn fmt::Display| {
        format!("field '{name}': {us} is out of range for epoch microseconds (years 1..9999)")
    };
    match present(name, value)? {
        Json::Str(s) => parse(s),
        Json::OwnedStr(s) => parse(&s),
        Json::Int(us) if (MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&us) => Ok(us),
        Json::Int(us) => Err(out_of_range(&us)),
        // serde_json reads every non-negative integer as u64.
        Json::UInt(us) if us <= MAX_TIMESTAMP_US as u64 => Ok(us as i64),
        Json::UInt(us) => Err(out_of_range(&us)),
        other => Err(format!(
            "field '{name}': expected an RFC 3339 string or epoch microseconds, got {}",
            describe(&other)
        )),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z` or `+HH:MM`/`-HH:MM`, as epoch microseconds.
/// Uppercase `T` and `Z`, 1 to 9 fraction digits (truncated to microseconds), a real calendar
/// date in years 1..9999, hours 0..23, minutes and seconds 0..59 (no leap second), offsets
/// below 24 hours: the same grammar as the Python reference. `None` if `s` breaks any of it;
/// the UTC instant's range is the caller's check.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let number = |from: usize, to: usize| -> Option<i64> {
        b.get(from..to)?.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c)) {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0;
    if let [b'.', digits @ ..] = rest {
        let count = digits.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&count) {
            return None;
        }
        for k in 0..6 {
            micros = micros * 10
                + digits
                    .get(k)
                    .filter(|_| k < count)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        rest = &digits[count..];
    }
    let offset_seconds = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let hours = digit(h1)? * 10 + digit(h2)?;
            let minutes = digit(m1)? * 10 + digit(m2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
            r.starts_with(r#"field 'timestamp': "2026-11-23T19:14:44" is not RFC 3339"#),
            "{r}"
        );
        let r = decode(with("timestamp", "true").as_bytes()).unwrap_err();
        assert!(r.contains("got boolean"), "{r}");
    }

    #[test]
    fn timestamps_stay_within_years_1_to_9999() {
        let decoded = |v: &str| decode(with("timestamp", v).as_bytes());
        assert_eq!(
            decoded("-62135596800000000").unwrap().timestamp_us,
            MIN_TIMESTAMP_US
        );
        assert_eq!(
            decoded("253402300799999999").unwrap().timestamp_us,
            MAX_TIMESTAMP_US
        );
        for bad in [
            "-62135596800000001",
            "253402300800000000",
            "9223372036854775807",
            "18446744073709551615",
            r#""0001-01-01T00:00:00+00:01""#,
            r#""9999-12-31T23:59:59-00:01""#,
        ] {
            let r = decoded(bad).unwrap_err();
            assert!(
                r.starts_with("field 'timestamp': ") && r.contains("out of range"),
                "{r}"
            );
        }
        // The partition date of the extremes is formattable: days of 0001-01-01 and 9999-12-31.
        assert_eq!(decoded("-62135596800000000").unwrap().date_days(), -719_162);
        assert_eq!(
            decoded("253402300799999999").unwrap().date_days(),
            2_932_896
        );
    }

    #[test]
    fn the_rfc3339_grammar_is_strict() {
        let base = parse_rfc3339("2026-11-23T19:14:44Z").unwrap();
        assert_eq!(base, 1_795_461_284_000_000);
        assert_eq!(
            parse_rfc3339("2026-11-23T19:14:44.1Z"),
            Some(base + 100_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T19:14:44.123456789Z"),
            Some(base + 123_456)
        );
        assert_eq!(parse_rfc3339("2026-11-23T20:44:44+01:30"), Some(base));
        assert_eq!(parse_rfc3339("2026-11-23T18:14:44-01:00"), Some(base));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000)
        );
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999999Z"), Some(-1));
        for bad in [
            "2026-11-23t19:14:44Z",
            "2026-11-23 19:14:44Z",
            "2026-11-23T19:14:44z",
            "2026-11-23T19:14:44",
            "2026-11-23T19:14:44.Z",
            "2026-11-23T19:14:44.1234567890Z",
            "2026-11-23T24:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-11-23T19:14:44+24:00",
            "2026-11-23T19:14:44+0100",
            "20261123T191444Z",
            "+2026-11-23T19:14:44Z",
            "2026-11-23T19:14:44Z ",
            "２026-11-23T19:14:44Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn nesting_is_counted_outside_strings() {
        assert!(!nests_deeper_than(br#"{"a": "[[[[[[[["}"#, 2));
        assert!(!nests_deeper_than(br#"{"a": [[1]]}"#, 3));
        assert!(nests_deeper_than(br#"{"a": [[1]]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a": "\"[[", "b": []}"#, 2));
        assert!(nests_deeper_than(br#"{"a": "\\", "b": [[]]}"#, 2));
    }

    #[test]
    fn escaped_strings_still_decode() {
        let s = decode(with("timestamp", r#""2026-11-23T19:14:44.123456\u005A""#).as_bytes());
        assert_eq!(s.unwrap().timestamp_us, 1_795_461_284_123_456);
    }
}
