//! One rule's prefilter (the needle search, then all clauses of one branch on the line)
//! against full evaluation: with it or without, the same hits. The lines put the rules'
//! words as values and as keys (`"start":`, `"process" :`), in flattened and nested keys,
//! arrays, other cases, `\u00XX` and `\/` escapes, with whitespace around the punctuation.

mod props_config;
use imds_core::{Engine, RuleIr, ScanOptions};
use props_config::config;
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "process", "start", "network", "sshd", "curl", "Start", "a/b", "é", "80",
];
const FIELDS: &[&str] = &[
    "event.category",
    "event.type",
    "process.name",
    "process.args",
    "process.start",
    "start",
];
const OPS: &[&str] = &["eq", "eq_ci", "wildcard", "starts_with", "ends_with"];

#[derive(Debug, Clone)]
struct Pred {
    field: usize,
    op: usize,
    words: Vec<usize>,
}

fn pred_json(p: &Pred) -> String {
    let values: Vec<String> = p
        .words
        .iter()
        .map(|&w| {
            let w = WORDS[w];
            let v = if OPS[p.op] == "wildcard" {
                format!("*{w}*")
            } else {
                w.to_string()
            };
            serde_json::Value::String(v).to_string()
        })
        .collect();
    format!(
        r#"{{"node":"pred","field":"{}","field_type":"keyword","op":"{}","values":[{}]}}"#,
        FIELDS[p.field],
        OPS[p.op],
        values.join(",")
    )
}

fn rule_spec() -> impl Strategy<Value = Vec<Vec<Pred>>> {
    let pred = (
        0..FIELDS.len(),
        prop_oneof![3 => Just(0usize), 1 => 1..OPS.len()],
        prop::collection::vec(0..WORDS.len(), 1..3),
    )
        .prop_map(|(field, op, words)| Pred { field, op, words });
    let branch = prop::collection::vec(pred, 2..4);
    prop::collection::vec(branch, 1..3)
}

fn rule_ir(branches: &[Vec<Pred>]) -> RuleIr {
    {
        let branches: Vec<String> = branches
            .iter()
            .enumerate()
            .map(|(i, preds)| {
                let args: Vec<String> = preds.iter().map(pred_json).collect();
                format!(
                    r#"{{"name":"b{i}","expr":{{"node":"and","args":[{}]}}}}"#,
                    args.join(",")
                )
            })
            .collect();
        let ir = format!(
            r#"{{"ir_version":1,"id":"r","name":"r","severity":"low","branches":[{}]}}"#,
            branches.join(",")
        );
        RuleIr::from_json(&ir).unwrap()
    }
}

/// A string's JSON text: each char in another case, `\u00XX`-escaped or (`/`) `\/`-escaped
/// where the bits say.
fn string(text: &str, case: u64, escape: u64) -> Vec<u8> {
    let mut out = vec![b'"'];
    for (i, ch) in text.chars().enumerate() {
        let ch = if case >> (i % 64) & 1 == 1 {
            ch.to_ascii_uppercase()
        } else {
            ch
        };
        match (escape >> (i % 64) & 1 == 1, ch) {
            (true, '/') if i % 2 == 0 => out.extend(b"\\/"),
            (true, _) => out.extend(format!("\\u{:04x}", ch as u32).bytes()),
            (false, ch) => out.extend(ch.encode_utf8(&mut [0; 4]).bytes()),
        }
    }
    out.push(b'"');
    out
}

#[derive(Debug, Clone)]
enum Val {
    Str(String, u64, u64),
    Array(Vec<(String, u64, u64)>),
    Number,
    /// An object whose key is a word (`{"start": "x"}`).
    Keyed(usize),
}

fn val() -> impl Strategy<Value = Val> {
    let word = (0..WORDS.len(), any::<u64>(), any::<u64>()).prop_map(|(w, case, escape)| {
        (
            WORDS[w].to_string(),
            case & 0x5,
            escape & escape >> 7 & escape >> 23,
        )
    });
    prop_oneof![
        4 => word.clone().prop_map(|(w, c, e)| Val::Str(w, c, e)),
        2 => prop::collection::vec(word, 0..3).prop_map(Val::Array),
        1 => Just(Val::Number),
        1 => (0..WORDS.len()).prop_map(Val::Keyed),
    ]
}

#[derive(Debug, Clone)]
struct Field {
    field: usize,
    /// Bit i: nest at the i-th dot (else keep the dot in the key).
    nest: u8,
    /// Whitespace around the field's `:` and before the next `,`.
    space: u8,
    value: Val,
}

fn ws(bits: u8) -> &'static [u8] {
    [&b""[..], b" ", b"\t", b" \r "][bits as usize & 3]
}

