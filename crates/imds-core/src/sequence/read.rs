//! What the matcher reads of a candidate: its time, tiebreaker and join keys, from the event
//! text, with the engine's own event reader and typed reading (spec/sequences.md, "Events,
//! time and order").

use super::ir::KeyRef;
use crate::event::{for_each_value, is_json_number, parse_event_projected, ParsedLine, Projection};
use crate::expr::ip_string;
use crate::ir::{FieldRef, FieldType};
use crate::typed::{read, Val};
use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;

/// A typed join key value.
#[derive(Debug, Clone)]
pub enum Typed {
    /// keyword.
    Str(Box<str>),
    /// ip.
    Ip([u8; 16]),
    /// Integer types.
    Int(i128),
    /// double, float (rounded to binary32), half_float (to binary16), scaled_float.
    Float(f64),
    /// date: milliseconds since the epoch.
    Date(i64),
    /// boolean.
    Bool(bool),
}

/// A join key value (spec/sequences.md, "Join key values"): a value with its field type, or
/// null (an optional key without a value). Values of different types are never equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue(pub Option<(FieldType, Typed)>);

impl Hash for KeyValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if let Some((field_type, value)) = &self.0 {
            field_type.as_str().hash(state);
            value.hash(state);
        }
    }
}

impl Typed {
    /// The float's bits, with `-0.0` as `0.0` (they are equal numbers).
    fn float_bits(x: f64) -> u64 {
        if x == 0.0 {
            0
        } else {
            x.to_bits()
        }
    }

    /// The type's order (values of one type; floats by value, `-0.0` equal to `0.0`).
    fn cmp_same(&self, other: &Typed) -> Ordering {
        match (self, other) {
            (Typed::Str(a), Typed::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Typed::Ip(a), Typed::Ip(b)) => a.cmp(b),
            (Typed::Int(a), Typed::Int(b)) => a.cmp(b),
            (Typed::Float(a), Typed::Float(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Typed::Date(a), Typed::Date(b)) => a.cmp(b),
            (Typed::Bool(a), Typed::Bool(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Typed::Str(_) => 0,
            Typed::Ip(_) => 1,
            Typed::Int(_) => 2,
            Typed::Float(_) => 3,
            Typed::Date(_) => 4,
            Typed::Bool(_) => 5,
        }
    }
}

impl PartialEq for Typed {
    fn eq(&self, other: &Typed) -> bool {
        match (self, other) {
            (Typed::Float(a), Typed::Float(b)) => Typed::float_bits(*a) == Typed::float_bits(*b),
            _ => self.rank() == other.rank() && self.cmp_same(other) == Ordering::Equal,
        }
    }
}

impl Eq for Typed {}

impl Hash for Typed {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Typed::Str(s) => s.hash(state),
            Typed::Ip(a) => a.hash(state),
            Typed::Int(n) => n.hash(state),
            Typed::Float(x) => Typed::float_bits(*x).hash(state),
            Typed::Date(d) => d.hash(state),
            Typed::Bool(b) => b.hash(state),
        }
    }
}

impl KeyValue {
    /// Null first; values of different types by the type's name; else the type's order.
    pub fn cmp_key(&self, other: &KeyValue) -> Ordering {
        match (&self.0, &other.0) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some((ta, a)), Some((tb, b))) => {
                ta.as_str().cmp(tb.as_str()).then_with(|| a.cmp_same(b))
            }
        }
    }

    /// The value as Elasticsearch returns it (spec/sequences.md, "Join key values"): dates
    /// and float types differ between sequences and samples.
    pub fn output(&self, sample: bool) -> KeyJson {
        let Some((field_type, value)) = &self.0 else {
            return KeyJson::Null;
        };
        match value {
            Typed::Str(s) => KeyJson::Str(s.to_string()),
            Typed::Ip(a) => KeyJson::Str(ip_string(a)),
            Typed::Int(n) => KeyJson::Int(*n),
            Typed::Bool(b) => KeyJson::Bool(*b),
            Typed::Date(ms) if sample => KeyJson::Int((*ms).into()),
            // Whole milliseconds: printed with three fraction digits.
            Typed::Date(ms) => KeyJson::Str(crate::expr::date_string(*ms * 1000)),
            // Java's Float.toString: the shortest decimal that reads back to the binary32.
            Typed::Float(x)
                if !sample && matches!(field_type, FieldType::Float | FieldType::HalfFloat) =>
            {
                let shortest = (*x as f32).to_string();
                KeyJson::Float(shortest.parse().unwrap_or(*x))
            }
            Typed::Float(x) => KeyJson::Float(*x),
        }
    }
}

