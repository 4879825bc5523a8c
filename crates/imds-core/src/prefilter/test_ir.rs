//! IR builders for the prefilter's unit tests.

use super::needles::{node_lits, Needle};
use crate::ir::{Branch, FieldType, Node, Op, Predicate, RuleIr};

const SEED: &str = include_str!("../../tests/data/seed_ir.json");

pub(super) fn seed_ir() -> RuleIr {
    RuleIr::from_json(SEED).unwrap()
}

/// The seed rule's needles, in the order the prefilter derives them.
pub(super) const SEED_NEEDLES: [&str; 12] = [
    "169.254.169.254",
    "a9fe:a9fe",
    "metadata.google.internal",
    "fd00:ec2::254",
    "metadata/instance",
    "iam/security-credentials",
    "latest/meta-data",
    "latest/dynamic",
    "instance-identity",
    "computeMetadata",
    "imds.azure.com",
    "metadata/v1",
];

pub(super) fn pred(field: &str, field_type: FieldType, op: Op, values: &[&str]) -> Node {
    Node::Pred(Predicate {
        field: field.into(),
        field_type,
        op,
        values: values.iter().map(|v| v.to_string()).collect(),
        ignore_above: None,
        normalizer: None,
        analyzer: None,
    })
}

/// A keyword predicate of the property tests' random rules: `op` on `field` with `words`, each
/// as `*word*` when `starred`.
pub(super) fn word_pred(field: &str, op: Op, starred: bool, words: &[&str]) -> Node {
    let values: Vec<String> = words
        .iter()
        .map(|w| {
            if starred {
                format!("*{w}*")
            } else {
                w.to_string()
            }
        })
        .collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    pred(field, FieldType::Keyword, op, &values)
}

pub(super) fn kw(op: Op, values: &[&str]) -> Node {
    pred("f", FieldType::Keyword, op, values)
}

pub(super) fn ip(values: &[&str]) -> Node {
    pred("destination.ip", FieldType::Ip, Op::Eq, values)
}

pub(super) fn and(args: Vec<Node>) -> Node {
    Node::And { args }
}

pub(super) fn or(args: Vec<Node>) -> Node {
    Node::Or { args }
}

pub(super) fn not(arg: Node) -> Node {
    Node::Not { arg: Box::new(arg) }
}

pub(super) fn rule(exprs: Vec<Node>) -> RuleIr {
    RuleIr {
        ir_version: 1,
        id: "t".into(),
        name: "t".into(),
        severity: String::new(),
        branches: exprs
            .into_iter()
            .enumerate()
            .map(|(i, expr)| Branch {
                name: format!("b{i}"),
                expr,
            })
            .collect(),
        allowlist: Vec::new(),
    }
}

/// The needles of one expression, as strings; `None` = unfilterable.
pub(super) fn lits(node: Node) -> Option<Vec<String>> {
    node_lits(&node).map(|ls| {
        ls.iter()
            .map(|n| match n {
                Needle::Literal(l) => String::from_utf8(l.raw.clone()).unwrap(),
                Needle::Endpoint => "<imds_endpoint>".to_string(),
            })
            .collect()
    })
}

pub(super) fn s(xs: &[&str]) -> Option<Vec<String>> {
    Some(xs.iter().map(|x| x.to_string()).collect())
}
