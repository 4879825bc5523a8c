//! What the fuzzing compares the engine with: shared by tests/fuzz_props.rs and the
//! cargo-fuzz targets (crates/imds-core/fuzz), so both hold the engine to one model.
#![allow(dead_code)] // each user takes a part

use imds_core::{
    field_values, parse_document, parse_line, parse_line_for, parse_line_projected, OpenRules,
    ParsedLine, Projection, ScanReport,
};
use serde_json::Value;
use std::borrow::Cow;

/// `text` with each `\uD800`-`\uDFFF` escape that is not half of a pair (a high one followed
/// by a low one) spelled `\uFFFD`: what the engine reads it as, which serde_json parses.
pub fn lone_surrogates_as_fffd(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let unit = |i: usize| {
        let hex = bytes.get(i + 2..i + 6)?;
        (bytes[i + 1] == b'u')
            .then(|| u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .flatten()
    };
    let mut lone = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(i) {
            Some(0xD800..=0xDBFF) => match unit(i + 6).filter(|_| bytes.get(i + 6) == Some(&b'\\'))
            {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => {
                    lone.push(i);
                    i += 6;
                }
            },
            Some(0xDC00..=0xDFFF) => {
                lone.push(i);
                i += 6;
            }
            Some(_) => i += 6,
            None => i += 2,
        }
    }
    if lone.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = bytes.to_vec();
    for i in lone {
        out[i..i + 6].copy_from_slice(br"\uFFFD");
    }
    Cow::Owned(String::from_utf8(out).unwrap())
}

/// The deepest nesting of objects and arrays in a JSON text (brackets in strings not counted).
pub fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    deepest
}

/// Most containers a document may nest (Elasticsearch's limit, spec/ir.md); deeper is malformed.
pub const MAX_NESTING: usize = 1000;

/// serde_json's verdict, without its recursion limit of 128: the text is a JSON object.
pub fn serde_object(text: &str) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value: Value = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value).filter(Value::is_object)
}

/// The reason a malformed line that nests no deeper than the limit gives: serde_json's
/// message (reading it as `IgnoredAny`: any depth, lone surrogates fine) with the column in
/// the line, or, for JSON that is no object, that.
pub fn serde_reason(text: &str) -> String {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => "not a JSON object".into(),
        Err(e) => {
            let message = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            let what = message.strip_suffix(&position).unwrap_or(&message);
            format!("invalid JSON: {what} at column {}", e.column())
        }
    }
}

/// A document with numbers as their JSON text, as `parse_document` builds them.
pub fn numbers_as_text(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_text).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_text(v)))
                .collect(),
        ),
        v => v,
    }
}

pub type Key = (
    u64,
    usize,
    usize,
    Option<(String, String, String, String)>,
    String,
);

pub fn keys(report: &ScanReport) -> Vec<Key> {
    report
        .hits
        .iter()
        .map(|h| {
            let w = h.witness.as_ref().map(|w| {
                (
                    w.field.clone(),
                    w.op.to_string(),
                    w.pattern.clone(),
                    w.value.clone(),
                )
            });
            (h.line, h.rule, h.branch, w, h.event.clone())
        })
        .collect()
}

/// The event builder against the model: never panics; a line is an event exactly when
/// serde_json (without its recursion limit) reads the text, lone surrogate escapes as
/// `\uFFFD`, as an object at most [`MAX_NESTING`] deep; deeper, it is malformed for its depth;
/// the document is serde_json's, numbers as their text. Err says how they differ.
pub fn builder_verdict(bytes: &[u8]) -> Result<(), String> {
    let parsed = parse_line(bytes);
    let text = String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(bytes));
    let blank = text.bytes().all(|b| b" \t\r\n".contains(&b));
    let model = lone_surrogates_as_fffd(&text);
    let expected = serde_object(&model);
    let too_deep = expected.is_some() && json_depth(&model) > MAX_NESTING;
    let agrees = match (&parsed, &expected) {
        (Ok(None), _) => blank,
        (Ok(Some(line)), Some(_)) if !too_deep => {
            line.invalid_utf8 == std::str::from_utf8(bytes).is_err()
        }
        (Err(e), Some(_)) if too_deep => e
            .reason
            .starts_with(&format!("nested deeper than {MAX_NESTING} levels")),
        // Worded as serde_json words it (or, for JSON that is no object, as that).
        (Err(e), None) => !blank && e.reason == serde_reason(&text),
        _ => false,
    };
    if !agrees {
        return Err(format!(
            "parse_line {:?}, serde_json {:?} (depth {}) on {text:?}",
            parsed.as_ref().map(|p| p.as_ref().map(|l| l.invalid_utf8)),
            expected.is_some(),
            json_depth(&model),
        ));
    }
    // The same document (without unwrapping an exporter's wrapper), numbers aside.
    if let (Ok(doc), Some(serde)) = (parse_document(&text), expected) {
        let serde = numbers_as_text(serde);
        if doc != serde {
            return Err(format!("documents differ on {text:?}: {doc} != {serde}"));
        }
    }
    Ok(())
}

