//! Needle extraction: from a rule's IR, the literals every match contains (as a JSON encoder
//! writes them inside a string), or the `imds_endpoint` raw-line test standing for them.

use super::cost::{literal_cost, ENDPOINT_COST};
use crate::analysis::TokenQuery;
use crate::ir::{FieldType, Node, Op, Predicate, RuleIr};
use crate::lucene_regex::LuceneRegex;

/// A literal every match of some subtree contains once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lit {
    /// The decoded text.
    pub(super) text: String,
    /// How `text` appears raw inside a JSON string (canonical escapes).
    pub(super) raw: Vec<u8>,
}

impl Lit {
    pub(super) fn new(text: &str) -> Lit {
        Lit {
            text: text.to_string(),
            raw: json_encode(text),
        }
    }
}

/// JSON-encode `s` as it would appear inside a JSON string, with the short escapes encoders
/// use (other spellings are `\uXXXX`, covered by the escape guard).
pub(super) fn json_encode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// The longest piece of `text` between U+FFFD (which may stand for invalid UTF-8 in the
/// line); `None` when there is none.
pub(super) fn literal(text: &str) -> Option<Lit> {
    text.split('\u{FFFD}')
        .map(Lit::new)
        .filter(|l| !l.raw.is_empty())
        .max_by(|a, b| a.raw.len().cmp(&b.raw.len()).then(b.raw.cmp(&a.raw)))
}

/// Needles of an IP literal (spec/ir.md IP grammar); `None` when none is certain.
fn ip_lits(value: &str) -> Option<Vec<Lit>> {
    let b = crate::ip::parse_ip(value)?;
    let groups: Vec<u16> = b
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
        // IPv4: dotted (no leading zeros, so one spelling), or the two mapped hex groups.
        let dotted = format!("{}.{}.{}.{}", b[12], b[13], b[14], b[15]);
        let (hi, lo) = (groups[6], groups[7]);
        // 4 hex digits cannot carry leading zeros, and a nonzero group is never elided.
        let hex = if hi >= 0x1000 && lo >= 0x1000 {
            format!("{hi:x}:{lo:x}")
        } else {
            "ffff:".to_string()
        };
        return Some(vec![Lit::new(&dotted), Lit::new(&hex)]);
    }
    // A nonzero group among the first six is always written, in hex (the last two may be
    // dotted), with optional leading zeros, and followed by `:`.
    let mut best: Option<String> = None;
    for g in groups[..6].iter().filter(|&&g| g != 0) {
        let hex = format!("{g:x}:");
        if !matches!(&best, Some(b) if hex.len() <= b.len()) {
            best = Some(hex);
        }
    }
    Some(vec![Lit::new(&best?)])
}

/// Needles of a `cidr` block: an address inside it is written, in every spelling, with one
/// of them; `None` when nothing is certain (short prefixes, blocks holding IPv4 addresses
/// without a whole IPv4 octet fixed).
fn cidr_lits(value: &str) -> Option<Vec<Lit>> {
    let c = crate::ip::parse_cidr(value)?;
    let b = c.network;
    let len = usize::from(c.len);
    let mapped = crate::ip::ipv4_mapped([0; 4]);
    if len >= 96 && b[..12] == mapped[..12] {
        // An IPv4 block: dotted spellings start with the fixed whole octets (no leading zeros
        // in IPv4), mapped hex spellings hold `ffff:` or a fixed 4-digit group.
        let octets = (len - 96) / 8;
        if octets == 0 {
            return None;
        }
        let fixed: Vec<String> = b[12..12 + octets].iter().map(u8::to_string).collect();
        let mut dotted = fixed.join(".");
        if octets < 4 {
            dotted.push('.');
        }
        let (hi, lo) = (
            u16::from_be_bytes([b[12], b[13]]),
            u16::from_be_bytes([b[14], b[15]]),
        );
        let hex = if len == 128 && hi >= 0x1000 && lo >= 0x1000 {
            format!("{hi:x}:{lo:x}")
        } else if len >= 112 && hi >= 0x1000 {
            format!("{hi:x}:")
        } else {
            "ffff:".to_string()
        };
        return Some(vec![Lit::new(&dotted), Lit::new(&hex)]);
    }
    if len < 96 && c.contains(&mapped) {
        return None; // holds IPv4 addresses, which need no `:` at all
    }
    // IPv6: a nonzero group among the first six that the prefix fixes is always written (hex,
    // optional leading zeros) and followed by `:`.
    let mut best: Option<String> = None;
    for i in (0..6).filter(|i| 16 * (i + 1) <= len) {
        let g = u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
        let hex = format!("{g:x}:");
        if g != 0 && !matches!(&best, Some(b) if hex.len() <= b.len()) {
            best = Some(hex);
        }
    }
    Some(vec![Lit::new(&best?)])
}

