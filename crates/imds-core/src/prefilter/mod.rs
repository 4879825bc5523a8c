//! The literals every match must contain, and the Aho-Corasick search over whole buffers.
//!
//! From each rule's IR we derive *needles*: byte strings such that every event any rule can
//! match contains at least one of them in its raw line (ASCII case-insensitively). A line
//! with no needle and no relevant escape is never parsed. Soundness rests on:
//! - a needle is a literal the matching value must contain, written as a JSON encoder writes
//!   it inside a string (`"` → `\"`, controls escaped, non-ASCII as UTF-8);
//! - the only other spellings of a character inside a JSON string are `\uXXXX` (any char,
//!   hex in either case) and `\/` (for `/`). `\/` is accepted wherever a needle has `/`;
//!   a line holding a real `\u` escape (odd backslash run) of a needle character, or of any
//!   non-ASCII character when a needle has one, is a candidate (an *escape guard*);
//! - invalid UTF-8 decodes to U+FFFD, so a literal is cut at U+FFFD and only its longest
//!   piece is a needle.
//!
//! Search strategy, measured on one core with aho-corasick 1.1.5 (bench/gen_corpus.py 200 MB
//! ECS corpus, and a synthetic one with Windows paths and Go `\u0026`/`\u003c` escapes):
//! - an `ascii_case_insensitive` automaton over the seed's 12 needles + guards: DFA
//!   0.49 GB/s, contiguous NFA 0.26 (case-insensitivity disables the packed searcher, so the
//!   prefilter setting changes nothing);
//! - an exact-case automaton over every case spelling of one short rare *anchor* per needle
//!   (≤ 64 patterns, so aho-corasick uses its packed Teddy searcher) + a `\u00` guard:
//!   ~4 GB/s search alone, ~3.1 GB/s for a whole `scan_bytes` with line counting; each
//!   anchor hit is verified against its needle here. Over 64 patterns Teddy is refused
//!   (exact-case automaton: 0.37 GB/s). A 2-byte pattern (`\/`, `\u`) drops Teddy to 2-byte
//!   fingerprints and ~1 GB/s, hence slashes are matched both ways (`/`, `\/`) in anchors
//!   and needles rather than by a `\/` guard.
//!
//! - where the CPU has AVX2 or AVX-512, a Teddy of our own over ASCII-folded anchors
//!   (`fold_teddy`): one pattern per anchor whatever its case, so the seed's 12 anchors are
//!   16 patterns, not 62 spellings, and it steps 32 or 64 bytes where aho-corasick's Fat
//!   Teddy (more than 32 patterns) steps 16: the default rule over the 1 GB corpus, user
//!   CPU 0.28 → 0.20 s (2 threads).
//!
//! When the anchors' spellings do not fit Teddy's 64 patterns, a case-insensitive DFA over
//! the whole needles (each slash spelled both ways) and the `\u` guard is used instead.
//!
//! Layout: `needles` (needle extraction from the IR: literals, or the endpoint test standing
//! for an `imds_endpoint` predicate), `cost` (the frequency model), `anchors` (anchor
//! planning), `search` (the automaton, anchor verification and escape guards), `fold_teddy`
//! (the case-folding Teddy and its vector kernels), `cpu` (the kernels' proofs of CPU
//! features), `nibbles` (the nibble-table lookup the Teddy-style kernels share), `gate` (which of several rules a candidate line can match), `conj` (one rule's
//! clauses, judged on the lines the search finds), `raw_endpoint` (the `imds_endpoint`
//! raw-line test and its vector kernels; it uses the endpoint decoder, never the reverse).

mod anchors;
mod clauses;
mod cnf;
mod conj;
mod cost;
#[cfg(target_arch = "x86_64")]
mod cpu;
mod fold_teddy;
mod gate;
mod grams;
#[cfg(test)]
mod kql_tests;
mod needles;
#[cfg(target_arch = "x86_64")]
mod nibbles;
mod pair;
mod raw_endpoint;
mod search;
mod table;
#[cfg(test)]
mod test_ir;

use crate::ir::{Node, Op, RuleIr};
use cnf::{Cnf, CnfState};
use conj::{Conj, ConjState};
use cost::{byte_freq, literal_cost};
pub use gate::RuleGate;
use needles::{rules_lits, Lit, Needle};
use raw_endpoint::RawTest;
use search::Search;

