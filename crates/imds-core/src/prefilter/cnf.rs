//! Per-rule literal conjunctions: which of many rules a line can match, from one automaton.
//!
//! Every branch of a rule is a *unit*; its expression gives *clauses* ([`super::clauses`]),
//! needle sets of which a matching line holds at least one needle each (one clause per
//! needle-bearing child of a top-level `and`, and one for each predicate's key, so a common
//! literal such as `linux` or `process` opens nothing alone: the rule's rarer literals must be
//! in the line too). A rule is open on a line when all clauses
//! of one of its units are satisfied. One ASCII case-insensitive automaton over every
//! clause's needles, plus the escape starts `\u` and `\/`, serves all rules: a real escape
//! satisfies every clause with a needle holding the character it may spell (a needle could
//! be written with it), and an escape that is not valid JSON opens every rule (the parser
//! reports the line).
//!
//! A common needle (`"process"`) is a clause of hundreds of units: satisfying each of them on
//! every match cost a fifth of the scan. Each unit's rarest clause is its *anchor* instead: a
//! match marks its groups and arms only the units whose anchor it satisfies, and at the
//! line's end the armed units look up their other clauses in the marks.

use super::clauses::{clause_cost, clauses, confirm, Check, Clause};
use super::grams::Grams;
use super::search::real_escape;
use super::table::Table;
use crate::ir::RuleIr;
use std::collections::HashMap;

/// A unit keeps its rarest clauses only: a common literal (`process`, `start`) found on most
/// lines costs the automaton matches and decides little alone, but Elastic's rules often
/// pair three or four such values (`process`, `linux`, `start`, `exec`) with a long list of
/// names: on a sample of the benchmark corpus, keeping six rather than three clauses cut the
/// candidates of ten of Elastic's rules from 17% of the lines to 1.3%.
const MAX_CLAUSES: usize = 6;

/// A clause at least this costly ([`clause_cost`]: a needle under 3 bytes, a key of every
/// event) is dropped when its unit has another: it would be found on nearly every line.
const USELESS: f64 = 2.0;

/// Above this many patterns the gram searcher replaces the DFA (memory). Measured on the 795
/// single-event Elastic rules (6,790 patterns): the DFA is 19 MB ([`Table`]) and takes under
/// 0.1 s to build, the grams under 1 MB and 0.03 s, yet the DFA's four lanes still scan faster
/// (a 100 MB slice in 0.78 s against 0.94 s, with the crate's DFA: the needles match about
/// once every 26 bytes, so the grams verify a tenth of the positions); with fewer rules the
/// DFA wins by more.
const DFA_LIMIT: usize = 20_000;

/// Stretches of lines the DFA walks side by side. One walk waits on each transition's load
/// (about 10 cycles a byte: the rule gate ran at a tenth of the single-rule scan's speed);
/// independent walks overlap those waits.
const LANES: usize = 4;

/// A window shorter than this is walked in one lane.
const MIN_LANE_BYTES: usize = 4096;

/// The DFA walks at least this far past the matches it has (to a line end), in one go.
const WALK_AHEAD: usize = 256 << 10;

/// The search for every clause's needles and the escape starts.
#[derive(Debug, Clone)]
enum Searcher {
    /// Walked by hand, in lanes ([`Cnf::walk`]).
    Dfa(Box<Table>),
    /// Too many patterns for a DFA that fits the caches.
    Grams(Box<Grams>),
}

#[derive(Debug, Clone)]
pub(super) struct Cnf {
    ac: Searcher,
    /// Patterns below this index are needles; then `\u` and `\/`.
    needles: usize,
    /// Per needle pattern `k`: its groups (one per way an occurrence is confirmed) are
    /// `pattern_groups[k]..pattern_groups[k + 1]`.
    pattern_groups: Vec<u32>,
    /// Per group: how an occurrence is confirmed.
    group_check: Vec<Check>,
    /// Per group: the units whose anchor clause it satisfies (the units it arms).
    group_units: Lists,
    /// Per clause (units with the same clause share it): its groups, and the folded ASCII
    /// chars (a bit each) and whether a non-ASCII char are in its needles (what an escape
    /// of a char may spell).
    clause_groups: Lists,
    clause_ascii: Vec<u128>,
    clause_non_ascii: Vec<bool>,
    unit_rule: Vec<u32>,
    /// Per unit: its clauses but the anchor, rarest first (the first to fail).
    unit_rest: Lists,
    /// Per folded ASCII char: the units whose anchor clause has a needle holding it.
    ascii_units: Vec<Vec<u32>>,
    /// The units whose anchor clause has a needle holding a non-ASCII char.
    non_ascii_units: Vec<u32>,
    /// Rules with a unit without clauses: open on every line.
    pub(super) always: Vec<usize>,
    pub(super) rules: usize,
}

