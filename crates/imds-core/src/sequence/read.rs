//! What the matcher reads of a candidate: its time, tiebreaker and join keys, from the event
//! text, with the engine's own event reader and typed reading (spec/sequences.md, "Events,
//! time and order").

use crate::event::{for_each_value, is_json_number, parse_line_projected, Projection};
use crate::expr::ip_string;
use crate::ir::{FieldRef, FieldType};
use crate::typed::{read, Val};
use serde_json::Value;
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;

/// A join key value (spec/sequences.md): a keyword's text, an address in canonical text, a
/// number (dates: epoch milliseconds), a boolean, or null.
#[derive(Debug, Clone)]
pub enum KeyValue {
    /// Missing, `null` or `[]`.
    Null,
    /// keyword, ip.
    Str(Box<str>),
    /// Integer types and dates.
    Int(i128),
    /// double, float, half_float, scaled_float.
    Float(f64),
    /// boolean.
    Bool(bool),
}

impl KeyValue {
    /// The float's bits, with `-0.0` as `0.0` (they are equal numbers).
    fn float_bits(x: f64) -> u64 {
        if x == 0.0 {
            0
        } else {
            x.to_bits()
        }
    }
}

impl PartialEq for KeyValue {
    fn eq(&self, other: &KeyValue) -> bool {
        match (self, other) {
            (KeyValue::Null, KeyValue::Null) => true,
            (KeyValue::Str(a), KeyValue::Str(b)) => a == b,
            (KeyValue::Int(a), KeyValue::Int(b)) => a == b,
            (KeyValue::Float(a), KeyValue::Float(b)) => {
                KeyValue::float_bits(*a) == KeyValue::float_bits(*b)
            }
            (KeyValue::Bool(a), KeyValue::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for KeyValue {}

impl Hash for KeyValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            KeyValue::Null => {}
            KeyValue::Str(s) => s.hash(state),
            KeyValue::Int(n) => n.hash(state),
            KeyValue::Float(x) => KeyValue::float_bits(*x).hash(state),
            KeyValue::Bool(b) => b.hash(state),
        }
    }
}

/// A tiebreaker value: ordered within one field type; a missing one sorts after every other
/// (Elasticsearch's `missing: _last`, ascending).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tie {
    /// A number, date or boolean, as an order-preserving unsigned integer.
    Num(u128),
    /// A keyword (UTF-8 bytes: code point order) or an address (16 bytes).
    Bytes(Box<[u8]>),
    /// No tiebreaker value (also: no tiebreaker field).
    Missing,
}

/// What one candidate gives the matcher.
#[derive(Debug)]
pub struct Read {
    /// Milliseconds since the epoch.
    pub time: i64,
    /// The tiebreaker.
    pub tie: Tie,
    /// The join key values, in the stage's key order.
    pub keys: Vec<KeyValue>,
}

/// Reads candidates of one rule.
#[derive(Debug)]
pub struct Reader {
    projection: Projection,
    timestamp: Vec<String>,
    tiebreaker: Option<(Vec<String>, FieldType)>,
    /// Per stage (the until stage last): each key's path and type.
    keys: Vec<Vec<(Vec<String>, FieldType)>>,
}

fn split(field: &str) -> Vec<String> {
    field.split('.').map(str::to_owned).collect()
}

fn key_paths(keys: &[FieldRef]) -> Vec<(Vec<String>, FieldType)> {
    keys.iter()
        .map(|k| (split(&k.field), k.field_type))
        .collect()
}

/// The first value of `path` in the document, read as `field_type` (`None`: no value, or the
/// first one does not read as the type).
fn first<'d>(
    doc: &'d Value,
    numbers: &[usize],
    path: &[String],
    field_type: FieldType,
) -> Option<Val<'d>> {
    let found = for_each_value(doc, path, &mut |value: Cow<'d, str>| {
        ControlFlow::Break(value)
    });
    let ControlFlow::Break(value) = found else {
        return None;
    };
    let number = is_json_number(&value, numbers);
    read(field_type, value, number)
}

impl Reader {
    /// A reader of the timestamp, the tiebreaker and each stage's keys (`stages`: the stages'
    /// keys, the until stage's last).
    pub fn new(
        timestamp_field: &str,
        tiebreaker: Option<&FieldRef>,
        stages: &[&[FieldRef]],
    ) -> Reader {
        let mut fields = vec![timestamp_field];
        fields.extend(tiebreaker.map(|t| t.field.as_str()));
        for keys in stages {
            fields.extend(keys.iter().map(|k| k.field.as_str()));
        }
        Reader {
            projection: Projection::new(fields),
            timestamp: split(timestamp_field),
            tiebreaker: tiebreaker.map(|t| (split(&t.field), t.field_type)),
            keys: stages.iter().map(|keys| key_paths(keys)).collect(),
        }
    }

    /// The candidate's time, tiebreaker and the keys of `stage`; `None` when it has no
    /// parsable time (or is no JSON object at all).
    pub fn read(&self, stage: usize, text: &str) -> Option<Read> {
        let parsed = parse_line_projected(text.as_bytes(), &self.projection).ok()??;
        let (doc, numbers) = (&parsed.doc, &parsed.numbers[..]);
        let Some(Val::Date(micros)) = first(doc, numbers, &self.timestamp, FieldType::Date) else {
            return None;
        };
        let time = micros.div_euclid(1000);
        let tie = match &self.tiebreaker {
            None => Tie::Missing,
            Some((path, field_type)) => first(doc, numbers, path, *field_type)
                .map(tie_of)
                .unwrap_or(Tie::Missing),
        };
        let keys = self.keys[stage]
            .iter()
            .map(|(path, field_type)| {
                first(doc, numbers, path, *field_type).map_or(KeyValue::Null, key_of)
            })
            .collect();
        Some(Read { time, tie, keys })
    }
}