/// From this many rules on, set-up work (parsing the rules, the needle search and the clause
/// automaton, the compiled rules) is spread over rayon's threads (fewer: not worth starting
/// them; a scan with the default rule starts in a tenth of a second).
pub(crate) const PARALLEL_FROM: usize = 16;

/// One rule's clauses judge the lines its needle search finds ([`conj`]) only when one of
/// its needles is estimated this frequent ([`literal_cost`]: a word common in ECS logs, such
/// as `process`, is 1): with rare needles few lines are found, and the check would cost and
/// save nothing (the seed rule: 0.2% of the lines either way).
const WEAK_NEEDLE: f64 = 0.01;

/// The prefilter of a set of rules.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// `None`: no needle (every line is a candidate unless `endpoint` is set).
    search: Option<Search>,
    /// Some rule is unfilterable: every line is a candidate.
    all: bool,
    /// Lines the endpoint raw-line test passes are candidates too (`imds_endpoint`).
    endpoint: Option<RawTest>,
    /// The endpoint test also passes every line holding a needle: `search` is not run.
    needles_held: bool,
    /// Several rules, each with literal clauses on every branch: a line is a candidate only
    /// when some rule is open on it ([`cnf`]); the finder then knows which rules are.
    cnf: Option<Cnf>,
    /// One rule, with two clauses or more on every branch: a line the needle search finds is
    /// a candidate only when all clauses of one branch hold on it ([`conj`]).
    conj: Option<Conj>,
}

impl Prefilter {
    /// Derive the needles of `rules` and build the searcher.
    pub fn new(rules: &[RuleIr]) -> Prefilter {
        // The clauses also hold fields' keys: they may filter rules the needles cannot
        // (`exists`, typed ranges, `""`).
        let clauses = rules.len() > 1 && !rules.iter().any(has_endpoint);
        // Independent builds: side by side when there are many rules (start-up).
        let (mut p, cnf) = if clauses && rules.len() >= PARALLEL_FROM {
            rayon::join(|| Prefilter::union(rules), || Cnf::new(rules))
        } else {
            (
                Prefilter::union(rules),
                clauses.then(|| Cnf::new(rules)).flatten(),
            )
        };
        if p.endpoint.is_none() && clauses {
            p.cnf = cnf.filter(|c| c.always.is_empty());
            if p.cnf.is_some() {
                p.all = false;
            }
        }
        let weak = |s: &Search| s.lits.iter().any(|l| literal_cost(&l.raw) >= WEAK_NEEDLE);
        if let Some(search) =
            (p.search.as_ref()).filter(|s| p.endpoint.is_none() && !p.all && weak(s))
        {
            p.conj = Conj::new(rules, &search.strategy);
        }
        p
    }

    /// The prefilter of the union of the rules' needles.
    fn union(rules: &[RuleIr]) -> Prefilter {
        let Some(needles) = rules_lits(rules) else {
            return Prefilter {
                search: None,
                all: true,
                endpoint: None,
                needles_held: false,
                cnf: None,
                conj: None,
            };
        };
        let endpoint = needles.contains(&Needle::Endpoint);
        let lits: Vec<Lit> = needles
            .into_iter()
            .filter_map(|n| match n {
                Needle::Literal(lit) => Some(lit),
                Needle::Endpoint => None,
            })
            .collect();
        if !endpoint {
            let search = Search::new(lits);
            return Prefilter {
                all: search.is_none(),
                search,
                endpoint: None,
                needles_held: false,
                cnf: None,
                conj: None,
            };
        }
        // The endpoint test passes a line anyway: when it can also hold the other needles,
        // one pass over the text does for both.
        let texts: Vec<&str> = lits.iter().map(|l| l.text.as_str()).collect();
        let rarity = |w: &[u8]| w.iter().map(|&b| byte_freq(b)).product::<f64>();
        let (endpoint, needles_held) = match RawTest::holding(&texts, rarity) {
            Some(test) => (test, true),
            None => (RawTest::new(), false),
        };
        let needed = !lits.is_empty();
        let search = needed.then(|| Search::new(lits)).flatten();
        Prefilter {
            // No automaton for needles the test does not hold: every line is a candidate.
            all: needed && !needles_held && search.is_none(),
            search,
            endpoint: Some(endpoint),
            needles_held,
            cnf: None,
            conj: None,
        }
    }