/// Per-line state of a [`Cnf`] search: marks stamped with the current line's number, so
/// nothing is cleared between lines. A match marks its groups and arms the units whose
/// anchor clause they satisfy; the armed units are judged when the line ends
/// ([`Cnf::end_line`]).
#[derive(Debug, Clone, Default)]
pub(super) struct CnfState {
    stamp: u32,
    group_mark: Vec<u32>,
    /// A clause judged on this line, and whether it holds.
    clause_mark: Vec<u32>,
    clause_holds: Vec<bool>,
    unit_mark: Vec<u32>,
    rule_mark: Vec<u32>,
    /// The units armed on this line.
    armed: Vec<u32>,
    /// The rules a unit opened on this line.
    opened: Vec<usize>,
    /// The chars the line's real escapes may spell (folded ASCII, a bit each; non-ASCII).
    escaped_ascii: u128,
    escaped_non_ascii: bool,
    /// The line's armed units are judged.
    ended: bool,
    /// Some rule is open on the current line (once `ended`).
    open: bool,
    /// Every rule is open on the current line (an invalid escape).
    all: bool,
    /// Matches `(start, end, pattern)` in `hay[from..to]`, line after line; those before `next`
    /// are judged.
    found: Vec<(usize, usize, u32)>,
    next: usize,
    from: usize,
    to: usize,
    /// Scratch: each lane's matches.
    lanes: Vec<Vec<(usize, usize, u32)>>,
    /// The bytes of the lines holding a match judged so far (how dense the needles are: the
    /// finder's choice of search).
    pub(super) matched_bytes: usize,
}

impl CnfState {
    fn next_line(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Wrapped: old marks could pass for current ones.
            for v in [
                &mut self.group_mark,
                &mut self.clause_mark,
                &mut self.unit_mark,
                &mut self.rule_mark,
            ] {
                v.iter_mut().for_each(|m| *m = 0);
            }
            self.stamp = 1;
        }
        self.armed.clear();
        self.opened.clear();
        self.escaped_ascii = 0;
        self.escaped_non_ascii = false;
        self.ended = false;
        self.open = false;
        self.all = false;
    }

    /// Arm a unit: its anchor clause holds on the line.
    fn arm(&mut self, u: u32) {
        let m = &mut self.unit_mark[u as usize];
        if *m != self.stamp {
            *m = self.stamp;
            self.armed.push(u);
        }
    }
}

impl Cnf {
    /// `None` when the automaton cannot be built.
    pub(super) fn new(rules: &[RuleIr]) -> Option<Cnf> {
        Cnf::build(rules, DFA_LIMIT)
    }

