//! One message contract for Python and Rust: every case of the shared corpus
//! `tests/data/wire_corpus.json` must get the verdict and the field the corpus states. The
//! Python reference runs the same file (`tests/test_wire_corpus.py`, which documents the
//! format), so the two decoders agree on every case.

use neuralake_writer::decode::decode;
use serde_json::Value;

const CORPUS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/wire_corpus.json"
));

/// The payload bytes of a case (`payload`, `payload_hex` or `generate`).
fn payload_of(case: &Value) -> Vec<u8> {
    if let Some(text) = case["payload"].as_str() {
        return text.as_bytes().to_vec();
    }
    if let Some(hex) = case["payload_hex"].as_str() {
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
    }
    let spec = &case["generate"];
    let template = spec["template"].as_str().expect("template");
    let n = spec["n"].as_u64().expect("n") as usize;
    let filler = match spec["kind"].as_str().expect("kind") {
        "nested" => "[".repeat(n - 1) + &"]".repeat(n - 1),
        "padded" => "x".repeat(n + 2 - template.len()),
        "digits" => "9".repeat(n),
        other => panic!("unknown generator {other}"),
    };
    template.replace("@@", &filler).into_bytes()
}

/// The field a reason names: it starts with `field '<name>'` (the rule both decoders follow).
fn reason_field(reason: &str) -> Option<&str> {
    let rest = reason.strip_prefix("field '")?;
    rest.split_once('\'').map(|(name, _)| name)
}

#[test]
fn every_corpus_case_gets_its_verdict_and_field() {
    let cases: Vec<Value> = serde_json::from_str(CORPUS).expect("the corpus is JSON");
    assert!(cases.len() > 100, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let payload = payload_of(case);
        let expected_field = case["field"].as_str();
        match (case["verdict"].as_str().expect("verdict"), decode(&payload)) {
            ("good", Ok(signal)) => {
                let expected = case["timestamp_us"].as_i64().expect("timestamp_us");
                if signal.timestamp_us != expected {
                    failures.push(format!(
                        "{name}: timestamp {} != {expected}",
                        signal.timestamp_us
                    ));
                }
            }
            ("good", Err(reason)) => failures.push(format!("{name}: rejected: {reason}")),
            ("malformed", Ok(signal)) => failures.push(format!("{name}: accepted: {signal:?}")),
            ("malformed", Err(reason)) => {
                if reason_field(&reason) != expected_field {
                    failures.push(format!(
                        "{name}: names {:?}, expected {expected_field:?}: {reason}",
                        reason_field(&reason)
                    ));
                }
                if reason.contains('\n') || reason.len() > 300 {
                    failures.push(format!("{name}: not a short one-line reason: {reason}"));
                }
                if expected_field.is_none() && reason.contains("field '") {
                    failures.push(format!(
                        "{name}: a payload reason that names a field: {reason}"
                    ));
                }
            }
            (other, _) => failures.push(format!("{name}: unknown verdict {other}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