fn key_of(value: Val<'_>) -> KeyValue {
    match value {
        Val::Null => KeyValue::Null,
        Val::Bool(b) => KeyValue::Bool(b),
        Val::Int(n) => KeyValue::Int(n),
        Val::Float(x) => KeyValue::Float(x),
        Val::Str(s) => KeyValue::Str(s.into()),
        Val::Date(micros) => KeyValue::Int(micros.div_euclid(1000).into()),
        Val::Ip(a) => KeyValue::Str(ip_string(&a).into()),
    }
}

/// A value in an order-preserving form: within one field type, `a < b` exactly when their
/// ties compare so.
fn tie_of(value: Val<'_>) -> Tie {
    const BIAS: u128 = 1 << 127;
    match value {
        Val::Null => Tie::Missing,
        Val::Bool(b) => Tie::Num(b.into()),
        Val::Int(n) => Tie::Num((n as u128) ^ BIAS),
        // Double.compare's order (-0.0 before 0.0) on finite values.
        Val::Float(x) => {
            let bits = x.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            Tie::Num(ordered.into())
        }
        Val::Date(micros) => Tie::Num((i128::from(micros.div_euclid(1000)) as u128) ^ BIAS),
        Val::Str(s) => Tie::Bytes(s.as_bytes().into()),
        Val::Ip(a) => Tie::Bytes(a.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(keys: &[(&str, FieldType)], tie: Option<(&str, FieldType)>) -> Reader {
        let keys: Vec<FieldRef> = keys
            .iter()
            .map(|(f, t)| FieldRef {
                field: (*f).into(),
                field_type: *t,
            })
            .collect();
        let tie = tie.map(|(f, t)| FieldRef {
            field: f.into(),
            field_type: t,
        });
        Reader::new("@timestamp", tie.as_ref(), &[&keys])
    }

    #[test]
    fn time_is_the_first_value_as_a_date_in_milliseconds() {
        let r = reader(&[], None);
        let t = |text: &str| r.read(0, text).map(|read| read.time);
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
        assert_eq!(
            t(r#"{"@timestamp":["1969-12-31T23:59:59.9995Z", 5]}"#),
            Some(-1)
        );
        assert_eq!(t(r#"{"@timestamp":{"x":1},"@timestamp.x":1}"#), None);
        for bad in [
            r#"{"@timestamp":"yesterday"}"#,
            r#"{"@timestamp":1.5}"#,
            r#"{"@timestamp":null}"#,
            r#"{"@timestamp":[]}"#,
            r#"{"a":1}"#,
            r#"["@timestamp"]"#,
            "not json",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_first_values_read_by_type() {
        use FieldType::*;
        let r = reader(
            &[
                ("a", Keyword),
                ("b", Ip),
                ("c", Long),
                ("d", Double),
                ("e", Date),
                ("f", Boolean),
                ("g", Keyword),
            ],
            None,
        );
        let read = r
            .read(
                0,
                r#"{"@timestamp":0,"a":[80,"x"],"b":"::ffff:10.0.0.1","c":"7.9","d":-0.0,"e":"1970-01-01T00:00:00.002Z","f":"","g":[]}"#,
            )
            .unwrap();
        assert_eq!(
            read.keys,
            [
                KeyValue::Str("80".into()),
                KeyValue::Str("10.0.0.1".into()),
                KeyValue::Int(7),
                KeyValue::Float(0.0),
                KeyValue::Int(2),
                KeyValue::Bool(false),
                KeyValue::Null,
            ]
        );
        // A first value that does not read as the type: null.
        let read = r
            .read(0, r#"{"@timestamp":0,"b":["x","10.0.0.1"]}"#)
            .unwrap();
        assert_eq!(read.keys[1], KeyValue::Null);
    }

    #[test]
    fn ties_keep_the_types_order_and_missing_sorts_last() {
        use FieldType::*;
        let tie = |t: FieldType, v: &str| {
            reader(&[], Some(("t", t)))
                .read(0, &format!(r#"{{"@timestamp":0,"t":{v}}}"#))
                .unwrap()
                .tie
        };
        let sorted = |t: FieldType, vs: &[&str]| {
            let ties: Vec<Tie> = vs.iter().map(|v| tie(t, v)).collect();
            assert!(ties.windows(2).all(|w| w[0] < w[1]), "{t:?} {vs:?}");
        };
        sorted(Long, &["-9223372036854775808", "-1", "0", "2", "null"]);
        sorted(UnsignedLong, &["0", "18446744073709551615", "\"x\""]);
        sorted(
            Double,
            &["-1e300", "-0.5", "-0.0", "0.0", "1e-300", "2", "[]"],
        );
        sorted(Keyword, &["\"\"", "\"a\"", "\"b\"", "\"é\"", "\"😀\""]);
        sorted(Date, &["-5", "\"1970-01-01T00:00:00.001Z\"", "2"]);
        sorted(Ip, &["\"::1\"", "\"10.0.0.1\"", "\"fe80::1\""]);
        sorted(Boolean, &["false", "true"]);
        assert_eq!(
            reader(&[], None)
                .read(0, r#"{"@timestamp":0}"#)
                .unwrap()
                .tie,
            Tie::Missing
        );
    }
}
