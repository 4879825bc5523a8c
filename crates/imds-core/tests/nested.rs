//! `nested` nodes (spec/ir.md, "Nested scopes"): truth and witness on nested documents, the
//! checker's refusals, and the same hits with the prefilter (and projected parsing) on and off.

use imds_core::{parse_line, CompiledRule, Engine, RuleIr, ScanOptions};
use serde_json::{json, Value};

fn rule(expr: &Value) -> String {
    json!({"ir_version": 1, "id": "r", "name": "n", "severity": "low",
           "branches": [{"name": "b", "expr": expr}]})
    .to_string()
}

fn pred(field: &str, field_type: &str, op: &str, values: &[&str]) -> Value {
    json!({"node": "pred", "field": field, "field_type": field_type, "op": op, "values": values})
}

fn eq(field: &str, value: &str) -> Value {
    pred(field, "keyword", "eq", &[value])
}

fn nested(path: &str, arg: Value) -> Value {
    json!({"node": "nested", "path": path, "arg": arg})
}

fn and(args: &[Value]) -> Value {
    json!({"node": "and", "args": args})
}

fn or(args: &[Value]) -> Value {
    json!({"node": "or", "args": args})
}

fn not(arg: Value) -> Value {
    json!({"node": "not", "arg": arg})
}

/// Per line: `None` (no hit) or the witness as `field op pattern value` ("-" for none).
/// The scan with the prefilter (and projected parsing), the scan without it, and the compiled
/// rule on a full parse of each line must agree.
fn verdicts(expr: &Value, lines: &[&str]) -> Vec<Option<String>> {
    let ir = RuleIr::from_json(&rule(expr)).unwrap();
    let compiled = CompiledRule::new(ir.clone()).unwrap();
    let full: Vec<Option<String>> = (lines.iter())
        .map(|line| {
            let parsed = parse_line(line.as_bytes()).unwrap().unwrap();
            compiled.evaluate(&parsed.doc).map(|m| match m.witness {
                Some(w) => format!("{} {} {} {}", w.field, w.op, w.pattern, w.value),
                None => "-".to_owned(),
            })
        })
        .collect();
    let engine = Engine::new(vec![ir]).unwrap();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    for prefilter in [true, false] {
        let options = ScanOptions {
            prefilter,
            ..ScanOptions::default()
        };
        let report = engine.scan_bytes(text.as_bytes(), &options);
        let mut scanned = vec![None; lines.len()];
        for hit in &report.hits {
            scanned[hit.line as usize - 1] = Some(match &hit.witness {
                Some(w) => format!("{} {} {} {}", w.field, w.op, w.pattern, w.value),
                None => "-".to_owned(),
            });
        }
        assert_eq!(scanned, full, "prefilter {prefilter}: {expr}");
    }
    full
}

fn hit(witness: &str) -> Option<String> {
    Some(witness.to_owned())
}

#[test]
fn conditions_hold_on_one_object_of_the_array() {
    let both = nested("a.b", and(&[eq("a.b.c", "x"), eq("a.b.d", "1")]));
    let lines = [
        r#"{"a":{"b":[{"c":"y","d":"1"},{"c":"x","d":"1"}]}}"#,
        // Each condition holds on some object, never both on one: false.
        r#"{"a":{"b":[{"c":"x","d":"2"},{"c":"y","d":"1"}]}}"#,
        // One object (not an array) is one nested document.
        r#"{"a":{"b":{"c":"x","d":"1"}}}"#,
        r#"{"a":{"b":{"c":"x"}}}"#,
        r#"{"other":1}"#,
    ];
    assert_eq!(
        verdicts(&both, &lines),
        [hit("a.b.d eq 1 1"), None, hit("a.b.d eq 1 1"), None, None]
    );
    // The same conditions without a nested node are not correlated.
    let loose = and(&[eq("a.b.c", "x"), eq("a.b.d", "1")]);
    assert_eq!(
        verdicts(&loose, &lines)[..2],
        [hit("a.b.d eq 1 1"), hit("a.b.d eq 1 1")]
    );
}

