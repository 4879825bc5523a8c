//! Replays the sequence and sample documents of spec/vectors/invalid_ir.jsonl through the
//! Rust checker of that shape (`SequenceMatcher::check_ir`).

use imds_core::sequence::SequenceMatcher;
use serde_json::Value;

/// The sequence and sample documents of spec/vectors/invalid_ir.jsonl (`shape`), refused by
/// the full check with the reference checker's words.
#[test]
fn invalid_sequence_ir_is_refused_naming_the_place() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../spec/vectors/invalid_ir.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("spec/vectors/invalid_ir.jsonl");
    let mut cases = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        // new_terms and threshold documents (spec/kql.md) have a Python checker only.
        if !matches!(case["shape"].as_str(), Some("sequence" | "sample")) {
            continue;
        }
        let name = case["name"].as_str().unwrap();
        let err = SequenceMatcher::check_ir(&case["ir"].to_string()).expect_err(name);
        assert_eq!(
            err.to_string(),
            format!("rule error: {}", case["error"].as_str().unwrap()),
            "{name}"
        );
        cases += 1;
    }
    assert!(cases >= 30, "only {cases} cases");
}
