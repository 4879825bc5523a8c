//! One rule's literal conjunction, judged on the lines the needle search finds.
//!
//! With one rule the needle search ([`super::search`]) finds the lines holding one of the
//! rule's needles. When every branch of the rule has two clauses or more
//! ([`super::clauses`], kept as for the rule gate: [`super::cnf`]), such a line is a candidate
//! only when every clause of one branch holds on it: a needle of the clause occurs (ASCII
//! case-insensitively) where its check allows (`"start"` as a value, not the key of
//! `"start":`), or a real escape of the line may spell a character of one of its needles
//! (`\uXXXX`, `\/`). A `\u` that is not valid JSON makes the line a candidate (the parser
//! reports it). Each clause has its own small search over the line (Teddy over every case
//! spelling of one short anchor per needle), the rarest clause first; the clause automaton of
//! [`super::cnf`] walked over each line cost as much as it saved.

use super::anchors::{case_variants, plan_anchors};
use super::clauses::{confirm, Check, Clause};
use super::cnf::units;
use super::pair::FoldedPair;
use super::search::real_escape;
use crate::ir::RuleIr;
use aho_corasick::{packed, AhoCorasick, AhoCorasickKind, Input, MatchKind, Span};

/// Teddy refuses more patterns than this.
const PACKED_LIMIT: usize = 64;

/// One way an anchor spelling found at a position may belong to a needle.
#[derive(Debug, Clone)]
struct Entry {
    /// Folded spelling of the anchor.
    spelling: Vec<u8>,
    needle: u32,
    /// Anchor offset in the needle.
    offset: usize,
}

/// The search for a clause's anchors (or whole needles).
#[derive(Debug, Clone)]
enum AnchorSearch {
    /// Teddy itself: aho-corasick's automaton would pick a `memchr` of the anchors' first
    /// byte when they share one, and `"` starts many.
    Packed(packed::Searcher),
    /// Too many spellings for Teddy: an ASCII case-insensitive automaton.
    Folded(AhoCorasick),
    /// A clause of one needle: two of its bytes tested at every position ([`FoldedPair`]).
    Pair(FoldedPair),
}

impl AnchorSearch {
    /// The start of the first match in `hay[at..stop]`.
    fn find(&self, hay: &[u8], at: usize, stop: usize) -> Option<usize> {
        match self {
            AnchorSearch::Packed(s) => s.find_in(hay, Span::from(at..stop)).map(|m| m.start()),
            AnchorSearch::Folded(ac) => ac.find(Input::new(hay).span(at..stop)).map(|m| m.start()),
            AnchorSearch::Pair(p) => p.find(hay, at, stop),
        }
    }
}

/// The search for one clause's needles in a line.
#[derive(Debug, Clone)]
struct ClauseSearch {
    ac: AnchorSearch,
    /// Anchor entries by folded first byte.
    entries: Vec<Vec<Entry>>,
    /// Needles as searched: raw, ASCII-folded, and how an occurrence is confirmed.
    needles: Vec<(Vec<u8>, Check)>,
    /// The folded ASCII chars (a bit each) and whether a non-ASCII char are in its needles'
    /// texts: what an escape may spell.
    ascii: u128,
    non_ascii: bool,
}

