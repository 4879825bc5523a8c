//! Evaluating a compiled rule against one parsed event.

use crate::ir::RuleIr;
use serde_json::Value;

/// The predicate that decided a hit (docs/ir.md, "Witness").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub field: String,
    pub op: &'static str,
    pub pattern: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the first matching branch.
    pub branch: usize,
    pub witness: Option<Witness>,
}

pub struct CompiledRule {
    pub ir: RuleIr,
}

impl CompiledRule {
    pub fn new(ir: RuleIr) -> Result<CompiledRule, crate::Error> {
        Ok(CompiledRule { ir })
    }

    pub fn evaluate(&self, _doc: &Value) -> Option<Match> {
        todo!("helper A")
    }
}
