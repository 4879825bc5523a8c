//! The rule gate: with several rules, which of them a candidate line can match.

use super::needles::{rules_lits, Needle};
use super::search::real_escape;
use crate::ir::RuleIr;
use aho_corasick::AhoCorasick;

/// Which rules to evaluate on a candidate line, when several rules run: a rule whose needles
/// (ASCII case-insensitively) are all absent from the line cannot match it. One automaton
/// over every rule's needles; a rule without needles, or with the `imds_endpoint` stand-in,
/// is always evaluated, and so is every rule on a line with a real `\u` or `\/` escape (a
/// needle could be spelled with it).
#[derive(Debug, Clone)]
pub struct RuleGate {
    ac: Option<AhoCorasick>,
    /// Per pattern: the rules it opens.
    opens: Vec<Vec<usize>>,
    /// Rules evaluated on every line.
    always: Vec<usize>,
    rules: usize,
}

impl RuleGate {
    pub fn new(rules: &[RuleIr]) -> RuleGate {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut opens: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match rules_lits(std::slice::from_ref(rule)) {
                Some(needles)
                    if !needles.is_empty()
                        && needles.iter().all(|n| matches!(n, Needle::Literal(_))) =>
                {
                    for needle in needles {
                        let Needle::Literal(lit) = needle else {
                            continue;
                        };
                        let folded = lit.raw.to_ascii_lowercase();
                        match patterns.iter().position(|p| *p == folded) {
                            Some(k) => opens[k].push(i),
                            None => {
                                patterns.push(folded);
                                opens.push(vec![i]);
                            }
                        }
                    }
                }
                _ => always.push(i),
            }
        }
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&patterns)
            .ok();
        if ac.is_none() {
            always = (0..rules.len()).collect(); // cannot build: evaluate everything
        }
        RuleGate {
            ac,
            opens,
            always,
            rules: rules.len(),
        }
    }

    /// `open[i]`: rule `i` may match `line` (set for every rule it cannot rule out).
    pub fn open(&self, line: &[u8], open: &mut Vec<bool>) {
        open.clear();
        let escaped = memchr::memchr_iter(b'\\', line)
            .any(|p| matches!(line.get(p + 1), Some(b'u' | b'/')) && real_escape(line, p));
        let Some(ac) = self.ac.as_ref().filter(|_| !escaped) else {
            open.resize(self.rules, true);
            return;
        };
        open.resize(self.rules, false);
        for &i in &self.always {
            open[i] = true;
        }
        for m in ac.find_overlapping_iter(line) {
            for &i in &self.opens[m.pattern().as_usize()] {
                open[i] = true;
            }
        }
    }
}