#[test]
fn the_witness_comes_from_the_first_document_that_holds() {
    let node = nested("a.b", and(&[eq("a.b.c", "x"), eq("a.b.d", "1")]));
    let line = r#"{"a":{"b":[{"c":"x","d":"0"},{"c":"x","d":["2","1"]},{"c":"x","d":"1"}]}}"#;
    assert_eq!(verdicts(&node, &[line]), [hit("a.b.d eq 1 1")]);
    // Under an `or`: the first true child on the first document that holds, marked under-or.
    let node = nested(
        "a.b",
        and(&[eq("a.b.c", "x"), or(&[eq("a.b.e", "5"), eq("a.b.d", "1")])]),
    );
    let line = r#"{"a":{"b":[{"c":"y","e":"5"},{"c":"x","d":"1","e":"6"},{"c":"x","e":"5"}]}}"#;
    assert_eq!(verdicts(&node, &[line]), [hit("a.b.d eq 1 1")]);
    // A nested node under an `or` of the branch: its entries are under-or.
    let node = and(&[
        eq("z", "1"),
        or(&[eq("y", "9"), nested("a.b", eq("a.b.c", "x"))]),
    ]);
    let line = r#"{"z":"1","a":{"b":[{"c":"x"}]}}"#;
    assert_eq!(verdicts(&node, &[line]), [hit("a.b.c eq x x")]);
    // A nested node that holds only through a `not` yields no entry.
    let node = and(&[eq("z", "1"), nested("a.b", not(eq("a.b.c", "x")))]);
    let line = r#"{"z":"1","a":{"b":[{"c":"x"},{"c":"y"}]}}"#;
    assert_eq!(verdicts(&node, &[line]), [hit("z eq 1 1")]);
}

#[test]
fn not_inside_is_per_document_and_not_outside_is_over_all() {
    let inside = nested("a.b", not(eq("a.b.c", "x")));
    let outside = not(nested("a.b", eq("a.b.c", "x")));
    let lines = [
        r#"{"a":{"b":[{"c":"x"},{"c":"y"}]}}"#,
        r#"{"a":{"b":[{"c":"x"},{"c":["y","x"]}]}}"#,
        r#"{"a":{"b":[{"c":"y"},{}]}}"#,
        r#"{"a":{"b":[]}}"#,
        r#"{"q":1}"#,
    ];
    assert_eq!(
        verdicts(&inside, &lines),
        [hit("-"), None, hit("-"), None, None]
    );
    assert_eq!(
        verdicts(&outside, &lines),
        [None, None, hit("-"), hit("-"), hit("-")]
    );
}

#[test]
fn scopes_nest() {
    // a: { a.b: { f: 1 } and g: 2 }: one object of a holds g and has an object of a.b with f.
    let node = nested("a", and(&[nested("a.b", eq("a.b.f", "1")), eq("a.g", "2")]));
    let lines = [
        r#"{"a":[{"g":"2","b":[{"f":"0"},{"f":"1"}]}]}"#,
        r#"{"a":[{"g":"2","b":[{"f":"0"}]},{"g":"3","b":{"f":"1"}}]}"#,
        r#"{"a":[{"g":"3"},{"g":"2","b.f":"1"}]}"#,
        r#"{"a.b":{"f":"1"},"a.g":"2"}"#,
    ];
    // The last line: `a.b` and `a.g` run past path `a`, each its own nested document.
    assert_eq!(
        verdicts(&node, &lines),
        [hit("a.g eq 2 2"), None, hit("a.g eq 2 2"), None]
    );
    // Inner conditions correlate within the inner object only.
    let node = nested(
        "a",
        nested("a.b", and(&[eq("a.b.f", "1"), eq("a.b.h", "1")])),
    );
    let lines = [
        r#"{"a":{"b":[{"f":"1"},{"h":"1"}]}}"#,
        r#"{"a":[{"b":{"f":"0"}},{"b":[{"h":"1","f":"1"}]}]}"#,
    ];
    assert_eq!(verdicts(&node, &lines), [None, hit("a.b.h eq 1 1")]);
}

