//! Field-aware clauses of a branch, for the rule gate ([`super::cnf`]).
//!
//! A clause is a set of needles of which every line a branch matches holds one. Beyond the
//! plain literals of [`super::needles`], a predicate's needles here know where in the JSON
//! text its values stand:
//! - a whole value (`eq`, `eq_ci`, a wildcard without `*`/`?`) is a JSON string, so its
//!   needle is the literal between quotes, `"curl"`, and counts only where the string is a
//!   value (the next byte past its closing quote and whitespace is not `:`); a prefix
//!   (`startsWith`, `curl*`) takes the opening quote, a suffix (`endsWith`, `*.exe`) the
//!   closing one;
//! - a keyword field also holds numbers and booleans as their JSON text (`80`, `true`): a
//!   literal that could be such a text takes no quote, and as a whole value counts only
//!   between JSON token boundaries (`:80,`, `"80"`);
//! - every predicate needs a value of its field, so its key: the field's last part then the
//!   key's closing quote, `pid"`, followed by `:` (a dotted key `process.pid` ends so too).
//!
//! Escapes need no more care than for plain needles: the quotes that delimit a string are
//! never escaped, and an escape inside the text satisfies the clause as before ([`super::cnf`]).

use super::cost::{literal_cost, value_cost};
use super::needles::{json_encode, literal, pred_lits, Lit, Needle};
use crate::ir::{FieldType, Node, Op, Predicate};

/// How an occurrence of a needle is confirmed in its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Check {
    /// Any occurrence.
    Any,
    /// The needle ends with a string's closing quote: that string is a value, not a key.
    ValueEnd,
    /// The needle starts with a string's opening quote: that string is a value, not a key.
    ValueStart,
    /// The needle is a key's end and closing quote: a `:` follows.
    Key,
    /// A part of a field's path before its last (`question` of `dns.question.name`): in the
    /// text of some key, anywhere (found as [`Check::Any`]).
    Part,
    /// A number's or boolean's text (or a string holding just it): JSON token boundaries on
    /// both sides.
    Token,
}

/// A needle of a clause: `lit.raw` as found in the line (ASCII case folded by the search),
/// `lit.text` the decoded text an escape may spell (never the delimiting quotes).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ClauseNeedle {
    pub(super) lit: Lit,
    pub(super) check: Check,
}

pub(super) type Clause = Vec<ClauseNeedle>;

/// Leaf names of fields found in most ECS events: a key needle of one selects nothing.
const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "id",
    "pid",
    "ppid",
    "path",
    "executable",
    "args",
    "args_count",
    "command_line",
    "category",
    "action",
    "code",
    "kind",
    "module",
    "dataset",
    "outcome",
    "ip",
    "port",
    "address",
    "domain",
    "version",
    "hostname",
    "family",
    "platform",
    "entity_id",
    "working_directory",
    "extension",
    "directory",
    "message",
    "provider",
    "original",
    "full",
    "method",
    "status_code",
    "direction",
    "transport",
    "protocol",
    "bytes",
    "trusted",
    "exists",
    "status",
    "subject_name",
    "signed",
    "start",
    "end",
    "created",
    "sequence",
    "original_file_name",
    "sha256",
    "md5",
    "sha1",
    "channel",
    "event_data",
    "provider_name",
    "computer_name",
    "record_id",
    "event_id",
    "user",
    "group",
    "target",
    "value",
    "data",
    "strings",
];

/// Path parts (before the last) of fields found in most ECS events: a needle of one selects
/// nothing.
const COMMON_PARTS: &[&str] = &[
    "process",
    "event",
    "host",
    "os",
    "parent",
    "file",
    "source",
    "destination",
    "data",
    "data_stream",
    "user",
    "group",
    "network",
    "pe",
    "Ext",
    "hash",
    "hashes",
    "agent",
    "ecs",
    "cloud",
    "url",
    "http",
    "related",
    "original",
    "outcome",
    "audit",
    "request",
    "response",
    "client",
    "server",
];

