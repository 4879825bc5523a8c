//! A hit's NDJSON record, byte for byte as the Python layer writes it (`Hit.to_json` in
//! python/imds_scan/records.py: `json.dumps` of the head object with `ensure_ascii=False`,
//! then the event's original text, stripped, spliced in as `"event"`), so that the common
//! output path builds no Python object per hit.

use super::Hit;
use crate::eval::Witness;
use std::fmt;

/// What a record says about one rule.
#[derive(Debug, Clone)]
pub struct RuleMeta {
    /// `rule`.
    pub name: String,
    /// `rule_id`.
    pub id: String,
    /// `severity`.
    pub severity: String,
    /// `branch`, by the hit's branch index.
    pub branches: Vec<String>,
}

/// The names records give: the sources by input index, the rules by rule index.
#[derive(Debug, Clone)]
pub struct RecordMeta {
    /// `source`, by input index.
    pub sources: Vec<String>,
    /// By rule index.
    pub rules: Vec<RuleMeta>,
}

/// A hit whose source, rule or branch has no name in the [`RecordMeta`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError(pub String);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordError {}

impl RecordMeta {
    /// Append `hit`'s record and a `\n` to `out`.
    pub fn write(&self, hit: &Hit, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let (rule, branch) = self.rule_branch(hit.rule, hit.branch)?;
        out.extend_from_slice(&self.head(hit.source)?);
        push_line(hit.line, out);
        write_labels(rule, branch, out);
        write_rest(hit.witness.as_ref(), &hit.event, out);
        Ok(())
    }

    /// The record's start for input `source`, up to its line number: `{"source": …,
    /// "line": `.
    pub(super) fn head(&self, source: usize) -> Result<Vec<u8>, RecordError> {
        let name = (self.sources.get(source)).ok_or_else(|| missing("source", source))?;
        let mut out = b"{\"source\": ".to_vec();
        json_string(name, &mut out);
        out.extend_from_slice(b", \"line\": ");
        Ok(out)
    }

    /// The rule and the branch's name.
    pub(super) fn rule_branch(
        &self,
        rule: usize,
        branch: usize,
    ) -> Result<(&RuleMeta, &str), RecordError> {
        let meta = (self.rules.get(rule)).ok_or_else(|| missing("rule", rule))?;
        let name = (meta.branches.get(branch)).ok_or_else(|| missing("branch", branch))?;
        Ok((meta, name))
    }

    /// The part of a record of `rule`'s `branch` after the line number and before
    /// `matched`: `, "rule": …, "branch": …`.
    pub(super) fn labels(&self, rule: usize, branch: usize) -> Result<Vec<u8>, RecordError> {
        let (meta, name) = self.rule_branch(rule, branch)?;
        let mut out = Vec::new();
        write_labels(meta, name, &mut out);
        Ok(out)
    }
}

fn missing(what: &str, index: usize) -> RecordError {
    RecordError(format!("no {what} {index}"))
}

/// A line number as JSON writes it.
pub(super) fn push_line(line: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = line;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_labels(rule: &RuleMeta, branch: &str, out: &mut Vec<u8>) {
    for (key, value) in [
        ("rule", rule.name.as_str()),
        ("rule_id", &rule.id),
        ("severity", &rule.severity),
        ("branch", branch),
    ] {
        out.extend_from_slice(b", \"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\": ");
        json_string(value, out);
    }
}

/// The end of a record, after its labels: `, "matched": …, "event": …}` and the `\n`.
pub(super) fn write_rest(witness: Option<&Witness>, event: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b", \"matched\": ");
    write_matched(witness, out);
    out.extend_from_slice(b", \"event\": ");
    out.extend_from_slice(py_strip(event).as_bytes());
    out.extend_from_slice(b"}\n");
}

/// A record's `matched`: `null`, or the witness as an object.
pub(super) fn write_matched(witness: Option<&Witness>, out: &mut Vec<u8>) {
    match witness {
        None => out.extend_from_slice(b"null"),
        Some(w) => {
            // The keys of stats.WITNESS_FIELDS, in their order.
            let fields = [
                ("field", w.field.as_str()),
                ("op", w.op),
                ("pattern", w.pattern.as_str()),
                ("value", w.value.as_str()),
            ];
            for (k, (key, value)) in fields.into_iter().enumerate() {
                out.extend_from_slice(if k == 0 { b"{\"" } else { b", \"" });
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\": ");
                json_string(value, out);
            }
            out.push(b'}');
        }
    }
}

