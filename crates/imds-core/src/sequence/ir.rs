//! The IR of a sequence or sample rule (spec/sequences.md, "IR"), checked by hand as
//! `crate::ir` checks `branches`, with the same message style (`bad IR: $.sequence…: what`).
//! A stage's `expr` must be an object and is not read further: the scan engine evaluates the
//! stage rules (and checks them); the matcher only needs keys, time and order.

use crate::ir::{
    check_ir_version, check_node, is_integer, json_depth, key_path, kind_of, schema_enum, FieldRef,
    FieldType, MAX_DEPTH,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// JSON nesting of a document whose stages' conditions are at most [`MAX_DEPTH`] deep: the root, the
/// `sequence` object, `stages`, a stage, then up to two levels per IR level and a predicate's
/// `values`.
const MAX_JSON_DEPTH: usize = 4 + 2 * MAX_DEPTH;

/// Which kind of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `sequence`.
    Sequence,
    /// `sample`.
    Sample,
}

/// A `head` or `tail` pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// Keep the first `n` results.
    Head(u64),
    /// Keep the last `n` results.
    Tail(u64),
}

/// A join key: a field, its type, and whether it was written `?field` (then it may be null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// The field (dotted path).
    pub field: String,
    /// Its type.
    pub field_type: FieldType,
    /// Optional: an event without a value has the key `null` (else it is no candidate).
    pub optional: bool,
}

/// One stage (or the `until` stage).
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Its full join keys, in order.
    pub keys: Vec<KeyRef>,
    /// A missing-event stage (`![…]`).
    pub missing: bool,
}

/// A sequence or sample rule's matching part.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqIr {
    /// Sequence or sample.
    pub kind: Kind,
    /// The timestamp field (read as a `date`).
    pub timestamp_field: String,
    /// The tiebreaker field and its type, when set.
    pub tiebreaker: Option<FieldRef>,
    /// `with maxspan` in milliseconds.
    pub maxspan_ms: Option<u64>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The `until` stage.
    pub until: Option<Stage>,
    /// Pipes, applied in order.
    pub pipes: Vec<Pipe>,
    /// Keep at most this many results.
    pub size: Option<u64>,
    /// Samples: at most this many per join key.
    pub max_samples_per_key: Option<u64>,
}

fn bad(message: impl std::fmt::Display) -> crate::Error {
    crate::Error::rule(format!("bad IR: {message}"))
}

impl SeqIr {
    /// Read a sequence or sample rule's IR document (JSON) for matching; an error naming the
    /// place when it is invalid. The stages' `expr` conditions need only be objects here:
    /// the scan engine compiles (and checks) them as stage rules. [`SeqIr::check`] checks
    /// them too.
    pub fn from_json(text: &str) -> Result<SeqIr, crate::Error> {
        read_doc(text, false)
    }

    /// The whole document checked against spec/ir.schema.json (stage conditions included),
    /// in the order and words of the Python checker (`ir_schema.py`).
    pub fn check(text: &str) -> Result<SeqIr, crate::Error> {
        read_doc(text, true)
    }
}

fn read_doc(text: &str, exprs: bool) -> Result<SeqIr, crate::Error> {
    if json_depth(text) > MAX_JSON_DEPTH {
        return Err(bad(format!(
            "nested more than {MAX_JSON_DEPTH} JSON levels deep \
             (a stage nests at most {MAX_DEPTH} levels)"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let doc = Value::deserialize(&mut de).map_err(bad)?;
    de.end().map_err(bad)?;
    check_doc(&doc, exprs).map_err(bad)
}

/// A JSON object's members, or `PATH: expected an object, found …`.
fn object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{path}: expected an object, found {}", kind_of(value)))
}

/// The own-keys check of every object: an unknown key (in document order), then a missing
/// one (in the schema's order).
fn own_keys(
    map: &Map<String, Value>,
    path: &str,
    keys: &[&str],
    required: &[&str],
) -> Result<(), String> {
    if let Some(key) = map.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(format!("{}: unknown key", key_path(path, key)));
    }
    if let Some(key) = required.iter().find(|k| !map.contains_key(**k)) {
        return Err(format!("{path}: missing key \"{key}\""));
    }
    Ok(())
}

fn string<'v>(map: &'v Map<String, Value>, path: &str, key: &str) -> Result<&'v str, String> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "{}: expected a string, found {}",
            key_path(path, key),
            kind_of(other)
        )),
        None => Ok(""),
    }
}