    /// [`Cnf::new`], with a DFA up to `dfa_limit` patterns.
    fn build(rules: &[RuleIr], dfa_limit: usize) -> Option<Cnf> {
        let (units, mut always) = units(rules);
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pattern_groups: Vec<Vec<u32>> = Vec::new();
        let mut group_index: HashMap<(usize, Check), usize> = HashMap::new();
        let mut group_check = Vec::new();
        let mut group_units: Vec<Vec<u32>> = Vec::new();
        let mut clause_index: HashMap<(Vec<u32>, u128, bool), u32> = HashMap::new();
        let mut clause_groups: Vec<Vec<u32>> = Vec::new();
        let mut clause_ascii = Vec::new();
        let mut clause_non_ascii = Vec::new();
        let mut unit_rule = Vec::new();
        let mut unit_rest = Vec::new();
        let mut ascii_units: Vec<Vec<u32>> = vec![Vec::new(); 128];
        let mut non_ascii_units = Vec::new();
        for (r, cs) in units {
            let unit = unit_rule.len() as u32;
            unit_rule.push(r);
            let mut ids = Vec::new();
            for c in cs {
                let mut chars = 0u128;
                let mut non_ascii = false;
                let mut groups = Vec::new();
                for n in c {
                    for ch in n.lit.text.chars() {
                        if ch.is_ascii() {
                            chars |= 1 << (ch.to_ascii_lowercase() as u32);
                        } else {
                            non_ascii = true;
                        }
                    }
                    let folded = n.lit.raw.to_ascii_lowercase();
                    let k = *index.entry(folded.clone()).or_insert_with(|| {
                        patterns.push(folded);
                        pattern_groups.push(Vec::new());
                        patterns.len() - 1
                    });
                    let g = *group_index.entry((k, n.check)).or_insert_with(|| {
                        group_check.push(n.check);
                        group_units.push(Vec::new());
                        pattern_groups[k].push((group_check.len() - 1) as u32);
                        group_check.len() - 1
                    });
                    groups.push(g as u32);
                }
                groups.sort_unstable();
                groups.dedup();
                let id = *clause_index
                    .entry((groups.clone(), chars, non_ascii))
                    .or_insert_with(|| {
                        clause_groups.push(groups);
                        clause_ascii.push(chars);
                        clause_non_ascii.push(non_ascii);
                        (clause_groups.len() - 1) as u32
                    });
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            // The rarest clause arms the unit: the others are looked at only then.
            let anchor = ids.remove(0) as usize;
            for &g in &clause_groups[anchor] {
                group_units[g as usize].push(unit);
            }
            let chars = clause_ascii[anchor];
            for (ch, units) in ascii_units.iter_mut().enumerate() {
                if chars >> ch & 1 == 1 {
                    units.push(unit);
                }
            }
            if clause_non_ascii[anchor] {
                non_ascii_units.push(unit);
            }
            unit_rest.push(ids);
        }
        // Tables read on every match, flat: a pattern's groups one after another, lists in
        // one array each.
        let order = pattern_groups.concat();
        let mut new_id = vec![0; order.len()];
        for (i, &g) in order.iter().enumerate() {
            new_id[g as usize] = i as u32;
        }
        let mut start = vec![0];
        for gs in &pattern_groups {
            start.push(start[start.len() - 1] + gs.len() as u32);
        }
        let pattern_groups = start;
        let group_check = order.iter().map(|&g| group_check[g as usize]).collect();
        let group_units = Lists::new(order.iter().map(|&g| &group_units[g as usize]));
        for gs in &mut clause_groups {
            gs.iter_mut().for_each(|g| *g = new_id[*g as usize]);
            gs.sort_unstable();
        }
        let clause_groups = Lists::new(&clause_groups);
        let unit_rest = Lists::new(&unit_rest);
        always.dedup();
        let needles = patterns.len();
        patterns.push(b"\\u".to_vec());
        patterns.push(b"\\/".to_vec());
        let ac = if patterns.len() <= dfa_limit {
            Searcher::Dfa(Box::new(Table::new(&patterns)?))
        } else {
            Searcher::Grams(Box::new(Grams::new(&patterns)))
        };
        Some(Cnf {
            ac,
            needles,
            pattern_groups,
            group_check,
            group_units,
            clause_groups,
            clause_ascii,
            clause_non_ascii,
            unit_rule,
            unit_rest,
            ascii_units,
            non_ascii_units,
            always,
            rules: rules.len(),
        })
    }

    pub(super) fn state(&self) -> CnfState {
        CnfState {
            stamp: 0,
            group_mark: vec![0; self.group_check.len()],
            clause_mark: vec![0; self.clause_ascii.len()],
            clause_holds: vec![false; self.clause_ascii.len()],
            unit_mark: vec![0; self.unit_rule.len()],
            rule_mark: vec![0; self.rules],
            armed: Vec::new(),
            opened: Vec::new(),
            escaped_ascii: 0,
            escaped_non_ascii: false,
            ended: false,
            open: false,
            all: false,
            found: Vec::new(),
            next: 0,
            from: 0,
            to: 0,
            lanes: vec![Vec::new(); LANES],
            matched_bytes: 0,
        }
    }

    /// The start of the first line in `hay[at..end]` (`end` a line end) on which a rule with
    /// clauses is open; `st` then tells which ([`Cnf::is_open`]). Bytes outside the range are
    /// only looked at to tell real escapes.
    pub(super) fn first(
        &self,
        hay: &[u8],
        at: usize,
        end: usize,
        st: &mut CnfState,
    ) -> Option<usize> {
        self.first_ahead(hay, at, end, true, st)
    }

    /// [`Cnf::first`] on the line `hay[at..end]` that another search found: the searcher walks
    /// that line only (the lines after it may hold no needle at all).
    pub(super) fn first_in_line(
        &self,
        hay: &[u8],
        at: usize,
        end: usize,
        st: &mut CnfState,
    ) -> Option<usize> {
        self.first_ahead(hay, at, end, false, st)
    }

    /// The matches of the window and of the lines after it are found once ([`Cnf::walk`])
    /// and kept in `st` for the next calls (which go on from a later line of the same `hay`).
    fn first_ahead(
        &self,
        hay: &[u8],
        at: usize,
        end: usize,
        ahead: bool,
        st: &mut CnfState,
    ) -> Option<usize> {
        if !(st.from <= at && at <= st.to) {
            st.found.clear();
            (st.next, st.from, st.to) = (0, at, at);
        }
        while st.found.get(st.next).is_some_and(|m| m.0 < at) {
            st.next += 1;
        }
        if end > st.to {
            st.found.drain(..st.next);
            st.next = 0;
            // Ahead of `end` too: the next calls (after a candidate line) reach a little
            // further each time, and a short walk has one lane only.
            let to = if ahead {
                let ahead = (st.to + WALK_AHEAD).clamp(end, hay.len());
                memchr::memchr(b'\n', &hay[ahead..]).map_or(hay.len(), |i| ahead + i)
            } else {
                end
            };
            let from = st.to;
            self.walk(hay, from, to, st);
            st.to = to;
        }
        let line_end =
            |from: usize| memchr::memchr(b'\n', &hay[from..end]).map_or(end, |i| from + i);
        let mut start = at;
        let mut stop = line_end(at);
        let mut counted = false;
        st.next_line();
        while let Some(&(p, q, pattern)) = st.found.get(st.next) {
            if p >= end {
                break;
            }
            if p >= stop {
                if self.end_line(st) {
                    return Some(start);
                }
                start = memchr::memrchr(b'\n', &hay[stop..p]).map_or(stop, |i| stop + i + 1);
                stop = line_end(p);
                counted = false;
                st.next_line();
            }
            if !counted {
                st.matched_bytes += stop - start;
                counted = true;
            }
            self.on_match(hay, pattern as usize, p, q, stop, st);
            st.next += 1;
        }
        self.end_line(st).then_some(start)
    }

    /// Append to `st.found` every match in `hay[from..to]` (`from` a line start or the `\n`
    /// before one, `to` a line end), as an overlapping search finds them, line after line
    /// (within a line in any order). No needle holds a `\n`, so the DFA's
    /// window is cut at line ends into lanes walked side by side, each from the start state.
    fn walk(&self, hay: &[u8], from: usize, to: usize, st: &mut CnfState) {
        let table = match &self.ac {
            Searcher::Dfa(table) => table,
            Searcher::Grams(grams) => return grams.find(hay, from, to, &mut st.found),
        };
        let mut bounds = [to; LANES + 1];
        bounds[0] = from;
        let lanes = if to - from < MIN_LANE_BYTES { 1 } else { LANES };
        for k in 1..lanes {
            let target = (from + k * (to - from) / lanes).max(bounds[k - 1]);
            bounds[k] = memchr::memchr(b'\n', &hay[target..to]).map_or(to, |i| target + i);
        }
        let start = table.start();
        let mut lane_found = std::mem::take(&mut st.lanes);
        lane_found.iter_mut().for_each(Vec::clear);
        let mut sid = [start; LANES];
        let common = (0..lanes)
            .map(|k| bounds[k + 1] - bounds[k])
            .min()
            .unwrap_or(0);
        if lanes == LANES {
            // The lanes' states in locals (registers), one test for all four.
            let [a, b, c, d]: [&[u8]; LANES] =
                std::array::from_fn(|k| &hay[bounds[k]..bounds[k] + common]);
            let [mut s0, mut s1, mut s2, mut s3] = sid;
            for j in 0..common {
                s0 = table.next(s0, a[j]);
                s1 = table.next(s1, b[j]);
                s2 = table.next(s2, c[j]);
                s3 = table.next(s3, d[j]);
                if Table::is_match(s0 | s1 | s2 | s3) {
                    for (k, s) in [s0, s1, s2, s3].into_iter().enumerate() {
                        if Table::is_match(s) {
                            table.record(s, bounds[k] + j + 1, &mut lane_found[k]);
                        }
                    }
                }
            }
            sid = [s0, s1, s2, s3];
        }
        let done = if lanes == LANES { common } else { 0 };
        for k in 0..lanes {
            let rest = bounds[k] + done;
            for (i, &byte) in hay[rest..bounds[k + 1]].iter().enumerate() {
                sid[k] = table.next(sid[k], byte);
                if Table::is_match(sid[k]) {
                    table.record(sid[k], rest + i + 1, &mut lane_found[k]);
                }
            }
            st.found.extend_from_slice(&lane_found[k]);
        }
        st.lanes = lane_found;
    }

    fn on_match(
        &self,
        hay: &[u8],
        pattern: usize,
        p: usize,
        q: usize,
        stop: usize,
        st: &mut CnfState,
    ) {
        if pattern < self.needles {
            let groups = self.pattern_groups[pattern]..self.pattern_groups[pattern + 1];
            for g in groups.map(|g| g as usize) {
                // Later occurrences in the line change nothing.
                if st.group_mark[g] == st.stamp || !confirm(self.group_check[g], hay, p, q, stop) {
                    continue;
                }
                st.group_mark[g] = st.stamp;
                for &u in self.group_units.get(g) {
                    st.arm(u);
                }
            }
            return;
        }
        // `\U` matches the folded pattern but is no escape.
        if !real_escape(hay, p) || hay[p + 1] == b'U' {
            return;
        }
        if hay[p + 1] == b'/' {
            st.escaped_ascii |= 1 << b'/';
            return;
        }
        let code = hay[..stop].get(p + 2..p + 6).and_then(|h| {
            h.iter().try_fold(0u32, |acc, &b| {
                (b as char).to_digit(16).map(|d| acc * 16 + d)
            })
        });
        match code {
            None => {
                // Not an escape JSON allows: let the parser see the line.
                st.all = true;
                st.open = true;
            }
            Some(c) if c < 0x80 => st.escaped_ascii |= 1 << (c as u8).to_ascii_lowercase(),
            Some(_) => st.escaped_non_ascii = true,
        }
    }

    /// Judge the line's armed units (once), and tell whether some rule is open on it.
    fn end_line(&self, st: &mut CnfState) -> bool {
        if st.ended || st.all {
            return st.open;
        }
        st.ended = true;
        if st.escaped_ascii != 0 || st.escaped_non_ascii {
            // An escape satisfies every clause with a needle holding its char: the anchors too.
            let mut chars = st.escaped_ascii;
            while chars != 0 {
                let ch = chars.trailing_zeros() as usize;
                chars &= chars - 1;
                for &u in &self.ascii_units[ch] {
                    st.arm(u);
                }
            }
            if st.escaped_non_ascii {
                for &u in &self.non_ascii_units {
                    st.arm(u);
                }
            }
        }
        let armed = std::mem::take(&mut st.armed);
        for &u in &armed {
            let r = self.unit_rule[u as usize] as usize;
            if st.rule_mark[r] != st.stamp
                && self
                    .unit_rest
                    .get(u as usize)
                    .iter()
                    .all(|&c| self.holds(c as usize, st))
            {
                st.rule_mark[r] = st.stamp;
                st.opened.push(r);
                st.open = true;
            }
        }
        st.armed = armed;
        st.open
    }

    /// Whether a clause holds on the line: some group of it is marked, or an escape may
    /// spell a char of it.
    fn holds(&self, c: usize, st: &mut CnfState) -> bool {
        if st.clause_mark[c] == st.stamp {
            return st.clause_holds[c];
        }
        let holds = self.clause_ascii[c] & st.escaped_ascii != 0
            || (self.clause_non_ascii[c] && st.escaped_non_ascii)
            || self
                .clause_groups
                .get(c)
                .iter()
                .any(|&g| st.group_mark[g as usize] == st.stamp);
        st.clause_mark[c] = st.stamp;
        st.clause_holds[c] = holds;
        holds
    }

    /// Fill `open` with the rules open on the line [`Cnf::first`] last stopped at, in order,
    /// the rules without clauses included: a list, as a line opens few of many rules.
    pub(super) fn fill_open(&self, st: &CnfState, open: &mut Vec<usize>) {
        debug_assert!(st.ended || st.all, "the line's units are judged");
        open.clear();
        if st.all {
            open.extend(0..self.rules);
            return;
        }
        if st.open {
            open.extend_from_slice(&st.opened);
        }
        open.extend_from_slice(&self.always);
        open.sort_unstable();
        open.dedup();
    }
}

/// Lists of ids, one after another: list `i` is `ids[start[i]..start[i + 1]]`.
#[derive(Debug, Clone, Default)]
struct Lists {
    start: Vec<u32>,
    ids: Vec<u32>,
}

impl Lists {
    fn new<'a>(lists: impl IntoIterator<Item = &'a Vec<u32>>) -> Lists {
        let mut out = Lists {
            start: vec![0],
            ids: Vec::new(),
        };
        for l in lists {
            out.ids.extend_from_slice(l);
            out.start.push(out.ids.len() as u32);
        }
        out
    }