    /// The finder tells which rules a candidate line can match ([`Finder::fill_open`]): no
    /// [`RuleGate`] is needed.
    pub fn gates_rules(&self) -> bool {
        self.cnf.is_some()
    }

    /// False when some rule can match a line holding no needle: every line is a candidate.
    pub fn is_active(&self) -> bool {
        !self.all
    }

    /// Whether [`Finder::judge_line`] judges lines (one rule's clauses, [`conj`]).
    pub(crate) fn judges_lines(&self) -> bool {
        self.conj.is_some() && self.search.is_some() && !self.all
    }

    /// The needles, as they appear raw in a JSON line (matched ignoring ASCII case).
    pub fn needles(&self) -> Vec<String> {
        self.search.as_ref().map_or_else(Vec::new, |s| {
            s.lits
                .iter()
                .map(|l| String::from_utf8_lossy(&l.raw).into_owned())
                .collect()
        })
    }

    /// How the search runs, in words (the `many_rules` example and the throughput test print it).
    pub fn strategy(&self) -> &str {
        match (&self.search, self.all, &self.endpoint) {
            (_, true, _) => "none: every line is parsed",
            (None, false, None) => {
                "case-insensitive automaton over every rule's literal and key clauses, a line \
                 a candidate when all clauses of one rule's branch hold"
            }
            (None, false, _) => "the imds_endpoint raw-line test only",
            (Some(_), false, _) if self.needles_held => {
                "the imds_endpoint raw-line test, also holding the needles (one pass)"
            }
            (Some(_), false, _) if self.cnf.is_some() && !self.packed() => {
                "case-insensitive automaton over every rule's literal clauses, a line a \
                 candidate when all clauses of one rule's branch hold"
            }
            (Some(s), false, _) if self.cnf.is_some() => &s.strategy,
            (Some(_), false, _) if self.conj.is_some() => {
                self.conj.as_ref().map_or("", |c| c.strategy.as_str())
            }
            (Some(s), false, _) => &s.strategy,
        }
    }

    /// The needle search runs on Teddy (fast enough to run before the clause automaton).
    fn packed(&self) -> bool {
        self.search.as_ref().is_some_and(|s| s.packed)
    }

    /// Position of the first relevant hit in `hay[at..end]`: the line holding it is a
    /// candidate. Needle occurrences must not cross `at` or `end` (pass line boundaries);
    /// bytes of `hay` outside the range are only looked at to decode escapes. When the
    /// prefilter is inactive, `at` itself (when `at < end`).
    pub fn find(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        self.finder().find(hay, at, end)
    }

    /// For successive searches of one buffer from increasing positions.
    pub(crate) fn finder(&self) -> Finder<'_> {
        Finder {
            prefilter: self,
            needle: None,
            from: 0,
            to: 0,
            state: self.cnf.as_ref().map(Cnf::state),
            conj: self.conj.as_ref().map(Conj::state),
            choice: Choice::default(),
        }
    }

    /// Whether one line (no `\n`) is a candidate.
    #[cfg(test)]
    pub fn is_candidate(&self, line: &[u8]) -> bool {
        self.all || self.find(line, 0, line.len()).is_some()
    }
}

/// Whether a rule has an `imds_endpoint` predicate (the raw-line test, not clauses, stands
/// for it).
fn has_endpoint(rule: &RuleIr) -> bool {
    fn node(n: &Node) -> bool {
        match n {
            Node::Pred(p) => p.op == Op::ImdsEndpoint,
            Node::And { args } | Node::Or { args } => args.iter().any(node),
            Node::Not { arg } | Node::Nested { arg, .. } => node(arg),
            Node::Expr { .. } => false,
        }
    }
    rule.branches.iter().any(|b| node(&b.expr))
}

/// Searches of one buffer from increasing positions ([`Prefilter::finder`]). It keeps the
/// needle search's result: the endpoint test may pass a line before the next needle, and the
/// needle search then goes on from where it stopped instead of searching the bytes again.
#[derive(Debug)]
pub struct Finder<'p> {
    prefilter: &'p Prefilter,
    /// The first needle in `hay[from..to]`, if any.
    needle: Option<usize>,
    from: usize,
    to: usize,
    /// With rule clauses: the open rules of the line last found.
    state: Option<CnfState>,
    /// With one rule's clauses: their scratch.
    conj: Option<ConjState>,
    /// With rule clauses and Teddy: which of the two searches runs.
    choice: Choice,
}

