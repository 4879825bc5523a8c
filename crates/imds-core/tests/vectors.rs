//! The shared conformance vectors of spec/vectors/ (spec/vectors/README.md), replayed against
//! the Rust engine; tests/test_vectors.py replays the same files against the Python reference
//! engine and the Rust engine through the binding.

use imds_core::{Engine, RuleIr, ScanOptions};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The files of hit vectors (spec/vectors/README.md): every `.jsonl` file of spec/vectors/
/// whose objects all give rules (`rule`, `pred` or `node`) and `hits`, so a new file is
/// replayed without being listed (other formats, such as invalid_ir.jsonl, are skipped).
fn hit_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".jsonl"))
        .collect();
    names.sort();
    names.retain(|name| {
        let vectors = read_jsonl(name);
        !vectors.is_empty()
            && vectors.iter().all(|v| {
                v.get("hits").is_some_and(Value::is_array)
                    && ["rule", "pred", "node"].iter().any(|k| v.get(*k).is_some())
            })
    });
    names
}

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
    // `shape`: a sequence's or sample's document, refused by spec/sequences.md's checker.
    for case in cases.into_iter().filter(|c| c.get("shape").is_none()) {
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

/// The rules a vector runs: a bundled rule (the Rust tests' copies, which pytest holds equal to
/// the bundled files), or a one-branch rule around `pred` or any `node`.
fn rules_of(vector: &Value) -> Vec<Value> {
    let bundled = |text: &str| -> Vec<Value> {
        match serde_json::from_str(text).unwrap() {
            Value::Array(irs) => irs,
            ir => vec![ir],
        }
    };
    if let Some(node) = vector.get("node") {
        return vec![json!({
            "ir_version": 1, "id": "vector", "name": "vector", "severity": "low",
            "branches": [{"name": "b", "expr": node}],
        })];
    }
    match (&vector["rule"], &vector["pred"]) {
        (Value::String(name), Value::Null) if name == "default" => {
            bundled(include_str!("data/seed_ir.json"))
        }
        (Value::String(name), Value::Null) if name == "hardened" => {
            bundled(include_str!("data/hardened_ir.json"))
        }
        (Value::Null, Value::Object(pred)) => {
            let mut expr = serde_json::Map::new();
            expr.insert("node".into(), "pred".into());
            expr.extend(pred.clone());
            vec![json!({
                "ir_version": 1, "id": "vector", "name": "vector", "severity": "low",
                "branches": [{"name": "b", "expr": expr}],
            })]
        }
        _ => panic!("{}: no rule", vector["name"]),
    }
}

/// The hits of each vector's event (one line each), as the vector writes them.
fn replay(vectors: &[&Value], prefilter: bool) -> Vec<Vec<Value>> {
    let irs = rules_of(vectors[0]);
    let rules: Vec<RuleIr> = (irs.iter())
        .map(|ir| RuleIr::from_json(&ir.to_string()).unwrap())
        .collect();
    let engine = Engine::new(rules).unwrap();
    let text: String = (vectors.iter())
        .map(|v| match &v["event"] {
            Value::String(raw) => format!("{raw}\n"),
            event => format!("{event}\n"),
        })
        .collect();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "imds-core-vectors-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    let options = ScanOptions {
        prefilter,
        ..ScanOptions::default()
    };
    let report = engine.scan_paths(
        std::slice::from_ref(&path),
        &options,
        &AtomicBool::new(false),
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(report.files[0].error, None);
    let mut out = vec![Vec::new(); vectors.len()];
    for hit in &report.hits {
        let ir = &irs[hit.rule];
        out[hit.line as usize - 1].push(json!({
            "rule": ir["id"],
            "branch": ir["branches"][hit.branch]["name"],
            "witness": hit.witness.as_ref().map(|w| json!({
                "field": w.field, "op": w.op, "pattern": w.pattern, "value": w.value,
            })),
        }));
    }
    out
}

#[test]
fn conformance_vectors() {
    let mut ops = BTreeSet::new();
    let mut count = 0;
    let files = hit_files();
    for must in ["default_rule.jsonl", "operators.jsonl", "endpoint.jsonl"] {
        assert!(files.iter().any(|f| f == must), "{must} is not replayed");
    }
    for file in &files {
        let vectors = read_jsonl(file);
        // One scan per rule: vectors with the same rule are lines of one input.
        let mut groups: Vec<(String, Vec<&Value>)> = Vec::new();
        for v in &vectors {
            let key = format!("{}{}{}", v["rule"], v["pred"], v["node"]);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push(v),
                None => groups.push((key, vec![v])),
            }
        }
        for (_, group) in &groups {
            for prefilter in [true, false] {
                for (v, got) in group.iter().zip(replay(group, prefilter)) {
                    assert_eq!(
                        &Value::Array(got),
                        &v["hits"],
                        "{file}: {} (prefilter {prefilter})",
                        v["name"]
                    );
                }
            }
            for v in group {
                count += 1;
                for hit in v["hits"].as_array().unwrap() {
                    ops.extend(hit["witness"]["op"].as_str().map(str::to_owned));
                }
            }
        }
    }
    assert!(count > 100, "{count}");
    // Every operator of the schema decides some vector's hit.
    let schema: Value = serde_json::from_str(include_str!("../../../spec/ir.schema.json")).unwrap();
    let all = schema["$defs"]["pred"]["properties"]["op"]["enum"]
        .as_array()
        .unwrap();
    for op in all {
        assert!(ops.contains(op.as_str().unwrap()), "no vector for op {op}");
    }
}

#[test]
fn timestamp_vectors() {
    let cases = read_jsonl("timestamps.jsonl");
    assert!(cases.len() >= 40, "{}", cases.len());
    for case in cases {
        let value = case["value"].as_str().unwrap();
        assert_eq!(
            imds_core::parse_timestamp(value),
            case["micros"].as_i64(),
            "{}: {value:?}",
            case["name"]
        );
    }
}
