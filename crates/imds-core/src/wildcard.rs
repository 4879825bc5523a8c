//! EQL `:` / `like~` patterns (whole-value match, ASCII-only case folding) and `like` patterns
//! (case-sensitive); `*` and `?` over code points.

/// `A`–`Z` to `a`–`z`, nothing else: EQL's case-insensitivity never folds non-ASCII letters
/// (the Kelvin sign U+212A is not `k`, `ſ` U+017F is not `s`).
pub fn ascii_fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// `value` equals `folded` (already passed through [`ascii_fold`]) ignoring ASCII case.
pub fn eq_folded(value: &str, folded: &str) -> bool {
    value.len() == folded.len()
        && value
            .bytes()
            .zip(folded.bytes())
            .all(|(v, f)| v.to_ascii_lowercase() == f)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `?`: exactly one code point.
    One,
    /// Any other code point (ASCII-folded when the pattern ignores case).
    Lit(char),
    /// An ASCII letter (held lowercase) in either case, whether or not the pattern folds
    /// (Elasticsearch's case-insensitive wildcard query, where escaped letters keep their case).
    AnyCase(char),
}

/// The tokens between two `*`s: a fixed number of code points.
#[derive(Debug, Clone)]
struct Segment {
    tokens: Vec<Token>,
    /// Shift-And tables (built for the segments searched for, those between two `*`s):
    /// bit `i` of a mask says token `i` accepts the code point. `words` u64s per mask.
    words: usize,
    /// Masks of the ASCII code points, `words` each (a folding pattern looks the value's code
    /// points up folded).
    ascii: Vec<u64>,
    /// Masks of the other code points the segment names, sorted by code point.
    other: Vec<(char, Vec<u64>)>,
    /// The mask of any other code point: the `?` positions.
    any: Vec<u64>,
    /// A searched piece without `?` is searched byte by byte instead (a UTF-8 match of
    /// whole code points is a match of code points): 256 masks of `byte_words` u64s, over
    /// the piece's bytes (both ASCII cases set when the pattern folds).
    bytes: Vec<u64>,
    byte_words: usize,
    byte_len: usize,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pieces between `*`s; one piece when there is no `*`.
    segments: Vec<Segment>,
    /// ASCII case-insensitive (`:`, `like~`) rather than exact (`like`).
    fold: bool,
}

impl Segment {
    fn new(tokens: Vec<Token>, searched: bool, fold: bool) -> Segment {
        let mut segment = Segment {
            words: tokens.len().div_ceil(64),
            tokens,
            ascii: Vec::new(),
            other: Vec::new(),
            any: Vec::new(),
            bytes: Vec::new(),
            byte_words: 0,
            byte_len: 0,
        };
        if searched && !segment.tokens.contains(&Token::One) {
            segment.build_byte_masks(fold);
        } else if searched {
            segment.build_masks();
        }
        segment
    }

    fn build_byte_masks(&mut self, fold: bool) {
        // Each byte of the piece, and whether it matches either ASCII case.
        let mut bytes: Vec<(u8, bool)> = Vec::new();
        for token in &self.tokens {
            match *token {
                Token::Lit(c) => {
                    let mut buf = [0u8; 4];
                    bytes.extend(c.encode_utf8(&mut buf).bytes().map(|b| (b, fold)));
                }
                Token::AnyCase(c) => bytes.push((c as u8, true)),
                Token::One => unreachable!("a piece with `?` is searched by code point"),
            }
        }
        let words = bytes.len().div_ceil(64);
        let mut table = vec![0u64; 256 * words];
        for (i, &(b, either)) in bytes.iter().enumerate() {
            let bit = 1u64 << (i % 64);
            table[b as usize * words + i / 64] |= bit;
            if either && b.is_ascii_lowercase() {
                table[b.to_ascii_uppercase() as usize * words + i / 64] |= bit;
            }
        }
        self.bytes = table;
        self.byte_words = words;
        self.byte_len = bytes.len();
    }