    fn get(&self, i: usize) -> &[u32] {
        &self.ids[self.start[i] as usize..self.start[i + 1] as usize]
    }
}

/// Per branch of a rule with clauses, its rule and kept clauses, rarest first; and the
/// rules with a branch without clauses.
pub(super) fn units(rules: &[RuleIr]) -> (Vec<(u32, Vec<Clause>)>, Vec<usize>) {
    let mut units = Vec::new();
    let mut always = Vec::new();
    for (r, rule) in rules.iter().enumerate() {
        for branch in &rule.branches {
            let mut cs = Vec::new();
            clauses(&branch.expr, &mut cs);
            // Dropping a clause only opens more lines: keep the rarest, and no useless one
            // beside another.
            let mut cs: Vec<_> = cs.into_iter().map(|c| (clause_cost(&c), c)).collect();
            cs.sort_by(|a, b| a.0.total_cmp(&b.0));
            cs.truncate(MAX_CLAUSES);
            while cs.len() > 1 && cs.last().is_some_and(|c| c.0 >= USELESS) {
                cs.pop();
            }
            if cs.is_empty() {
                always.push(r);
            } else {
                units.push((r as u32, cs.into_iter().map(|(_, c)| c).collect()));
            }
        }
    }
    (units, always)
}

#[cfg(test)]
mod tests {
    use super::super::test_ir::*;
    use super::super::Prefilter;
    use super::{Cnf, Searcher, MIN_LANE_BYTES};
    use crate::ir::{FieldType, Op};