/// Estimated occurrences of a needle per byte of log; a needle under 3 bytes (and a key
/// of nearly every event) ranks below the most common words.
pub(super) fn needle_cost(n: &ClauseNeedle) -> f64 {
    let raw = &n.lit.raw;
    match n.check {
        // With its quote, a short value is rare: ` "` (a value ending in a space), `"sh"`.
        Check::ValueEnd | Check::ValueStart if n.lit.text.is_empty() => 2.0,
        Check::ValueEnd | Check::ValueStart => value_cost(&json_encode(&n.lit.text)),
        // Found (and checked) at every digit `1`.
        _ if raw.len() < 2 => 2.0,
        Check::Token if raw.len() < 3 => 0.5,
        _ if raw.len() < 3 => 2.0,
        Check::Any | Check::Token => literal_cost(raw),
        Check::Key if COMMON_KEYS.contains(&n.lit.text.as_str()) => 2.0,
        Check::Key => literal_cost(raw) * 0.5,
        Check::Part if COMMON_PARTS.contains(&n.lit.text.as_str()) => 2.0,
        Check::Part => literal_cost(raw) * 0.5,
    }
}

pub(super) fn clause_cost(c: &Clause) -> f64 {
    c.iter().map(needle_cost).sum()
}

/// Whether some number's or boolean's JSON text (which a keyword field compares as text)
/// could start with `s` (folded: the wildcard and `_ci` forms ignore case).
fn may_start_non_string(s: &str) -> bool {
    let f = s.to_ascii_lowercase();
    "true".starts_with(&f) || "false".starts_with(&f) || f.bytes().all(number_byte)
}

/// Whether some number's or boolean's JSON text could end with `s`.
fn may_end_non_string(s: &str) -> bool {
    let f = s.to_ascii_lowercase();
    "true".ends_with(&f) || "false".ends_with(&f) || f.bytes().all(number_byte)
}

fn number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e')
}

fn needle(text: &str, raw: Vec<u8>, check: Check) -> ClauseNeedle {
    ClauseNeedle {
        lit: Lit {
            text: text.to_string(),
            raw,
        },
        check,
    }
}

fn quoted(text: &str, open: bool, close: bool) -> Vec<u8> {
    let mut raw = Vec::with_capacity(text.len() + 2);
    if open {
        raw.push(b'"');
    }
    raw.extend(json_encode(text));
    if close {
        raw.push(b'"');
    }
    raw
}

/// The needle of a literal the value must start with (`open`) and/or end with (`close`),
/// or hold (neither); `None` when nothing is certain (an empty literal).
fn affix(text: &str, open: bool, close: bool) -> Option<ClauseNeedle> {
    if text.contains('\u{FFFD}') {
        // It may stand for invalid UTF-8 in the line: only a piece is certain.
        let lit = literal(text)?;
        return Some(ClauseNeedle {
            lit,
            check: Check::Any,
        });
    }
    if open && close {
        if text.is_empty() {
            return Some(needle(text, b"\"\"".to_vec(), Check::ValueEnd));
        }
        // A whole value: a string between quotes, or a number's or boolean's text.
        return Some(if may_start_non_string(text) || may_end_non_string(text) {
            needle(text, json_encode(text), Check::Token)
        } else {
            needle(text, quoted(text, true, true), Check::ValueEnd)
        });
    }
    if text.is_empty() {
        return None;
    }
    let open = open && !may_start_non_string(text);
    let close = close && !may_end_non_string(text);
    let check = match (open, close) {
        (_, true) => Check::ValueEnd,
        (true, false) => Check::ValueStart,
        (false, false) => Check::Any,
    };
    Some(needle(text, quoted(text, open, close), check))
}

/// The best needle of a wildcard pattern: a piece between `*`/`?`, quoted where it starts
/// or ends the pattern.
fn pattern_needle(pattern: &str) -> Option<ClauseNeedle> {
    let pieces: Vec<&str> = pattern.split(['*', '?']).collect();
    if pieces.len() == 1 {
        return affix(pattern, true, true);
    }
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .filter_map(|(i, p)| affix(p, i == 0, i == last))
        .min_by(|a, b| needle_cost(a).total_cmp(&needle_cost(b)))
}