/// An integer (or null) of at least `minimum`.
fn integer(
    map: &Map<String, Value>,
    path: &str,
    key: &str,
    nullable: bool,
    minimum: u64,
) -> Result<Option<u64>, String> {
    let place = key_path(path, key);
    match map.get(key) {
        None => Ok(None),
        Some(Value::Null) if nullable => Ok(None),
        Some(Value::Number(n)) if is_integer(n) => {
            let text = n.to_string();
            // Past u64: at least the minimum all the same.
            let value = n.as_u64().or((!text.starts_with('-')).then_some(u64::MAX));
            match value {
                Some(v) if v >= minimum => Ok(Some(v)),
                _ => Err(format!("{place}: must be at least {minimum}, found {text}")),
            }
        }
        Some(other) => Err(format!(
            "{place}: expected {}, found {}",
            if nullable {
                "an integer or null"
            } else {
                "an integer"
            },
            kind_of(other)
        )),
    }
}

fn array<'v>(
    map: &'v Map<String, Value>,
    path: &str,
    key: &str,
    least: usize,
) -> Result<&'v [Value], String> {
    match map.get(key) {
        None => Ok(&[]),
        Some(Value::Array(items)) if items.len() < least => Err(format!(
            "{}: must hold at least {least} items, found {}",
            key_path(path, key),
            items.len()
        )),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!(
            "{}: expected an array, found {}",
            key_path(path, key),
            kind_of(other)
        )),
    }
}

fn boolean(map: &Map<String, Value>, path: &str, key: &str) -> Result<bool, String> {
    match map.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "{}: expected a boolean, found {}",
            key_path(path, key),
            kind_of(other)
        )),
    }
}

/// A join key (`optional` allowed) or the tiebreaker's field: `{"field", "field_type"}`.
fn field_ref(value: &Value, path: &str, optional: bool) -> Result<KeyRef, String> {
    let map = object(value, path)?;
    let keys: &[&str] = if optional {
        &["field", "field_type", "optional"]
    } else {
        &["field", "field_type"]
    };
    own_keys(map, path, keys, &["field", "field_type"])?;
    let field = string(map, path, "field")?.to_owned();
    let type_name = string(map, path, "field_type")?;
    let types = schema_enum("/$defs/pred/properties/field_type/enum");
    if !types.contains(&type_name) {
        return Err(format!(
            "{}: {} is not one of: {}",
            key_path(path, "field_type"),
            Value::from(type_name),
            types.join(", ")
        ));
    }
    let field_type: FieldType =
        serde_json::from_value(Value::from(type_name)).map_err(|e| format!("{path}: {e}"))?;
    let optional = optional && boolean(map, path, "optional")?;
    Ok(KeyRef {
        field,
        field_type,
        optional,
    })
}

/// A stage: its own keys and values, then its `expr` (depth first), then its join keys.
fn stage(value: &Value, path: &str, missing_key: bool, exprs: bool) -> Result<Stage, String> {
    let map = object(value, path)?;
    let keys: &[&str] = if missing_key {
        &["expr", "keys", "missing"]
    } else {
        &["expr", "keys"]
    };
    own_keys(map, path, keys, keys)?;
    let items = array(map, path, "keys", 0)?;
    let missing = boolean(map, path, "missing")?;
    let expr_path = key_path(path, "expr");
    if exprs {
        check_node(&map["expr"], expr_path)?;
    } else {
        object(&map["expr"], &expr_path)?;
    }
    let keys_path = key_path(path, "keys");
    let keys = items
        .iter()
        .enumerate()
        .map(|(i, k)| field_ref(k, &format!("{keys_path}[{i}]"), true))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Stage { keys, missing })
}

