//! The prefilter stays sound on KQL's predicates (spec/ir.md, "KQL additions"): every line a
//! rule matches is a candidate, alone and beside another rule (the rule gate), whatever case,
//! case-mapping or JSON escape spells its value.

use super::Prefilter;
use crate::eval::CompiledRule;
use crate::event::parse_line;
use crate::ir::RuleIr;

fn rule(id: &str, pred: &str) -> RuleIr {
    let text = format!(
        r#"{{"ir_version":1,"id":"{id}","name":"{id}","branches":[{{"name":"b","expr":{{"node":"pred","field":"a",{pred}}}}}]}}"#
    );
    RuleIr::from_json(&text).unwrap()
}

/// Every line the predicate matches is a candidate; `lines` must hold some match, and
/// `needle` says whether the prefilter should have one (not just parse every line).
fn sound(pred: &str, lines: &[&str], needle: bool) {
    let ir = rule("kql", pred);
    let compiled = CompiledRule::new(ir.clone()).unwrap();
    let other = rule(
        "other",
        r#""field_type":"keyword","op":"eq","values":["zqzqzq"]"#,
    );
    let alone = Prefilter::new(std::slice::from_ref(&ir));
    let gated = Prefilter::new(&[ir, other]);
    assert_eq!(alone.is_active(), needle, "{pred}: {:?}", alone.needles());
    let mut matched = 0;
    for line in lines {
        let parsed = parse_line(line.as_bytes()).unwrap().unwrap();
        if compiled.evaluate(&parsed.doc).is_some() {
            matched += 1;
            assert!(alone.is_candidate(line.as_bytes()), "{pred}: {line}");
            assert!(
                gated.is_candidate(line.as_bytes()),
                "{pred} (gated): {line}"
            );
        }
    }
    assert!(matched > 0, "{pred}: no line matches");
}

#[test]
fn lowercase_normalizer_literals_allow_for_case_mappings() {
    let kube = r#""field_type":"keyword","normalizer":"lowercase","op":"eq","values":["kubectl"]"#;
    // `K` U+212A lowercases to `k`: only `ubectl` is certain.
    sound(
        kube,
        &[
            r#"{"a":"KUBECTL"}"#,
            "{\"a\":\"\u{212A}ubectl\"}",
            r#"{"a":"\u212Aubectl"}"#,
            r#"{"a":"k\u0055bectl"}"#,
        ],
        true,
    );
    let info = r#""field_type":"keyword","normalizer":"lowercase","op":"eq","values":["info"]"#;
    sound(info, &["{\"a\":\"\u{130}NFO\"}", r#"{"a":"Info"}"#], true);
    let ecole = r#""field_type":"keyword","normalizer":"lowercase","op":"starts_with","values":["école/x"]"#;
    sound(
        ecole,
        &["{\"a\":\"ÉCOLE/X/y\"}", r#"{"a":"\u00c9cole/x"}"#],
        true,
    );
    let like =
        r#""field_type":"keyword","normalizer":"lowercase","op":"like","values":["*\\cmd.exe"]"#;
    sound(like, &[r#"{"a":"C:\\WINDOWS\\CMD.EXE"}"#], true);
    // A literal with no caseless piece (`ki`) gives no needle at all.
    let ki = r#""field_type":"keyword","normalizer":"lowercase","op":"eq","values":["ki"]"#;
    sound(ki, &["{\"a\":\"\u{212A}\u{130}\"}", r#"{"a":"KI"}"#], false);
    // imds_endpoint reads the lowercased value: the raw-line test would not.
    let endpoint = r#""field_type":"keyword","normalizer":"lowercase","op":"imds_endpoint","values":["aws-instance-data"]"#;
    sound(endpoint, &["{\"a\":\"\u{130}nstance-data\"}"], false);
}

#[test]
fn ignore_above_and_wildcard_fields_keep_their_needles() {
    let eq = r#""field_type":"keyword","ignore_above":8,"op":"eq","values":["cmd.exe"]"#;
    sound(eq, &[r#"{"a":"cmd.exe"}"#, r#"{"a":"c\u006dd.exe"}"#], true);
    let wild = r#""field_type":"wildcard","op":"ends_with","values":["\\cmd.exe"]"#;
    sound(
        wild,
        &[r#"{"a":"C:\\x\\cmd.exe"}"#, r#"{"a":"C:\u005ccmd.exe"}"#],
        true,
    );
}

#[test]
fn wildcard_query_needles_read_escapes() {
    // `\\` is one backslash; `\*` a star; `\c` a c.
    let backslash = r#""field_type":"keyword","op":"wildcard_query","values":["*\\\\cmd.exe"]"#;
    sound(
        backslash,
        &[r#"{"a":"C:\\cmd.exe"}"#, r#"{"a":"C:\u005Ccmd.exe"}"#],
        true,
    );
    let star = r#""field_type":"keyword","op":"wildcard_query","values":["a\\*b\\c*"]"#;
    sound(star, &[r#"{"a":"a*bcdef"}"#, r#"{"a":"a\u002abc"}"#], true);
    let ci = r#""field_type":"wildcard","op":"wildcard_query_ci","values":["*WIN?OWS\\\\*"]"#;
    sound(
        ci,
        &[r#"{"a":"c:\\windows\\x"}"#, r#"{"a":"c:\\WinDows\\"}"#],
        true,
    );
    let lowered = r#""field_type":"keyword","normalizer":"lowercase","op":"wildcard_query","values":["*kubectl*"]"#;
    sound(lowered, &["{\"a\":\"x \u{212A}UBECTL y\"}"], true);
    // Only wildcards: nothing certain.
    let any = r#""field_type":"keyword","op":"wildcard_query","values":["*?"]"#;
    sound(any, &[r#"{"a":"x"}"#], false);
}

#[test]
fn text_needles_allow_for_analysis() {
    let kubectl =
        r#""field_type":"text","analyzer":"standard","op":"match","values":["kubectl zz"]"#;
    sound(
        kubectl,
        &[
            "{\"a\":\"run \u{212A}UBECTL now\"}",
            r#"{"a":"run \u004bubectl"}"#,
            r#"{"a":"ZZ top"}"#,
            r#"{"a":["x","Z\u005a"]}"#,
        ],
        true,
    );
    let phrase = r#""field_type":"text","analyzer":"standard","op":"match_phrase","values":["invoke expression"]"#;
    sound(
        phrase,
        &[
            r#"{"a":"INVOKE-EXPRESSION $x"}"#,
            r#"{"a":"Invoke\u002dExpr\u0065ssion"}"#,
        ],
        true,
    );
    let ps = r#""field_type":"text","analyzer":"powershell_script","op":"match","values":["invoke-expression"]"#;
    sound(ps, &[r#"{"a":"IEX;Invoke-Expression($x)"}"#], true);
    let wildcard =
        r#""field_type":"text","analyzer":"standard","op":"wildcard_query","values":["POWER*"]"#;
    sound(
        wildcard,
        &[
            r#"{"a":"Windows PowerShell"}"#,
            r#"{"a":"\u0050OWERSHELL"}"#,
        ],
        true,
    );
    // A literal without tokens matches nothing and needs no needle; exists has none.
    let exists = r#""field_type":"text","analyzer":"standard","op":"exists","values":[]"#;
    sound(exists, &[r#"{"a":""}"#], false);
}
