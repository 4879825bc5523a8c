//! Replays spec/vectors/sequence_matcher.jsonl (the cases both matchers share) through
//! `imds_core::sequence::SequenceMatcher`, in memory and with a budget so small that every
//! candidate is spilled.

use imds_core::sequence::{KeyJson, SequenceMatcher};
use serde_json::Value;

fn key_json(value: &KeyJson) -> Value {
    match value {
        KeyJson::Null => Value::Null,
        KeyJson::Str(s) => Value::from(s.as_str()),
        KeyJson::Int(n) => serde_json::from_str(&n.to_string()).unwrap(),
        KeyJson::Float(x) => Value::from(*x),
        KeyJson::Bool(b) => Value::from(*b),
    }
}

/// Numbers compared by value (the file writes `1.0` or `1`, serde_json may read either).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.to_string() == y.to_string() || x.as_f64().is_some() && x.as_f64() == y.as_f64()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

#[test]
fn sequence_matcher_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../spec/vectors/sequence_matcher.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("spec/vectors/sequence_matcher.jsonl");
    let dir = std::env::temp_dir().join(format!("imds-seq-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = 0;
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let ir = case["ir"].to_string();
        for (budget, spill) in [(256 << 20, None), (1, Some(dir.clone()))] {
            let mut m =
                SequenceMatcher::new(&ir, budget, spill).unwrap_or_else(|e| panic!("{name}: {e}"));
            for (i, c) in case["candidates"].as_array().unwrap().iter().enumerate() {
                let event = match &c["event"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                m.add(
                    c["stage"].as_u64().unwrap() as usize,
                    c["rank"].as_u64().unwrap() as u32,
                    c["line"].as_u64().unwrap(),
                    &event,
                    i as u64,
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            let result = m.finish().unwrap();
            let got: Vec<Value> = result
                .matches
                .iter()
                .map(|(refs, keys)| {
                    Value::from(vec![
                        serde_json::to_value(refs).unwrap(),
                        Value::from(keys.iter().map(key_json).collect::<Vec<_>>()),
                    ])
                })
                .collect();
            let got = Value::from(got);
            if !same(&got, &case["matches"]) {
                failures.push(format!(
                    "{name} (budget {budget}): matches {got} != {}",
                    case["matches"]
                ));
            }
            if case["no_time"].as_u64() != Some(result.no_time) {
                failures.push(format!(
                    "{name}: no_time {} != {}",
                    result.no_time, case["no_time"]
                ));
            }
            if let Some(refs) = case.get("no_time_refs") {
                if *refs != serde_json::to_value(&result.no_time_refs).unwrap() {
                    failures.push(format!(
                        "{name}: no_time_refs {:?} != {refs}",
                        result.no_time_refs
                    ));
                }
            }
        }
        cases += 1;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(cases >= 20, "only {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