/// The document: its own keys and values, then the sequence's or sample's object (its keys,
/// then each key's value in schema order), then its parts depth first (tiebreaker, stages,
/// until, pipes), and last the join key counts (spec/ir.md's order, `ir_schema.py`'s words).
fn check_doc(doc: &Value, exprs: bool) -> Result<SeqIr, String> {
    let map = object(doc, "$")?;
    // The first of the shapes a document holds picks it; the others are unknown keys.
    let shape = ["branches", "sequence", "sample"]
        .into_iter()
        .find(|k| map.contains_key(*k));
    let (kind, key) = match shape {
        Some("sequence") => (Kind::Sequence, "sequence"),
        Some("sample") => (Kind::Sample, "sample"),
        Some(_) => return Err("$: a rule with branches is not a sequence or sample".into()),
        None => return Err("$: missing key \"sequence\" or \"sample\"".into()),
    };
    own_keys(
        map,
        "$",
        &["ir_version", "id", "name", "severity", key],
        &["ir_version", "name", key],
    )?;
    check_ir_version(map)?;
    for key in ["id", "name", "severity"] {
        string(map, "$", key)?;
    }
    let path = format!("$.{key}");
    let body = object(&map[key], &path)?;
    let own: &[&str] = match kind {
        Kind::Sequence => &[
            "timestamp_field",
            "tiebreaker_field",
            "maxspan_ms",
            "stages",
            "until",
            "pipes",
            "size",
        ],
        Kind::Sample => &[
            "timestamp_field",
            "tiebreaker_field",
            "stages",
            "max_samples_per_key",
            "pipes",
            "size",
        ],
    };
    own_keys(body, &path, own, own)?;
    // Each key's value, in schema order.
    let timestamp_field = string(body, &path, "timestamp_field")?.to_owned();
    let tiebreaker_value = &body["tiebreaker_field"];
    if !matches!(
        tiebreaker_value,
        Value::Null | Value::String(_) | Value::Object(_)
    ) {
        return Err(format!(
            "{}: expected a string, an object or null, found {}",
            key_path(&path, "tiebreaker_field"),
            kind_of(tiebreaker_value)
        ));
    }
    let maxspan_ms = integer(body, &path, "maxspan_ms", true, 1)?;
    let stage_items = array(body, &path, "stages", 2)?;
    let until_value = body.get("until").unwrap_or(&Value::Null);
    if !matches!(until_value, Value::Null | Value::Object(_)) {
        return Err(format!(
            "{}: expected an object or null, found {}",
            key_path(&path, "until"),
            kind_of(until_value)
        ));
    }
    let max_samples_per_key = integer(body, &path, "max_samples_per_key", true, 1)?;
    let pipe_items = array(body, &path, "pipes", 0)?;
    let size = integer(body, &path, "size", true, 0)?;
    // Then the parts.
    let tiebreaker = match tiebreaker_value {
        // The first draft's bare name: a keyword field.
        Value::String(field) => Some(FieldRef {
            field: field.clone(),
            field_type: FieldType::Keyword,
        }),
        Value::Object(_) => {
            let key = field_ref(
                tiebreaker_value,
                &key_path(&path, "tiebreaker_field"),
                false,
            )?;
            Some(FieldRef {
                field: key.field,
                field_type: key.field_type,
            })
        }
        _ => None,
    };
    let stages_path = key_path(&path, "stages");
    let stages = stage_items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            stage(
                item,
                &format!("{stages_path}[{i}]"),
                kind == Kind::Sequence,
                exprs,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let until_path = key_path(&path, "until");
    let until = match until_value {
        Value::Object(_) => Some(stage(until_value, &until_path, false, exprs)?),
        _ => None,
    };
    let pipes_path = key_path(&path, "pipes");
    let mut pipes = Vec::new();
    for (i, item) in pipe_items.iter().enumerate() {
        let place = format!("{pipes_path}[{i}]");
        let pipe = object(item, &place)?;
        own_keys(pipe, &place, &["pipe", "n"], &["pipe", "n"])?;
        let name = string(pipe, &place, "pipe")?;
        if !["head", "tail"].contains(&name) {
            return Err(format!(
                "{}: {} is not one of: head, tail",
                key_path(&place, "pipe"),
                Value::from(name)
            ));
        }
        let n = integer(pipe, &place, "n", false, 0)?.unwrap_or_default();
        pipes.push(if name == "head" {
            Pipe::Head(n)
        } else {
            Pipe::Tail(n)
        });
    }
    let width = stages[0].keys.len();
    for (i, s) in stages.iter().chain(&until).enumerate() {
        if s.keys.len() != width {
            let place = if i < stages.len() {
                format!("{stages_path}[{i}].keys")
            } else {
                key_path(&until_path, "keys")
            };
            return Err(format!(
                "{place}: expected as many join keys as {stages_path}[0] ({width}), found {}",
                s.keys.len()
            ));
        }
    }
    Ok(SeqIr {
        kind,
        timestamp_field,
        tiebreaker,
        maxspan_ms,
        stages,
        until,
        pipes,
        size,
        max_samples_per_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        let pred =
            json!({"node":"pred","field":"x","field_type":"keyword","op":"eq","values":["a"]});
        let keys = json!([{"field": "host.id", "field_type": "keyword"}]);
        json!({"ir_version": 1, "id": "r", "name": "r", "severity": "low", "sequence": {
            "timestamp_field": "@timestamp", "tiebreaker_field": null, "maxspan_ms": 60000,
            "stages": [
                {"expr": pred, "keys": keys, "missing": false},
                {"expr": pred, "keys": keys, "missing": true}
            ],
            "until": {"expr": pred, "keys": keys},
            "pipes": [{"pipe": "head", "n": 5}], "size": null
        }})
    }

    fn error(doc: &Value) -> String {
        SeqIr::from_json(&doc.to_string()).unwrap_err().to_string()
    }

    #[test]
    fn a_sequence_reads() {
        let ir = SeqIr::from_json(&doc().to_string()).unwrap();
        assert_eq!(ir.kind, Kind::Sequence);
        assert_eq!(ir.maxspan_ms, Some(60000));
        assert_eq!(ir.stages.len(), 2);
        assert!(ir.stages[1].missing && !ir.stages[0].missing);
        assert!(ir.until.is_some());
        assert_eq!(ir.pipes, [Pipe::Head(5)]);
    }

    #[test]
    fn a_sample_reads() {
        let mut d = doc();
        let mut body = d["sequence"].take();
        let body = body.as_object_mut().unwrap();
        for key in ["maxspan_ms", "until"] {
            body.remove(key);
        }
        for stage in body["stages"].as_array_mut().unwrap() {
            stage.as_object_mut().unwrap().remove("missing");
        }
        body.insert("max_samples_per_key".into(), json!(2));
        let d = json!({"ir_version": 1, "name": "s", "sample": body});
        let ir = SeqIr::from_json(&d.to_string()).unwrap();
        assert_eq!(ir.kind, Kind::Sample);
        assert_eq!(ir.max_samples_per_key, Some(2));
    }

    #[test]
    fn problems_are_named_by_place() {
        type Change = fn(&mut Value);
        let cases: Vec<(Change, &str)> = vec![
            (|d| d["extra"] = json!(1), "bad IR: $.extra: unknown key"),
            (
                |d| d["sample"] = json!({}),
                "bad IR: $.sample: unknown key",
            ),
            (
                |d| {
                    d.as_object_mut().unwrap().remove("sequence");
                },
                "bad IR: $: missing key \"sequence\" or \"sample\"",
            ),
            (
                |d| d["sequence"]["stages"][1]["expr"] = json!("x"),
                "bad IR: $.sequence.stages[1].expr: expected an object, found a string",
            ),
            (
                |d| d["sequence"]["stages"][1]["keys"][0]["optional"] = json!(1),
                "bad IR: $.sequence.stages[1].keys[0].optional: expected a boolean, found a number",
            ),
            (
                |d| d["sequence"]["stages"][0]["keys"][0]["field_type"] = json!("string"),
                "bad IR: $.sequence.stages[0].keys[0].field_type: \"string\" is not one of:",
            ),
            (
                |d| d["sequence"]["maxspan_ms"] = json!(-1),
                "bad IR: $.sequence.maxspan_ms: must be at least 1, found -1",
            ),
            (
                |d| d["sequence"]["maxspan_ms"] = json!("1m"),
                "bad IR: $.sequence.maxspan_ms: expected an integer or null, found a string",
            ),
            (
                |d| d["sequence"]["pipes"][0]["pipe"] = json!("sort"),
                "bad IR: $.sequence.pipes[0].pipe: \"sort\" is not one of: head, tail",
            ),
            (
                |d| d["sequence"]["until"]["missing"] = json!(false),
                "bad IR: $.sequence.until.missing: unknown key",
            ),
            (
                |d| d["sequence"]["stages"][1]["missing"] = json!(1),
                "bad IR: $.sequence.stages[1].missing: expected a boolean, found a number",
            ),
            (
                |d| {
                    d["sequence"]["stages"].as_array_mut().unwrap().pop();
                },
                "bad IR: $.sequence.stages: must hold at least 2 items, found 1",
            ),
            (
                |d| d["sequence"]["until"]["keys"] = json!([]),
                "bad IR: $.sequence.until.keys: expected as many join keys as $.sequence.stages[0] (1), found 0",
            ),
            (
                |d| d["ir_version"] = json!(2),
                "bad IR: $.ir_version: IR version 2 is not supported (expected 1)",
            ),
        ];
        for (change, want) in cases {
            let mut d = doc();
            change(&mut d);
            let got = error(&d);
            assert!(got.starts_with(&format!("rule error: {want}")), "{got}");
        }
    }

    #[test]
    fn deep_documents_are_refused_before_they_are_read() {
        assert!(error(&json!([])).contains("expected an object"));
        let text = "[".repeat(100_000);
        let err = SeqIr::from_json(&text).unwrap_err().to_string();
        assert!(err.contains("nested more than 260 JSON levels"), "{err}");
    }

    #[test]
    fn optional_keys_and_a_bare_tiebreaker_name() {
        let mut d = doc();
        d["sequence"]["stages"][0]["keys"][0]["optional"] = json!(true);
        d["sequence"]["tiebreaker_field"] = json!("event.sequence");
        let ir = SeqIr::from_json(&d.to_string()).unwrap();
        assert!(ir.stages[0].keys[0].optional && !ir.stages[1].keys[0].optional);
        assert_eq!(
            ir.tiebreaker,
            Some(FieldRef {
                field: "event.sequence".into(),
                field_type: FieldType::Keyword
            })
        );
        d["sequence"]["tiebreaker_field"] =
            json!({"field": "s", "field_type": "long", "optional": true});
        assert_eq!(
            error(&d),
            "rule error: bad IR: $.sequence.tiebreaker_field.optional: unknown key"
        );
    }
}