pub(super) fn pred_lits(p: &Predicate) -> Option<Vec<Needle>> {
    if p.op == Op::Exists {
        return None; // any value at all
    }
    if p.field_type == FieldType::Text {
        return text_lits(p);
    }
    if p.normalizer.is_some() {
        // The value is lowercased (Java's simple mapping) before the op: a literal's text is in
        // the raw value only up to case, so only the pieces that case cannot change are.
        let needles = keyword_lits(p)?;
        return (needles.into_iter())
            .map(|n| match n {
                Needle::Literal(lit) => best(caseless_pieces(&lit.text)).map(Needle::Literal),
                // The raw-line test reads ASCII case only.
                Needle::Endpoint => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(normalize);
    }
    keyword_lits(p)
}

/// The longest of some literals (ties: the first in byte order).
fn best(lits: impl IntoIterator<Item = Lit>) -> Option<Lit> {
    (lits.into_iter()).max_by(|a, b| a.raw.len().cmp(&b.raw.len()).then(b.raw.cmp(&a.raw)))
}

/// The pieces of `text` (lowercased by the `lowercase` normalizer or an analyzer) that appear in
/// the raw value up to ASCII case: runs of ASCII code points other than `k` and `i` (the Kelvin
/// sign U+212A lowercases to `k`, `İ` U+0130 to `i`; no other non-ASCII code point lowercases
/// to ASCII, and a non-ASCII code point of the text may come from another case).
pub(super) fn caseless_pieces(text: &str) -> impl Iterator<Item = Lit> + '_ {
    text.split(|c: char| !c.is_ascii() || matches!(c, 'k' | 'K' | 'i' | 'I'))
        .filter(|piece| !piece.is_empty())
        .map(Lit::new)
}

/// The literal runs of an Elasticsearch wildcard pattern (escapes read), between `*`/`?`.
pub(super) fn wildcard_query_pieces(pattern: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => pieces.push(String::new()),
            '\\' => pieces
                .last_mut()
                .expect("never empty")
                .push(chars.next().unwrap_or('\\')),
            c => pieces.last_mut().expect("never empty").push(c),
        }
    }
    pieces
}

/// Needles of a text field's predicate: a token is a value's substring lowercased, so each
/// literal gives the caseless pieces of the tokens it needs (`match`: any of its tokens, so
/// one needle per token; `match_phrase` and `wildcard_query`: all of them, so the best one). A
/// literal with no token matches nothing and needs no needle.
fn text_lits(p: &Predicate) -> Option<Vec<Needle>> {
    let analyzer = p.analyzer.unwrap_or(crate::ir::Analyzer::Standard);
    let mut out = Vec::new();
    for v in &p.values {
        match p.op {
            Op::Match => {
                for token in crate::analysis::analyze(analyzer.into(), v) {
                    out.push(Needle::Literal(best(caseless_pieces(&token))?));
                }
            }
            Op::MatchPhrase => {
                let tokens = crate::analysis::analyze(analyzer.into(), v);
                if !tokens.is_empty() {
                    let pieces = tokens
                        .iter()
                        .flat_map(|t| caseless_pieces(t))
                        .collect::<Vec<_>>();
                    out.push(Needle::Literal(best(pieces)?));
                }
            }
            // Some entry holds: a needle for each (a term's or prefix's text is in a token).
            Op::WildcardQuery => {
                for query in crate::analysis::wildcard_on_text(analyzer.into(), v) {
                    let text = match query {
                        TokenQuery::Term(t) | TokenQuery::Prefix(t) => t,
                        TokenQuery::Wildcard(p) => {
                            let pieces = wildcard_query_pieces(&p);
                            let lits = pieces.iter().flat_map(|p| caseless_pieces(p));
                            out.push(Needle::Literal(best(lits.collect::<Vec<_>>())?));
                            continue;
                        }
                        TokenQuery::Exists => return None,
                    };
                    out.push(Needle::Literal(best(caseless_pieces(&text))?));
                }
            }
            _ => return None,
        }
    }
    Some(normalize(out))
}

