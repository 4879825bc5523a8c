//! A hit's NDJSON record, byte for byte as the Python layer writes it (`Hit.to_json` in
//! python/imds_scan/records.py: `json.dumps` of the head object with `ensure_ascii=False`,
//! then the event's original text, stripped, spliced in as `"event"`), so that the common
//! output path builds no Python object per hit.

use super::Hit;
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
        let missing = |what: &str, index: usize| RecordError(format!("no {what} {index}"));
        let source = self
            .sources
            .get(hit.source)
            .ok_or_else(|| missing("source", hit.source))?;
        let rule = self
            .rules
            .get(hit.rule)
            .ok_or_else(|| missing("rule", hit.rule))?;
        let branch = rule
            .branches
            .get(hit.branch)
            .ok_or_else(|| missing("branch", hit.branch))?;
        out.extend_from_slice(b"{\"source\": ");
        json_string(source, out);
        out.extend_from_slice(b", \"line\": ");
        out.extend_from_slice(hit.line.to_string().as_bytes());
        for (key, value) in [
            ("rule", &rule.name),
            ("rule_id", &rule.id),
            ("severity", &rule.severity),
            ("branch", branch),
        ] {
            out.extend_from_slice(b", \"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\": ");
            json_string(value, out);
        }
        out.extend_from_slice(b", \"matched\": ");
        match &hit.witness {
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
        out.extend_from_slice(b", \"event\": ");
        out.extend_from_slice(py_strip(&hit.event).as_bytes());
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// `s` as `json.dumps(s, ensure_ascii=False)` writes it: `"` and `\` escaped, `\n \r \t \b
/// \f` by their short escapes, the other controls below U+0020 as `\u00xx`; all else as is.
fn json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
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
    use crate::eval::Witness;

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
    fn unknown_indices_are_errors() {
        let mut h = hit(None);
        h.branch = 5;
        assert_eq!(
            meta().write(&h, &mut Vec::new()),
            Err(RecordError("no branch 5".into()))
        );
    }

    #[test]
    fn strip_is_pythons() {
        assert_eq!(py_strip("\u{1c}\u{3000} {}\u{85}\u{a0}"), "{}");
        assert_eq!(py_strip("\u{200b}{}"), "\u{200b}{}");
    }
}