#[test]
fn dotted_keys_and_keys_that_run_past_the_path() {
    let node = nested("a.b", and(&[eq("a.b.c", "x"), eq("a.b.d", "1")]));
    let lines = [
        // A dotted key naming the path.
        r#"{"a.b":[{"c":"x","d":"1"}]}"#,
        r#"{"a":{"b.c":"x","b.d":"1"}}"#,
        r#"{"a.b.c":"x","a.b.d":"1"}"#,
        r#"{"a":[{"b":{"c.d":"x"}}],"a.b":{"c":"x","d":["1"]}}"#,
    ];
    // Keys running past the path are one-member documents each: `c` and `d` never meet.
    assert_eq!(
        verdicts(&node, &lines),
        [hit("a.b.d eq 1 1"), None, None, hit("a.b.d eq 1 1")]
    );
    let one = nested("a.b", eq("a.b.c.e", "x"));
    let lines = [
        r#"{"a.b.c.e":"x"}"#,
        r#"{"a":{"b.c":{"e":["y","x"]}}}"#,
        r#"{"a":{"b.c.e.f":"x"}}"#,
    ];
    assert_eq!(
        verdicts(&one, &lines),
        [hit("a.b.c.e eq x x"), hit("a.b.c.e eq x x"), None]
    );
    // A key running past the path is a document even when its value is none: `not` holds on it.
    let none = nested("a.b", not(eq("a.b.c", "x")));
    let lines = [
        r#"{"a.b.z":null}"#,
        r#"{"a":{"b.c":"x"}}"#,
        r#"{"a":{"bc":{"d":1}}}"#,
    ];
    assert_eq!(verdicts(&none, &lines), [hit("-"), None, None]);
}

#[test]
fn scalars_null_and_empty_arrays_at_the_path_are_no_documents() {
    let node = nested("a.b", not(eq("a.b.c", "x")));
    let lines = [
        r#"{"a":{"b":"x"}}"#,
        r#"{"a":{"b":null}}"#,
        r#"{"a":{"b":[]}}"#,
        r#"{"a":{"b":[1,null,"s",[true]]}}"#,
        r#"{"a":{"b":[1,[[{"c":"y"}]]]}}"#,
        r#"{"a":"b"}"#,
        r#"{"a":[{"b":{}}]}"#,
    ];
    // Nested arrays are flattened; an empty object is a document.
    assert_eq!(
        verdicts(&node, &lines),
        [None, None, None, None, hit("-"), None, hit("-")]
    );
}

#[test]
fn typed_predicates_work_inside() {
    let node = nested(
        "g.info",
        and(&[
            pred("g.info.ip", "ip", "eq", &["10.0.0.1"]),
            pred("g.info.n", "long", "gte", &["5"]),
            pred("g.info.granted", "boolean", "eq", &["true"]),
        ]),
    );
    let lines = [
        r#"{"g":{"info":[{"ip":"10.0.0.1","n":7,"granted":false},{"ip":"::ffff:10.0.0.1","n":"5.5","granted":"true"}]}}"#,
        r#"{"g":{"info":[{"ip":"10.0.0.1","n":7,"granted":false},{"ip":"10.0.0.2","n":9,"granted":true}]}}"#,
        r#"{"g":{"info":{"ip":"10.0.0.1","n":4.9e0,"granted":true}}}"#,
    ];
    assert_eq!(
        verdicts(&node, &lines),
        [hit("g.info.granted eq true true"), None, None]
    );
    let text = nested(
        "g.info",
        json!({"node": "pred", "field": "g.info.msg", "field_type": "text",
               "analyzer": "standard", "op": "match_phrase", "values": ["Role Created"]}),
    );
    let lines = [
        r#"{"g":{"info":[{"msg":"role deleted"},{"msg":"a role created now"}]}}"#,
        r#"{"g":{"info":[{"msg":["role","created"]}]}}"#,
    ];
    assert_eq!(
        verdicts(&text, &lines),
        [
            hit("g.info.msg match_phrase Role Created a role created now"),
            None
        ]
    );
    // Keyword options (normalizer) inside.
    let caseless = nested(
        "g.info",
        json!({"node": "pred", "field": "g.info.p", "field_type": "keyword",
               "normalizer": "lowercase", "op": "eq", "values": ["iam.roles.create"]}),
    );
    let line = r#"{"g":{"info":[{"p":"IAM.Roles.Create"}]}}"#;
    assert_eq!(
        verdicts(&caseless, &[line]),
        [hit("g.info.p eq iam.roles.create IAM.Roles.Create")]
    );
}

