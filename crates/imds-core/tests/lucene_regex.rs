//! Lucene regular expressions in the Rust engine (`imds_core::lucene_regex`): the shared vectors
//! of spec/vectors/regex.jsonl (tests/test_lucene_regex.py replays the same file against the
//! reference engine), pathological patterns on long values, and random expressions checked
//! against the `regex` crate given the same expression written in its own syntax.

mod props_config;
use imds_core::lucene_regex::LuceneRegex;
use props_config::config;
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors/regex.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("regex.jsonl:{}: {e}", i + 1))
        })
        .collect()
}

#[test]
fn vectors() {
    let cases = cases();
    assert!(cases.len() >= 200);
    let mut names = BTreeSet::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        assert!(names.insert(name.to_string()), "duplicate name {name}");
        let pattern = case["pattern"].as_str().unwrap();
        let ci = case["case_insensitive"].as_bool().unwrap();
        let compiled = LuceneRegex::new(pattern, ci);
        if let Some(reason) = case.get("refused") {
            let err = compiled.expect_err(name);
            assert_eq!(err, reason.as_str().unwrap(), "{name}");
        } else {
            let regex = compiled.unwrap_or_else(|e| panic!("{name}: {e}"));
            let value = case["value"].as_str().unwrap();
            let expected = case["match"].as_bool().unwrap();
            assert_eq!(regex.is_match(value), expected, "{name}");
        }
    }
}

#[test]
fn pathological_patterns_are_one_pass() {
    let run = "a".repeat(100_000);
    let nested = LuceneRegex::new("(a*)*b", false).unwrap();
    assert!(!nested.is_match(&run));
    assert!(nested.is_match(&format!("{run}b")));
    assert!(!LuceneRegex::new("(a|aa)*c", false).unwrap().is_match(&run));
    assert!(!LuceneRegex::new("(.*a){30}b", true).unwrap().is_match(&run));
    assert!(!LuceneRegex::new("@a@a@a@a@a@a@a@b", false)
        .unwrap()
        .is_match(&run));
}

/// (Lucene text, `regex` text, `regex` text ASCII case-insensitive) of one expression.
type Written = (String, String, String);

fn char_leaf() -> impl Strategy<Value = Written> {
    prop::sample::select(vec!['a', 'b', 'A', 'B', '.', '-']).prop_map(|c| {
        let lucene = if c == '.' || c == '-' {
            format!("\\{c}")
        } else {
            c.to_string()
        };
        let plain = regex::escape(&c.to_string());
        let folded = if c.is_ascii_alphabetic() {
            format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
        } else {
            plain.clone()
        };
        (lucene, plain, folded)
    })
}

fn class_leaf() -> impl Strategy<Value = Written> {
    let item = prop::sample::select(vec!["a", "b", "A", "a-b", "A-B", "\\d"]);
    (any::<bool>(), prop::collection::vec(item, 1..4)).prop_map(|(negate, items)| {
        let hat = if negate { "^" } else { "" };
        let lucene = format!("[{hat}{}]", items.concat());
        let (mut plain, mut folded) = (String::new(), String::new());
        for item in items {
            match item {
                "\\d" => {
                    plain.push_str("0-9");
                    folded.push_str("0-9");
                }
                // Lucene does not fold ranges.
                range if range.contains('-') => {
                    plain.push_str(range);
                    folded.push_str(range);
                }
                single => {
                    plain.push_str(single);
                    folded.push_str(&single.to_ascii_lowercase());
                    folded.push_str(&single.to_ascii_uppercase());
                }
            }
        }
        (
            lucene,
            format!("[{hat}{plain}]"),
            format!("[{hat}{folded}]"),
        )
    })
}

fn quoted_leaf() -> impl Strategy<Value = Written> {
    "[ab.*|]{0,3}".prop_map(|text| {
        let plain: String = text
            .chars()
            .map(|c| regex::escape(&c.to_string()))
            .collect();
        let folded: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                } else {
                    regex::escape(&c.to_string())
                }
            })
            .collect();
        (
            format!("\"{text}\""),
            format!("(?:{plain})"),
            format!("(?:{folded})"),
        )
    })
}

