//! Text analysis in the Rust engine (`imds_core::analysis`): the shared vectors of
//! spec/vectors/analysis.jsonl (tests/test_analysis.py replays the same file against the
//! reference engine and holds the two engines to the same tokens on random text).

use imds_core::analysis::{
    analyze, lowercase, wildcard_on_text, wildcard_on_text_analyzed, Analyzer, TokenQuery,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/analysis.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("analysis.jsonl:{}: {e}", i + 1))
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn query(pair: &Value) -> TokenQuery {
    let text = pair[1].as_str().unwrap().to_owned();
    match pair[0].as_str().unwrap() {
        "term" => TokenQuery::Term(text),
        "prefix" => TokenQuery::Prefix(text),
        "wildcard" => TokenQuery::Wildcard(text),
        "exists" => TokenQuery::Exists,
        other => panic!("unknown query kind {other}"),
    }
}

#[test]
fn vectors() {
    let cases = cases();
    assert!(cases.len() >= 100);
    let mut names = BTreeSet::new();
    let (mut tokens, mut queries, mut lowers) = (0, 0, 0);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let analyzer_name = case.get("analyzer").and_then(Value::as_str).unwrap_or("");
        assert!(
            names.insert(format!("{name}/{analyzer_name}")),
            "duplicate name {name}"
        );
        if let Some(text) = case.get("lowercase") {
            assert_eq!(
                lowercase(text.as_str().unwrap()),
                case["expected"],
                "{name}"
            );
            lowers += 1;
            continue;
        }
        let analyzer = Analyzer::from_name(analyzer_name).expect(name);
        assert_eq!(analyzer.name(), analyzer_name);
        if let Some(expected) = case.get("tokens") {
            let text = case["text"].as_str().unwrap();
            assert_eq!(analyze(analyzer, text), strings(expected), "{name}");
            tokens += 1;
        } else {
            let pattern = case["pattern"].as_str().unwrap();
            let expected: Vec<TokenQuery> = case["queries"]
                .as_array()
                .unwrap()
                .iter()
                .map(query)
                .collect();
            let got = if case["analyze_wildcard"].as_bool().unwrap() {
                wildcard_on_text_analyzed(analyzer, pattern)
            } else {
                wildcard_on_text(analyzer, pattern)
            };
            assert_eq!(got, expected, "{name}");
            queries += 1;
        }
    }
    assert!(tokens > 0 && queries > 0 && lowers > 0);
}

#[test]
fn unknown_analyzer_names() {
    assert_eq!(Analyzer::from_name("english"), None);
    assert_eq!(Analyzer::from_name("Standard"), None);
}