/// A join key value for output: JSON-compatible.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyJson {
    /// null.
    Null,
    /// A string.
    Str(String),
    /// An integer.
    Int(i128),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// A tiebreaker value: ordered within one field type; a missing one sorts after every other
/// (Elasticsearch's `missing: _last`, ascending).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tie {
    /// A number, date or boolean, as an order-preserving unsigned 128-bit integer (high
    /// word, low word: kept 8-byte aligned, so records stay small).
    Num(u64, u64),
    /// A keyword (UTF-8 bytes: code point order) or an address (16 bytes).
    Bytes(Box<[u8]>),
    /// No tiebreaker value (also: no tiebreaker field).
    Missing,
}

impl Tie {
    /// A number tie.
    pub fn num(n: u128) -> Tie {
        Tie::Num((n >> 64) as u64, n as u64)
    }
}

/// A candidate's time and tiebreaker.
#[derive(Debug)]
pub struct When {
    /// Milliseconds since the epoch.
    pub time: i64,
    /// The tiebreaker.
    pub tie: Tie,
}

/// Reads candidates of one rule.
#[derive(Debug)]
pub struct Reader {
    projection: Projection,
    /// The fields it reads.
    fields: Vec<String>,
    timestamp: Vec<String>,
    tiebreaker: Option<(Vec<String>, FieldType)>,
    /// Per stage (the until stage last): each key's path, type and optionality.
    keys: Vec<Vec<(Vec<String>, FieldType, bool)>>,
}

fn split(field: &str) -> Vec<String> {
    field.split('.').map(str::to_owned).collect()
}

/// The values of `path` in the document that read as `field_type`, in value order (at most
/// `limit`).
fn typed_values<'d>(
    doc: &'d Value,
    numbers: &[usize],
    path: &[String],
    field_type: FieldType,
    limit: usize,
) -> Vec<Val<'d>> {
    let mut out = Vec::new();
    let _ = for_each_value(doc, path, &mut |value: Cow<'d, str>| {
        let number = is_json_number(&value, numbers);
        if let Some(v) = read(field_type, value, number) {
            out.push(v);
            if out.len() >= limit {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    out
}

/// The single value that reads (none, or several: `None`).
fn single<'d>(
    doc: &'d Value,
    numbers: &[usize],
    path: &[String],
    field_type: FieldType,
) -> Option<Val<'d>> {
    let mut values = typed_values(doc, numbers, path, field_type, 2);
    (values.len() == 1).then(|| values.remove(0))
}

/// A parsed candidate: its document and which of its strings were numbers.
pub struct Doc<'t> {
    parsed: Option<Line<'t>>,
}

/// A candidate's parse: its own, or the scan's of its line (numbers are known by their
/// strings' addresses, so it is borrowed, never copied).
enum Line<'t> {
    Own(ParsedLine<'t>),
    Scans(&'t ParsedLine<'t>),
}

impl<'t> std::ops::Deref for Line<'t> {
    type Target = ParsedLine<'t>;

    fn deref(&self) -> &ParsedLine<'t> {
        match self {
            Line::Own(parsed) => parsed,
            Line::Scans(parsed) => parsed,
        }
    }
}

impl<'t> Doc<'t> {
    /// `text` parsed with `projection` (a text that is no JSON object: no fields); it gives
    /// every field of the projection as the whole parse does.
    pub fn parse(text: &'t str, projection: &Projection) -> Doc<'t> {
        Doc {
            parsed: parse_event_projected(text, projection)
                .ok()
                .flatten()
                .map(Line::Own),
        }
    }

    /// The scan's parse of a candidate line (its event: an exporter's wrapper's `_source`),
    /// made with a projection holding the reader's fields.
    pub fn of(parsed: &'t ParsedLine<'t>) -> Doc<'t> {
        Doc {
            parsed: Some(Line::Scans(parsed)),
        }
    }
}

impl Reader {
    /// A reader of the timestamp, the tiebreaker and each stage's keys (`stages`: the stages'
    /// keys, the until stage's last).
    pub fn new(
        timestamp_field: &str,
        tiebreaker: Option<&FieldRef>,
        stages: &[&[KeyRef]],
    ) -> Reader {
        let mut fields = vec![timestamp_field];
        fields.extend(tiebreaker.map(|t| t.field.as_str()));
        for keys in stages {
            fields.extend(keys.iter().map(|k| k.field.as_str()));
        }
        Reader {
            projection: Projection::new(fields.iter().copied()),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            timestamp: split(timestamp_field),
            tiebreaker: tiebreaker.map(|t| (split(&t.field), t.field_type)),
            keys: stages
                .iter()
                .map(|keys| {
                    keys.iter()
                        .map(|k| (split(&k.field), k.field_type, k.optional))
                        .collect()
                })
                .collect(),
        }
    }