fn keyword_lits(p: &Predicate) -> Option<Vec<Needle>> {
    // A `wildcard` field compares as a keyword.
    let field_type = match p.field_type {
        FieldType::Wildcard => FieldType::Keyword,
        other => other,
    };
    if p.op == Op::ImdsEndpoint {
        // No literal every spelling holds: the endpoint raw-line test stands for it.
        return Some(vec![Needle::Endpoint]);
    }
    let mut out = Vec::new();
    for v in &p.values {
        match (field_type, p.op) {
            // `exists` returned above.
            (_, Op::Exists) => return None,
            (_, Op::ImdsEndpoint) => return Some(vec![Needle::Endpoint]),
            (_, Op::Cidr) => out.extend(cidr_lits(v)?.into_iter().map(Needle::Literal)),
            (FieldType::Ip, Op::Eq | Op::EqCi) => {
                out.extend(ip_lits(v)?.into_iter().map(Needle::Literal))
            }
            // Ranges: the matching values are not the literal's text.
            (_, Op::Lt | Op::Lte | Op::Gt | Op::Gte) => return None,
            (FieldType::Ip, _) => return None,
            // The literal itself is in the value (the search ignores case, so the
            // case-sensitive forms are covered too).
            (
                FieldType::Keyword,
                Op::Eq
                | Op::EqCi
                | Op::StartsWith
                | Op::StartsWithCi
                | Op::EndsWith
                | Op::EndsWithCi
                | Op::Contains
                | Op::ContainsCi,
            ) => out.push(Needle::Literal(literal(v)?)),
            (FieldType::Keyword, Op::Wildcard | Op::Like) => {
                let best = v
                    .split(['*', '?'])
                    .filter_map(literal)
                    .max_by(|a, b| a.raw.len().cmp(&b.raw.len()).then(b.raw.cmp(&a.raw)))?;
                out.push(Needle::Literal(best));
            }
            // Elasticsearch's syntax: `\x` is `x`; `_ci` folds ASCII letters only, as the
            // search does.
            (FieldType::Keyword, Op::WildcardQuery | Op::WildcardQueryCi) => {
                let pieces = wildcard_query_pieces(v);
                out.push(Needle::Literal(best(
                    pieces.iter().filter_map(|p| literal(p)),
                )?));
            }
            // A text every match of the regular expression contains, when it has one.
            (FieldType::Keyword, Op::Regex | Op::RegexCi) => {
                let regex = LuceneRegex::new(v, p.op == Op::RegexCi).ok()?;
                out.push(Needle::Literal(literal(regex.required_literal()?)?));
            }
            // Typed equality (`80` matches `8e1`): no literal appears verbatim in every match.
            _ => return None,
        }
    }
    Some(normalize(out))
}