/// The needles of a predicate's values (one of them is in every line it matches), or
/// `None` when some value has none.
fn value_needles(p: &Predicate) -> Option<Clause> {
    let mut out = Vec::new();
    let text_op = matches!(
        p.op,
        Op::Eq
            | Op::EqCi
            | Op::StartsWith
            | Op::StartsWithCi
            | Op::EndsWith
            | Op::EndsWithCi
            | Op::Contains
            | Op::ContainsCi
            | Op::Wildcard
            | Op::Like
    );
    // (With no value at all the predicate never holds: an empty clause is right.)
    // (A normalized value is compared lowercased: its literal is not the raw value.)
    if p.field_type == FieldType::Keyword && p.normalizer.is_none() && text_op {
        for v in &p.values {
            let n = match p.op {
                Op::Eq | Op::EqCi => affix(v, true, true),
                Op::StartsWith | Op::StartsWithCi => affix(v, true, false),
                Op::EndsWith | Op::EndsWithCi => affix(v, false, true),
                Op::Contains | Op::ContainsCi => affix(v, false, false),
                Op::Wildcard | Op::Like => pattern_needle(v),
                _ => return plain(p),
            };
            out.push(n?);
        }
        return Some(dedup(out));
    }
    plain(p)
}

/// [`pred_lits`]' needles, found anywhere.
fn plain(p: &Predicate) -> Option<Clause> {
    pred_lits(p)?
        .into_iter()
        .map(|n| match n {
            Needle::Literal(lit) => Some(ClauseNeedle {
                lit,
                check: Check::Any,
            }),
            // No string every match holds.
            Needle::Endpoint => None,
        })
        .collect()
}

fn dedup(mut c: Clause) -> Clause {
    let mut seen = std::collections::HashSet::new();
    c.retain(|n| seen.insert((n.lit.raw.to_ascii_lowercase(), n.check)));
    c
}

/// The key needle of a field: its last part and the key's closing quote.
fn key_needle(field: &str) -> Option<ClauseNeedle> {
    let last = field.rsplit('.').next().filter(|l| !l.is_empty())?;
    Some(needle(last, quoted(last, false, true), Check::Key))
}

/// The other parts of a field's path: each is in the text of some key of every event that
/// has the field (`dns.question.name` under `"dns":{"question":{`, or `"dns.question.name"`).
fn part_needles(field: &str) -> impl Iterator<Item = ClauseNeedle> + '_ {
    let mut parts: Vec<&str> = field.split('.').collect();
    parts.pop();
    parts.sort_unstable();
    parts.dedup();
    parts
        .into_iter()
        .filter(|p| !p.is_empty() && !p.contains('\u{FFFD}'))
        .map(|p| needle(p, json_encode(p), Check::Part))
}

/// The clauses a predicate gives: its values' needles, its field's key and the other parts
/// of the field's path.
fn pred_clauses(p: &Predicate, out: &mut Vec<Clause>) {
    out.extend(value_needles(p));
    out.extend(key_needle(&p.field).map(|k| vec![k]));
    out.extend(part_needles(&p.field).map(|n| vec![n]));
}

/// The clauses of a subtree: every match satisfies each of them. Negations and expressions
/// add none (fewer clauses only open more lines).
pub(super) fn clauses(node: &Node, out: &mut Vec<Clause>) {
    match node {
        Node::Pred(p) => pred_clauses(p, out),
        Node::And { args } => args.iter().for_each(|a| clauses(a, out)),
        Node::Or { args } => {
            let mut union = Vec::new();
            for a in args {
                let Some(best) = best_clause(a) else {
                    return;
                };
                union.extend(best);
            }
            out.push(dedup(union));
        }
        // A nested document's text is part of the line: what `arg` needs, the line holds.
        Node::Nested { arg, .. } => clauses(arg, out),
        Node::Not { .. } | Node::Expr { .. } => {}
    }
}