    /// Parse a candidate's text (only the fields read); a text that is no JSON object reads
    /// as an object without fields.
    pub fn parse<'t>(&self, text: &'t str) -> Doc<'t> {
        Doc::parse(text, &self.projection)
    }

    /// The fields it reads: a [`Doc`] parsed with a projection of them (and maybe others)
    /// reads as [`Reader::parse`]'s.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(String::as_str)
    }

    /// The candidate's time (exactly one value of the timestamp field that reads as a date)
    /// and tiebreaker (its single value that reads, else missing); `None` without a time.
    pub fn when(&self, doc: &Doc<'_>) -> Option<When> {
        let parsed = doc.parsed.as_deref()?;
        let (doc, numbers) = (&parsed.doc, &parsed.numbers[..]);
        let Some(Val::Date(micros)) = single(doc, numbers, &self.timestamp, FieldType::Date) else {
            return None;
        };
        let tie = match &self.tiebreaker {
            None => Tie::Missing,
            Some((path, field_type)) => single(doc, numbers, path, *field_type)
                .map(tie_of)
                .unwrap_or(Tie::Missing),
        };
        Some(When {
            time: micros.div_euclid(1000),
            tie,
        })
    }

    /// Whether stages `a` and `b` read the same join keys (one candidate's tuples serve both).
    pub fn same_keys(&self, a: usize, b: usize) -> bool {
        self.keys
            .get(a)
            .is_some_and(|k| Some(k) == self.keys.get(b))
    }

    /// The candidate's key tuples for `stage`: the cartesian product of each key's distinct
    /// values (in value order, the last key varying fastest); none when a key that is not
    /// optional has no value; an optional one without a value is null. Made one at a time
    /// (a hostile line's arrays can make the product huge).
    pub fn key_tuples(&self, stage: usize, doc: &Doc<'_>) -> KeyTuples {
        let mut choices: Vec<Vec<KeyValue>> = Vec::new();
        for (path, field_type, optional) in &self.keys[stage] {
            let mut distinct: Vec<KeyValue> = Vec::new();
            let mut seen: HashSet<KeyValue> = HashSet::new();
            if let Some(parsed) = doc.parsed.as_deref() {
                for value in
                    typed_values(&parsed.doc, &parsed.numbers, path, *field_type, usize::MAX)
                {
                    let key = KeyValue(Some((*field_type, typed_of(value))));
                    if seen.insert(key.clone()) {
                        distinct.push(key);
                    }
                }
            }
            if distinct.is_empty() {
                if !optional {
                    return KeyTuples {
                        choices,
                        next: None,
                    };
                }
                distinct.push(KeyValue(None));
            }
            choices.push(distinct);
        }
        KeyTuples {
            next: Some(vec![0; choices.len()]),
            choices,
        }
    }
}

/// The key tuples of a candidate ([`Reader::key_tuples`]), in order.
#[derive(Debug)]
pub struct KeyTuples {
    choices: Vec<Vec<KeyValue>>,
    /// The index into each key's values of the next tuple (None: no more).
    next: Option<Vec<usize>>,
}

impl Iterator for KeyTuples {
    type Item = Vec<KeyValue>;

    fn next(&mut self) -> Option<Vec<KeyValue>> {
        let at = self.next.as_mut()?;
        let tuple = at
            .iter()
            .zip(&self.choices)
            .map(|(i, values)| values[*i].clone())
            .collect();
        // The last key varies fastest.
        let mut done = true;
        for (i, values) in at.iter_mut().zip(&self.choices).rev() {
            *i += 1;
            if *i < values.len() {
                done = false;
                break;
            }
            *i = 0;
        }
        if done {
            self.next = None;
        }
        Some(tuple)
    }
}

fn typed_of(value: Val<'_>) -> Typed {
    match value {
        Val::Bool(b) => Typed::Bool(b),
        Val::Int(n) => Typed::Int(n),
        Val::Float(x) => Typed::Float(x),
        Val::Str(s) => Typed::Str(s.into()),
        Val::Date(micros) => Typed::Date(micros.div_euclid(1000)),
        Val::Ip(a) => Typed::Ip(a),
        Val::Null => unreachable!("a field value is never null"),
    }
}