/// Deduplicate (case-insensitively) and drop needles that contain another needle: a line
/// holding the longer one holds the shorter one too. First-seen order is kept; the endpoint
/// test is kept once and never subsumed (it is not a string to find).
fn normalize(needles: Vec<Needle>) -> Vec<Needle> {
    let mut seen = std::collections::HashSet::new();
    let mut endpoint = false;
    let needles: Vec<(Needle, Option<Vec<u8>>)> = needles
        .into_iter()
        .map(|n| {
            let folded = match &n {
                Needle::Literal(l) => Some(l.raw.to_ascii_lowercase()),
                Needle::Endpoint => None,
            };
            (n, folded)
        })
        .filter(|(_, folded)| match folded {
            Some(folded) => seen.insert(folded.clone()),
            None => !std::mem::replace(&mut endpoint, true),
        })
        .collect();
    // Quadratic: skipped for huge lists (say an IOC list), where it would cost more than
    // it saves.
    let subsume = needles.len() <= 1000;
    needles
        .iter()
        .filter(|(_, folded)| {
            let Some(folded) = folded else {
                return true;
            };
            !(subsume
                && needles.iter().any(|(_, other)| {
                    other
                        .as_ref()
                        .is_some_and(|o| o.len() < folded.len() && contains(folded, o))
                }))
        })
        .map(|(n, _)| n.clone())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// What a line must hold for some match of a subtree to be possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Needle {
    /// A literal, found raw in the line ignoring ASCII case.
    Literal(Lit),
    /// An `imds_endpoint` predicate: no literal every spelling holds; a line is a candidate
    /// when [`super::raw_endpoint::RawTest`] passes it.
    Endpoint,
}

impl Needle {
    /// Length used to rank needle sets (shortest needle); the endpoint test ranks as a
    /// 14-byte needle.
    fn len(&self) -> usize {
        match self {
            Needle::Literal(lit) => lit.raw.len(),
            Needle::Endpoint => 14,
        }
    }

    /// Estimated occurrences per byte of log.
    fn cost(&self) -> f64 {
        match self {
            Needle::Literal(lit) => literal_cost(&lit.raw),
            Needle::Endpoint => ENDPOINT_COST,
        }
    }
}

/// How selective a needle set is, lower is better: the summed estimated frequency, then the
/// longer shortest needle, then fewer needles. An empty set (the subtree never matches)
/// beats everything.
fn selectivity(needles: &[Needle]) -> (f64, std::cmp::Reverse<usize>, usize) {
    let cost = needles.iter().map(Needle::cost).sum();
    let shortest = needles.iter().map(Needle::len).min().unwrap_or(usize::MAX);
    (cost, std::cmp::Reverse(shortest), needles.len())
}

fn more_selective(a: &[Needle], b: &[Needle]) -> bool {
    let (x, y) = (selectivity(a), selectivity(b));
    x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)) == std::cmp::Ordering::Less
}

/// Needles of a subtree; `None` = unfilterable (some match may contain no literal).
pub(super) fn node_lits(node: &Node) -> Option<Vec<Needle>> {
    match node {
        Node::Pred(p) => pred_lits(p),
        Node::Not { .. } | Node::Expr { .. } => None,
        // A nested document's text is part of the line: its arg's needles will do.
        Node::Nested { arg, .. } => node_lits(arg),
        Node::Or { args } => {
            let mut all = Vec::new();
            for a in args {
                all.extend(node_lits(a)?);
            }
            Some(normalize(all))
        }
        // Every child must hold, so any one child's needles will do: take the best.
        Node::And { args } => {
            let mut best: Option<Vec<Needle>> = None;
            for set in args.iter().filter_map(node_lits) {
                let better = match &best {
                    Some(b) => more_selective(&set, b),
                    None => true,
                };
                if better {
                    best = Some(set);
                }
            }
            best
        }
    }
}

/// Needles of a set of rules; `None` when some rule is unfilterable.
pub(super) fn rules_lits(rules: &[RuleIr]) -> Option<Vec<Needle>> {
    let mut all = Vec::new();
    for rule in rules {
        for branch in &rule.branches {
            all.extend(node_lits(&branch.expr)?);
        }
    }
    Some(normalize(all))
}

