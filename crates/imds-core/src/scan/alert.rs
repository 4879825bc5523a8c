//! A hit's ECS alert document (`--format alerts`), byte for byte as the Python layer writes
//! it (`alert_json` in python/imds_scan/report/alerts.py: the event read by `json.loads`,
//! its `rule`, `threat` and `imds_scan` fields moved or dropped, `event.kind`/`severity`/
//! `risk_score` put, the rule's fields added, then `json.dumps` with `ensure_ascii=False`),
//! so that the alerts of single-event hits build no Python object per hit.
//!
//! The event is read as Python reads it: a repeated key keeps its first place and takes the
//! last value (a dict), numbers become `int` or `float` (written back as Python writes them:
//! `1E3` as `1000.0`, `-0` as `0`, `1e400` as `Infinity`), a lone surrogate escape becomes
//! U+FFFD (after the keys were told apart as written, as `_no_surrogates` does).

use super::record::{json_string, write_matched};
use crate::eval::Witness;
use std::borrow::Cow;
use std::collections::HashMap;

/// What an alert says about one rule besides its names.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// `event.severity` (Elastic's risk number for the rule's severity), when it has one.
    pub risk: Option<i64>,
    /// The members after the event's, as `json.dumps` writes them: `"rule": {…}` and, when
    /// the rule has an ATT&CK mapping, `, "threat": {…}`.
    pub detection: String,
}

/// A JSON value as Python's `json.loads` gives it (numbers as their text).
#[derive(Debug)]
enum Json<'t> {
    Null,
    Bool(bool),
    /// A number's JSON text.
    Number(Cow<'t, str>),
    String(Cow<'t, str>),
    Array(Vec<Json<'t>>),
    Object(Object<'t>),
}

/// An object's members in order, each key once (as a Python dict: a key given again keeps
/// its place and takes the new value). Found by a look along the members while there are
/// few (most objects of an event), through a hash index beyond.
#[derive(Debug, Default)]
struct Object<'t> {
    members: Vec<(Cow<'t, str>, Json<'t>)>,
    index: Option<HashMap<Cow<'t, str>, usize>>,
}

/// Members an object has before it gets a hash index.
const FEW_MEMBERS: usize = 16;

impl<'t> Object<'t> {
    fn new() -> Self {
        Object::default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.members.iter().position(|(k, _)| k == key),
        }
    }

    fn insert(&mut self, key: Cow<'t, str>, value: Json<'t>) {
        if let Some(at) = self.position(&key) {
            self.members[at].1 = value;
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), self.members.len());
        }
        self.members.push((key, value));
        if self.index.is_none() && self.members.len() > FEW_MEMBERS {
            self.reindex();
        }
    }

    fn reindex(&mut self) {
        let index = (self.members.iter().enumerate())
            .map(|(at, (key, _))| (key.clone(), at))
            .collect();
        self.index = Some(index);
    }

    fn shift_remove(&mut self, key: &str) {
        if let Some(at) = self.position(key) {
            self.members.remove(at);
            if self.index.is_some() {
                self.reindex();
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Json<'t>> {
        self.position(key).map(|at| &self.members[at].1)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Json<'t>> {
        self.position(key).map(|at| &mut self.members[at].1)
    }

    /// Every member, taken out.
    fn take(&mut self) -> Vec<(Cow<'t, str>, Json<'t>)> {
        self.index = None;
        std::mem::take(&mut self.members)
    }

    fn extend(&mut self, members: impl IntoIterator<Item = (Cow<'t, str>, Json<'t>)>) {
        for (key, value) in members {
            self.insert(key, value);
        }
    }
}

/// Deepest nesting read: the engine's limit (a hit's event is within it), and one more.
const MAX_DEPTH: usize = crate::event::MAX_NESTING + 1;

/// Reads a JSON text the engine accepted. `None` on anything else (never for a hit's event).
struct Reader<'t> {
    text: &'t str,
    pos: usize,
    depth: usize,
}

