//! The shared conformance vectors of spec/vectors/ (spec/vectors/README.md), replayed against
//! the Rust engine; tests/test_vectors.py replays the same files against the Python reference
//! engine and the Rust engine through the binding.

use imds_core::RuleIr;
use serde_json::Value;
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors")
}

/// The JSON objects of a .jsonl file, one a line (blank lines skipped).
fn read_jsonl(name: &str) -> Vec<Value> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1))
        })
        .collect()
}

#[test]
fn invalid_ir_is_refused_naming_the_place() {
    let cases = read_jsonl("invalid_ir.jsonl");
    assert!(cases.len() >= 40);
    for case in cases {
        let text = serde_json::to_string(&case["ir"]).unwrap();
        let err = RuleIr::from_json(&text).expect_err(case["name"].as_str().unwrap());
        assert_eq!(
            err.to_string(),
            format!("rule error: {}", case["error"].as_str().unwrap()),
            "{}",
            case["name"]
        );
    }
}