    /// [`Segment::find`] for a piece without `?`: Shift-And over the bytes.
    fn find_bytes(&self, value: &str, from: usize, steps: &mut usize) -> Option<usize> {
        let words = self.byte_words;
        let last = self.byte_len - 1;
        let (last_word, last_bit) = (last / 64, 1u64 << (last % 64));
        let haystack = &value.as_bytes()[from..];
        if words == 1 {
            let mut state = 0u64;
            for (at, &b) in haystack.iter().enumerate() {
                state = ((state << 1) | 1) & self.bytes[b as usize];
                if state & last_bit != 0 {
                    *steps += at + 1;
                    return Some(from + at + 1);
                }
            }
            *steps += haystack.len();
            return None;
        }
        let mut state = vec![0u64; words];
        for (at, &b) in haystack.iter().enumerate() {
            *steps += words;
            let mask = &self.bytes[b as usize * words..(b as usize + 1) * words];
            let mut carry = 1; // a match may start at every byte
            for (word, m) in state.iter_mut().zip(mask) {
                let shifted = (*word << 1) | carry;
                carry = *word >> 63;
                *word = shifted & m;
            }
            if state[last_word] & last_bit != 0 {
                return Some(from + at + 1);
            }
        }
        None
    }

    fn build_masks(&mut self) {
        let words = self.words;
        let mut any = vec![0u64; words];
        for (i, token) in self.tokens.iter().enumerate() {
            if *token == Token::One {
                any[i / 64] |= 1 << (i % 64);
            }
        }
        let mut ascii = Vec::with_capacity(128 * words);
        for _ in 0..128 {
            ascii.extend_from_slice(&any);
        }
        let mut other: Vec<(char, Vec<u64>)> = Vec::new();
        for (i, token) in self.tokens.iter().enumerate() {
            let c = match *token {
                Token::Lit(c) => c,
                Token::AnyCase(c) => {
                    // The lowercase letter below; the uppercase one here.
                    let upper = c.to_ascii_uppercase() as usize;
                    ascii[upper * words + i / 64] |= 1u64 << (i % 64);
                    c
                }
                Token::One => continue,
            };
            let bit = 1u64 << (i % 64);
            if c.is_ascii() {
                ascii[c as usize * words + i / 64] |= bit;
            } else {
                match other.binary_search_by_key(&c, |(k, _)| *k) {
                    Ok(at) => other[at].1[i / 64] |= bit,
                    Err(at) => {
                        let mut mask = any.clone();
                        mask[i / 64] |= bit;
                        other.insert(at, (c, mask));
                    }
                }
            }
        }
        self.ascii = ascii;
        self.other = other;
        self.any = any;
    }

    fn mask(&self, c: char) -> &[u64] {
        if c.is_ascii() {
            let at = c as usize * self.words;
            return &self.ascii[at..at + self.words];
        }
        match self.other.binary_search_by_key(&c, |(k, _)| *k) {
            Ok(at) => &self.other[at].1,
            Err(_) => &self.any,
        }
    }

    /// The byte length of the match at the start of `value`, if the segment matches there.
    fn match_at(&self, value: &str, fold: bool, steps: &mut usize) -> Option<usize> {
        let mut chars = value.char_indices();
        for token in &self.tokens {
            *steps += 1;
            let (_, c) = chars.next()?;
            match *token {
                Token::Lit(want) if want != if fold { c.to_ascii_lowercase() } else { c } => {
                    return None
                }
                Token::AnyCase(want) if want != c.to_ascii_lowercase() => return None,
                _ => {}
            }
        }
        Some(chars.next().map_or(value.len(), |(at, _)| at))
    }

    /// Where the segment starts when it matches the end of `value`.
    fn match_end(&self, value: &str, fold: bool, steps: &mut usize) -> Option<usize> {
        let start = match self.tokens.len() {
            0 => value.len(),
            n => value.char_indices().rev().nth(n - 1)?.0,
        };
        *steps += self.tokens.len();
        let end = self.match_at(&value[start..], fold, steps)?;
        (start + end == value.len()).then_some(start)
    }