/// An object's members by key as written, and where each key is among them.
type RawMembers<'t> = (Vec<(Cow<'t, str>, Json<'t>)>, HashMap<RawKey<'t>, usize>);

/// A key's identity as written, when it has a lone surrogate: its text with U+FFFD for each
/// lone surrogate, and (where, which code unit) for those.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RawKey<'t> {
    Plain(Cow<'t, str>),
    Lone(String, Vec<(usize, u16)>),
}

impl<'t> Reader<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Json<'t>> {
        self.space();
        let bytes = self.text.as_bytes();
        match self.peek()? {
            b'{' => self.object().map(Json::Object),
            b'[' => self.array(),
            b'"' => self.string().map(|(s, _)| Json::String(s)),
            b't' if bytes[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Some(Json::Bool(true))
            }
            b'f' if bytes[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Some(Json::Bool(false))
            }
            b'n' if bytes[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Some(Json::Null)
            }
            b'-' | b'0'..=b'9' => {
                let start = self.pos;
                self.pos += 1;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    self.pos += 1;
                }
                Some(Json::Number(Cow::Borrowed(&self.text[start..self.pos])))
            }
            _ => None,
        }
    }

    fn open(&mut self) -> Option<()> {
        self.depth += 1;
        self.pos += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn array(&mut self) -> Option<Json<'t>> {
        self.open()?;
        let mut items = Vec::new();
        if !self.eat(b']') {
            loop {
                items.push(self.value()?);
                if self.eat(b']') {
                    break;
                }
                self.eat(b',').then_some(())?;
            }
        }
        self.depth -= 1;
        Some(Json::Array(items))
    }

    fn object(&mut self) -> Option<Object<'t>> {
        self.open()?;
        let mut map = Object {
            members: Vec::with_capacity(8),
            index: None,
        };
        // Once a key with a lone surrogate comes: the members by key as written.
        let mut raw: Option<RawMembers<'t>> = None;
        if !self.eat(b'}') {
            loop {
                self.space();
                let (key, lone) = self.string()?;
                self.eat(b':').then_some(())?;
                let value = self.value()?;
                if raw.is_none() && lone.is_some() {
                    let members = map.take();
                    let index = (members.iter().enumerate())
                        .map(|(k, (key, _))| (RawKey::Plain(key.clone()), k))
                        .collect();
                    raw = Some((members, index));
                }
                match &mut raw {
                    None => {
                        map.insert(key, value);
                    }
                    Some((members, index)) => {
                        let id = match lone {
                            Some(units) => RawKey::Lone(key.to_string(), units),
                            None => RawKey::Plain(key.clone()),
                        };
                        match index.get(&id) {
                            Some(&k) => members[k].1 = value,
                            None => {
                                index.insert(id, members.len());
                                members.push((key, value));
                            }
                        }
                    }
                }
                if self.eat(b'}') {
                    break;
                }
                self.eat(b',').then_some(())?;
            }
        }
        // Then the keys as read (lone surrogates as U+FFFD): a later one takes the place of
        // an equal earlier one's value.
        if let Some((members, _)) = raw {
            map.extend(members);
        }
        self.depth -= 1;
        Some(map)
    }

    /// The string at `pos`, decoded, and where its lone surrogates were (`None` if none).
    #[allow(clippy::type_complexity)]
    fn string(&mut self) -> Option<(Cow<'t, str>, Option<Vec<(usize, u16)>>)> {
        let bytes = self.text.as_bytes();
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos + 1;
        let end = start + memchr::memchr2(b'"', b'\\', &bytes[start..])?;
        if bytes[end] == b'"' {
            self.pos = end + 1;
            return Some((Cow::Borrowed(&self.text[start..end]), None));
        }
        let mut out = String::with_capacity(end - start + 16);
        out.push_str(&self.text[start..end]);
        let mut lone = Vec::new();
        let mut i = end;
        loop {
            let run = memchr::memchr2(b'"', b'\\', &bytes[i..])?;
            out.push_str(&self.text[i..i + run]);
            i += run;
            if bytes[i] == b'"' {
                self.pos = i + 1;
                let lone = (!lone.is_empty()).then_some(lone);
                return Some((Cow::Owned(out), lone));
            }
            let escape = *bytes.get(i + 1)?;
            i += 2;
            let c = match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let unit = hex4(bytes.get(i..i + 4)?)?;
                    i += 4;
                    match unit {
                        0xD800..=0xDBFF => {
                            // Paired with a low surrogate escape right after, as json.loads does.
                            let low = (bytes.get(i..i + 2) == Some(b"\\u"))
                                .then(|| bytes.get(i + 2..i + 6).and_then(hex4))
                                .flatten()
                                .filter(|low| (0xDC00..=0xDFFF).contains(low));
                            match low {
                                Some(low) => {
                                    i += 6;
                                    let code = 0x10000
                                        + ((u32::from(unit) - 0xD800) << 10)
                                        + (u32::from(low) - 0xDC00);
                                    char::from_u32(code)?
                                }
                                None => {
                                    lone.push((out.len(), unit));
                                    '\u{FFFD}'
                                }
                            }
                        }
                        0xDC00..=0xDFFF => {
                            lone.push((out.len(), unit));
                            '\u{FFFD}'
                        }
                        _ => char::from_u32(u32::from(unit))?,
                    }
                }
                _ => return None,
            };
            out.push(c);
        }
    }
}

