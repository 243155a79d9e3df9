//! The start-up contract, checked on the real binary: a bad flag or an unreachable service
//! exits with code 2 and prints exactly one line on stderr, starting `error: `, naming the fix.
//! No running stack is needed: the "unreachable" addresses are closed loopback ports.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn writer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_neuralake-writer"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn assert_one_error_line(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code, stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(error_lines.len(), 1, "stderr: {stderr}");
    assert!(
        error_lines[0].contains(needle),
        "{} should contain {needle}",
        error_lines[0]
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn unknown_flag_is_one_line_with_exit_2() {
    let out = writer(&["ingest", "--no-such-flag"]);
    assert_one_error_line(&out, "--no-such-flag");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn bad_number_is_one_line_with_exit_2() {
    let out = writer(&["compact", "--target-size", "big"]);
    assert_one_error_line(&out, "--target-size");
}

#[test]
fn bad_table_uri_names_the_flag() {
    let out = writer(&["vacuum", "--once", "--table-uri", "relative/path"]);
    assert_one_error_line(&out, "--table-uri");
}

#[test]
fn full_vacuum_below_the_floor_is_refused_before_touching_the_table() {
    // The table URI points nowhere: the mode check comes first, so no S3 timeout is waited.
    let out = writer(&[
        "vacuum",
        "--once",
        "--mode",
        "full",
        "--retention-hours",
        "0.01",
        "--table-uri",
        "s3://bucket/t",
        "--s3-endpoint",
        "http://127.0.0.1:1",
    ]);
    assert_one_error_line(&out, "--retention-hours 1 or more");
    assert_one_error_line(&out, "--mode lite");
}

#[test]
fn kafka_options_are_checked_at_start() {
    let out = writer(&["bench-consume", "--kafka-option", "no-equals-sign"]);
    assert_one_error_line(&out, "key=value");
    // A key librdkafka does not know: refused when the consumer is created, before any
    // connection is tried.
    let out = writer(&["bench-consume", "--kafka-option", "no.such.setting=1"]);
    assert_one_error_line(&out, "no.such.setting");
}

#[test]
fn unreachable_broker_fails_within_the_start_up_timeout() {
    let started = Instant::now();
    // Port 1 on loopback: nothing listens there.
    let out = writer(&[
        "bench-consume",
        "--kafka-bootstrap",
        "127.0.0.1:1",
        "--topic",
        "t",
    ]);
    assert_one_error_line(&out, "cannot reach Kafka at 127.0.0.1:1");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn unreachable_s3_fails_within_the_start_up_timeout() {
    let started = Instant::now();
    let out = writer(&[
        "vacuum",
        "--once",
        "--table-uri",
        "s3://bucket/t",
        "--s3-endpoint",
        "http://127.0.0.1:1",
    ]);
    assert_one_error_line(&out, "--s3-endpoint");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}