    /// The end (byte offset) of the leftmost match in `value[from..]`: Shift-And, one pass
    /// over the code points with `words` u64 operations each, whatever the value holds.
    fn find(&self, value: &str, from: usize, fold: bool, steps: &mut usize) -> Option<usize> {
        let Some(last) = self.tokens.len().checked_sub(1) else {
            return Some(from); // `**`
        };
        if self.byte_len > 0 {
            return self.find_bytes(value, from, steps);
        }
        let (last_word, last_bit) = (last / 64, 1u64 << (last % 64));
        if self.words == 1 {
            // The usual piece: one word, no allocation.
            let mut state = 0u64;
            for (at, c) in value[from..].char_indices() {
                *steps += 1;
                let mask = self.mask(if fold { c.to_ascii_lowercase() } else { c })[0];
                state = ((state << 1) | 1) & mask;
                if state & last_bit != 0 {
                    return Some(from + at + c.len_utf8());
                }
            }
            return None;
        }
        let mut state = vec![0u64; self.words];
        for (at, c) in value[from..].char_indices() {
            *steps += self.words;
            let mask = self.mask(if fold { c.to_ascii_lowercase() } else { c });
            let mut carry = 1; // a match may start at every code point
            for (word, m) in state.iter_mut().zip(mask) {
                let shifted = (*word << 1) | carry;
                carry = *word >> 63;
                *word = shifted & m;
            }
            if state[last_word] & last_bit != 0 {
                return Some(from + at + c.len_utf8());
            }
        }
        None
    }
}

impl Pattern {
    /// An ASCII case-insensitive pattern (EQL `:`, `like~`).
    #[cfg(test)]
    pub fn new(pattern: &str) -> Pattern {
        Pattern::with_case(pattern, true)
    }

    /// A pattern that ignores ASCII case when `fold`, else matches case-sensitively (`like`).
    pub fn with_case(pattern: &str, fold: bool) -> Pattern {
        let pieces: Vec<Vec<Token>> = pattern
            .split('*')
            .map(|piece| {
                piece
                    .chars()
                    .map(|c| match c {
                        '?' => Token::One,
                        c if fold => Token::Lit(c.to_ascii_lowercase()),
                        c => Token::Lit(c),
                    })
                    .collect()
            })
            .collect();
        Pattern::from_pieces(pieces, fold)
    }

    /// An Elasticsearch `wildcard` query pattern (Lucene's `WildcardQuery` syntax): `*` any
    /// run of code points, `?` one, `\x` the code point `x` itself, a final lone `\` itself.
    /// With `case_insensitive` (`case_insensitive: true`), ASCII letters match either case,
    /// except escaped ones (Elasticsearch's `AutomatonQueries` builds those exactly).
    pub fn elasticsearch(pattern: &str, case_insensitive: bool) -> Pattern {
        let mut pieces: Vec<Vec<Token>> = vec![Vec::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let piece = pieces.last_mut().expect("never empty");
            match c {
                '*' => pieces.push(Vec::new()),
                '?' => piece.push(Token::One),
                '\\' => piece.push(Token::Lit(chars.next().unwrap_or('\\'))),
                c if case_insensitive && c.is_ascii_alphabetic() => {
                    piece.push(Token::AnyCase(c.to_ascii_lowercase()))
                }
                c => piece.push(Token::Lit(c)),
            }
        }
        Pattern::from_pieces(pieces, false)
    }

    fn from_pieces(pieces: Vec<Vec<Token>>, fold: bool) -> Pattern {
        let n = pieces.len();
        let segments = pieces
            .into_iter()
            .enumerate()
            .map(|(i, tokens)| Segment::new(tokens, i > 0 && i + 1 < n, fold))
            .collect();
        Pattern { segments, fold }
    }

