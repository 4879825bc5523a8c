//! The rule IR: plain data produced by the Python EQL compiler (see docs/ir.md).

use serde::{Deserialize, Serialize};

/// The IR version this engine reads.
pub const IR_VERSION: u32 = 1;

/// The deepest branch accepted (a predicate is 1 level; `and`, `or`, `not` add one). The
/// compiler refuses conditions deeper than 100 levels (`eql.MAX_DEPTH`); the margin is for the
/// host filter and allowlist wrappers. The Python reference engine has the same limit.
pub const MAX_DEPTH: usize = 128;

/// JSON nesting of a document whose branches are at most [`MAX_DEPTH`] deep: the root, the
/// branches array, a branch, then up to two levels (node, `args`) per IR level and a
/// predicate's `values`. Deeper text is refused before it is deserialized.
const MAX_JSON_DEPTH: usize = 3 + 2 * MAX_DEPTH;

/// One rule: named branches (any match is a hit) and allowlist entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleIr {
    /// The IR version (`IR_VERSION`).
    pub ir_version: u32,
    /// The rule's identifier.
    #[serde(default)]
    pub id: String,
    /// The rule's name.
    pub name: String,
    /// The rule's severity, as written.
    #[serde(default)]
    pub severity: String,
    /// The branches, in order: the first that matches is reported.
    pub branches: Vec<Branch>,
    /// Allowlist entries, in order: an event that a branch matches and an entry matches is not
    /// a hit; it is counted against the first such entry (docs/ir.md, "Allowlists").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowlist: Vec<Node>,
}

/// A named condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// The branch's name.
    pub name: String,
    /// Its condition.
    pub expr: Node,
}

/// A condition: a boolean combination of predicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum Node {
    /// Every argument holds.
    And {
        /// The conditions.
        args: Vec<Node>,
    },
    /// Some argument holds.
    Or {
        /// The conditions.
        args: Vec<Node>,
    },
    /// The argument does not hold.
    Not {
        /// The condition.
        arg: Box<Node>,
    },
    /// A test of one field.
    Pred(Predicate),
}

/// A test of one field's values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicate {
    /// The field (dotted path).
    pub field: String,
    /// How the field's values are compared.
    pub field_type: FieldType,
    /// The operator.
    pub op: Op,
    /// The literals.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// The type of a field.
pub enum FieldType {
    /// Text.
    Keyword,
    /// An IP address (compared as an address).
    Ip,
}

/// A predicate's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// EQL `==`, `in`: some value equals a literal (ip fields: as addresses).
    Eq,
    /// EQL `in~`: ASCII case-insensitive equality (ip fields: as addresses).
    EqCi,
    /// EQL `:`, `like~`: whole-value pattern, ASCII case-insensitive.
    Wildcard,
    /// EQL `like`: whole-value pattern, case-sensitive.
    Like,
    /// EQL `startsWith`.
    StartsWith,
    /// EQL `startsWith~`.
    StartsWithCi,
    /// EQL `endsWith`.
    EndsWith,
    /// EQL `endsWith~`.
    EndsWithCi,
    /// EQL `stringContains`.
    Contains,
    /// EQL `stringContains~`.
    ContainsCi,
    /// EQL `cidrMatch`: some value is an address inside one of the CIDR blocks.
    Cidr,
    /// EQL `field != null`: the field has a value (on an ip field: an address); no literals.
    Exists,
    /// EQL `imdsEndpoint`: some value names one of the metadata-endpoint classes (decoded by
    /// `endpoint.rs`; any field type). The witness value is the text that named it.
    ImdsEndpoint,
}

impl Op {
    /// The operator's name in the IR.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::EqCi => "eq_ci",
            Op::Wildcard => "wildcard",
            Op::Like => "like",
            Op::StartsWith => "starts_with",
            Op::StartsWithCi => "starts_with_ci",
            Op::EndsWith => "ends_with",
            Op::EndsWithCi => "ends_with_ci",
            Op::Contains => "contains",
            Op::ContainsCi => "contains_ci",
            Op::Cidr => "cidr",
            Op::Exists => "exists",
            Op::ImdsEndpoint => "imds_endpoint",
        }
    }

    /// Operators that only make sense on text (refused on ip-typed fields).
    pub fn is_textual(self) -> bool {
        !matches!(
            self,
            Op::Eq | Op::EqCi | Op::Cidr | Op::Exists | Op::ImdsEndpoint
        )
    }
}