/// `s` as `json.dumps(s, ensure_ascii=False)` writes it: `"` and `\` escaped, `\n \r \t \b
/// \f` by their short escapes, the other controls below U+0020 as `\u00xx`; all else as is.
pub(super) fn json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Most strings need no escape: the runs between escapes are copied whole.
    while let Some(i) = next_escaped(bytes, start) {
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The first byte at or after `from` that a JSON string escapes (`"`, `\\`, a control
/// byte): where the parser's string scan stops.
fn next_escaped(bytes: &[u8], from: usize) -> Option<usize> {
    let at = crate::event::string_stop(bytes, from);
    (at < bytes.len()).then_some(at)
}

/// One event of a sequence or sample result, as its record names it: its input's name as
/// JSON (`"…"`), its line and its text.
#[derive(Debug, Clone, Copy)]
pub struct ResultEvent<'a> {
    /// The input's name, as JSON.
    pub source: &'a [u8],
    /// The line number.
    pub line: u64,
    /// The event's text, as it was read (stripped here).
    pub text: &'a str,
}

/// Append a sequence or sample result's record and a `\n` to `out`, as the Python layer's
/// `records.record_parts` writes it: `labels` is the rule's part after the line number,
/// `, "rule": …, "matched": null`, and `keys` the join key values' JSON array; `events`
/// holds `None` for a missing-event stage. The record's own source, line and event are its
/// first event's (`""`, 0 and nothing without one, as there).
pub fn write_result_record(
    out: &mut Vec<u8>,
    labels: &[u8],
    keys: &[u8],
    events: &[Option<ResultEvent<'_>>],
) {
    let first = events.iter().flatten().next();
    out.extend_from_slice(b"{\"source\": ");
    out.extend_from_slice(first.map_or(&b"\"\""[..], |e| e.source));
    out.extend_from_slice(b", \"line\": ");
    push_line(first.map_or(0, |e| e.line), out);
    out.extend_from_slice(labels);
    out.extend_from_slice(b", \"join_keys\": ");
    out.extend_from_slice(keys);
    out.extend_from_slice(b", \"events\": [");
    for (k, event) in events.iter().enumerate() {
        if k > 0 {
            out.extend_from_slice(b", ");
        }
        match event {
            None => out.extend_from_slice(
                b"{\"missing\": true, \"source\": null, \"line\": null, \"event\": null}",
            ),
            Some(e) => {
                out.extend_from_slice(b"{\"source\": ");
                out.extend_from_slice(e.source);
                out.extend_from_slice(b", \"line\": ");
                push_line(e.line, out);
                out.extend_from_slice(b", \"event\": ");
                out.extend_from_slice(py_strip(e.text).as_bytes());
                out.push(b'}');
            }
        }
    }
    out.extend_from_slice(b"], \"event\": ");
    out.extend_from_slice(py_strip(first.map_or("", |e| e.text)).as_bytes());
    out.extend_from_slice(b"}\n");
}

/// Join key values as `json.dumps` of their list writes them (`[a, b]`).
pub fn write_keys_json(keys: &[crate::sequence::KeyJson], out: &mut Vec<u8>) {
    use crate::sequence::KeyJson;
    out.push(b'[');
    for (k, key) in keys.iter().enumerate() {
        if k > 0 {
            out.extend_from_slice(b", ");
        }
        match key {
            KeyJson::Null => out.extend_from_slice(b"null"),
            KeyJson::Str(s) => json_string(s, out),
            KeyJson::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            KeyJson::Float(x) => py_float(*x, out),
            KeyJson::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
    }
    out.push(b']');
}

/// A double as Python's `repr` (and `json.dumps`) writes it: the shortest digits that read
/// back the same, positional from 1e-4 up to below 1e16 (with `.0` when whole), else
/// `1.5e+16` / `1e-05`; `NaN`, `Infinity`, `-Infinity`.
fn py_float(x: f64, out: &mut Vec<u8>) {
    if x.is_nan() {
        return out.extend_from_slice(b"NaN");
    }
    if x.is_infinite() {
        return out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    }
    // Rust's `{:e}` gives the same shortest digits: `-1.2345e-7`.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.extend_from_slice(sign.as_bytes());
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the point
        if point <= 0 {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
            out.extend_from_slice(digits.as_bytes());
        } else {
            let point = point as usize;
            let whole = digits.get(..point.min(digits.len())).unwrap_or_default();
            out.extend_from_slice(whole.as_bytes());
            out.extend(std::iter::repeat_n(
                b'0',
                point.saturating_sub(digits.len()),
            ));
            out.push(b'.');
            match digits.get(point..).filter(|f| !f.is_empty()) {
                Some(fraction) => out.extend_from_slice(fraction.as_bytes()),
                None => out.push(b'0'),
            }
        }
    } else {
        out.extend_from_slice(mantissa.as_bytes());
        out.extend_from_slice(if exp < 0 { b"e-" } else { b"e+" });
        out.extend_from_slice(format!("{:02}", exp.unsigned_abs()).as_bytes());
    }
}

/// `s.strip()` in Python: without the characters `str.isspace` is true for.
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Python's `str.isspace` for one character (bidirectional class WS, B or S, or Zs).
fn py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\x1c'..='\x1f'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            sources: vec!["a \"b\"\\c\u{1}\u{7f}é😀".into()],
            rules: vec![RuleMeta {
                name: "n".into(),
                id: "i".into(),
                severity: "high".into(),
                branches: vec!["b0".into(), "b\n1".into()],
            }],
        }
    }

    fn hit(witness: Option<Witness>) -> Hit {
        Hit {
            source: 0,
            line: 12,
            rule: 0,
            branch: 1,
            witness,
            event: " \t{\"x\": 1}\r ".into(),
            extra: None,
        }
    }

    #[test]
    fn record_is_pythons_json() {
        let mut out = Vec::new();
        meta().write(&hit(None), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"source\": \"a \\\"b\\\"\\\\c\\u0001\u{7f}é😀\", \"line\": 12, \"rule\": \"n\", \
             \"rule_id\": \"i\", \"severity\": \"high\", \"branch\": \"b\\n1\", \"matched\": \
             null, \"event\": {\"x\": 1}}\n"
        );
        let witness = Witness {
            field: "f".into(),
            op: "==",
            pattern: "\u{8}\u{c}".into(),
            value: "v\u{1f}".into(),
        };
        let mut out = Vec::new();
        meta().write(&hit(Some(witness)), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(
            "\"matched\": {\"field\": \"f\", \"op\": \"==\", \"pattern\": \"\\b\\f\", \
             \"value\": \"v\\u001f\"}, \"event\": {"
        ));
    }

    #[test]
    fn a_results_record_is_pythons() {
        let first = ResultEvent {
            source: b"\"a\"",
            line: 7,
            text: "\u{3000} {\"x\": 1}\u{85}",
        };
        let second = ResultEvent {
            source: b"\"b\"",
            line: 12,
            text: "{\"y\": 2}\r\n",
        };
        let mut out = Vec::new();
        let labels = b", \"rule\": \"r\", \"matched\": null";
        write_result_record(
            &mut out,
            labels,
            b"[\"k\"]",
            &[None, Some(first), Some(second)],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"source\": \"a\", \"line\": 7, \"rule\": \"r\", \"matched\": null, \
             \"join_keys\": [\"k\"], \"events\": [{\"missing\": true, \"source\": null, \
             \"line\": null, \"event\": null}, {\"source\": \"a\", \"line\": 7, \"event\": \
             {\"x\": 1}}, {\"source\": \"b\", \"line\": 12, \"event\": {\"y\": 2}}], \
             \"event\": {\"x\": 1}}\n"
        );
    }

    #[test]
    fn keys_are_pythons_json() {
        use crate::sequence::KeyJson;
        // What Python's json.dumps writes for each (repr for the doubles).
        let floats = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (0.0001234, "0.0001234"),
            (123456789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e22, "1e+22"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (-2.5e-7, "-2.5e-07"),
            (100.0, "100.0"),
            (0.099975586, "0.099975586"),
            (1e-4 * 3.0, "0.00030000000000000003"),
            (9007199254740992.0, "9007199254740992.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in floats {
            let mut out = Vec::new();
            py_float(x, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{x:e}");
        }
        let mut out = Vec::new();
        let keys = [
            KeyJson::Str("h\"é\u{1}".into()),
            KeyJson::Int(-170141183460469231731687303715884105728),
            KeyJson::Float(1.5),
            KeyJson::Bool(true),
            KeyJson::Bool(false),
            KeyJson::Null,
        ];
        write_keys_json(&keys, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[\"h\\\"é\\u0001\", -170141183460469231731687303715884105728, 1.5, true, false, null]"
        );
        let mut out = Vec::new();
        write_keys_json(&[], &mut out);
        assert_eq!(out, b"[]");
    }

    #[test]
    fn unknown_indices_are_errors() {
        let mut h = hit(None);
        h.branch = 5;
        assert_eq!(
            meta().write(&h, &mut Vec::new()),
            Err(RecordError("no branch 5".into()))
        );
    }

    #[test]
    fn escapes_are_found_at_any_offset() {
        // One byte at a time, as json.dumps escapes.
        let simple = |s: &str| {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out + "\""
        };
        for len in 0..24 {
            for special in ["\"", "\\", "\u{0}", "\u{1f}", "\n", "é", "\u{7f}", "😀"] {
                for at in 0..=len {
                    let mut s = "a".repeat(len);
                    s.insert_str(at, special);
                    s.push_str(special);
                    let mut out = Vec::new();
                    json_string(&s, &mut out);
                    assert_eq!(String::from_utf8(out).unwrap(), simple(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn strip_is_pythons() {
        assert_eq!(py_strip("\u{1c}\u{3000} {}\u{85}\u{a0}"), "{}");
        assert_eq!(py_strip("\u{200b}{}"), "\u{200b}{}");
    }
}