/// Bytes Teddy searches before the needles' density is judged.
const DENSITY_SAMPLE: usize = 32 << 10;

/// Bytes the clause automaton then walks alone before Teddy is tried again.
const LANES_RUN: usize = 1 << 20;

/// The clause automaton's own walk in lanes replaces Teddy for [`LANES_RUN`] bytes when the
/// lines Teddy sent it in the last [`DENSITY_SAMPLE`] bytes were more than a quarter of
/// them. Measured on a two-stage sequence of broad stages (63% of the lines candidates):
/// Teddy then one line's walk at a time scanned 100 MB in 0.69 s, the lanes in 0.23 s; with
/// rare needles Teddy is seven times faster than the lanes.
#[derive(Debug, Default)]
struct Choice {
    /// The lanes run up to here.
    lanes_until: usize,
    /// Where the current sample began, and the clause walk's matched bytes then.
    sample: Option<(usize, usize)>,
}

impl Choice {
    /// Whether the search from `at` is the lanes' (`matched`: the walk's
    /// [`CnfState::matched_bytes`] now; `at` never goes back).
    fn lanes(&mut self, at: usize, matched: usize) -> bool {
        if at < self.lanes_until {
            return true;
        }
        let (from, then) = *self.sample.get_or_insert((at, matched));
        if at - from < DENSITY_SAMPLE {
            return false;
        }
        let dense = (matched - then) * 4 > at - from;
        if dense {
            self.lanes_until = at + LANES_RUN;
        }
        // The next sample starts at the next search after the lanes (or now).
        self.sample = None;
        dense
    }
}

impl Finder<'_> {
    /// With rule clauses, fill `open` with the rules open (in order) on the line holding the
    /// position `find` returned last, and return true; false without them.
    pub fn fill_open(&self, open: &mut Vec<usize>) -> bool {
        match (&self.prefilter.cnf, &self.state) {
            (Some(cnf), Some(st)) => {
                cnf.fill_open(st, open);
                true
            }
            _ => false,
        }
    }

    /// With one rule's clauses ([`conj`]), which judge a line at a time: whether the line
    /// `hay[start..stop]` (without its `\n`) is a candidate, as [`Finder::find`] would find
    /// it; `None` without them (then search with `find`). A scanner that knows its lines'
    /// ends already saves `find` looking for them again.
    pub fn judge_line(&mut self, hay: &[u8], start: usize, stop: usize) -> Option<bool> {
        self.conj_line(hay, start, stop).map(|h| h.is_some())
    }

    /// With one rule's clauses: the needle the search finds in the line `hay[start..stop]`
    /// when the clauses open it, else `Some(None)`; `None` without them. The clauses come
    /// first: their searches pass over a line the needle search would pass over too, and
    /// they open few lines.
    fn conj_line(&mut self, hay: &[u8], start: usize, stop: usize) -> Option<Option<usize>> {
        let pf = self.prefilter;
        let (Some(conj), Some(st), Some(search)) = (&pf.conj, self.conj.as_mut(), &pf.search)
        else {
            return None;
        };
        Some(
            conj.open(hay, start, stop, st)
                .then(|| search.find(hay, start, stop))
                .flatten(),
        )
    }

    /// [`Prefilter::find`]; `at` never goes back and `end` is a line end.
    pub fn find(&mut self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        let pf = self.prefilter;
        if pf.all {
            return (at < end).then_some(at);
        }
        if let (Some(cnf), Some(st)) = (&pf.cnf, self.state.as_mut()) {
            let Some(search) = pf.search.as_ref().filter(|s| s.packed) else {
                return cnf.first(hay, at, end, st);
            };
            // Teddy finds the lines holding some rule's needle; the clauses judge those. Where
            // most lines hold one, the clause automaton walks them all in lanes instead (a
            // line walked alone waits on every transition).
            let mut at = at;
            while at < end {
                if self.choice.lanes(at, st.matched_bytes) {
                    return cnf.first(hay, at, end, st);
                }
                let h = search.find(hay, at, end)?;
                let start = memchr::memrchr(b'\n', &hay[at..h]).map_or(at, |i| at + i + 1);
                let stop = memchr::memchr(b'\n', &hay[h..end]).map_or(end, |i| h + i);
                if cnf.first_in_line(hay, start, stop, st).is_some() {
                    return Some(h);
                }
                at = stop;
            }
            return None;
        }
        if pf.judges_lines() {
            // A line at a time ([`Finder::conj_line`]).
            let mut start = at;
            while start < end {
                let stop = memchr::memchr(b'\n', &hay[start..end]).map_or(end, |i| start + i);
                if let Some(Some(h)) = self.conj_line(hay, start, stop) {
                    return Some(h);
                }
                start = stop + 1;
            }
            return None;
        }
        let search = pf.search.as_ref().filter(|_| !pf.needles_held);
        let found = search.and_then(|s| {
            // What is known from `at` on: the first needle, or that there is none before `to`.
            let known = at >= self.from && self.needle.is_none_or(|h| h >= at);
            if !known || (self.needle.is_none() && self.to < end) {
                let from = if known { self.to.max(at) } else { at };
                self.needle = s.find(hay, from, end);
                (self.from, self.to) = (at, end);
            }
            self.needle.filter(|&h| h < end)
        });
        let Some(test) = &pf.endpoint else {
            return found;
        };
        // The first line (from `at`) holding a needle or passing the endpoint test.
        test.first(hay, at, found.unwrap_or(end)).or(found)
    }
}

