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

    /// `open[i]`: rule `i` may match `line` (set for every rule it cannot rule out).
    pub fn open(&self, line: &[u8], open: &mut Vec<bool>) {
        let Some(cnf) = &self.cnf else {
            open.clear();
            open.resize(self.rules, true); // no automaton: evaluate everything
            return;
        };
        let mut st: CnfState = cnf.state();
        cnf.first(line, 0, line.len(), &mut st);
        cnf.fill_open(&st, open);
    }
}