impl ClauseSearch {
    fn new(clause: &Clause) -> Option<ClauseSearch> {
        let needles: Vec<(Vec<u8>, Check)> = clause
            .iter()
            .map(|n| (n.lit.raw.to_ascii_lowercase(), n.check))
            .collect();
        if needles.iter().any(|(n, _)| n.is_empty()) {
            return None;
        }
        let (mut ascii, mut non_ascii) = (0u128, false);
        for ch in clause.iter().flat_map(|n| n.lit.text.chars()) {
            if ch.is_ascii() {
                ascii |= 1 << (ch.to_ascii_lowercase() as u32);
            } else {
                non_ascii = true;
            }
        }
        let folded: Vec<Vec<u8>> = needles.iter().map(|(n, _)| n.clone()).collect();
        let mut entries: Vec<Vec<Entry>> = vec![Vec::new(); 256];
        if let [needle] = &folded[..] {
            entries[needle[0] as usize].push(Entry {
                spelling: needle.clone(),
                needle: 0,
                offset: 0,
            });
            return Some(ClauseSearch {
                ac: AnchorSearch::Pair(FoldedPair::new(needle)?),
                entries,
                needles,
                ascii,
                non_ascii,
            });
        }
        let mut packed = None;
        if let Some(windows) = plan_anchors(&folded, PACKED_LIMIT, None) {
            // Every case spelling of a short anchor: exact-case patterns, for Teddy.
            let mut patterns = Vec::new();
            let mut anchors = vec![Vec::new(); 256];
            for (i, w) in windows.iter().enumerate() {
                let spelling = folded[i][w.offset..w.offset + w.len].to_vec();
                patterns.extend(case_variants(&spelling));
                anchors[spelling[0] as usize].push(Entry {
                    spelling,
                    needle: i as u32,
                    offset: w.offset,
                });
            }
            patterns.sort();
            patterns.dedup();
            packed = packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .builder()
                .extend(&patterns)
                .build();
            if packed.is_some() {
                entries = anchors;
            }
        }
        let ac = match packed {
            Some(s) => AnchorSearch::Packed(s),
            None => {
                for (i, n) in folded.iter().enumerate() {
                    entries[n[0] as usize].push(Entry {
                        spelling: n.clone(),
                        needle: i as u32,
                        offset: 0,
                    });
                }
                let kind = (folded.len() <= 1000).then_some(AhoCorasickKind::DFA);
                AnchorSearch::Folded(
                    AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostFirst)
                        .ascii_case_insensitive(true)
                        .kind(kind)
                        .build(&folded)
                        .ok()?,
                )
            }
        };
        Some(ClauseSearch {
            ac,
            entries,
            needles,
            ascii,
            non_ascii,
        })
    }

    /// Whether a needle of the clause occurs, confirmed, in the line `hay[start..stop]`.
    fn found(&self, hay: &[u8], start: usize, stop: usize) -> bool {
        let mut at = start;
        while at < stop {
            let Some(p) = self.ac.find(hay, at, stop) else {
                return false;
            };
            // Every anchor starting here, not only the one reported (a needle may hold
            // another's anchor, and only one of them may be confirmed).
            for e in &self.entries[hay[p].to_ascii_lowercase() as usize] {
                if !hay[p..stop]
                    .get(..e.spelling.len())
                    .is_some_and(|h| h.eq_ignore_ascii_case(&e.spelling))
                {
                    continue;
                }
                let (needle, check) = &self.needles[e.needle as usize];
                let Some(s) = p.checked_sub(e.offset).filter(|&s| s >= start) else {
                    continue;
                };
                let q = s + needle.len();
                if q <= stop
                    && hay[s..q].eq_ignore_ascii_case(needle)
                    && confirm(*check, hay, s, q, stop)
                {
                    return true;
                }
            }
            at = p + 1;
        }
        false
    }

    /// Whether an escape of the line may spell a char of the clause's needles.
    fn escaped(&self, esc: Escapes) -> bool {
        self.ascii & esc.ascii != 0 || (self.non_ascii && esc.non_ascii)
    }
}

/// The chars the real escapes of a line may spell (folded ASCII, a bit each; non-ASCII).
#[derive(Debug, Clone, Copy, Default)]
struct Escapes {
    ascii: u128,
    non_ascii: bool,
}

/// The escapes of the line `hay[start..stop]`; `None` when a `\u` is not valid JSON.
fn line_escapes(hay: &[u8], start: usize, stop: usize) -> Option<Escapes> {
    let mut esc = Escapes::default();
    let mut i = start;
    while let Some(k) = memchr::memchr(b'\\', &hay[i..stop]) {
        // The run of backslashes from here: its last one escapes the next byte when the
        // run (counted as `real_escape` does) is odd.
        let mut j = i + k;
        while j < stop && hay[j] == b'\\' {
            j += 1;
        }
        if j < stop && real_escape(hay, j - 1) {
            match hay[j] {
                b'/' => esc.ascii |= 1 << b'/',
                b'u' => {
                    let code = hay[..stop].get(j + 1..j + 5).and_then(|h| {
                        h.iter().try_fold(0u32, |acc, &b| {
                            (b as char).to_digit(16).map(|d| acc * 16 + d)
                        })
                    })?;
                    match u8::try_from(code) {
                        Ok(c) if c < 0x80 => esc.ascii |= 1 << c.to_ascii_lowercase(),
                        _ => esc.non_ascii = true,
                    }
                }
                _ => {}
            }
        }
        i = j;
    }
    Some(esc)
}