#[test]
fn a_nested_node_counts_one_level() {
    let node = nested("a", eq("a.b", "x"));
    let ir = RuleIr::from_json(&rule(&node)).unwrap();
    assert_eq!(ir.branches[0].expr.depth(), 2);
    // 127 nots around a nested node: 129 levels, refused.
    let deep = (0..127).fold(node, |n, _| not(n));
    let err = RuleIr::from_json(&rule(&deep)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule error: branch \"b\" nests 129 levels deep (at most 128 are supported)"
    );
}

#[test]
fn the_checker_refuses_what_the_spec_refuses() {
    let refused = |expr: Value| RuleIr::from_json(&rule(&expr)).unwrap_err().to_string();
    assert_eq!(
        refused(nested("a.b", eq("a.c", "x"))),
        "rule error: bad IR: $.branches[0].expr.arg.field: nested node: \
         field \"a.c\" is not under its path \"a.b\""
    );
    // The path itself, and a mere prefix of a part, are not under it.
    for field in ["a.b", "a.bc", "a"] {
        assert!(refused(nested("a.b", eq(field, "x"))).contains("is not under its path"));
    }
    assert_eq!(
        refused(nested(
            "a",
            and(&[eq("a.x", "1"), nested("b.c", eq("b.c.d", "x"))])
        )),
        "rule error: bad IR: $.branches[0].expr.arg.args[1].path: nested node: \
         path \"b.c\" is not under its path \"a\""
    );
    // Fields under an inner node are checked against the inner path.
    assert_eq!(
        refused(nested("a", nested("a.b", not(eq("a.c", "x"))))),
        "rule error: bad IR: $.branches[0].expr.arg.arg.arg.field: nested node: \
         field \"a.c\" is not under its path \"a.b\""
    );
    let script = json!({"node": "expr", "text": "length(a.b) > 1",
        "expr": {"fn": "gt", "args": [{"fn": "length", "args": [
            {"field": "a.b", "field_type": "keyword"}]}, {"lit": 1}]}});
    assert_eq!(
        refused(nested("a", or(&[eq("a.b", "x"), script.clone()]))),
        "rule error: bad IR: $.branches[0].expr.arg.args[1].node: nested node: \
         an expr node cannot be under nested path \"a\""
    );
    // Outside a nested node an expr node is fine.
    RuleIr::from_json(&rule(&and(&[nested("a", eq("a.b", "x")), script]))).unwrap();
    for path in ["", "a..b", ".a", "a."] {
        assert_eq!(
            refused(nested(path, eq("a.b", "x"))),
            format!(
                "rule error: bad IR: $.branches[0].expr.path: nested node: \
                 path {} is not a field path",
                Value::from(path)
            )
        );
    }
    assert_eq!(
        refused(json!({"node": "nested", "path": "a"})),
        "rule error: bad IR: $.branches[0].expr: missing key \"arg\""
    );
    assert_eq!(
        refused(json!({"node": "nested", "path": 1, "arg": eq("a.b", "x")})),
        "rule error: bad IR: $.branches[0].expr.path: expected a string, found a number"
    );
    assert_eq!(
        refused(json!({"node": "nested", "path": "a", "args": [], "arg": eq("a.b", "x")})),
        "rule error: bad IR: $.branches[0].expr.args: unknown key"
    );
    // In an allowlist entry too.
    let mut doc: Value = serde_json::from_str(&rule(&eq("x", "1"))).unwrap();
    doc["allowlist"] = json!([nested("a", eq("b", "x"))]);
    assert_eq!(
        RuleIr::from_json(&doc.to_string()).unwrap_err().to_string(),
        "rule error: bad IR: $.allowlist[0].arg.field: nested node: \
         field \"b\" is not under its path \"a\""
    );
}