/// The projected parse against the full one, for the rules' `fields`: the same verdict (the
/// same malformed reason, the same blank lines), the same event text, and the same values
/// for every field. Err says how they differ.
pub fn projection_verdict(bytes: &[u8], fields: &[&str]) -> Result<(), String> {
    let projected = parse_line_projected(bytes, &Projection::new(fields.iter().copied()));
    agrees_with_full_parse(bytes, projected, fields)
}

/// [`projection_verdict`] for a projection of `rules` (each a rule's fields) narrowed to the
/// `open` ones: the fields of the open rules as the full parse gives them.
pub fn open_rules_verdict(bytes: &[u8], rules: &[Vec<&str>], open: &[bool]) -> Result<(), String> {
    let projection = Projection::by_rule(rules.iter().map(|r| r.iter().copied()));
    let mut open_rules = OpenRules::default();
    let list: Vec<usize> = (0..open.len()).filter(|&r| open[r]).collect();
    open_rules.fill(&list, open.len());
    let parsed = parse_line_for(bytes, &projection, &open_rules);
    let fields: Vec<&str> = (rules.iter().zip(open))
        .filter(|(_, &o)| o)
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    agrees_with_full_parse(bytes, parsed, &fields)
        .map_err(|e| format!("{e} (rules {rules:?}, open {open:?})"))
}

/// Each value as a flag: whether it was a JSON number ([`ParsedLine::numbers`]: a number's
/// text is its own allocation, known by its address).
fn number_flags(values: &[Cow<'_, str>], line: &ParsedLine<'_>) -> Vec<bool> {
    values
        .iter()
        .map(|v| match v {
            Cow::Borrowed(s) => {
                !s.is_empty() && line.numbers.binary_search(&(s.as_ptr() as usize)).is_ok()
            }
            Cow::Owned(_) => true,
        })
        .collect()
}

/// A projected parse `projected` of `bytes` against the full one, for `fields`.
fn agrees_with_full_parse(
    bytes: &[u8],
    projected: Result<Option<ParsedLine<'_>>, imds_core::Malformed>,
    fields: &[&str],
) -> Result<(), String> {
    let full = parse_line(bytes);
    let text = String::from_utf8_lossy(bytes);
    match (&full, &projected) {
        (Ok(None), Ok(None)) => Ok(()),
        (Err(a), Err(b)) if a == b => Ok(()),
        (Ok(Some(a)), Ok(Some(b))) => {
            if a.text != b.text || a.invalid_utf8 != b.invalid_utf8 {
                return Err(format!("event text differs with {fields:?} on {text:?}"));
            }
            for field in fields {
                let path: Vec<&str> = field.split('.').collect();
                let (mut want, mut got) = (Vec::new(), Vec::new());
                field_values(&a.doc, &path, &mut want);
                field_values(&b.doc, &path, &mut got);
                if want != got {
                    return Err(format!(
                        "{field}: {got:?} projected, {want:?} in full, with {fields:?} on {text:?}"
                    ));
                }
                if number_flags(&want, a) != number_flags(&got, b) {
                    return Err(format!(
                        "{field}: numbers differ in {got:?}, with {fields:?} on {text:?}"
                    ));
                }
            }
            Ok(())
        }
        _ => Err(format!(
            "full {:?}, projected {:?} with {fields:?} on {text:?}",
            full.as_ref().map(Option::is_some),
            projected.as_ref().map(Option::is_some)
        )),
    }
}