    fn line(name: &str, args: &str) -> Vec<u8> {
        format!(
            r#"{{"event":{{"category":["process"]}},"host":{{"os":{{"type":"linux"}}}},"process":{{"name":"{name}","args":"{args}"}}}}"#
        )
        .into_bytes()
    }

    /// Two rules shaped like Elastic's: common literals, then the rule's own.
    fn two_rules() -> Prefilter {
        let p = Prefilter::new(&[
            rule(vec![and(vec![
                kw(Op::Eq, &["process"]),
                kw(Op::Eq, &["linux"]),
                kw(Op::Eq, &["sshd"]),
                kw(Op::Wildcard, &["*-o ProxyCommand*"]),
            ])]),
            rule(vec![and(vec![
                kw(Op::Eq, &["process"]),
                kw(Op::EqCi, &["cmd.exe", "pwsh.exe"]),
                kw(Op::Wildcard, &["*/c start*"]),
            ])]),
        ]);
        assert!(p.cnf.is_some(), "{}", p.strategy());
        p
    }

    #[test]
    fn a_line_needs_every_clause_of_a_rule() {
        let p = two_rules();
        // One rule's literal without its other literals: no rule can match.
        assert!(!p.is_candidate(&line("bash", "-o ProxyCommand=nc")));
        assert!(!p.is_candidate(&line("sshd", "-D")));
        assert!(!p.is_candidate(&line("cmd.exe", "-o ProxyCommand")));
        // Literals of two different rules do not add up either.
        assert!(!p.is_candidate(&line("sshd", "/c start x")));
        assert!(p.is_candidate(&line("SSHD", "-o proxycommand=nc")));
        assert!(p.is_candidate(&line("PWSH.exe", "/C START calc")));
    }

    #[test]
    fn escapes_satisfy_the_clauses_they_may_spell() {
        let p = two_rules();
        assert!(p.is_candidate(&line(r"\u0073shd", "-o ProxyCommand")));
        assert!(p.is_candidate(&line(r"cmd\u002Eexe", r"\/c start")));
        // `\/` may spell the slash of `/c start`, not the letters of `sshd`.
        assert!(!p.is_candidate(&line(r"\/sh", "-o ProxyCommand")));
        // An escaped backslash then `u0073`: no escape of `s`.
        assert!(!p.is_candidate(&line(r"\\\\u0073shd", "-o ProxyCommand")));
        // Not a JSON escape: the parser must see the line.
        assert!(p.is_candidate(&line(r"\u00zz", "")));
    }

    #[test]
    fn finder_reports_the_open_rules_of_the_line() {
        let p = two_rules();
        let hay = [
            line("bash", "-o ProxyCommand"),
            line("cmd.exe", "/c start x"),
            line("sshd", "-o ProxyCommand"),
        ]
        .join(&b'\n');
        let mut finder = p.finder();
        let mut open = Vec::new();
        let first = finder.find(&hay, 0, hay.len()).unwrap();
        let second_line = hay.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert!(first >= second_line);
        assert!(finder.fill_open(&mut open));
        assert_eq!(open, [1]);
        let third = memchr::memrchr(b'\n', &hay).unwrap();
        let next = finder.find(&hay, third, hay.len()).unwrap();
        assert!(next > third);
        assert!(finder.fill_open(&mut open));
        assert_eq!(open, [0]);
    }

    /// An unrelated second rule: the gate needs two.
    fn other() -> crate::ir::RuleIr {
        rule(vec![kw(Op::Eq, &["zzqx-unrelated"])])
    }

