//! Elasticsearch's regular expressions (EQL `regex`/`regex~`, the `regexp` query): Lucene's
//! `RegExp` syntax with Elasticsearch's default flags, matched against the whole value, over
//! code points. The pattern is parsed here (the same grammar, step for step, as the reference
//! engine's `reference/lucene_regex.py`) and rewritten into the `regex` crate's syntax, whose
//! matching is linear in the value's length. What cannot be rewritten exactly is refused with
//! the reason (spec/ir.md, "Regular expressions").

use regex::{Regex, RegexBuilder};

/// The last Unicode code point.
const MAX_CP: u32 = 0x10_FFFF;
/// At most this many positions (code point tests) once counted repetitions and intervals are
/// written out: keeps both engines' automata small and their refusals the same.
const MAX_POSITIONS: u64 = 10_000;
/// At most this many nested groups, and this deep an expression tree.
const MAX_DEPTH: usize = 100;

/// A compiled Lucene regular expression (whole-value match).
#[derive(Debug, Clone)]
pub struct LuceneRegex {
    regex: Regex,
    required: Option<String>,
}

impl LuceneRegex {
    /// Parses `pattern` (Lucene syntax; `case_insensitive`: ASCII letters match either case,
    /// as `regex~` does). The error is the refusal reason, `regex "<pattern>": <why>`.
    pub fn new(pattern: &str, case_insensitive: bool) -> Result<LuceneRegex, String> {
        let refuse = |why: String| format!("regex \"{}\": {why}", render(pattern));
        let mut parser = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            fold: case_insensitive,
            open: 0,
        };
        let node = parser.parse().map_err(refuse)?;
        if positions(&node) > MAX_POSITIONS {
            return Err(refuse(format!(
                "more than {MAX_POSITIONS} positions after expanding repetitions is not supported"
            )));
        }
        let mut body = String::from(r"\A(?:");
        emit(&node, &mut body);
        body.push_str(r")\z");
        // The limits above keep every accepted pattern well inside these.
        let regex = RegexBuilder::new(&body)
            .size_limit(1 << 28)
            .nest_limit(1_000)
            .build()
            .map_err(|e| refuse(format!("cannot be compiled ({e})")))?;
        let required = literals(&node, case_insensitive)
            .best
            .filter(|text| !text.is_empty());
        Ok(LuceneRegex { regex, required })
    }

    /// The whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    /// A text every matching value contains (the longest found), for a prefilter: exactly,
    /// or ASCII-case-insensitively (given in lower case) when the regex is case-insensitive.
    /// `None` when there is none (`a.*|b`, `[ab]c?`).
    pub fn required_literal(&self) -> Option<&str> {
        self.required.as_deref()
    }
}