#[cfg(test)]
mod tests {
    use super::super::test_ir::*;
    use crate::ir::{FieldType, Node, Op};

    #[test]
    fn ip_needles() {
        assert_eq!(
            lits(ip(&["169.254.169.254"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        // A group below 0x1000 may be written with leading zeros: fall back to `ffff:`.
        assert_eq!(lits(ip(&["10.0.0.1"])), s(&["10.0.0.1", "ffff:"]));
        assert_eq!(lits(ip(&["169.254.0.1"])), s(&["169.254.0.1", "ffff:"]));
        // IPv4-mapped IPv6 literals are IPv4.
        assert_eq!(
            lits(ip(&["::ffff:169.254.169.254"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        assert_eq!(
            lits(ip(&["::FFFF:a9fe:a9fe"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        // IPv6: the longest nonzero group among the first six, without leading zeros.
        assert_eq!(lits(ip(&["FD00:EC2:0:0:0:0:0:254"])), s(&["fd00:"]));
        assert_eq!(lits(ip(&["fd00:0ec2::254%eth0"])), s(&["fd00:"]));
        assert_eq!(lits(ip(&["64:ff9b::a9fe:a9fe"])), s(&["ff9b:"]));
        assert_eq!(lits(ip(&["1:22:3:44:5:6:7:8"])), s(&["22:"]));
        // Nothing certain: only the last two groups (or none) are nonzero.
        assert_eq!(lits(ip(&["::1"])), None);
        assert_eq!(lits(ip(&["::"])), None);
        assert_eq!(lits(ip(&["::169.254.169.254"])), None);
        assert_eq!(lits(ip(&["::1:2"])), None);
        // Several values: union; one unfilterable value spoils the predicate.
        assert_eq!(
            lits(ip(&["169.254.169.254", "fd00:ec2::254"])),
            s(&["169.254.169.254", "a9fe:a9fe", "fd00:"])
        );
        assert_eq!(lits(ip(&["169.254.169.254", "::1"])), None);
        // eq_ci on an ip field compares addresses too; a wildcard cannot be used.
        assert_eq!(
            lits(pred("source.ip", FieldType::Ip, Op::EqCi, &["10.1.2.3"])),
            s(&["10.1.2.3", "ffff:"])
        );
        assert_eq!(
            lits(pred("source.ip", FieldType::Ip, Op::Wildcard, &["10.*"])),
            None
        );
        assert_eq!(lits(ip(&["not an address"])), None);
    }

    #[test]
    fn keyword_needles_are_json_encoded() {
        assert_eq!(
            lits(kw(Op::Eq, &["a\"b\\c\td\n\u{1}é/"])),
            s(&["a\\\"b\\\\c\\td\\n\\u0001é/"])
        );
        assert_eq!(
            lits(kw(Op::EqCi, &["Cloud-Init", "WAAGENT"])),
            s(&["Cloud-Init", "WAAGENT"])
        );
        // U+FFFD may stand for invalid UTF-8 in the line: only the longest piece is certain.
        assert_eq!(lits(kw(Op::Eq, &["ab\u{FFFD}cdef"])), s(&["cdef"]));
        assert_eq!(lits(kw(Op::Eq, &["\u{FFFD}"])), None);
        assert_eq!(lits(kw(Op::Eq, &[""])), None);
        assert_eq!(lits(kw(Op::Eq, &["abc", ""])), None);
    }

    #[test]
    fn wildcard_needles() {
        assert_eq!(
            lits(kw(Op::Wildcard, &["*169.254.169.254*"])),
            s(&["169.254.169.254"])
        );
        assert_eq!(lits(kw(Op::Wildcard, &["*foo?barbaz*q"])), s(&["barbaz"]));
        assert_eq!(lits(kw(Op::Wildcard, &["exact"])), s(&["exact"]));
        assert_eq!(lits(kw(Op::Wildcard, &["*?*"])), None);
        assert_eq!(lits(kw(Op::Wildcard, &["*"])), None);
        assert_eq!(lits(kw(Op::Wildcard, &["*abc*", "**"])), None);
        assert_eq!(lits(kw(Op::Wildcard, &["*a\"b*"])), s(&["a\\\"b"]));
    }

    #[test]
    fn common_text_is_a_better_anchor_than_a_field_name() {
        // `python` is part of the common text `python3`, yet far rarer than `process`, a key
        // of every process event: the branch is anchored on `python`.
        let category = pred("event.category", FieldType::Keyword, Op::Eq, &["process"]);
        let parent = pred(
            "process.parent.name",
            FieldType::Keyword,
            Op::Wildcard,
            &["python*"],
        );
        let count = pred(
            "process.parent.args_count",
            FieldType::Long,
            Op::Gte,
            &["3"],
        );
        assert_eq!(lits(and(vec![category, parent, count])), s(&["python"]));
    }

    #[test]
    fn typed_range_and_regex_needles() {
        // Typed values are not their literal's text (`80` is `8e1`), ranges have none.
        for t in [
            FieldType::Long,
            FieldType::Date,
            FieldType::Boolean,
            FieldType::Double,
        ] {
            assert_eq!(lits(pred("f", t, Op::Eq, &["80"])), None, "{t:?}");
            assert_eq!(lits(pred("f", t, Op::Gt, &["80"])), None, "{t:?}");
        }
        assert_eq!(lits(kw(Op::Lt, &["curl"])), None);
        assert_eq!(lits(pred("f", FieldType::Ip, Op::Lt, &["10.0.0.1"])), None);
        // A regex's required literal anchors it; a refused pattern anchors nothing.
        assert_eq!(lits(kw(Op::Regex, &["metadata"])), s(&["metadata"]));
        assert_eq!(lits(kw(Op::RegexCi, &["MetaData"])), s(&["metadata"]));
        assert_eq!(lits(kw(Op::Regex, &["a&b"])), None);
    }

    #[test]
    fn affix_and_like_needles() {
        for op in [
            Op::Like,
            Op::StartsWith,
            Op::StartsWithCi,
            Op::EndsWith,
            Op::EndsWithCi,
            Op::Contains,
            Op::ContainsCi,
        ] {
            assert_eq!(lits(kw(op, &["curl"])), s(&["curl"]), "{op:?}");
            assert_eq!(lits(kw(op, &["a/\"b"])), s(&["a/\\\"b"]), "{op:?}");
            // An empty literal holds for any value (startsWith(f, "")): nothing is certain.
            assert_eq!(lits(kw(op, &["curl", ""])), None, "{op:?}");
        }
        assert_eq!(lits(kw(Op::Like, &["*Meta?Data*"])), s(&["Data"]));
        assert_eq!(lits(kw(Op::Exists, &[])), None);
        // On an ip field only equality and cidr are defined.
        assert_eq!(
            lits(pred("source.ip", FieldType::Ip, Op::StartsWith, &["10."])),
            None
        );
    }

    fn cidr(values: &[&str]) -> Node {
        pred("destination.ip", FieldType::Ip, Op::Cidr, values)
    }

    #[test]
    fn cidr_needles() {
        assert_eq!(lits(cidr(&["169.254.0.0/16"])), s(&["169.254.", "a9fe:"]));
        assert_eq!(
            lits(cidr(&["169.254.169.254/32"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        assert_eq!(
            lits(cidr(&["169.254.169.254"])),
            lits(cidr(&["169.254.169.254/32"]))
        );
        // A group below 0x1000 may carry leading zeros: fall back to the mapped `ffff:`.
        assert_eq!(lits(cidr(&["10.0.0.0/8"])), s(&["10.", "ffff:"]));
        assert_eq!(lits(cidr(&["10.1.2.0/23"])), s(&["10.1.", "ffff:"]));
        assert_eq!(lits(cidr(&["192.168.0.0/16"])), s(&["192.168.", "c0a8:"]));
        assert_eq!(
            lits(cidr(&["::ffff:192.168.0.0/112"])),
            s(&["192.168.", "c0a8:"])
        );
        // No whole octet fixed: nothing certain.
        assert_eq!(lits(cidr(&["128.0.0.0/1"])), None);
        assert_eq!(lits(cidr(&["0.0.0.0/0"])), None);
        // IPv6 blocks: a nonzero group the prefix fixes, among the first six.
        assert_eq!(lits(cidr(&["fd00:ec2::/32"])), s(&["fd00:"]));
        assert_eq!(lits(cidr(&["fd00:ec2::254/128"])), s(&["fd00:"]));
        assert_eq!(lits(cidr(&["fd00::/8"])), None);
        assert_eq!(lits(cidr(&["fe80::/10"])), None);
        assert_eq!(lits(cidr(&["2001:db8:1234::/48"])), s(&["2001:"]));
        assert_eq!(lits(cidr(&["0:db8:1234::/48"])), s(&["1234:"]));
        // A block holding IPv4-mapped addresses matches plain dotted IPv4 values.
        assert_eq!(lits(cidr(&["::/0"])), None);
        assert_eq!(lits(cidr(&["::/80"])), None);
        assert_eq!(lits(cidr(&["::/96"])), None);
        // Any field type: values are read as addresses either way.
        assert_eq!(
            lits(pred("f", FieldType::Keyword, Op::Cidr, &["10.0.0.0/8"])),
            s(&["10.", "ffff:"])
        );
    }

    #[test]
    fn and_prefers_rare_needles_over_common_words() {
        // `process where process.name == "terraform"`: the category word is in every process
        // event (as a field name, too); the name is rarer, though shorter than nothing else.
        assert_eq!(
            lits(and(vec![
                pred("event.category", FieldType::Keyword, Op::Eq, &["process"]),
                kw(Op::EqCi, &["terraform"]),
            ])),
            s(&["terraform"])
        );
        assert_eq!(
            lits(and(vec![
                pred(
                    "event.category",
                    FieldType::Keyword,
                    Op::Eq,
                    &["authentication"]
                ),
                kw(Op::Eq, &["4625"]),
            ])),
            s(&["4625"])
        );
    }

    #[test]
    fn boolean_structure() {
        // not: unfilterable.
        assert_eq!(lits(not(kw(Op::Eq, &["abc"]))), None);
        // and: the most selective filterable child (longest shortest needle, then fewest).
        assert_eq!(
            lits(and(vec![
                kw(Op::Eq, &["network"]),
                kw(Op::Eq, &["metadata"]),
                not(kw(Op::Eq, &["x"]))
            ])),
            s(&["metadata"])
        );
        assert_eq!(
            lits(and(vec![
                kw(Op::Eq, &["abcd", "wxyz"]),
                kw(Op::Eq, &["klmn"])
            ])),
            s(&["klmn"])
        );
        assert_eq!(
            lits(and(vec![not(kw(Op::Eq, &["a"])), not(kw(Op::Eq, &["b"]))])),
            None
        );
        // or: union; one unfilterable child spoils it.
        assert_eq!(
            lits(or(vec![kw(Op::Eq, &["abc"]), kw(Op::Eq, &["def"])])),
            s(&["abc", "def"])
        );
        assert_eq!(
            lits(or(vec![kw(Op::Eq, &["abc"]), not(kw(Op::Eq, &["def"]))])),
            None
        );
        // An `and` picks around an unfilterable `or`.
        assert_eq!(
            lits(and(vec![
                or(vec![kw(Op::Eq, &["abc"]), not(kw(Op::Eq, &["d"]))]),
                kw(Op::Eq, &["xy"])
            ])),
            s(&["xy"])
        );
        // Union drops duplicates (case-insensitively) and needles holding another needle.
        assert_eq!(
            lits(or(vec![
                kw(Op::Eq, &["xabcx", "ABC"]),
                kw(Op::Wildcard, &["*abc*", "*zz*"])
            ])),
            s(&["ABC", "zz"])
        );
    }
}