impl RuleIr {
    /// Read an IR document (JSON); an error when it is invalid.
    pub fn from_json(text: &str) -> Result<RuleIr, crate::Error> {
        let bad = |e: serde_json::Error| crate::Error::rule(format!("bad IR: {e}"));
        // serde_json's own limit (128 nested arrays and objects, about 62 IR levels) is off:
        // the depth is bounded here first, so deserializing cannot overflow the stack.
        if json_depth(text) > MAX_JSON_DEPTH {
            return Err(crate::Error::rule(format!(
                "bad IR: nested more than {MAX_JSON_DEPTH} JSON levels deep \
                 (a branch nests at most {MAX_DEPTH} levels)"
            )));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        de.disable_recursion_limit();
        let ir = RuleIr::deserialize(&mut de).map_err(bad)?;
        de.end().map_err(bad)?;
        if ir.ir_version != IR_VERSION {
            return Err(crate::Error::rule(format!(
                "IR version {} is not supported (expected {IR_VERSION})",
                ir.ir_version
            )));
        }
        if ir.branches.is_empty() {
            return Err(crate::Error::rule("rule has no branches"));
        }
        for branch in &ir.branches {
            let depth = branch.expr.depth();
            if depth > MAX_DEPTH {
                return Err(crate::Error::in_branch(
                    &branch.name,
                    None,
                    format!("nests {depth} levels deep (at most {MAX_DEPTH} are supported)"),
                ));
            }
        }
        Ok(ir)
    }
}

impl Node {
    /// Levels of the tree (a predicate is 1), counted without recursion.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(self, 1)];
        while let Some((node, depth)) = stack.pop() {
            deepest = deepest.max(depth);
            match node {
                Node::And { args } | Node::Or { args } => {
                    stack.extend(args.iter().map(|a| (a, depth + 1)));
                }
                Node::Not { arg } => stack.push((arg, depth + 1)),
                Node::Pred(_) => {}
            }
        }
        deepest
    }
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped); a linear scan
/// that needs no valid JSON (the parser reports what is wrong).
fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in text.as_bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(field: &str) -> String {
        format!(
            r#"{{"node":"pred","field":"{field}","field_type":"keyword","op":"eq","values":["x"]}}"#
        )
    }

    /// A branch `levels` deep: `and`/`or` alternating around a predicate.
    fn alternating(levels: usize) -> String {
        let mut node = pred("f0");
        for i in 1..levels {
            let kind = if i % 2 == 1 { "and" } else { "or" };
            node = format!(
                r#"{{"node":"{kind}","args":[{},{node}]}}"#,
                pred(&format!("f{i}"))
            );
        }
        node
    }

    fn rule(expr: &str) -> String {
        format!(r#"{{"ir_version":1,"name":"n","branches":[{{"name":"b","expr":{expr}}}]}}"#)
    }

    #[test]
    fn deep_branches_up_to_the_limit_load() {
        // serde_json alone stops at 128 JSON levels, about 62 IR levels.
        let ir = RuleIr::from_json(&rule(&alternating(MAX_DEPTH))).unwrap();
        assert_eq!(ir.branches[0].expr.depth(), MAX_DEPTH);
        let nots = (1..MAX_DEPTH).fold(pred("f"), |n, _| format!(r#"{{"node":"not","arg":{n}}}"#));
        assert_eq!(
            RuleIr::from_json(&rule(&nots)).unwrap().branches[0]
                .expr
                .depth(),
            MAX_DEPTH
        );
    }

    #[test]
    fn deeper_branches_are_refused_with_the_reason() {
        let err = RuleIr::from_json(&rule(&alternating(MAX_DEPTH + 1))).unwrap_err();
        assert!(
            err.to_string().contains("nested more than 259 JSON levels"),
            "{err}"
        );
        let nots = (0..MAX_DEPTH).fold(pred("f"), |n, _| format!(r#"{{"node":"not","arg":{n}}}"#));
        let err = RuleIr::from_json(&rule(&nots)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule error: branch \"b\" nests 129 levels deep (at most 128 are supported)"
        );
        // Far deeper text is refused before it is parsed (no stack overflow).
        let text = "[".repeat(1_000_000);
        assert!(RuleIr::from_json(&text).is_err());
    }

    #[test]
    fn depth_skips_strings() {
        assert_eq!(json_depth(r#"{"a":"[[[{{\"[","b":[1]}"#), 2);
    }
}