/// The pattern as shown in a refusal: `\` and `"` escaped, and control and invisible
/// formatting characters written as `\uXXXX` (a pattern is rule text: never raw to a terminal).
fn render(pattern: &str) -> String {
    let mut out = String::new();
    for c in pattern.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if unsafe_char(c as u32) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unsafe_char(cp: u32) -> bool {
    cp < 0x20
        || (0x7f..=0x9f).contains(&cp)
        || (0x200b..=0x200f).contains(&cp)
        || (0x2028..=0x202e).contains(&cp)
        || (0x2066..=0x2069).contains(&cp)
        || cp == 0xfeff
}

/// The parsed expression. A `Set` is one code point out of sorted, disjoint ranges (empty: none).
#[derive(Debug, Clone)]
enum Node {
    Set(Vec<(u32, u32)>),
    /// Concatenation; empty: the empty string.
    Seq(Vec<Node>),
    /// Union; empty: the empty language (`#`).
    Alt(Vec<Node>),
    /// `min` to `max` (unbounded: `None`) repetitions.
    Repeat(Box<Node>, u32, Option<u32>),
}

fn any_char() -> Node {
    Node::Set(vec![(0, MAX_CP)])
}

/// Sorted, merged ranges.
fn normalize(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The code points not in `ranges` (sorted, disjoint).
fn complement(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut next = 0u32;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi + 1;
    }
    if next <= MAX_CP {
        out.push((next, MAX_CP));
    }
    out
}

/// A code point and, when folding, its other ASCII case (Lucene folds ASCII letters only).
fn char_ranges(c: u32, fold: bool) -> Vec<(u32, u32)> {
    let lower = u32::from(b'a')..=u32::from(b'z');
    let upper = u32::from(b'A')..=u32::from(b'Z');
    if fold && lower.contains(&c) {
        normalize(vec![(c, c), (c - 32, c - 32)])
    } else if fold && upper.contains(&c) {
        normalize(vec![(c, c), (c + 32, c + 32)])
    } else {
        vec![(c, c)]
    }
}

/// `\d \D \s \S \w \W` (ASCII classes, as Lucene defines them).
fn predefined(c: char) -> Option<Vec<(u32, u32)>> {
    let digit = vec![(0x30, 0x39)];
    let space = vec![(0x09, 0x0a), (0x0d, 0x0d), (0x20, 0x20)];
    let word = vec![(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)];
    Some(match c {
        'd' => digit,
        'D' => complement(&digit),
        's' => space,
        'S' => complement(&space),
        'w' => word,
        'W' => complement(&word),
        _ => return None,
    })
}

fn depth(node: &Node) -> usize {
    match node {
        Node::Set(_) => 1,
        Node::Seq(items) | Node::Alt(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Node::Repeat(inner, _, _) => 1 + depth(inner),
    }
}

/// Code point tests once repetitions are written out (an unbounded one as its minimum plus one).
fn positions(node: &Node) -> u64 {
    match node {
        Node::Set(_) => 1,
        Node::Seq(items) | Node::Alt(items) => items
            .iter()
            .fold(0u64, |sum, item| sum.saturating_add(positions(item))),
        Node::Repeat(inner, min, max) => {
            let copies = match max {
                Some(max) => u64::from(*max),
                None => u64::from(*min) + 1,
            };
            positions(inner).saturating_mul(copies)
        }
    }
}

fn invalid(why: &str) -> String {
    format!("not a valid Lucene regular expression: {why}")
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    fold: bool,
    /// Groups open at this point.
    open: usize,
}

impl Parser {
    fn more(&self) -> bool {
        self.pos < self.chars.len()
    }

    fn peek(&self, set: &str) -> bool {
        self.chars.get(self.pos).is_some_and(|c| set.contains(*c))
    }

    fn eat(&mut self, c: char) -> bool {
        if self.chars.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn next(&mut self) -> Result<char, String> {
        let c = *self
            .chars
            .get(self.pos)
            .ok_or_else(|| invalid("unexpected end of pattern"))?;
        self.pos += 1;
        Ok(c)
    }

    fn checked(node: Node) -> Result<Node, String> {
        if depth(&node) > MAX_DEPTH {
            return Err(format!(
                "nesting deeper than {MAX_DEPTH} levels is not supported"
            ));
        }
        Ok(node)
    }

    fn parse(&mut self) -> Result<Node, String> {
        if self.chars.is_empty() {
            return Ok(Node::Seq(Vec::new()));
        }
        let node = self.union()?;
        if self.more() {
            // Only a `)` without its `(` stops the top level early.
            return Err(invalid("unexpected ')'"));
        }
        Ok(node)
    }

    fn union(&mut self) -> Result<Node, String> {
        let mut alts = vec![self.intersection()?];
        while self.eat('|') {
            alts.push(self.intersection()?);
        }
        if alts.len() == 1 {
            return Ok(alts.pop().expect("one alternative"));
        }
        Self::checked(Node::Alt(alts))
    }

    fn intersection(&mut self) -> Result<Node, String> {
        let node = self.concat()?;
        if self.peek("&") {
            return Err("intersection (&) is not supported".to_string());
        }
        Ok(node)
    }

    fn concat(&mut self) -> Result<Node, String> {
        // The first item is taken whatever it is: `|`, `)`, `&`, `*`, … there are literals.
        let mut items = vec![self.repeat()?];
        while self.more() && !self.peek(")|&") {
            items.push(self.repeat()?);
        }
        if items.len() == 1 {
            return Ok(items.pop().expect("one item"));
        }
        Self::checked(Node::Seq(items))
    }

    fn repeat(&mut self) -> Result<Node, String> {
        let mut node = self.atom()?;
        while self.peek("?*+{") {
            let (min, max) = match self.next()? {
                '?' => (0, Some(1)),
                '*' => (0, None),
                '+' => (1, None),
                _ => {
                    let min = self
                        .count()?
                        .ok_or_else(|| invalid("a number expected after '{'"))?;
                    let max = if self.eat(',') {
                        self.count()?
                    } else {
                        Some(min)
                    };
                    if !self.eat('}') {
                        return Err(invalid("missing '}'"));
                    }
                    if max.is_some_and(|max| max < min) {
                        return Err(invalid("a repetition {n,m} with n > m"));
                    }
                    (min, max)
                }
            };
            node = Self::checked(Node::Repeat(Box::new(node), min, max))?;
        }
        Ok(node)
    }

    /// ASCII digits (Java's `Integer.parseInt` range), or `None` when there are none.
    fn count(&mut self) -> Result<Option<u32>, String> {
        let start = self.pos;
        let mut value: u64 = 0;
        while self.peek("0123456789") {
            let digit = self.next()?.to_digit(10).expect("a digit");
            value = (value * 10 + u64::from(digit)).min(u64::from(u32::MAX));
        }
        if self.pos == start {
            return Ok(None);
        }
        if value > i32::MAX as u64 {
            return Err(invalid("a repetition count above 2147483647"));
        }
        Ok(Some(value as u32))
    }

    fn atom(&mut self) -> Result<Node, String> {
        if self.peek("~") {
            return Err("complement (~) is not supported".to_string());
        }
        if self.eat('[') {
            let negate = self.eat('^');
            let ranges = self.class_items()?;
            if !self.eat(']') {
                return Err(invalid("missing ']'"));
            }
            let ranges = normalize(ranges);
            return Ok(Node::Set(if negate { complement(&ranges) } else { ranges }));
        }
        if self.eat('.') {
            return Ok(any_char());
        }
        if self.eat('#') {
            return Ok(Node::Alt(Vec::new()));
        }
        if self.eat('@') {
            return Ok(Node::Repeat(Box::new(any_char()), 0, None));
        }
        if self.eat('"') {
            let start = self.pos;
            while self.more() && !self.peek("\"") {
                self.pos += 1;
            }
            if !self.eat('"') {
                return Err(invalid("missing '\"'"));
            }
            let items = self.chars[start..self.pos - 1]
                .iter()
                .map(|&c| Node::Set(char_ranges(c as u32, self.fold)))
                .collect();
            return Self::checked(Node::Seq(items));
        }
        if self.eat('(') {
            if self.eat(')') {
                return Ok(Node::Seq(Vec::new()));
            }
            self.open += 1;
            if self.open > MAX_DEPTH {
                return Err(format!(
                    "nesting deeper than {MAX_DEPTH} levels is not supported"
                ));
            }
            let node = self.union()?;
            if !self.eat(')') {
                return Err(invalid("missing ')'"));
            }
            self.open -= 1;
            return Ok(node);
        }
        if self.eat('<') {
            return self.interval();
        }
        if self.eat('\\') {
            if let Some(&c) = self.chars.get(self.pos) {
                if c == '\\' || c.is_ascii_alphabetic() {
                    self.pos += 1;
                    if c == '\\' {
                        return Ok(Node::Set(vec![(0x5c, 0x5c)]));
                    }
                    return predefined(c)
                        .map(Node::Set)
                        .ok_or_else(|| invalid(&format!("the escape \\{c}")));
                }
            }
        }
        let c = self.next()?;
        Ok(Node::Set(char_ranges(c as u32, self.fold)))
    }

    /// The items of `[...]` up to (not including) the closing `]`.
    fn class_items(&mut self) -> Result<Vec<(u32, u32)>, String> {
        let mut ranges = Vec::new();
        loop {
            if self.eat('\\') {
                let c = self.next()?;
                if c == '\\' {
                    ranges.push((0x5c, 0x5c));
                } else if c.is_ascii_alphabetic() {
                    let class =
                        predefined(c).ok_or_else(|| invalid(&format!("the escape \\{c}")))?;
                    ranges.extend(class);
                } else if self.peek("-") {
                    // Lucene 9 reads `[\.-z]` as a range, Lucene 10 as three characters.
                    return Err(
                        "an escaped character before '-' in a class is not supported".to_string(),
                    );
                } else {
                    ranges.push((c as u32, c as u32));
                }
            } else {
                let c = self.next()?;
                if self.eat('-') {
                    self.eat('\\');
                    let end = self.next()?;
                    if end < c {
                        return Err(invalid("a character range out of order"));
                    }
                    // Ranges are not case-folded (Lucene folds single characters only).
                    ranges.push((c as u32, end as u32));
                } else {
                    ranges.extend(char_ranges(c as u32, self.fold));
                }
            }
            if !self.more() || self.peek("]") {
                return Ok(ranges);
            }
        }
    }

    /// `<n-m>` after the `<`: the decimal numbers from n to m.
    fn interval(&mut self) -> Result<Node, String> {
        let start = self.pos;
        while self.more() && !self.peek(">") {
            self.pos += 1;
        }
        if !self.eat('>') {
            return Err(invalid("missing '>'"));
        }
        let body: Vec<char> = self.chars[start..self.pos - 1].to_vec();
        let dashes: Vec<usize> = (0..body.len()).filter(|&i| body[i] == '-').collect();
        if dashes.is_empty() {
            return Err(invalid("a named automaton <...> (Elasticsearch has none)"));
        }
        let dash = dashes[0];
        if dash == 0 || dash == body.len() - 1 || dashes.len() > 1 {
            return Err(invalid("an interval <n-m> that is not two numbers"));
        }
        let (low, high) = (&body[..dash], &body[dash + 1..]);
        let digits_only = |part: &[char]| part.iter().all(|c| c.is_ascii_digit());
        if !digits_only(low) || !digits_only(high) {
            if low.iter().chain(high).all(|c| c.is_ascii() && *c != '+') {
                return Err(invalid("an interval <n-m> that is not two numbers"));
            }
            // Java's parseInt takes a `+` and non-ASCII digits: refused rather than guessed.
            return Err(
                "an interval <n-m> with a sign or non-ASCII digits is not supported".to_string(),
            );
        }
        let number = |part: &[char]| -> Result<u32, String> {
            let mut value: u64 = 0;
            for c in part {
                value = (value * 10 + u64::from(c.to_digit(10).expect("a digit")))
                    .min(u64::from(u32::MAX));
            }
            if value > i32::MAX as u64 {
                return Err(invalid("an interval bound above 2147483647"));
            }
            Ok(value as u32)
        };
        let (mut min, mut max) = (number(low)?, number(high)?);
        if min > max {
            std::mem::swap(&mut min, &mut max);
        }
        // Equal lengths fix the width (zero-padded); else any number of leading zeros.
        let width = if low.len() == high.len() {
            low.len()
        } else {
            0
        };
        Self::checked(interval_node(min, max, width))
    }
}

fn digit_set(lo: u8, hi: u8) -> Node {
    Node::Set(vec![(u32::from(b'0' + lo), u32::from(b'0' + hi))])
}

/// The strings of `lo.len()` digits from `lo` to `hi` (same length, `lo <= hi`), as a union
/// of digit-class sequences.
fn fixed_range(lo: &[u8], hi: &[u8]) -> Vec<Vec<Node>> {
    if lo.is_empty() {
        return vec![Vec::new()];
    }
    let rest = lo.len() - 1;
    let prefixed = |first: Node, tails: Vec<Vec<Node>>| -> Vec<Vec<Node>> {
        tails
            .into_iter()
            .map(|tail| {
                let mut seq = vec![first.clone()];
                seq.extend(tail);
                seq
            })
            .collect()
    };
    if lo[0] == hi[0] {
        return prefixed(digit_set(lo[0], lo[0]), fixed_range(&lo[1..], &hi[1..]));
    }
    let nines = vec![9u8; rest];
    let zeros = vec![0u8; rest];
    let mut out = Vec::new();
    // lo's first digit, then anything from lo's rest up.
    out.extend(prefixed(
        digit_set(lo[0], lo[0]),
        fixed_range(&lo[1..], &nines),
    ));
    if hi[0] > lo[0] + 1 {
        let any: Vec<Node> = (0..rest).map(|_| digit_set(0, 9)).collect();
        let mut seq = vec![digit_set(lo[0] + 1, hi[0] - 1)];
        seq.extend(any);
        out.push(seq);
    }
    out.extend(prefixed(
        digit_set(hi[0], hi[0]),
        fixed_range(&zeros, &hi[1..]),
    ));
    out
}

fn digits_of(n: u32, width: usize) -> Vec<u8> {
    format!("{n:0width$}").bytes().map(|b| b - b'0').collect()
}

/// Lucene's `makeDecimalInterval`: with a width, exactly that many digits; without, any
/// number of leading zeros before the number.
fn interval_node(min: u32, max: u32, width: usize) -> Node {
    let mut alts = Vec::new();
    if width > 0 {
        for seq in fixed_range(&digits_of(min, width), &digits_of(max, width)) {
            alts.push(Node::Seq(seq));
        }
        return Node::Alt(alts);
    }
    let len_of = |n: u32| n.to_string().len();
    for len in len_of(min)..=len_of(max) {
        let floor = if len == 1 {
            0
        } else {
            10u32.pow(len as u32 - 1)
        };
        let ceil = 10u64.pow(len as u32) - 1;
        let lo = min.max(floor);
        let hi = u64::from(max).min(ceil) as u32;
        for seq in fixed_range(&digits_of(lo, len), &digits_of(hi, len)) {
            alts.push(Node::Seq(seq));
        }
    }
    let zeros = Node::Repeat(Box::new(digit_set(0, 0)), 0, None);
    Node::Seq(vec![zeros, Node::Alt(alts)])
}

/// Ranges in `regex` syntax, without the surrogates (a `&str` never holds them).
fn emit_ranges(ranges: &[(u32, u32)], out: &mut String) {
    let mut scalar = Vec::new();
    for &(lo, hi) in ranges {
        if lo < 0xd800 {
            scalar.push((lo, hi.min(0xd7ff)));
        }
        if hi > 0xdfff {
            scalar.push((lo.max(0xe000), hi));
        }
    }
    match scalar.as_slice() {
        // Matches nothing (the regex crate accepts an empty class).
        [] => out.push_str(r"[^\x{0}-\x{10FFFF}]"),
        [(lo, hi)] if lo == hi => out.push_str(&format!(r"\x{{{lo:X}}}")),
        _ => {
            out.push('[');
            for (lo, hi) in scalar {
                if lo == hi {
                    out.push_str(&format!(r"\x{{{lo:X}}}"));
                } else {
                    out.push_str(&format!(r"\x{{{lo:X}}}-\x{{{hi:X}}}"));
                }
            }
            out.push(']');
        }
    }
}

fn emit(node: &Node, out: &mut String) {
    match node {
        Node::Set(ranges) => emit_ranges(ranges, out),
        Node::Seq(items) => {
            out.push_str("(?:");
            for item in items {
                emit(item, out);
            }
            out.push(')');
        }
        Node::Alt(items) if items.is_empty() => emit_ranges(&[], out),
        Node::Alt(items) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit(item, out);
            }
            out.push(')');
        }
        Node::Repeat(inner, min, max) => {
            out.push_str("(?:");
            emit(inner, out);
            match max {
                Some(max) => out.push_str(&format!("){{{min},{max}}}")),
                None => out.push_str(&format!("){{{min},}}")),
            }
        }
    }
}

/// What [`literals`] knows of an expression.
struct Literals {
    /// The one string the expression matches, if it matches exactly one.
    exact: Option<String>,
    /// A string every match contains.
    best: Option<String>,
}

fn longer(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.chars().count() > a.chars().count() {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Required text of `node`; with `fold`, a set of one ASCII letter in both cases counts as
/// that letter (in lower case).
fn literals(node: &Node, fold: bool) -> Literals {
    match node {
        Node::Set(ranges) => {
            let one = match ranges.as_slice() {
                [(lo, hi)] if lo == hi => {
                    char::from_u32(*lo).map(|c| if fold { c.to_ascii_lowercase() } else { c })
                }
                [(a, a2), (b, b2)] if fold && a == a2 && b == b2 && *b == a + 32 => {
                    char::from_u32(*b).filter(char::is_ascii_lowercase)
                }
                _ => None,
            };
            let text = one.map(String::from);
            Literals {
                exact: text.clone(),
                best: text,
            }
        }
        Node::Seq(items) => {
            let mut run = Some(String::new());
            let mut best: Option<String> = None;
            let mut whole = true;
            for item in items {
                let inner = literals(item, fold);
                match (inner.exact, run.as_mut()) {
                    (Some(text), Some(current)) => current.push_str(&text),
                    (Some(text), None) => run = Some(text),
                    (None, _) => {
                        whole = false;
                        best = longer(best, run.take());
                        best = longer(best, inner.best);
                    }
                }
            }
            let exact = if whole { run.clone() } else { None };
            Literals {
                exact,
                best: longer(best, run),
            }
        }
        Node::Alt(items) => {
            let texts: Vec<Option<String>> = items
                .iter()
                .map(|item| literals(item, fold).exact)
                .collect();
            let same = match texts.first() {
                Some(Some(first)) => texts.iter().all(|t| t.as_ref() == Some(first)),
                _ => false,
            };
            let exact = if same { texts[0].clone() } else { None };
            Literals {
                best: exact.clone(),
                exact,
            }
        }
        Node::Repeat(inner, min, max) => {
            if *min == 0 {
                return Literals {
                    exact: (*max == Some(0)).then(String::new),
                    best: None,
                };
            }
            let inner = literals(inner, fold);
            // `min` copies in a row are in every match (capped: a prefilter needs no more).
            let repeated = inner
                .exact
                .as_ref()
                .map(|text| text.repeat((*min).min(64) as usize));
            let exact = if Some(*min) == *max && *min <= 64 {
                repeated.clone()
            } else {
                None
            };
            Literals {
                exact,
                best: longer(repeated, inner.best),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_class_compiles_and_matches_nothing() {
        let never = LuceneRegex::new("#", false).unwrap();
        assert!(!never.is_match(""));
        assert!(!never.is_match("a"));
        let star = LuceneRegex::new("#*", false).unwrap();
        assert!(star.is_match(""));
    }

    #[test]
    fn required_literals() {
        let required = |pattern: &str, ci: bool| {
            LuceneRegex::new(pattern, ci)
                .unwrap()
                .required_literal()
                .map(str::to_string)
        };
        assert_eq!(required("abc", false).as_deref(), Some("abc"));
        assert_eq!(required(".*cmd\\.exe", false).as_deref(), Some("cmd.exe"));
        assert_eq!(
            required("x.*powershell.*y", false).as_deref(),
            Some("powershell")
        );
        assert_eq!(required("(ab){2}c", false).as_deref(), Some("ababc"));
        assert_eq!(required("(ab)+", false).as_deref(), Some("ab"));
        assert_eq!(required("PowerShell", true).as_deref(), Some("powershell"));
        assert_eq!(required("[aA]b", false).as_deref(), Some("b"));
        assert_eq!(required("\"a.b\"[0-9]", false).as_deref(), Some("a.b"));
        assert_eq!(required("(abc|abc)d", false).as_deref(), Some("abcd"));
        assert_eq!(required("a.*|b", false), None);
        assert_eq!(required("(ab)?c?", false), None);
        assert_eq!(required(".*", false), None);
        assert_eq!(required("", false), None);
        // Every value the regex matches contains the literal.
        for (pattern, ci, values) in [
            ("a(bc)+d", false, vec!["abcd", "abcbcd"]),
            ("x[yY]z", true, vec!["xyz", "XYZ", "xYz"]),
            ("(ab){2,3}", false, vec!["abab", "ababab"]),
        ] {
            let regex = LuceneRegex::new(pattern, ci).unwrap();
            let literal = regex.required_literal().unwrap().to_string();
            for value in values {
                assert!(regex.is_match(value));
                let haystack = if ci {
                    value.to_ascii_lowercase()
                } else {
                    value.to_string()
                };
                assert!(haystack.contains(&literal), "{pattern} {value} {literal}");
            }
        }
    }

    #[test]
    fn intervals_follow_lucene() {
        let free = LuceneRegex::new("<1-100>", false).unwrap();
        for ok in ["1", "09", "100", "0000100", "55"] {
            assert!(free.is_match(ok), "{ok}");
        }
        for no in ["0", "101", "", "1000", "00"] {
            assert!(!free.is_match(no), "{no}");
        }
        let fixed = LuceneRegex::new("<010-120>", false).unwrap();
        assert!(fixed.is_match("010") && fixed.is_match("099") && fixed.is_match("120"));
        assert!(!fixed.is_match("10") && !fixed.is_match("0100") && !fixed.is_match("121"));
        // Every number of an interval, exhaustively against the definition.
        for (min, max) in [
            (0u32, 0u32),
            (0, 9),
            (7, 7),
            (3, 2047),
            (19, 1001),
            (0, 999),
        ] {
            let re = LuceneRegex::new(&format!("<{min}-{max}>"), false).unwrap();
            let width = min.to_string().len();
            let fixed = width == max.to_string().len();
            for n in 0..2100u32 {
                let inside = (min..=max).contains(&n);
                if fixed {
                    let padded = format!("{n:0width$}");
                    assert_eq!(re.is_match(&padded), inside, "<{min}-{max}> {padded}");
                    assert!(
                        !re.is_match(&format!("0{padded}")),
                        "<{min}-{max}> 0{padded}"
                    );
                } else {
                    assert_eq!(re.is_match(&n.to_string()), inside, "<{min}-{max}> {n}");
                    assert_eq!(
                        re.is_match(&format!("00{n}")),
                        inside,
                        "<{min}-{max}> 00{n}"
                    );
                }
            }
        }
    }
}
