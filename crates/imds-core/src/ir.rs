//! The rule IR: plain data produced by the Python EQL compiler (see docs/ir.md).

use serde::{Deserialize, Serialize};

pub const IR_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleIr {
    pub ir_version: u32,
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub severity: String,
    pub branches: Vec<Branch>,
    /// Allowlist entries, in order: an event that a branch matches and an entry matches is not
    /// a hit; it is counted against the first such entry (docs/ir.md, "Allowlists").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowlist: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub name: String,
    pub expr: Node,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum Node {
    And { args: Vec<Node> },
    Or { args: Vec<Node> },
    Not { arg: Box<Node> },
    Pred(Predicate),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Predicate {
    pub field: String,
    pub field_type: FieldType,
    pub op: Op,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Keyword,
    Ip,
}

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
    pub fn from_json(text: &str) -> Result<RuleIr, crate::Error> {
        let ir: RuleIr =
            serde_json::from_str(text).map_err(|e| crate::Error::Rule(format!("bad IR: {e}")))?;
        if ir.ir_version != IR_VERSION {
            return Err(crate::Error::Rule(format!(
                "IR version {} is not supported (expected {IR_VERSION})",
                ir.ir_version
            )));
        }
        if ir.branches.is_empty() {
            return Err(crate::Error::Rule("rule has no branches".into()));
        }
        Ok(ir)
    }
}
