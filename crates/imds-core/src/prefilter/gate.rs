//! The rule gate: with several rules, which of them a candidate line can match.

use super::cnf::{Cnf, CnfState};
use crate::ir::RuleIr;

/// Which rules to evaluate on a candidate line, when several rules run: a rule is evaluated
/// only when, for one of its branches, the line holds (ASCII case-insensitively) a needle of
/// each of the branch's literal clauses ([`super::cnf`]). A branch without clauses (or with
/// only the `imds_endpoint` stand-in) keeps its rule open on every line.
#[derive(Debug, Clone)]
pub struct RuleGate {
    cnf: Option<Cnf>,
    rules: usize,
}

impl RuleGate {
    pub fn new(rules: &[RuleIr]) -> RuleGate {
        RuleGate {
            cnf: Cnf::new(rules),
            rules: rules.len(),
        }
    }

    /// Fill `open` with the rules that may match `line`, in order (every rule it cannot rule
    /// out).
    pub fn open(&self, line: &[u8], open: &mut Vec<usize>) {
        let Some(cnf) = &self.cnf else {
            open.clear();
            open.extend(0..self.rules); // no automaton: evaluate everything
            return;
        };
        let mut st: CnfState = cnf.state();
        cnf.first(line, 0, line.len(), &mut st);
        cnf.fill_open(&st, open);
    }
}