fn hex4(digits: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(digits).ok()?;
    u16::from_str_radix(text, 16).ok()
}

/// Write `value` as `json.dumps(value, ensure_ascii=False)` does.
fn write_value(value: &Json<'_>, out: &mut Vec<u8>) {
    match value {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Number(text) => write_number(text, out),
        Json::String(s) => json_string(s, out),
        Json::Array(items) => {
            out.push(b'[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.extend_from_slice(b", ");
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Json::Object(map) => {
            out.push(b'{');
            write_members(map, out);
            out.push(b'}');
        }
    }
}

fn write_members(map: &Object<'_>, out: &mut Vec<u8>) {
    for (k, (key, value)) in map.members.iter().enumerate() {
        if k > 0 {
            out.extend_from_slice(b", ");
        }
        json_string(key, out);
        out.extend_from_slice(b": ");
        write_value(value, out);
    }
}

/// A JSON number as Python reads and writes it back: an integer (no fraction, no exponent)
/// as its digits (`-0` as `0`), anything else as the `repr` of the nearest float.
fn write_number(text: &str, out: &mut Vec<u8>) {
    if !text.contains(['.', 'e', 'E']) {
        out.extend_from_slice(if text == "-0" { b"0" } else { text.as_bytes() });
        return;
    }
    match text.parse::<f64>() {
        Ok(x) => write_float(x, out),
        Err(_) => out.extend_from_slice(text.as_bytes()),
    }
}

/// `repr(x)` as `json.dumps` writes a float: the shortest digits that read back as `x`, in
/// positional notation when the exponent is from -4 to 15 (with `.0` when whole), else as
/// `d.ddde+XX`; infinities as `Infinity`.
fn write_float(x: f64, out: &mut Vec<u8>) {
    if x.is_infinite() {
        out.extend_from_slice(if x < 0.0 { b"-Infinity" } else { b"Infinity" });
        return;
    }
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
        return;
    }
    // Rust's `{:e}` gives as many digits as Python's repr (the fewest that read back as
    // `x`: `-1.2345e-7`, `1e16`), but not always the nearest such digits, which repr takes:
    // those are `x` rounded correctly to that many digits.
    let shortest = format!("{x:e}");
    let count = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let sci = format!("{x:.*e}", count.saturating_sub(1));
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut text = String::with_capacity(digits.len() + 8);
    if negative {
        text.push('-');
    }
    if !(-4..16).contains(&exp) {
        text.push_str(&digits[..1]);
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        text.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else if exp >= 0 {
        let whole = exp as usize + 1;
        if digits.len() <= whole {
            text.push_str(&digits);
            text.extend(std::iter::repeat_n('0', whole - digits.len()));
            text.push_str(".0");
        } else {
            text.push_str(&digits[..whole]);
            text.push('.');
            text.push_str(&digits[whole..]);
        }
    } else {
        text.push_str("0.");
        text.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        text.push_str(&digits);
    }
    out.extend_from_slice(text.as_bytes());
}

/// Set `event.<field>` as `_put` does: every spelling of it removed (the `event.<field>`
/// key, the member of an `event` object; an `event` that is no object), then set last.
fn put_event<'t>(doc: &mut Object<'t>, field: &'static str, value: Json<'t>) {
    let dotted = ["event.", field].concat();
    doc.shift_remove(dotted.as_str());
    let is_object = matches!(doc.get("event"), Some(Json::Object(_)));
    if !is_object {
        doc.shift_remove("event");
        doc.insert(Cow::Borrowed("event"), Json::Object(Object::new()));
    }
    if let Some(Json::Object(event)) = doc.get_mut("event") {
        event.shift_remove(field);
        event.insert(Cow::Borrowed(field), value);
    }
}

/// Whether a top-level key is in the namespace `space` (`space` itself or `space.…`).
fn in_space(key: &str, space: &str) -> bool {
    key.strip_prefix(space)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The parts of one alert around its line number: `imds_scan.source`'s member is in
/// `before`'s end (`…"line": `), the rest after.
pub(super) struct AlertParts<'a> {
    /// `, "imds_scan": {"source": …, "line": ` for the hit's input.
    pub(super) source: &'a [u8],
    /// `, "branch": …, "severity": …, "matched": ` for the hit's rule and branch.
    pub(super) labels: &'a [u8],
    pub(super) rule: &'a AlertRule,
}

/// The alert of a hit on the event `text` (its event text) with `witness`: appended to
/// `before` up to its line number (`…"line": `), the rest (from `, "branch"` to the `\n`)
/// to `after`.
pub(super) fn write_alert(
    text: &str,
    witness: Option<&Witness>,
    parts: &AlertParts<'_>,
    before: &mut Vec<u8>,
    after: &mut Vec<u8>,
) {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    reader.space();
    // The engine read this text as an object; an empty event if not (never for a hit).
    let mut doc = (reader.peek() == Some(b'{'))
        .then(|| reader.object())
        .flatten()
        .unwrap_or_default();
    // The event's own rule.*, threat.* (to imds_scan.original) and imds_scan.* (dropped).
    let mut original = Object::new();
    let mut threat = Vec::new();
    if doc
        .members
        .iter()
        .any(|(k, _)| in_space(k, "rule") || in_space(k, "threat") || in_space(k, "imds_scan"))
    {
        let mut kept = Object::new();
        for (key, value) in doc.take() {
            if in_space(&key, "rule") {
                original.insert(key, value);
            } else if in_space(&key, "threat") {
                threat.push((key, value));
            } else if !in_space(&key, "imds_scan") {
                kept.insert(key, value);
            }
        }
        original.extend(threat);
        doc = kept;
    }
    put_event(&mut doc, "kind", Json::String(Cow::Borrowed("alert")));
    if let Some(risk) = parts.rule.risk {
        put_event(
            &mut doc,
            "severity",
            Json::Number(Cow::Owned(risk.to_string())),
        );
        let score = Json::Number(Cow::Owned(format!("{risk}.0")));
        put_event(&mut doc, "risk_score", score);
    }
    before.reserve(text.len() + parts.rule.detection.len() + 128);
    before.push(b'{');
    write_members(&doc, before);
    before.extend_from_slice(b", ");
    before.extend_from_slice(parts.rule.detection.as_bytes());
    before.extend_from_slice(parts.source);
    after.extend_from_slice(parts.labels);
    write_matched(witness, after);
    if !original.members.is_empty() {
        after.extend_from_slice(b", \"original\": {");
        write_members(&original, after);
        after.push(b'}');
    }
    after.extend_from_slice(b"}}\n");
}

/// `, "imds_scan": {"source": <name>, "line": `: the start of an input's alerts' `imds_scan`.
pub(super) fn alert_source(name: &str) -> Vec<u8> {
    let mut out = b", \"imds_scan\": {\"source\": ".to_vec();
    json_string(name, &mut out);
    out.extend_from_slice(b", \"line\": ");
    out
}

/// `, "branch": <branch>, "severity": <severity>, "matched": `.
pub(super) fn alert_labels(branch: &str, severity: &str) -> Vec<u8> {
    let mut out = b", \"branch\": ".to_vec();
    json_string(branch, &mut out);
    out.extend_from_slice(b", \"severity\": ");
    json_string(severity, &mut out);
    out.extend_from_slice(b", \"matched\": ");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(x: f64) -> String {
        let mut out = Vec::new();
        write_float(x, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn number(text: &str) -> String {
        let mut out = Vec::new();
        write_number(text, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_are_pythons_repr() {
        for (x, repr) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789012345678.5, "1.2345678901234568e+17"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            // The nearest of the shortest digits, as repr: not Rust's `{:e}`'s `…460.3`.
            (1969204825527460.2, "1969204825527460.2"),
            (-1472337358804027.2, "-1472337358804027.2"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float(x), repr, "{x:e}");
        }
    }

    #[test]
    fn numbers_are_read_as_python_does() {
        assert_eq!(number("-0"), "0");
        assert_eq!(number("12345678901234567890123"), "12345678901234567890123");
        assert_eq!(number("1E3"), "1000.0");
        assert_eq!(number("-0.0"), "-0.0");
        assert_eq!(number("1e400"), "Infinity");
        assert_eq!(number("1.50"), "1.5");
    }

    fn alert(text: &str, risk: Option<i64>) -> String {
        let rule = AlertRule {
            risk,
            detection: "\"rule\": {\"id\": \"i\"}".into(),
        };
        let (source, labels) = (alert_source("a.ndjson"), alert_labels("b", "high"));
        let parts = AlertParts {
            source: &source,
            labels: &labels,
            rule: &rule,
        };
        let (mut before, mut after) = (Vec::new(), Vec::new());
        write_alert(text, None, &parts, &mut before, &mut after);
        before.extend_from_slice(b"7");
        before.extend_from_slice(&after);
        String::from_utf8(before).unwrap()
    }

    #[test]
    fn alert_moves_and_puts_fields() {
        assert_eq!(
            alert(
                "{\"event\": {\"kind\": \"x\", \"a\": 1}, \"rule\": 2, \"event.kind\": 3, \
                 \"threat.x\": [], \"rule.y\": null, \"imds_scan\": {}, \"k\": 1, \"k\": 2}",
                Some(73)
            ),
            "{\"event\": {\"a\": 1, \"kind\": \"alert\", \"severity\": 73, \"risk_score\": \
             73.0}, \"k\": 2, \"rule\": {\"id\": \"i\"}, \"imds_scan\": {\"source\": \
             \"a.ndjson\", \"line\": 7, \"branch\": \"b\", \"severity\": \"high\", \
             \"matched\": null, \"original\": {\"rule\": 2, \"rule.y\": null, \"threat.x\": \
             []}}}\n"
        );
        // An `event` that is no object is replaced, at the end.
        assert_eq!(
            alert("{\"event\": \"e\", \"x\": \"\\ud800\\u00e9\"}", None),
            "{\"x\": \"\u{fffd}é\", \"event\": {\"kind\": \"alert\"}, \"rule\": {\"id\": \
             \"i\"}, \"imds_scan\": {\"source\": \"a.ndjson\", \"line\": 7, \"branch\": \
             \"b\", \"severity\": \"high\", \"matched\": null}}\n"
        );
    }

    #[test]
    fn lone_surrogate_keys_are_told_apart_as_written_first() {
        // json.loads keeps {A: 3, B: 2}; then A and B are both U+FFFD: B's value, A's place.
        assert_eq!(
            alert("{\"\\udc00\": 1, \"\u{fffd}\": 2, \"\\udc00\": 3}", None)
                .split(", \"event\"")
                .next()
                .unwrap(),
            "{\"\u{fffd}\": 2"
        );
    }
}