/// The rarest clause of a subtree, if it has one.
fn best_clause(node: &Node) -> Option<Clause> {
    let mut cs = Vec::new();
    clauses(node, &mut cs);
    cs.into_iter()
        .min_by(|a, b| clause_cost(a).total_cmp(&clause_cost(b)))
}

/// Whether the occurrence of a needle at `hay[p..q]`, in a line ending at `stop`, counts.
pub(super) fn confirm(check: Check, hay: &[u8], p: usize, q: usize, stop: usize) -> bool {
    let next = |mut i: usize| {
        while i < stop && matches!(hay[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        hay.get(i).filter(|_| i < stop).copied()
    };
    match check {
        Check::Any | Check::Part => true,
        Check::ValueEnd => next(q) != Some(b':'),
        Check::Key => next(q) == Some(b':'),
        Check::ValueStart => {
            // The string's closing quote: the first `"` after an even run of backslashes.
            let mut i = q;
            loop {
                let Some(j) = memchr::memchr(b'"', &hay[i..stop]).map(|j| i + j) else {
                    return true; // not closed in the line: the parser will tell
                };
                let run = hay[q..j].iter().rev().take_while(|&&b| b == b'\\').count();
                if run % 2 == 0 {
                    return next(j + 1) != Some(b':');
                }
                i = j + 1;
            }
        }
        Check::Token => {
            let before = p.checked_sub(1).map(|i| hay[i]);
            let after = hay.get(q).filter(|_| q < stop).copied();
            matches!(
                before,
                None | Some(b'"' | b':' | b'[' | b',' | b' ' | b'\t' | b'\r' | b'\n')
            ) && matches!(
                after,
                None | Some(b'"' | b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n')
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_ir::*;
    use super::*;

    fn needles(node: Node) -> Vec<Vec<(String, Check)>> {
        let mut cs = Vec::new();
        clauses(&node, &mut cs);
        cs.iter()
            .map(|c| {
                c.iter()
                    .map(|n| (String::from_utf8(n.lit.raw.clone()).unwrap(), n.check))
                    .collect()
            })
            .collect()
    }

    fn one(raw: &str, check: Check) -> Vec<(String, Check)> {
        vec![(raw.to_string(), check)]
    }

    #[test]
    fn whole_values_are_quoted_unless_they_may_be_numbers() {
        use Check::*;
        let name = |op, v: &[&str]| pred("process.name", FieldType::Keyword, op, v);
        assert_eq!(
            needles(name(Op::Eq, &["curl"])),
            [
                one("\"curl\"", ValueEnd),
                one("name\"", Key),
                one("process", Part)
            ]
        );
        assert_eq!(
            needles(name(Op::EqCi, &["a\"b"]))[0],
            one("\"a\\\"b\"", ValueEnd)
        );
        // Numbers and booleans are matched as their text: token boundaries instead.
        for v in ["80", "-1.5e3", "true", "FALSE"] {
            assert_eq!(needles(name(Op::EqCi, &[v]))[0], one(v, Token), "{v}");
        }
        assert_eq!(needles(name(Op::Eq, &[""]))[0], one("\"\"", ValueEnd));
        // Wildcards: the quote goes where the pattern starts or ends with a literal.
        assert_eq!(
            needles(name(Op::Wildcard, &["*\\cmd.exe"]))[0],
            one("\\\\cmd.exe\"", ValueEnd)
        );
        assert_eq!(
            needles(name(Op::Wildcard, &["/tmp/*"]))[0],
            one("\"/tmp/", ValueStart)
        );
        assert_eq!(
            needles(name(Op::Like, &["?:\\Windows\\*"]))[0],
            one(":\\\\Windows\\\\", Any)
        );
        assert_eq!(
            needles(name(Op::Wildcard, &["* "]))[0],
            one(" \"", ValueEnd)
        );
        // A piece a number could start or end with takes no quote there.
        assert_eq!(needles(name(Op::Wildcard, &["12*"]))[0], one("12", Any));
        assert_eq!(needles(name(Op::StartsWith, &["tr"]))[0], one("tr", Any));
        assert_eq!(needles(name(Op::EndsWith, &["ue"]))[0], one("ue", Any));
        assert_eq!(
            needles(name(Op::EndsWith, &[".exe"]))[0],
            one(".exe\"", ValueEnd)
        );
        // U+FFFD may stand for invalid UTF-8: a piece only, anywhere.
        assert_eq!(
            needles(name(Op::Eq, &["ab\u{FFFD}cdef"]))[0],
            one("cdef", Any)
        );
    }

    #[test]
    fn every_predicate_needs_its_key() {
        use Check::*;
        let exists = pred(
            "process.pe.original_file_name",
            FieldType::Keyword,
            Op::Exists,
            &[],
        );
        assert_eq!(
            needles(exists),
            [
                one("original_file_name\"", Key),
                one("pe", Part),
                one("process", Part)
            ]
        );
        let range = pred("process.args_count", FieldType::Long, Op::Gte, &["3"]);
        assert_eq!(
            needles(range),
            [one("args_count\"", Key), one("process", Part)]
        );
        // Each other part of the path once, JSON-encoded; rare ones rank before common ones.
        let dns = pred("dns.question.dns.name", FieldType::Keyword, Op::Exists, &[]);
        assert_eq!(
            needles(dns),
            [one("name\"", Key), one("dns", Part), one("question", Part)]
        );
        let rank = |text: &str| {
            needle_cost(&ClauseNeedle {
                lit: Lit::new(text),
                check: Part,
            })
        };
        assert!(rank("question") < rank("process"));
        assert!(rank("effective_parent") < rank("parent"));
        // An `or` is one clause: the best of each child.
        let either = or(vec![
            pred("a.prediction", FieldType::Keyword, Op::Eq, &["1"]),
            pred("b.blocklist_label", FieldType::Keyword, Op::Eq, &["1"]),
        ]);
        assert_eq!(
            needles(either),
            [vec![
                ("prediction\"".to_string(), Key),
                ("blocklist_label\"".to_string(), Key)
            ]]
        );
        assert!(needles(not(kw(Op::Eq, &["x"]))).is_empty());
    }

    #[test]
    fn checks() {
        let at = |hay: &str, needle: &str, check| {
            let p = hay.find(needle).unwrap();
            confirm(check, hay.as_bytes(), p, p + needle.len(), hay.len())
        };
        assert!(at(r#"{"a":"curl"}"#, "\"curl\"", Check::ValueEnd));
        assert!(at(r#"{"a":["curl" ,1]}"#, "\"curl\"", Check::ValueEnd));
        assert!(!at(r#"{"curl" :1}"#, "\"curl\"", Check::ValueEnd));
        assert!(at(r#"{"a":"/tmp/x\"y\\"}"#, "\"/tmp/", Check::ValueStart));
        assert!(!at(r#"{"/tmp/x\"y\\": 1}"#, "\"/tmp/", Check::ValueStart));
        assert!(at(r#"{"/tmp/x"#, "\"/tmp/", Check::ValueStart));
        assert!(at(r#"{"process.pid" : 1}"#, "pid\"", Check::Key));
        assert!(!at(r#"{"a":"pid"}"#, "pid\"", Check::Key));
        for hay in [
            r#"{"a":80}"#,
            r#"{"a":[1,80]}"#,
            r#"{"a":"80"}"#,
            "{\"a\":\t80 }",
        ] {
            assert!(at(hay, "80", Check::Token), "{hay}");
        }
        for hay in [
            r#"{"a":180}"#,
            r#"{"a":"x80y"}"#,
            r#"{"a":80.5}"#,
            r#"{"a":8080}"#,
        ] {
            assert!(!at(hay, "80", Check::Token), "{hay}");
        }
    }
}