    #[test]
    fn a_line_needs_up_to_six_clauses() {
        // Four common values and a rare one: the line must hold them all (with three kept
        // clauses, a line without `"exec"` was a candidate).
        let shape = |action: &str| {
            format!(
                r#"{{"event":{{"category":["process"],"type":["start"],"action":"{action}"}},"host":{{"os":{{"type":"linux"}}}},"process":{{"name":"sshd"}}}}"#
            )
            .into_bytes()
        };
        let p = Prefilter::new(&[
            rule(vec![and(vec![
                pred("event.category", FieldType::Keyword, Op::Eq, &["process"]),
                pred("host.os.type", FieldType::Keyword, Op::Eq, &["linux"]),
                pred("event.type", FieldType::Keyword, Op::Eq, &["start"]),
                pred("event.action", FieldType::Keyword, Op::Eq, &["exec"]),
                pred("process.name", FieldType::Keyword, Op::Eq, &["sshd"]),
            ])]),
            other(),
        ]);
        assert!(p.is_candidate(&shape("exec")));
        assert!(p.is_candidate(&shape("EXEC")));
        assert!(p.is_candidate(&shape(r"\u0065xec")));
        assert!(!p.is_candidate(&shape("fork")));
        // `exec` as a key is not the value.
        assert!(!p.is_candidate(&shape(r#"fork","exec":"x"#)));
    }

    #[test]
    fn the_parts_of_a_field_path_gate_a_rule() {
        // `dns.question.name` exists: `name"` is every event's key, `question` is not.
        let p = Prefilter::new(&[
            rule(vec![and(vec![
                pred("event.category", FieldType::Keyword, Op::Eq, &["network"]),
                pred("dns.question.name", FieldType::Keyword, Op::Exists, &[]),
            ])]),
            other(),
        ]);
        let net = |rest: &str| {
            format!(r#"{{"event":{{"category":["network"]}},"process":{{"name":"x"}}{rest}}}"#)
                .into_bytes()
        };
        assert!(!p.is_candidate(&net("")));
        assert!(!p.is_candidate(&net(r#","destination":{"ip":"10.0.0.1"}"#)));
        assert!(p.is_candidate(&net(r#","dns":{"question":{"name":"a.b"}}"#)));
        assert!(p.is_candidate(&net(r#","dns.question.name":"a.b""#)));
        assert!(p.is_candidate(&net(r#","dns":{"question.name":"a.b"}"#)));
        // An escape in the key may spell a letter of the part.
        assert!(p.is_candidate(&net(r#","dns":{"q\u0075estion":{"name":"a"}}"#)));
        // (`B` is in no needle of either rule.)
        assert!(!p.is_candidate(&net(r#","dns":{"q\u0042estion":{"name":"a"}}"#)));
    }

    #[test]
    fn rules_sharing_literals_open_apart() {
        // Both rules need `"sshd"`; each its own second literal.
        let p = Prefilter::new(&[
            rule(vec![and(vec![
                pred("process.name", FieldType::Keyword, Op::Eq, &["sshd"]),
                pred("process.args", FieldType::Keyword, Op::Eq, &["-D"]),
            ])]),
            rule(vec![and(vec![
                pred("process.name", FieldType::Keyword, Op::Eq, &["sshd"]),
                pred("user.name", FieldType::Keyword, Op::Eq, &["root"]),
            ])]),
        ]);
        let hay = [
            br#"{"process":{"name":"sshd","args":["-x"]},"user":{"name":"bob"}}"#.to_vec(),
            br#"{"process":{"name":"SSHD","args":["-x"]},"user":{"name":"root"}}"#.to_vec(),
            br#"{"process":{"name":"sshd","args":["-D"]},"user":{"name":"root"}}"#.to_vec(),
        ]
        .join(&b'\n');
        let mut finder = p.finder();
        let mut open = Vec::new();
        let second = hay.iter().position(|&b| b == b'\n').unwrap() + 1;
        let at = finder.find(&hay, 0, hay.len()).unwrap();
        assert!(at >= second, "the first line holds no rule's two literals");
        assert!(finder.fill_open(&mut open));
        assert_eq!(open, [1]);
        let third = memchr::memrchr(b'\n', &hay).unwrap();
        assert!(finder.find(&hay, third, hay.len()).is_some());
        assert!(finder.fill_open(&mut open));
        assert_eq!(open, [0, 1]);
    }

    /// The open rules of each line `first` stops at, searching windows of a few lines as
    /// the scanner does.
    fn stops(cnf: &Cnf, hay: &[u8], windows: &[usize]) -> Vec<(usize, Vec<bool>)> {
        let mut st = cnf.state();
        let (mut at, mut out, mut w) = (0, Vec::new(), 0);
        while at < hay.len() {
            let target = (at + windows[w % windows.len()]).min(hay.len());
            w += 1;
            let end = memchr::memchr(b'\n', &hay[target..]).map_or(hay.len(), |i| target + i);
            match cnf.first(hay, at, end, &mut st) {
                Some(start) => {
                    let mut open = Vec::new();
                    cnf.fill_open(&st, &mut open);
                    let mut flags = vec![false; cnf.rules];
                    open.into_iter().for_each(|r| flags[r] = true);
                    out.push((start, flags));
                    at = memchr::memchr(b'\n', &hay[start..]).map_or(hay.len(), |i| start + i);
                }
                None => at = end,
            }
        }
        out
    }

    #[test]
    fn lanes_find_what_one_search_finds() {
        let rules = [
            rule(vec![and(vec![
                kw(Op::Eq, &["process"]),
                kw(Op::Eq, &["sshd"]),
                kw(Op::Wildcard, &["*-o ProxyCommand*"]),
            ])]),
            rule(vec![and(vec![
                kw(Op::EqCi, &["cmd.exe", "pwsh.exe"]),
                kw(Op::Wildcard, &["*/c start*"]),
            ])]),
            rule(vec![pred(
                "dns.question.name",
                FieldType::Keyword,
                Op::Exists,
                &[],
            )]),
        ];
        let walked = Cnf::build(&rules, usize::MAX).unwrap();
        let searched = Cnf::build(&rules, 0).unwrap();
        assert!(matches!(walked.ac, Searcher::Dfa(_)));
        assert!(matches!(searched.ac, Searcher::Grams(_)));
        let kinds = [
            line("sshd", "-o ProxyCommand=nc"),
            line("SSHD", "-O PROXYCOMMAND"),
            line("bash", "-o ProxyCommand"),
            line(r"\u0073shd", "-o ProxyCommand"),
            line("cmd.exe", r"\/c start x"),
            line("pwsh.exe", "/C START"),
            line("cmd.exe", "/c stop"),
            br#"{"dns":{"question":{"name":"a"}}}"#.to_vec(),
            br#"{"dns.question.name":"a"}"#.to_vec(),
            line(r"\u00zz", ""),
            b"".to_vec(),
            b"{}".to_vec(),
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..20 {
            let lines: Vec<&[u8]> = (0..300 + 40 * round)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    kinds[(x % kinds.len() as u64) as usize].as_slice()
                })
                .collect();
            let hay = lines.join(&b'\n');
            assert!(hay.len() > 4 * MIN_LANE_BYTES);
            for windows in [&[1usize << 20][..], &[300, 5000, 70_000], &[1]] {
                let a = stops(&walked, &hay, windows);
                let b = stops(&searched, &hay, windows);
                assert!(!a.is_empty());
                assert_eq!(a, b, "round {round}, windows {windows:?}");
            }
        }
    }

    #[test]
    fn an_anchor_before_or_after_the_other_clauses_opens_its_rule() {
        // `sshd` is the rarest clause of the first rule: its anchor; `"linux"` is shared.
        let rules = [
            rule(vec![and(vec![
                pred("host.os.type", FieldType::Keyword, Op::Eq, &["linux"]),
                pred("process.name", FieldType::Keyword, Op::Eq, &["sshd"]),
            ])]),
            rule(vec![and(vec![
                pred("host.os.type", FieldType::Keyword, Op::Eq, &["linux"]),
                pred("process.name", FieldType::Keyword, Op::Eq, &["cron"]),
            ])]),
        ];
        let cnf = Cnf::build(&rules, usize::MAX).unwrap();
        let (units, _) = super::units(&rules);
        assert_eq!(units[0].1[0][0].lit.text, "sshd", "the anchor");
        let hay = [
            &br#"{"process":{"name":"sshd"},"host":{"os":{"type":"linux"}}}"#[..],
            br#"{"host":{"os":{"type":"linux"}},"process":{"name":"sshd"}}"#,
            // The other clause on the line before, the anchor on this one: not open.
            br#"{"host":{"os":{"type":"linux"}},"process":{"name":"bash"}}"#,
            br#"{"host":{"os":{"type":"macos"}},"process":{"name":"sshd"}}"#,
            // The anchor spelled with an escape, after and before the other clause.
            br#"{"host":{"os":{"type":"linux"}},"process":{"name":"\u0073shd"}}"#,
            br#"{"process":{"name":"ssh\u0064"},"host":{"os":{"type":"linux"}}}"#,
            // The other clause spelled with an escape.
            br#"{"process":{"name":"sshd"},"host":{"os":{"type":"\u006Cinux"}}}"#,
            br#"{"process":{"name":"cron"},"host":{"os":{"type":"linux"}}}"#,
        ]
        .join(&b'\n');
        let starts: Vec<usize> = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', &hay).map(|i| i + 1))
            .collect();
        let want = |l: usize, open: [bool; 2]| (starts[l], open.to_vec());
        let sshd = [true, false];
        for windows in [&[1usize << 20][..], &[1]] {
            assert_eq!(
                stops(&cnf, &hay, windows),
                [
                    want(0, sshd),
                    want(1, sshd),
                    want(4, sshd),
                    want(5, sshd),
                    want(6, sshd),
                    want(7, [false, true]),
                ]
            );
        }
    }

    mod model {
        //! The gate against a plain model: a rule is open on a line iff some unit of it has
        //! every clause satisfied (a needle of it found and confirmed, or a real escape of a
        //! char of one of its needles), or the line holds an invalid escape.
        use super::super::super::clauses::{confirm, ClauseNeedle};
        use super::super::super::search::real_escape;
        use super::super::super::test_ir::*;
        use super::super::{units, Cnf};
        use super::stops;
        use crate::ir::{Node, Op, RuleIr};
        use proptest::prelude::*;

        const WORDS: &[&str] = &[
            "sshd", "ssh", "bash", "curl", "exec", "start", "process", "linux", "80", "true",
            "a/b", "é-x", "c:\\win", "proc", "Start",
        ];
        const FIELDS: &[&str] = &["nm", "a.nm", "p.args", "x.y.cmd"];

        fn pred_node(field: usize, op: usize, words: &[usize]) -> Node {
            let op_of = [
                Op::Eq,
                Op::EqCi,
                Op::StartsWith,
                Op::EndsWith,
                Op::Contains,
                Op::Wildcard,
                Op::Wildcard,
            ];
            let words: Vec<&str> = words.iter().map(|&w| WORDS[w]).collect();
            word_pred(FIELDS[field], op_of[op], op == 6, &words)
        }

        fn rules() -> impl Strategy<Value = Vec<RuleIr>> {
            let pred = (
                0..FIELDS.len(),
                0..7usize,
                prop::collection::vec(0..WORDS.len(), 1..4),
            )
                .prop_map(|(f, op, ws)| pred_node(f, op, &ws));
            let branch = prop::collection::vec(pred, 1..5).prop_map(and);
            let rule = prop::collection::vec(branch, 1..3).prop_map(rule);
            prop::collection::vec(rule, 2..8)
        }

        /// Pieces of lines: JSON punctuation, keys, values (some in other cases) and
        /// escapes (real, escaped, invalid, non-ASCII).
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\"",
            "\"nm\":",
            "\"a\":{\"nm\":",
            "\"p.args\":",
            "\"x\":{\"y\":{\"cmd\":",
            "\"x.y.cmd\":",
            "sshd",
            "SSHD",
            "ssh",
            "bash",
            "curl",
            "exec",
            "EXEC",
            "start",
            "process",
            "linux",
            "80",
            "true",
            "a/b",
            "a\\/b",
            "é-x",
            "c:\\\\win",
            "proc",
            "\\u0073",
            "\\u0053",
            "\\u0064",
            "\\/",
            "\\u00e9",
            "\\u00E9",
            "\\u00zz",
            "\\\\u0073",
            "\\\\",
            "\\U0073",
            "\\u002F",
            "\\u002f",
            "\\\"",
            "\\u0045",
            "\\u005c",
        ];

        fn lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
            let line = prop::collection::vec(0..PIECES.len(), 0..24)
                .prop_map(|ps| ps.iter().flat_map(|&p| PIECES[p].bytes()).collect());
            prop::collection::vec(line, 1..30)
        }

        fn found(n: &ClauseNeedle, line: &[u8]) -> bool {
            let raw = &n.lit.raw;
            line.len() >= raw.len()
                && (0..=line.len() - raw.len()).any(|p| {
                    line[p..p + raw.len()].eq_ignore_ascii_case(raw)
                        && confirm(n.check, line, p, p + raw.len(), line.len())
                })
        }

        enum Escape {
            Ascii(u8),
            NonAscii,
            Invalid,
        }

        fn escapes(line: &[u8]) -> Vec<Escape> {
            let mut out = Vec::new();
            for p in 0..line.len() {
                if line[p] != b'\\' || !real_escape(line, p) {
                    continue;
                }
                match line.get(p + 1) {
                    Some(b'/') => out.push(Escape::Ascii(b'/')),
                    Some(b'u') => {
                        let hex = line.get(p + 2..p + 6);
                        out.push(match hex.filter(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                            None => Escape::Invalid,
                            Some(h) => {
                                let code = u32::from_str_radix(std::str::from_utf8(h).unwrap(), 16)
                                    .unwrap();
                                match u8::try_from(code) {
                                    Ok(c) if c < 0x80 => Escape::Ascii(c.to_ascii_lowercase()),
                                    _ => Escape::NonAscii,
                                }
                            }
                        });
                    }
                    _ => {}
                }
            }
            out
        }

        /// Per line, the open rules the model finds (`None`: no rule with clauses).
        fn model(rules: &[RuleIr], line: &[u8]) -> Option<Vec<bool>> {
            let (units, always) = units(rules);
            let esc = escapes(line);
            if esc.iter().any(|e| matches!(e, Escape::Invalid)) {
                return Some(vec![true; rules.len()]);
            }
            let spelled = |n: &ClauseNeedle| {
                n.lit.text.chars().any(|ch| {
                    esc.iter().any(|e| match e {
                        Escape::Ascii(c) => ch.is_ascii() && ch.to_ascii_lowercase() == *c as char,
                        Escape::NonAscii => !ch.is_ascii(),
                        Escape::Invalid => true,
                    })
                })
            };
            let mut open = vec![false; rules.len()];
            for (r, clauses) in &units {
                if clauses
                    .iter()
                    .all(|c| c.iter().any(|n| found(n, line) || spelled(n)))
                {
                    open[*r as usize] = true;
                }
            }
            if !open.contains(&true) {
                return None;
            }
            for r in always {
                open[r] = true;
            }
            Some(open)
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: std::env::var("PROPTEST_CASES")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(400),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn the_gate_opens_what_the_model_opens(rules in rules(), lines in lines()) {
                let hay = lines.join(&b'\n');
                let mut want = Vec::new();
                let mut start = 0;
                for line in &lines {
                    if let Some(open) = model(&rules, line) {
                        want.push((start, open));
                    }
                    start += line.len() + 1;
                }
                for limit in [usize::MAX, 0] {
                    let cnf = Cnf::build(&rules, limit).unwrap();
                    for windows in [&[1usize << 20][..], &[1], &[40, 200]] {
                        prop_assert_eq!(&stops(&cnf, &hay, windows), &want);
                    }
                }
            }
        }
    }

    #[test]
    fn one_rule_or_an_unfilterable_branch_keeps_the_needle_search() {
        let one = Prefilter::new(&[rule(vec![kw(Op::Eq, &["sshd"])])]);
        assert!(one.cnf.is_none());
        let loose = Prefilter::new(&[
            rule(vec![kw(Op::Eq, &["sshd"])]),
            rule(vec![not(kw(Op::Eq, &["y"]))]),
        ]);
        assert!(loose.cnf.is_none());
    }
}