    /// Whether the whole of `value` matches (ASCII case-insensitively if the pattern folds).
    pub fn is_match(&self, value: &str) -> bool {
        self.run(value, &mut 0)
    }

    /// The pieces between `*`s have fixed lengths, so the leftmost match of each, in order,
    /// is as good as any: the first piece must match at the start, the last at the end, and
    /// each one between is found by one Shift-And pass from where the one before ended. Work:
    /// O(len(value) × ⌈longest piece / 64⌉ + len(pattern)), never a rescan per position.
    fn run(&self, value: &str, steps: &mut usize) -> bool {
        let fold = self.fold;
        let [first, middle @ .., last] = &self.segments[..] else {
            // No `*`: the one piece is the whole value.
            let only = &self.segments[0];
            return only.match_at(value, fold, steps) == Some(value.len());
        };
        let Some(mut pos) = first.match_at(value, fold, steps) else {
            return false;
        };
        let Some(end) = last.match_end(&value[pos..], fold, steps) else {
            return false;
        };
        let rest = &value[..pos + end];
        for segment in middle {
            match segment.find(rest, pos, fold, steps) {
                Some(after) => pos = after,
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, value: &str) -> bool {
        Pattern::new(pattern).is_match(value)
    }

    #[test]
    fn empty_pattern_and_value() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*", ""));
        assert!(m("**", ""));
        assert!(!m("?", ""));
        assert!(!m("a", ""));
        assert!(m("*", "anything at all"));
    }

    #[test]
    fn whole_value_literal() {
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abcd"));
        assert!(!m("abc", "xabc"));
        assert!(!m("abc", "ab"));
    }

    #[test]
    fn star_runs() {
        assert!(m("*169.254.169.254*", "curl http://169.254.169.254/latest"));
        assert!(m("*169.254.169.254*", "169.254.169.254"));
        assert!(!m("*169.254.169.254*", "169.254.169.25"));
        assert!(m("a*", "a"));
        assert!(m("*a", "bba"));
        assert!(!m("*a", "ab"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(m("a*b*c", "abcbc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("*ab*ab*", "xxabyyab"));
        assert!(!m("*ab*ab*", "xxabyy"));
        // Backtracking past a partial match of the literal after the star.
        assert!(m("*aab", "aaab"));
        assert!(m("*abab", "abaabab"));
        assert!(m("*latest/meta-data*", "latest/meta-latest/meta-data/iam"));
    }

    #[test]
    fn question_mark() {
        assert!(m("?", "a"));
        assert!(!m("?", "ab"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*?", "x"));
        assert!(!m("*??", "x"));
        assert!(m("?*?", "xy"));
        assert!(m("*a?c*", "zzabcabc"));
    }

    #[test]
    fn question_mark_is_one_code_point() {
        assert!(m("?", "é")); // two UTF-8 bytes
        assert!(m("?", "😀")); // four UTF-8 bytes
        assert!(!m("??", "😀"));
        assert!(m("a?b", "a\u{212A}b"));
        assert!(m("*?", "\u{FFFD}"));
        assert!(m("x*é?", "x日本é語"));
        assert!(m("日*語", "日本語"));
        assert!(!m("日?語", "日本本語"));
    }

    #[test]
    fn wildcards_are_never_literal() {
        // No escaping: `*` and `?` in the pattern always act as wildcards.
        assert!(m("a?c", "a?c"));
        assert!(m("a*c", "a*c"));
        assert!(m("\\*", "\\anything"));
    }

    #[test]
    fn ascii_only_case_folding() {
        assert!(m("*computeMetadata*", "curl HTTP://x/COMPUTEMETADATA/v1"));
        assert!(m("METADATA", "metadata"));
        assert!(m("metadata", "MetaData"));
        // Kelvin sign and long s do not fold to ASCII, in either direction.
        assert!(!m("k", "\u{212A}"));
        assert!(!m("\u{212A}", "k"));
        assert!(!m("\u{212A}", "K"));
        assert!(m("\u{212A}", "\u{212A}"));
        assert!(!m("s", "\u{17F}"));
        assert!(!m(
            "*security-credentials*",
            "/iam/\u{17F}ecurity-credentials"
        ));
        // Non-ASCII letters keep their case.
        assert!(!m("é", "É"));
        assert!(!m("ß", "SS"));
    }

    #[test]
    fn case_sensitive_like() {
        let like = |p: &str, v: &str| Pattern::with_case(p, false).is_match(v);
        assert!(like("*Metadata*", "x Metadata y"));
        assert!(!like("*Metadata*", "x METADATA y"));
        assert!(like("a?c", "aBc"));
        assert!(!like("ABC", "abc"));
        assert!(like("*", ""));
        assert!(like("é*", "é"));
        assert!(!like("é*", "É"));
    }

    /// The plain definition, by dynamic programming over (pattern, value) prefixes.
    fn oracle(pattern: &str, value: &str, fold: bool) -> bool {
        let f = |c: char| if fold { c.to_ascii_lowercase() } else { c };
        let p: Vec<char> = pattern.chars().collect();
        let v: Vec<char> = value.chars().collect();
        let mut row = vec![false; v.len() + 1]; // row[j]: p[..i] matches v[..j]
        row[0] = true;
        for &pc in &p {
            let mut next = vec![false; v.len() + 1];
            for j in 0..=v.len() {
                next[j] = match pc {
                    '*' => row[j] || (j > 0 && next[j - 1]),
                    '?' => j > 0 && row[j - 1],
                    c => j > 0 && row[j - 1] && f(c) == f(v[j - 1]),
                };
            }
            row = next;
        }
        row[v.len()]
    }

    #[test]
    fn agrees_with_the_definition_on_random_patterns() {
        let alphabet: Vec<char> = "aAbB*?é\u{212A}".chars().collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let pattern: String = (0..next(9))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let value: String = (0..next(12))
                .map(|_| alphabet[next(alphabet.len() - 2)]) // no wildcards in values, mostly
                .collect();
            for fold in [true, false] {
                assert_eq!(
                    Pattern::with_case(&pattern, fold).is_match(&value),
                    oracle(&pattern, &value, fold),
                    "{pattern:?} {value:?} fold={fold}"
                );
            }
        }
        // Pieces longer than one 64-bit word.
        let long = format!("*{}b*", "?".repeat(70));
        for n in [69, 70, 71, 140] {
            let value = format!("{}b", "a".repeat(n));
            assert_eq!(m(&long, &value), oracle(&long, &value, true), "{n}");
        }
        assert!(m(
            &format!("*{}a{}*", "?".repeat(63), "?".repeat(64)),
            &"xa".repeat(100)
        ));
    }

    /// Elasticsearch's wildcard syntax by dynamic programming: each pattern item is `*`, `?`,
    /// an exact code point (escaped, or any when case-sensitive) or an ASCII letter either case.
    fn es_oracle(pattern: &str, value: &str, ci: bool) -> bool {
        #[derive(Clone, Copy)]
        enum Item {
            Star,
            One,
            Exact(char),
            Either(char),
        }
        let mut items = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            items.push(match c {
                '*' => Item::Star,
                '?' => Item::One,
                '\\' => Item::Exact(chars.next().unwrap_or('\\')),
                c if ci && c.is_ascii_alphabetic() => Item::Either(c),
                c => Item::Exact(c),
            });
        }
        let v: Vec<char> = value.chars().collect();
        let mut row = vec![false; v.len() + 1];
        row[0] = true;
        for item in items {
            let mut next = vec![false; v.len() + 1];
            for j in 0..=v.len() {
                next[j] = match item {
                    Item::Star => row[j] || (j > 0 && next[j - 1]),
                    Item::One => j > 0 && row[j - 1],
                    Item::Exact(c) => j > 0 && row[j - 1] && v[j - 1] == c,
                    Item::Either(c) => j > 0 && row[j - 1] && v[j - 1].eq_ignore_ascii_case(&c),
                };
            }
            row = next;
        }
        row[v.len()]
    }

    #[test]
    fn elasticsearch_syntax_agrees_with_its_definition() {
        let alphabet: Vec<char> = "aAbB*?\\é\u{212A}k".chars().collect();
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..20_000 {
            let pattern: String = (0..next(9))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let value: String = (0..next(10))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            for ci in [true, false] {
                assert_eq!(
                    Pattern::elasticsearch(&pattern, ci).is_match(&value),
                    es_oracle(&pattern, &value, ci),
                    "{pattern:?} {value:?} ci={ci}"
                );
            }
        }
        let es = |p: &str, v: &str, ci: bool| Pattern::elasticsearch(p, ci).is_match(v);
        assert!(es("a\\*", "a*", false) && !es("a\\*", "ab", false));
        assert!(es("a\\", "a\\", false)); // a trailing lone backslash is itself
        assert!(es("*WIN?OWS*", "c:\\windows\\x", true));
        assert!(!es("\\Cmd*", "cmd.exe", true) && es("\\CMD*", "Cmd.exe", true));
        assert!(!es("K", "\u{212A}", true) && !es("É", "é", true));
        // Long pieces, with and without `?`, searched in the middle.
        let long = format!("*{}*", "Ab".repeat(40));
        assert!(es(&long, &format!("x{}y", "aB".repeat(40)), true));
        assert!(!es(&long, &format!("x{}y", "aB".repeat(40)), false));
        let long = format!("*{}?*", "Ab".repeat(40));
        assert!(es(&long, &format!("x{}yz", "aB".repeat(40)), true));
    }

    fn steps(pattern: &str, value: &str) -> (bool, usize) {
        let mut steps = 0;
        let matched = Pattern::new(pattern).run(value, &mut steps);
        (matched, steps)
    }

    #[test]
    fn work_is_one_pass_over_the_value() {
        // Counted, not timed. The old matcher retried every position of a `*` with the whole
        // piece after it: ~len(value) × len(piece) steps (6 s at 1 MB and 5,000 `?`).
        let value = "a".repeat(100_000);
        let (matched, n) = steps("*a*a*a*a*a*a*a*b", &value);
        assert!(!matched);
        assert!(n <= value.len() + 20, "{n}");
        let pattern = format!("*{}b*", "?".repeat(5_000));
        let (matched, n) = steps(&pattern, &value);
        assert!(!matched);
        // One pass with ⌈5,001 / 64⌉ = 79 words per code point.
        assert!(n <= value.len() * 79 + 10, "{n}");
        let pattern = format!("*{}b*", "a".repeat(5_000));
        let (matched, n) = steps(&pattern, &value);
        assert!(!matched);
        assert!(n <= value.len() * 79 + 10, "{n}");
        let pattern = format!("*{}*", "a".repeat(50));
        let (matched, n) = steps(&pattern, &value);
        assert!(matched);
        assert!(n <= 50, "{n}"); // found where it starts
    }

    #[test]
    fn long_values_stay_fast() {
        // Would take forever with naive recursive backtracking.
        let value = "a".repeat(20_000);
        assert!(!m("*a*a*a*a*a*a*a*a*a*a*b", &value));
        assert!(m("*a*a*a*a*a*a*a*a*a*a*", &value));
    }

    #[test]
    fn folded_equality() {
        assert!(eq_folded("Cloud-Init", &ascii_fold("CLOUD-INIT")));
        assert!(eq_folded("waagent", "waagent"));
        assert!(!eq_folded("waagent ", "waagent"));
        assert!(!eq_folded("\u{212A}", "k"));
        assert!(!eq_folded("\u{17F}", "s"));
        assert_eq!(ascii_fold("ÉAzure\u{212A}"), "Éazure\u{212A}");
    }
}