fn write_field(f: &Field, out: &mut Vec<u8>) {
    let parts: Vec<&str> = FIELDS[f.field].split('.').collect();
    let mut groups = vec![parts[0].to_string()];
    for (i, part) in parts.iter().enumerate().skip(1) {
        if f.nest >> (i - 1) & 1 == 1 {
            groups.push(part.to_string());
        } else {
            let last = groups.last_mut().unwrap();
            last.push('.');
            last.push_str(part);
        }
    }
    for (i, g) in groups.iter().enumerate() {
        out.extend(string(g, 0, 0));
        out.extend(ws(f.space));
        out.push(b':');
        out.extend(ws(f.space >> 2));
        if i + 1 < groups.len() {
            out.push(b'{');
        }
    }
    match &f.value {
        Val::Str(w, c, e) => out.extend(string(w, *c, *e)),
        Val::Array(items) => {
            out.push(b'[');
            for (i, (w, c, e)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                    out.extend(ws(f.space >> 4));
                }
                out.extend(string(w, *c, *e));
            }
            out.push(b']');
        }
        Val::Number => out.extend(b"80"),
        Val::Keyed(w) => {
            out.push(b'{');
            out.extend(string(WORDS[*w], 0, 0));
            out.extend(ws(f.space >> 6));
            out.extend(b":\"x\"}");
        }
    }
    out.extend(ws(f.space >> 4));
    for _ in 1..groups.len() {
        out.push(b'}');
    }
}

fn field() -> impl Strategy<Value = Field> {
    (0..FIELDS.len(), any::<u8>(), any::<u8>(), val()).prop_map(|(field, nest, space, value)| {
        Field {
            field,
            nest,
            space,
            value,
        }
    })
}

/// A field a predicate of the rule wants, with a value it may match: the word as the op
/// needs it (`*w*`: inside a longer text), perhaps in another case, escaped, in an array.
fn wanted(p: &Pred, word: usize, bits: u64, nest: u8, space: u8) -> Field {
    let w = WORDS[p.words[word % p.words.len()]];
    let text = match OPS[p.op] {
        "wildcard" if bits & 1 == 1 => format!("x {w} y"),
        "starts_with" => format!("{w}-x"),
        "ends_with" => format!("x-{w}"),
        _ => w.to_string(),
    };
    let (case, escape) = (
        bits >> 1 & bits >> 9 & 0x5,
        bits >> 3 & bits >> 17 & bits >> 29,
    );
    let value = if bits >> 40 & 3 == 0 {
        Val::Array(vec![("other".into(), 0, 0), (text, case, escape)])
    } else {
        Val::Str(text, case, escape)
    };
    Field {
        field: p.field,
        nest,
        space,
        value,
    }
}

/// Lines for the rule: most hold the fields of one of its branches (some of them left out),
/// among other fields.
fn data(spec: &[Vec<Pred>]) -> impl Strategy<Value = Vec<u8>> {
    let spec = spec.to_vec();
    let line = (
        any::<usize>(),
        prop::collection::vec((any::<u64>(), any::<u8>(), any::<u8>(), any::<u8>()), 3),
        prop::collection::vec(field(), 0..4),
        any::<bool>(),
    )
        .prop_map(move |(b, picks, noise, noise_first)| {
            let branch = &spec[b % spec.len()];
            let mut fields: Vec<Field> = Vec::new();
            for (p, &(bits, nest, space, word)) in branch.iter().zip(&picks) {
                if word % 8 != 0 {
                    fields.push(wanted(p, word as usize, bits, nest, space));
                }
            }
            if noise_first {
                fields.splice(0..0, noise);
            } else {
                fields.extend(noise);
            }
            fields
        })
        .prop_map(|fields| {
            let mut out = vec![b'{'];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_field(f, &mut out);
            }
            out.push(b'}');
            out
        });
    prop::collection::vec(line, 1..16).prop_map(|lines| lines.join(&b'\n'))
}

/// `(line, branch)` of each hit.
fn hits(engine: &Engine, data: &[u8], prefilter: bool) -> Vec<(u64, usize)> {
    let opts = ScanOptions {
        threads: 1,
        prefilter,
        ..ScanOptions::default()
    };
    let report = engine.scan_bytes(data, &opts);
    report.hits.iter().map(|h| (h.line, h.branch)).collect()
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn one_rules_prefilter_only_skips_lines_that_cannot_match(
        (spec, data) in rule_spec().prop_flat_map(|spec| (Just(spec.clone()), data(&spec)))
    ) {
        let engine = Engine::new(vec![rule_ir(&spec)]).unwrap();
        prop_assert_eq!(hits(&engine, &data, true), hits(&engine, &data, false));
    }
}