#[cfg(test)]
mod tests {
    use super::anchors::plan_anchors;
    use super::test_ir::*;
    use super::*;
    use crate::ir::{FieldType, Op};

    // ------------------------------------------------------------------ derivation

    #[test]
    fn seed_needles() {
        let p = Prefilter::new(&[seed_ir()]);
        assert!(p.is_active());
        assert_eq!(p.needles(), SEED_NEEDLES);
        // The seed fits the packed searcher: Teddy, folding case where the CPU allows.
        assert!(p.packed(), "{}", p.strategy());
        assert!(p.strategy().contains("Teddy") || p.strategy().contains("packed"));
    }

    #[test]
    fn unfilterable_rule_disables_prefilter() {
        let good = rule(vec![kw(Op::Eq, &["metadata"])]);
        let bad = rule(vec![kw(Op::Eq, &["metadata"]), not(kw(Op::Eq, &["x"]))]);
        assert!(Prefilter::new(std::slice::from_ref(&good)).is_active());
        let p = Prefilter::new(&[good.clone(), bad]);
        assert!(!p.is_active());
        assert!(p.needles().is_empty());
        assert!(p.is_candidate(b"{}"));
        // With several rules, a field's key is a clause too: `f != null` needs `"f":`.
        let exists = rule(vec![pred("f", FieldType::Keyword, Op::Exists, &[])]);
        let p = Prefilter::new(&[good, exists]);
        assert!(p.is_active(), "{}", p.strategy());
        assert!(p.is_candidate(br#"{"f" : 1}"#));
        assert!(!p.is_candidate(br#"{"g":"f"}"#));
    }

    // ------------------------------------------------------------------ soundness

    /// The needle search alone: the seed's needles are rare (no clause check).
    fn seed() -> Prefilter {
        let p = Prefilter::new(&[seed_ir()]);
        assert!(p.conj.is_none(), "{}", p.strategy());
        p
    }

    /// The seed and an `imds_endpoint` rule: the endpoint test holds the seed's needles.
    fn seed_with_endpoint() -> Prefilter {
        let p = Prefilter::new(&[
            seed_ir(),
            rule(vec![pred(
                "url.full",
                FieldType::Keyword,
                Op::ImdsEndpoint,
                &["imds-link-local"],
            )]),
        ]);
        assert!(p.needles_held, "{}", p.strategy());
        p
    }

    /// The seed's literals: its needles but the hex spelling the prefilter adds for its address.
    fn seed_fragments() -> Vec<String> {
        let needles = seed().needles();
        assert!(needles.len() > 5, "{needles:?}");
        needles.into_iter().filter(|n| n != "a9fe:a9fe").collect()
    }

    /// Many needles of letters only: their spellings overflow the packed searcher.
    fn fallback() -> Prefilter {
        let words: Vec<String> = (0..40u8)
            .map(|i| format!("zq{}{}xw", (b'a' + i / 26) as char, (b'a' + i % 26) as char))
            .collect();
        let fragments = seed_fragments();
        let mut values: Vec<&str> = words.iter().map(|w| w.as_str()).collect();
        values.extend(fragments.iter().map(|f| f.as_str()));
        values.push("caf\u{e9}");
        let p = Prefilter::new(&[rule(vec![
            kw(Op::Wildcard, &values),
            ip(&["169.254.169.254"]),
        ])]);
        assert!(
            p.strategy().contains("case-insensitive"),
            "{}",
            p.strategy()
        );
        p
    }

    fn line(value: &str) -> Vec<u8> {
        format!(r#"{{"event":{{"category":["process"]}},"process":{{"command_line":"{value}"}}}}"#)
            .into_bytes()
    }

    fn assert_candidate(p: &Prefilter, value: &str) {
        assert!(p.is_candidate(&line(value)), "missed: {value}");
    }

    fn assert_skipped(p: &Prefilter, value: &str) {
        assert!(!p.is_candidate(&line(value)), "not skipped: {value}");
    }

    #[test]
    fn escaped_and_cased_spellings_are_candidates() {
        for p in [seed(), fallback()] {
            for v in [
                "curl http://169.254.169.254/latest/meta-data/",
                r"curl http:\/\/x\/latest\/meta-data\/iam",
                r"latest\/meta-data",
                "LATEST/META-DATA",
                r"LaTeSt\/MeTa-DaTa",
                r"\u0069am/security-credentials",
                r"iam\u002fsecurity-credentials",
                r"iam\u002Fsecurity-credentials",
                r"\u0031\u0036\u0039.254.169.254",
                r"\u0049AM/security-credentials",
                r"x\\\u0069am",
                "::FFFF:A9FE:A9FE",
                "::ffff:a9fe:a9fe",
                "0:0:0:0:0:FFFF:169.254.169.254",
                "COMPUTEMETADATA",
                r"compute\u004detadata",
            ] {
                assert_candidate(&p, v);
            }
        }
        let p = seed();
        for v in [
            "FD00:EC2::254",
            "fd00:ec2::254",
            r"imds.azure.com",
            r"metadata\/v1",
        ] {
            assert_candidate(&p, v);
        }
        // A non-ASCII needle: any `\u` escape >= 0x80 (or a surrogate) is relevant.
        let p = fallback();
        assert_candidate(&p, "caf\u{e9}");
        assert_candidate(&p, r"caf\u00e9");
        assert_candidate(&p, r"caf\u00E9");
        assert_candidate(&p, r"x \ud83d\ude00");
    }

    #[test]
    fn irrelevant_escapes_are_skipped() {
        for p in [seed(), fallback()] {
            for v in [
                r"\u003chtml\u003e a \u0026 b",
                r"C:\\Users\\alice\\AppData",
                r"C:\\Users\\U0069am",
                // An even backslash run: `\\` then a literal `u0069`.
                r"C:\\u0069am\\u0031",
                r"\\\\u002f",
                // `\U` is not an escape in JSON.
                r"\U0069am",
                r"http:\/\/example.com\/index.html",
                "metadata instance latest meta data",
                "169.254.169.25",
                "a9fe a9fe",
            ] {
                assert_skipped(&p, v);
            }
        }
        // With ASCII-only needles, non-ASCII escapes are irrelevant.
        assert_skipped(&seed(), r"caf\u00e9 \ud83d\ude00");
    }

    #[test]
    fn invalid_escape_is_candidate() {
        // Not valid JSON: the parser should see (and report) it.
        let p = seed();
        assert!(p.is_candidate(br#"{"a":"\u00zz"}"#));
        assert!(p.is_candidate(br#"{"a":"\u00"#));
    }

    /// Deterministic xorshift for the spelling fuzz.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn finder_equals_fresh_searches() {
        // The seed's needles and the endpoint test: lines pass by either, or by both.
        let kinds = [
            "curl http://169.254.169.254/latest",
            "wget 0xa9fea9fe",
            "GET /latest/api/token",
            "echo imds.azure.com",
            "cat iam/security-credentials",
            "ls -la /tmp",
            "ping 10.0.0.1",
        ];
        // The needle search runs apart (not held by the endpoint test): the cache is used.
        let mut p = seed_with_endpoint();
        p.needles_held = false;
        let (search, test) = (p.search.as_ref().unwrap(), p.endpoint.as_ref().unwrap());
        let mut rng = Rng(0x5EED_F00D_1234_5678);
        for _ in 0..300 {
            let lines: Vec<Vec<u8>> = (0..rng.below(30))
                .map(|_| line(kinds[rng.below(kinds.len() as u64) as usize]))
                .collect();
            let hay = lines.join(&b'\n');
            // As the scan does: search windows of a few lines, restart after each hit's line.
            let mut finder = p.finder();
            let (mut at, mut found) = (0, Vec::new());
            while at < hay.len() {
                let window = at + rng.below(400) as usize;
                let end = memchr::memchr(b'\n', hay.get(window..).unwrap_or(&[]))
                    .map_or(hay.len(), |i| window + i);
                // Both searches from scratch, composed as `Finder::find` does.
                let needle = search.find(&hay, at, end);
                let fresh = test.first(&hay, at, needle.unwrap_or(end)).or(needle);
                assert_eq!(
                    finder.find(&hay, at, end),
                    fresh,
                    "{}",
                    String::from_utf8_lossy(&hay)
                );
                match fresh {
                    Some(h) => {
                        found.push(h);
                        at = memchr::memchr(b'\n', &hay[h..]).map_or(hay.len(), |i| h + i);
                    }
                    None => at = end,
                }
            }
            let expected = lines
                .iter()
                .filter(|l| search.find(l, 0, l.len()).is_some() || test.may_match(l))
                .count();
            assert_eq!(found.len(), expected, "{}", String::from_utf8_lossy(&hay));
        }
    }

    #[test]
    fn dense_and_sparse_needles_give_the_lines_each_line_gives_alone() {
        // Two broad rules whose needles fit Teddy: where most lines hold one, the clause
        // walk's lanes replace Teddy for a while; the candidates and their open rules must
        // be each line's own, whichever search found them.
        let p = Prefilter::new(&[
            rule(vec![and(vec![
                pred("event.category", FieldType::Keyword, Op::Eq, &["process"]),
                pred("event.type", FieldType::Keyword, Op::Eq, &["start"]),
            ])]),
            rule(vec![and(vec![
                pred("event.category", FieldType::Keyword, Op::Eq, &["network"]),
                pred("destination.port", FieldType::Keyword, Op::Eq, &["4444"]),
            ])]),
        ]);
        assert!(p.cnf.is_some() && p.packed(), "{}", p.strategy());
        let event = |category: &str, kind: &str, port: &str| {
            format!(
                r#"{{"event":{{"category":["{category}"],"type":["{kind}"]}},"destination":{{"port":"{port}"}},"pad":"{}"}}"#,
                "x".repeat(40)
            )
            .into_bytes()
        };
        let kinds = [
            event("process", "start", "1"),
            event("process", "end", "1"),
            event("network", "start", "4444"),
            event("network", "end", "80"),
            event("PROCESS", "START", "1"),
            event(r"\u0070rocess", "start", "1"),
        ];
        let filler = event("file", "creation", "1");
        let mut rng = Rng(0xD15E_A5ED_0000_0001);
        let mut lines: Vec<&[u8]> = Vec::new();
        // Dense, sparse (a needle line in fifty), dense again: each past the lanes' run.
        for (count, dense) in [(12_000, true), (30_000, false), (12_000, true)] {
            for _ in 0..count {
                let k = rng.below(if dense { 6 } else { 300 }) as usize;
                lines.push(kinds.get(k).map_or(filler.as_slice(), |l| l.as_slice()));
            }
        }
        let hay = lines.join(&b'\n');
        let starts: Vec<usize> = std::iter::once(0)
            .chain(memchr::memchr_iter(b'\n', &hay).map(|i| i + 1))
            .collect();
        let alone = |l: &[u8]| {
            let mut finder = p.finder();
            let mut open = Vec::new();
            finder.find(l, 0, l.len()).map(|_| {
                finder.fill_open(&mut open);
                open
            })
        };
        let expected: Vec<(usize, Vec<usize>)> = (lines.iter().enumerate())
            .filter_map(|(i, l)| alone(l).map(|open| (i, open)))
            .collect();
        for windows in [&[1usize << 20][..], &[300, 5000, 70_000]] {
            let mut finder = p.finder();
            let (mut at, mut w, mut found) = (0, 0, Vec::new());
            let (mut lanes_runs, mut teddy_after_lanes) = (Vec::new(), false);
            while at < hay.len() {
                let target = (at + windows[w % windows.len()]).min(hay.len());
                w += 1;
                let end = memchr::memchr(b'\n', &hay[target..]).map_or(hay.len(), |i| target + i);
                let hit = finder.find(&hay, at, end);
                let until = finder.choice.lanes_until;
                if until > 0 && !lanes_runs.contains(&until) {
                    lanes_runs.push(until);
                }
                teddy_after_lanes |= until > 0 && at >= until;
                let Some(h) = hit else {
                    at = end;
                    continue;
                };
                let mut open = Vec::new();
                assert!(finder.fill_open(&mut open));
                let line = starts.partition_point(|&s| s <= h) - 1;
                found.push((line, open));
                at = memchr::memchr(b'\n', &hay[h..]).map_or(hay.len(), |i| h + i);
            }
            assert_eq!(found.len(), expected.len(), "windows {windows:?}");
            assert!(found == expected, "windows {windows:?}");
            // Both searches ran: lanes in each dense part, Teddy between them.
            assert!(lanes_runs.len() >= 2, "{lanes_runs:?}");
            assert!(teddy_after_lanes);
        }
    }

    /// Write `text` as some JSON encoder might: random case, random `\u` escapes (either hex
    /// case), `\/` for some slashes.
    fn respell(rng: &mut Rng, text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            let c = match rng.below(3) {
                0 => c.to_ascii_uppercase(),
                1 => c.to_ascii_lowercase(),
                _ => c,
            };
            match rng.below(8) {
                0 => {
                    let esc = format!("\\u{:04x}", c as u32);
                    out.push_str(&if rng.below(2) == 0 {
                        esc.to_ascii_uppercase().replace("\\U", "\\u")
                    } else {
                        esc
                    });
                }
                1 | 2 if c == '/' => out.push_str("\\/"),
                _ => match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                },
            }
        }
        out
    }

    #[test]
    fn respelled_literals_are_candidates() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let fragments = seed_fragments();
        for p in [seed(), fallback(), seed_with_endpoint()] {
            for lit in fragments
                .iter()
                .map(|f| f.as_str())
                .chain(["::ffff:a9fe:a9fe"])
            {
                for _ in 0..300 {
                    let v = respell(&mut rng, lit);
                    assert_candidate(&p, &format!("curl -s http://{v}/x"));
                }
            }
        }
        // Needles with quotes and backslashes.
        let p = Prefilter::new(&[rule(vec![kw(Op::Wildcard, &["*say \"a\\b/c\"*"])])]);
        for _ in 0..500 {
            let v = respell(&mut rng, "say \"a\\b/c\"");
            assert_candidate(&p, &format!("x {v} y"));
        }
    }

    #[test]
    fn find_reports_hits_within_range() {
        let p = seed();
        let hay = b"{\"a\":\"x\"}\n{\"a\":\"latest/dynamic\"}\n{\"a\":\"y\"}\n";
        let second = hay.iter().position(|&b| b == b'\n').unwrap() + 1;
        let hit = p.find(hay, 0, hay.len()).unwrap();
        assert!(hit >= second && hit < second + 30);
        assert_eq!(p.find(hay, 0, second - 1), None);
        // An inactive prefilter makes every line a candidate.
        let all = Prefilter::new(&[rule(vec![not(kw(Op::Eq, &["x"]))])]);
        assert_eq!(all.find(hay, 3, hay.len()), Some(3));
        assert_eq!(all.find(hay, 3, 3), None);
    }

    #[test]
    fn anchors_fit_and_cover_every_needle() {
        let needles: Vec<Vec<u8>> = (0..12)
            .map(|i| format!("needle/number{i}").into_bytes())
            .collect();
        let ws = plan_anchors(&needles, 63, None).unwrap();
        let total: usize = ws.iter().map(|w| w.spellings).sum();
        assert!(total <= 63);
        for (n, w) in needles.iter().zip(&ws) {
            assert!(w.offset + w.len <= n.len());
        }
        // Short needles anchor on themselves.
        let ws = plan_anchors(&[b"ab".to_vec()], 63, None).unwrap();
        assert_eq!((ws[0].offset, ws[0].len), (0, 2));
        assert!(plan_anchors(&vec![b"abcdef".to_vec(); 20], 63, None).is_none());
    }
}