/// A value in an order-preserving form: within one field type, `a < b` exactly when their
/// ties compare so.
fn tie_of(value: Val<'_>) -> Tie {
    const BIAS: u128 = 1 << 127;
    match value {
        Val::Null => Tie::Missing,
        Val::Bool(b) => Tie::num(b.into()),
        Val::Int(n) => Tie::num((n as u128) ^ BIAS),
        Val::Float(x) => {
            // -0.0 equals 0.0 (a range comparison): the position decides between them.
            let bits = if x == 0.0 { 0 } else { x.to_bits() };
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            Tie::num(ordered.into())
        }
        Val::Date(micros) => Tie::num((i128::from(micros.div_euclid(1000)) as u128) ^ BIAS),
        Val::Str(s) => Tie::Bytes(s.as_bytes().into()),
        Val::Ip(a) => Tie::Bytes(a.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(keys: &[(&str, FieldType, bool)], tie: Option<(&str, FieldType)>) -> Reader {
        let keys: Vec<KeyRef> = keys
            .iter()
            .map(|(f, t, optional)| KeyRef {
                field: (*f).into(),
                field_type: *t,
                optional: *optional,
            })
            .collect();
        let tie = tie.map(|(f, t)| FieldRef {
            field: f.into(),
            field_type: t,
        });
        Reader::new("@timestamp", tie.as_ref(), &[&keys])
    }

    fn when(r: &Reader, text: &str) -> Option<When> {
        r.when(&r.parse(text))
    }

    #[test]
    fn time_is_the_single_date_value_in_milliseconds() {
        let r = reader(&[], None);
        let t = |text: &str| when(&r, text).map(|w| w.time);
        assert_eq!(
            t(r#"{"@timestamp":"1970-01-01T00:00:01.5009Z"}"#),
            Some(1500)
        );
        assert_eq!(t(r#"{"@timestamp":1500001}"#), Some(1_500_001));
        assert_eq!(t(r#"{"@timestamp":"1500000"}"#), Some(1_500_000));
        // Four digits are a year, as in Elasticsearch's format.
        assert_eq!(t(r#"{"@timestamp":"1970"}"#), Some(0));
        assert_eq!(t(r#"{"@timestamp":1970}"#), Some(0));
        assert_eq!(t(r#"{"@timestamp":"-1"}"#), Some(-1));
        assert_eq!(t(r#"{"@timestamp":"1969-12-31T23:59:59.9995Z"}"#), Some(-1));
        // Values that do not read are no values: one is left.
        assert_eq!(t(r#"{"@timestamp":["soon", 5, null]}"#), Some(5));
        for bad in [
            r#"{"@timestamp":[5, 6]}"#,
            r#"{"@timestamp":"yesterday"}"#,
            r#"{"@timestamp":1.5}"#,
            r#"{"@timestamp":null}"#,
            r#"{"@timestamp":[]}"#,
            r#"{"@timestamp":{"x":1}}"#,
            r#"{"a":1}"#,
            r#"["@timestamp"]"#,
            "not json",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn key_tuples_are_the_product_of_distinct_typed_values() {
        use FieldType::*;
        let r = reader(&[("a", Keyword, false), ("c", Long, false)], None);
        let tuples = |text: &str| {
            r.key_tuples(0, &r.parse(text))
                .map(|t| t.iter().map(|k| k.output(false)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let s = |x: &str| KeyJson::Str(x.into());
        assert_eq!(
            tuples(r#"{"a":["x",80,"x"],"c":["7.9",7,8]}"#),
            [
                [s("x"), KeyJson::Int(7)],
                [s("x"), KeyJson::Int(8)],
                [s("80"), KeyJson::Int(7)],
                [s("80"), KeyJson::Int(8)],
            ]
        );
        // A key that is not optional and has no value: no tuple at all.
        assert!(tuples(r#"{"a":"x","c":"abc"}"#).is_empty());
        assert!(tuples(r#"{"a":[],"c":1}"#).is_empty());
        // Many values: each distinct one once (no quadratic search), the product lazily.
        let many = (0..20_000)
            .map(|i| (i % 10_000).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let r2 = reader(&[("a", Keyword, false), ("c", Long, false)], None);
        let doc = format!(r#"{{"a":[{many}],"c":[{many}]}}"#);
        let mut product = r2.key_tuples(0, &r2.parse(&doc));
        assert_eq!(product.next().unwrap()[1].output(false), KeyJson::Int(0));
        assert_eq!(product.nth(9_999).unwrap()[0].output(false), s("1"));
        let r = reader(&[("a", Keyword, true)], None);
        assert_eq!(
            r.key_tuples(0, &r.parse(r#"{"a":null}"#))
                .collect::<Vec<_>>(),
            [[KeyValue(None)]]
        );
    }

    #[test]
    fn keys_print_as_elasticsearch_returns_them() {
        use FieldType::*;
        let one = |t: FieldType, v: &str, sample: bool| {
            let r = reader(&[("k", t, false)], None);
            r.key_tuples(0, &r.parse(&format!(r#"{{"k":{v}}}"#)))
                .next()
                .unwrap()[0]
                .output(sample)
        };
        assert_eq!(
            one(Ip, r#""::ffff:10.0.0.1""#, false),
            KeyJson::Str("10.0.0.1".into())
        );
        assert_eq!(
            one(Ip, r#""fe80:0:0:0:0:0:0:1""#, false),
            KeyJson::Str("fe80::1".into())
        );
        assert_eq!(
            one(Date, r#""2017-08-30T20:47:33.1239+02:00""#, false),
            KeyJson::Str("2017-08-30T18:47:33.123Z".into())
        );
        assert_eq!(
            one(Date, r#""0001-01-01""#, false),
            KeyJson::Str("0001-01-01T00:00:00.000Z".into())
        );
        assert_eq!(
            one(Date, "1504126053123", true),
            KeyJson::Int(1_504_126_053_123)
        );
        assert_eq!(one(Float, "0.1", false), KeyJson::Float(0.1));
        assert_eq!(one(Float, "0.1", true), KeyJson::Float(f64::from(0.1f32)));
        assert_eq!(one(HalfFloat, "0.1", false), KeyJson::Float(0.099975586));
        assert_eq!(one(Double, "0.1", false), KeyJson::Float(0.1));
        assert_eq!(one(Boolean, r#""""#, false), KeyJson::Bool(false));
        assert_eq!(
            one(UnsignedLong, "18446744073709551615", false),
            KeyJson::Int(u64::MAX.into())
        );
    }

    #[test]
    fn keys_of_different_types_differ_and_order_by_type() {
        let k = |t: FieldType, v: Typed| KeyValue(Some((t, v)));
        assert_ne!(
            k(FieldType::Long, Typed::Int(5)),
            k(FieldType::Integer, Typed::Int(5))
        );
        assert_eq!(
            k(FieldType::Double, Typed::Float(-0.0)),
            k(FieldType::Double, Typed::Float(0.0))
        );
        assert_eq!(
            KeyValue(None).cmp_key(&k(FieldType::Keyword, Typed::Str("".into()))),
            Ordering::Less
        );
        assert_eq!(
            k(FieldType::Long, Typed::Int(9)).cmp_key(&k(FieldType::Integer, Typed::Int(1))),
            Ordering::Greater
        );
        assert_eq!(
            k(FieldType::Keyword, Typed::Str("é".into()))
                .cmp_key(&k(FieldType::Keyword, Typed::Str("z".into()))),
            Ordering::Greater
        );
    }

    #[test]
    fn ties_keep_the_types_order_and_missing_sorts_last() {
        use FieldType::*;
        let tie = |t: FieldType, v: &str| {
            when(
                &reader(&[], Some(("t", t))),
                &format!(r#"{{"@timestamp":0,"t":{v}}}"#),
            )
            .unwrap()
            .tie
        };
        let sorted = |t: FieldType, vs: &[&str]| {
            let ties: Vec<Tie> = vs.iter().map(|v| tie(t, v)).collect();
            assert!(ties.windows(2).all(|w| w[0] < w[1]), "{t:?} {vs:?}");
        };
        sorted(Long, &["-9223372036854775808", "-1", "0", "2", "null"]);
        sorted(UnsignedLong, &["0", "18446744073709551615", "\"x\""]);
        sorted(Double, &["-1e300", "-0.5", "0.0", "1e-300", "2", "[]"]);
        assert_eq!(tie(Double, "-0.0"), tie(Double, "0"));
        sorted(Keyword, &["\"\"", "\"a\"", "\"b\"", "\"é\"", "\"😀\""]);
        sorted(Date, &["-5", "\"1970-01-01T00:00:00.001Z\"", "2"]);
        sorted(Ip, &["\"::1\"", "\"10.0.0.1\"", "\"fe80::1\""]);
        sorted(Boolean, &["false", "true"]);
        // Several values: missing.
        assert_eq!(tie(Long, "[1, 2]"), Tie::Missing);
        assert_eq!(tie(Long, "[1, \"x\"]"), tie(Long, "1"));
        assert_eq!(
            when(&reader(&[], None), r#"{"@timestamp":0}"#).unwrap().tie,
            Tie::Missing
        );
    }
}