/// A rule's branches' clauses, each searched on its own.
#[derive(Debug, Clone)]
pub(super) struct Conj {
    clauses: Vec<ClauseSearch>,
    /// Per branch: its clauses (indices in `clauses`), rarest first.
    branches: Vec<Vec<usize>>,
    /// How the search runs, in words (the `many_rules` example and the throughput test print it).
    pub(super) strategy: String,
}

/// Per-line scratch of [`Conj::open`]: per clause, unknown (0), found (1) or not (2).
#[derive(Debug, Clone, Default)]
pub(super) struct ConjState {
    found: Vec<u8>,
}

impl Conj {
    /// `None` unless every branch of the one rule has two clauses or more; `search` says how
    /// the lines are found.
    pub(super) fn new(rules: &[RuleIr], search: &str) -> Option<Conj> {
        let [_] = rules else {
            return None;
        };
        let (units, always) = units(rules);
        if !always.is_empty() || units.iter().any(|(_, cs)| cs.len() < 2) {
            return None;
        }
        let mut index: Vec<&Clause> = Vec::new();
        let mut branches = Vec::new();
        for (_, cs) in &units {
            let mut ids = Vec::new();
            for c in cs {
                let id = index.iter().position(|x| *x == c).unwrap_or_else(|| {
                    index.push(c);
                    index.len() - 1
                });
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            branches.push(ids);
        }
        let clauses = index
            .into_iter()
            .map(ClauseSearch::new)
            .collect::<Option<Vec<_>>>()?;
        let strategy = format!(
            "{search}; a line found a candidate when all clauses of one branch hold ({} clause \
             searches over the line)",
            clauses.len()
        );
        Some(Conj {
            clauses,
            branches,
            strategy,
        })
    }

    pub(super) fn state(&self) -> ConjState {
        ConjState {
            found: vec![0; self.clauses.len()],
        }
    }

    /// Whether every clause of some branch holds on the line `hay[start..stop]`.
    pub(super) fn open(&self, hay: &[u8], start: usize, stop: usize, st: &mut ConjState) -> bool {
        st.found.iter_mut().for_each(|f| *f = 0);
        let mut found = |c: usize| {
            if st.found[c] == 0 {
                st.found[c] = if self.clauses[c].found(hay, start, stop) {
                    1
                } else {
                    2
                };
            }
            st.found[c] == 1
        };
        if self.branches.iter().any(|b| b.iter().all(|&c| found(c))) {
            return true;
        }
        // Escapes may spell what no needle shows: only then are they read.
        if memchr::memchr(b'\\', &hay[start..stop]).is_none() {
            return false;
        }
        let Some(esc) = line_escapes(hay, start, stop) else {
            return true;
        };
        if esc.ascii == 0 && !esc.non_ascii {
            return false;
        }
        self.branches
            .iter()
            .any(|b| b.iter().all(|&c| self.clauses[c].escaped(esc) || found(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_ir::*;
    use super::super::Prefilter;
    use super::Conj;
    use crate::ir::{FieldType, Node, Op};

    fn category(v: &str) -> Node {
        pred("event.category", FieldType::Keyword, Op::Eq, &[v])
    }

    fn event_type(v: &str) -> Node {
        pred("event.type", FieldType::Keyword, Op::Eq, &[v])
    }

    /// `process where event.type == "start"`: two common words, as values.
    fn broad() -> Prefilter {
        let p = Prefilter::new(&[rule(vec![and(vec![
            category("process"),
            event_type("start"),
        ])])]);
        assert!(p.conj.is_some(), "{}", p.strategy());
        assert!(
            p.strategy().contains("all clauses of one branch"),
            "{}",
            p.strategy()
        );
        p
    }

    #[test]
    fn a_line_needs_every_clause_as_a_value() {
        let p = broad();
        for line in [
            r#"{"event":{"category":["process"],"type":["start"]}}"#,
            r#"{"event.category":"process","event.type":"start"}"#,
            r#"{"event":{"category.x":"PROCESS" , "type" :[ "info","START" ] }}"#,
            "{\"event\":{\"category\":\"process\",\"type\":\"start\"\t}}",
            "{\"event\":{\"category\":\"process\",\"type\":\"start\" \r\t}",
            r#"{"process":{"start":"2024"},"event":{"type":"start","category":["x","process"]}}"#,
            // Cut short: the parser reports it.
            r#"{"event":{"category":["process"],"type":"start""#,
        ] {
            assert!(p.is_candidate(line.as_bytes()), "{line}");
        }
        for line in [
            // `"start"` as a key (process.start), whatever the whitespace before its `:`.
            r#"{"event":{"category":["process"],"type":["info"]},"process":{"start":"2024"}}"#,
            r#"{"event":{"category":["process"]},"process":{"start" : "2024"}}"#,
            "{\"event\":{\"category\":[\"process\"]},\"process\":{\"start\"\t\r :1}}",
            // `"process"` as a key only.
            r#"{"event":{"category":["network"],"type":["start"]},"process":{"pid":1}}"#,
            r#"{"event":{"category":["network"],"type":["start"]},"process" :{"pid":1}}"#,
            r#"{"event":{"category":["process"],"type":["started"]}}"#,
            r#"{"event":{"category":["process"],"type":["restart"]}}"#,
        ] {
            assert!(!p.is_candidate(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn escapes_may_spell_a_clause() {
        let p = broad();
        for line in [
            r#"{"event":{"category":["process"],"type":["st\u0061rt"]}}"#,
            r#"{"event":{"category":["process"],"type":["\u0053TART"]}}"#,
            r#"{"event":{"category":["pr\u006Fcess"],"type":["start"]}}"#,
            r#"{"event":{"category":["process"],"type":["x"]},"a":"\\\u0074"}"#,
            // Not JSON: the parser must see the line.
            r#"{"event":{"category":["process"],"type":["x"]},"a":"\u00zz"}"#,
            r#"{"event":{"category":["process"],"type":["x"]},"a":"\uzz"}"#,
        ] {
            assert!(p.is_candidate(line.as_bytes()), "{line}");
        }
        for line in [
            // No char of `start`; an escaped backslash; `\/` and `\U` spell none.
            r#"{"event":{"category":["process"],"type":["info"]},"a":"\u0062"}"#,
            r#"{"event":{"category":["process"],"type":["info"]},"a":"\\u0073"}"#,
            r#"{"event":{"category":["process"],"type":["info"]},"a":"\\\\u0073\/"}"#,
            r#"{"event":{"category":["process"],"type":["info"]},"a":"\U0073"}"#,
        ] {
            assert!(!p.is_candidate(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn found_lines_are_judged_one_by_one() {
        let p = broad();
        let lines = [
            r#"{"event":{"category":["process"],"type":["info"]},"process":{"start":"x"}}"#,
            r#"{"event":{"category":["process"],"type":["start"]}}"#,
            r#"{"event":{"category":["network"]},"process":{"start":"x"}}"#,
            r#"{"event":{"type":["start"],"category":"process"}}"#,
        ];
        let hay = lines.join("\n").into_bytes();
        let mut finder = p.finder();
        let (mut at, mut found) = (0, Vec::new());
        while let Some(h) = finder.find(&hay, at, hay.len()) {
            found.push(hay[..h].iter().filter(|&&b| b == b'\n').count());
            at = memchr::memchr(b'\n', &hay[h..]).map_or(hay.len(), |i| h + i);
        }
        assert_eq!(found, [1, 3]);
    }

    #[test]
    fn only_rules_with_two_clauses_on_every_branch_and_a_common_needle() {
        // `"start"` alone (the key `f"` is too short to count).
        let one = [rule(vec![kw(Op::Eq, &["start"])])];
        assert!(Conj::new(&one, "").is_none());
        let mixed = [rule(vec![
            and(vec![category("process"), event_type("start")]),
            kw(Op::Eq, &["start"]),
        ])];
        assert!(Conj::new(&mixed, "").is_none());
        // Two clauses, yet a rare needle: the needle search alone (as for the seed rule).
        let rare = [rule(vec![and(vec![
            category("process"),
            kw(Op::Eq, &["sshd"]),
        ])])];
        assert!(Conj::new(&rare, "").is_some());
        assert!(Prefilter::new(&rare).conj.is_none());
        let two = Prefilter::new(&[rule(vec![
            and(vec![category("process"), event_type("start")]),
            and(vec![category("network"), event_type("connection")]),
        ])]);
        assert!(two.conj.is_some());
        assert!(two.is_candidate(br#"{"event":{"category":"network","type":"connection"}}"#));
        assert!(!two.is_candidate(br#"{"event":{"category":"network","type":"start"}}"#));
    }

    mod model {
        //! One rule's candidates against a plain model: the needle search finds the line, and
        //! every clause of some branch holds (a needle occurs where its check allows, checked
        //! here apart from [`confirm`] for values and keys, or a real escape may spell a char
        //! of one of its needles), or the line holds a `\u` that is not JSON.
        use super::super::super::clauses::{confirm, Check, ClauseNeedle};
        use super::super::super::cnf::units;
        use super::super::super::test_ir::*;
        use super::super::super::Prefilter;
        use super::super::Conj;
        use crate::ir::{Node, Op, RuleIr};
        use proptest::prelude::*;

        const WORDS: &[&str] = &[
            "sshd", "bash", "curl", "exec", "start", "process", "linux", "80", "true", "a/b",
            "é-x", "c:\\win", "Start",
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
            ];
            let words: Vec<&str> = words.iter().map(|&w| WORDS[w]).collect();
            word_pred(FIELDS[field], op_of[op], op == 5, &words)
        }

        /// One rule: one or two branches of two to four predicates, mostly whole values.
        fn one_rule() -> impl Strategy<Value = RuleIr> {
            let pred = (
                0..FIELDS.len(),
                prop_oneof![3 => Just(0usize), 2 => Just(1usize), 1 => 2..6usize],
                prop::collection::vec(0..WORDS.len(), 1..3),
            )
                .prop_map(|(f, op, ws)| pred_node(f, op, &ws));
            let branch = prop::collection::vec(pred, 2..5).prop_map(and);
            prop::collection::vec(branch, 1..3).prop_map(rule)
        }

        /// Pieces of lines: punctuation and whitespace, keys (some before whitespace), whole
        /// values and bare words (some in other cases), escapes (real, escaped, invalid).
        const PIECES: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\t",
            " :",
            "\"",
            "\"nm\":",
            "\"nm\" :",
            "\"a\":{\"nm\":",
            "\"p.args\":",
            "\"x\":{\"y\":{\"cmd\":",
            "\"x.y.cmd\" :",
            "\"sshd\"",
            "\"SSHD\"",
            "\"curl\"",
            "\"start\"",
            "\"START\"",
            "\"process\"",
            "\"linux\"",
            "\"80\"",
            "80",
            "true",
            "\"a/b\"",
            "\"a\\/b\"",
            "\"é-x\"",
            "\"c:\\\\win\"",
            "sshd",
            "bash",
            "exec",
            "start",
            "process",
            "a/b",
            "é-x",
            "\\u0073",
            "\\u0053",
            "\\u0074",
            "\\/",
            "\\u00e9",
            "\\u00zz",
            "\\uzz",
            "\\\\u0073",
            "\\\\",
            "\\U0073",
            "\\\"",
        ];

        fn lines() -> impl Strategy<Value = Vec<Vec<u8>>> {
            let line = prop::collection::vec(0..PIECES.len(), 0..20)
                .prop_map(|ps| ps.iter().flat_map(|&p| PIECES[p].bytes()).collect());
            prop::collection::vec(line, 1..12)
        }

        /// The next byte past JSON whitespace after `q`, in the line.
        fn next(line: &[u8], q: usize) -> Option<u8> {
            line[q..]
                .iter()
                .copied()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        }

        fn found(n: &ClauseNeedle, line: &[u8]) -> bool {
            let raw = &n.lit.raw;
            line.len() >= raw.len()
                && (0..=line.len() - raw.len()).any(|p| {
                    let q = p + raw.len();
                    line[p..q].eq_ignore_ascii_case(raw)
                        && match n.check {
                            Check::ValueEnd => next(line, q) != Some(b':'),
                            Check::Key => next(line, q) == Some(b':'),
                            check => confirm(check, line, p, q, line.len()),
                        }
                })
        }

        /// The chars the line's escapes may spell (folded; `None` for non-ASCII), or `Err`
        /// for a `\u` that is not JSON.
        fn escapes(line: &[u8]) -> Result<Vec<Option<u8>>, ()> {
            let mut out = Vec::new();
            let mut run = 0;
            for (p, &b) in line.iter().enumerate() {
                if run % 2 == 1 {
                    match b {
                        b'/' => out.push(Some(b'/')),
                        b'u' => {
                            let hex = line.get(p + 1..p + 5).ok_or(())?;
                            let hex = std::str::from_utf8(hex).map_err(|_| ())?;
                            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                                return Err(());
                            }
                            let code = u32::from_str_radix(hex, 16).map_err(|_| ())?;
                            out.push(u8::try_from(code).ok().filter(|c| *c < 0x80));
                        }
                        _ => {}
                    }
                }
                run = if b == b'\\' { run + 1 } else { 0 };
            }
            Ok(out
                .into_iter()
                .map(|c| c.map(|c| c.to_ascii_lowercase()))
                .collect())
        }

        fn model(rules: &[RuleIr], line: &[u8]) -> bool {
            let Ok(esc) = escapes(line) else {
                return true;
            };
            let spelled = |n: &ClauseNeedle| {
                n.lit.text.chars().any(|ch| {
                    esc.iter().any(|e| match e {
                        Some(c) => ch.is_ascii() && ch.to_ascii_lowercase() == *c as char,
                        None => !ch.is_ascii(),
                    })
                })
            };
            let (units, always) = units(rules);
            !always.is_empty()
                || units.iter().any(|(_, clauses)| {
                    clauses
                        .iter()
                        .all(|c| c.iter().any(|n| found(n, line) || spelled(n)))
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: std::env::var("PROPTEST_CASES")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(500),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn candidates_are_the_found_lines_the_model_opens(
                rule in one_rule(),
                lines in lines(),
            ) {
                let rules = [rule];
                let mut p = Prefilter::new(&rules);
                // With rare needles too (the check is the same).
                if p.conj.is_none() && p.search.is_some() && !p.all {
                    p.conj = Conj::new(&rules, "");
                }
                let mut search = p.clone();
                search.conj = None;
                let hay = lines.join(&b'\n');
                let mut want = Vec::new();
                let mut start = 0;
                for line in &lines {
                    let conj = p.conj.is_none() || model(&rules, line);
                    if search.is_candidate(line) && conj && !line.is_empty() {
                        want.push(start);
                    }
                    start += line.len() + 1;
                }
                // The lines `find` stops at, searching on from each one's end.
                let mut finder = p.finder();
                let (mut at, mut got) = (0, Vec::new());
                while let Some(h) = finder.find(&hay, at, hay.len()) {
                    let line = memchr::memrchr(b'\n', &hay[..h]).map_or(0, |i| i + 1);
                    got.push(line);
                    at = memchr::memchr(b'\n', &hay[h..]).map_or(hay.len(), |i| h + i);
                }
                // A line at a time, as a scanner that knows its lines' ends asks.
                if p.conj.is_some() {
                    let mut finder = p.finder();
                    let mut start = 0;
                    let mut judged = Vec::new();
                    for line in &lines {
                        let stop = start + line.len();
                        if finder.judge_line(&hay, start, stop) == Some(true) {
                            judged.push(start);
                        }
                        start = stop + 1;
                    }
                    prop_assert_eq!(&judged, &want);
                }
                prop_assert_eq!(got, want);
            }
        }
    }
}