fn interval_leaf() -> impl Strategy<Value = Written> {
    (0u32..31, 0u32..31, any::<bool>()).prop_map(|(low, high, pad)| {
        let (lo, hi) = (low.min(high), low.max(high));
        let (text, alts) = if pad {
            let width = hi.to_string().len() + 1;
            let alts: Vec<String> = (lo..=hi).map(|n| format!("{n:0width$}")).collect();
            (format!("<{lo:0width$}-{hi:0width$}>"), alts.join("|"))
        } else if low.to_string().len() == high.to_string().len() {
            let width = low.to_string().len();
            let alts: Vec<String> = (lo..=hi).map(|n| format!("{n:0width$}")).collect();
            (format!("<{low}-{high}>"), alts.join("|"))
        } else {
            let alts: Vec<String> = (lo..=hi).map(|n| n.to_string()).collect();
            (
                format!("<{low}-{high}>"),
                format!("0*(?:{})", alts.join("|")),
            )
        };
        (text, format!("(?:{alts})"), format!("(?:{alts})"))
    })
}

fn predefined_leaf() -> impl Strategy<Value = Written> {
    prop::sample::select(vec!['d', 'D', 's', 'S', 'w', 'W']).prop_map(|name| {
        let body = match name.to_ascii_lowercase() {
            'd' => "0-9",
            's' => r" \t\n\r",
            _ => "a-zA-Z_0-9",
        };
        let class = if name.is_ascii_lowercase() {
            format!("[{body}]")
        } else {
            format!("[^{body}]")
        };
        (format!("\\{name}"), class.clone(), class)
    })
}

fn expression() -> impl Strategy<Value = Written> {
    let any_char = Just((".".to_string(), "(?s:.)".to_string(), "(?s:.)".to_string()));
    let leaf = prop_oneof![
        char_leaf(),
        any_char,
        class_leaf(),
        quoted_leaf(),
        interval_leaf(),
        predefined_leaf()
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        let join = |parts: &[Written], sep: &str| -> Written {
            let pick = |f: fn(&Written) -> &String, open: &str| {
                parts
                    .iter()
                    .map(|p| format!("{open}{})", f(p)))
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            (
                pick(|p| &p.0, "("),
                pick(|p| &p.1, "(?:"),
                pick(|p| &p.2, "(?:"),
            )
        };
        let ops = prop::sample::select(vec!["?", "*", "+", "{2}", "{0,2}", "{1,}"]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(move |parts| join(&parts, "")),
            prop::collection::vec(inner.clone(), 2..4).prop_map(move |parts| join(&parts, "|")),
            (inner, ops).prop_map(|((l, p, f), op)| (
                format!("({l}){op}"),
                format!("(?:{p}){op}"),
                format!("(?:{f}){op}")
            )),
        ]
    })
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn random_expressions_agree_with_the_regex_crate(
        (lucene, plain, folded) in expression(),
        values in prop::collection::vec("[abAB.\\-0123 \n\u{212a}]{0,6}", 1..8),
        fold in any::<bool>(),
    ) {
        let regex = LuceneRegex::new(&lucene, fold).unwrap();
        let oracle = regex::Regex::new(&format!(r"\A(?:{})\z", if fold { &folded } else { &plain }))
            .unwrap();
        for value in &values {
            prop_assert_eq!(regex.is_match(value), oracle.is_match(value), "{} {:?}", lucene, value);
            // A prefilter may look for the required literal: every match contains it.
            if let (true, Some(literal)) = (oracle.is_match(value), regex.required_literal()) {
                let haystack = if fold { value.to_ascii_lowercase() } else { value.clone() };
                prop_assert!(haystack.contains(literal), "{} {:?} {:?}", lucene, value, literal);
            }
        }
    }
}