#[test]
fn a_tree_built_in_rust_is_checked_when_compiled() {
    use imds_core::{Branch, FieldType, Node, Op, Predicate};
    let field = |name: &str| {
        Node::Pred(Predicate {
            field: name.into(),
            field_type: FieldType::Keyword,
            op: Op::Eq,
            values: vec!["x".into()],
            ignore_above: None,
            normalizer: None,
            analyzer: None,
        })
    };
    let compile = |expr: Node| {
        let ir = RuleIr {
            ir_version: 1,
            id: "r".into(),
            name: "n".into(),
            severity: "low".into(),
            branches: vec![Branch {
                name: "b".into(),
                expr,
            }],
            allowlist: Vec::new(),
        };
        CompiledRule::new(ir).err().map(|e| e.to_string())
    };
    let nested = |path: &str, arg: Node| Node::Nested {
        path: path.into(),
        arg: Box::new(arg),
    };
    assert_eq!(compile(nested("a", field("a.b"))), None);
    assert_eq!(
        compile(nested("a", field("ab"))).unwrap(),
        "rule error: branch \"b\", field \"ab\": nested node: field \"ab\" is not under its path \"a\""
    );
    assert_eq!(
        compile(nested("a", nested("b", field("b.c")))).unwrap(),
        "rule error: branch \"b\" has a nested node: path \"b\" is not under its path \"a\""
    );
    assert_eq!(
        compile(nested("a..b", field("a..b.c"))).unwrap(),
        "rule error: branch \"b\" has a nested node: path \"a..b\" is not a field path"
    );
}

#[test]
fn the_prefilter_takes_the_args_needles() {
    let node = nested(
        "g.info",
        and(&[
            eq("g.info.permission", "iam.roles.create"),
            eq("g.info.granted", "true"),
        ]),
    );
    let engine = Engine::new(vec![RuleIr::from_json(&rule(&node)).unwrap()]).unwrap();
    let needles = engine.needles().expect("the prefilter is on");
    assert!(
        needles.iter().any(|n| n.contains("iam.roles.create")),
        "{needles:?}"
    );
    // Under `not`, nothing: the prefilter is off for the rule.
    let engine = Engine::new(vec![RuleIr::from_json(&rule(&not(node))).unwrap()]).unwrap();
    assert_eq!(engine.needles(), None);
    // Two rules (the rule gate's clauses) agree with a full evaluation too.
    let rules = [
        nested("a.b", and(&[eq("a.b.c", "x"), eq("a.b.d", "1")])),
        nested("a.b", not(eq("a.b.c", "x"))),
    ];
    let irs: Vec<RuleIr> = (rules.iter())
        .map(|r| RuleIr::from_json(&rule(r)).unwrap())
        .collect();
    let engine = Engine::new(irs.clone()).unwrap();
    let lines = [
        r#"{"a":{"b":[{"c":"x","d":"1"}]}}"#,
        r#"{"a":{"b":[{"c":"y","d":"1"}]}}"#,
        r#"{"a.b.z":1}"#,
        r#"{"a":{"b":[{"c":"x"}]}}"#,
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut seen = Vec::new();
    for prefilter in [true, false] {
        let options = ScanOptions {
            prefilter,
            ..ScanOptions::default()
        };
        let report = engine.scan_bytes(text.as_bytes(), &options);
        let hits: Vec<(u64, usize)> = report.hits.iter().map(|h| (h.line, h.rule)).collect();
        seen.push(hits);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], [(1, 0), (2, 1), (3, 1)]);
}
