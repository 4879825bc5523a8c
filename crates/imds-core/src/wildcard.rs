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
    /// `*`: any run of code points, also empty.
    Star,
    /// `?`: exactly one code point.
    One,
    /// Any other code point (ASCII-folded when the pattern ignores case).
    Lit(char),
}

#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as written.
    pub source: String,
    tokens: Vec<Token>,
    /// ASCII case-insensitive (`:`, `like~`) rather than exact (`like`).
    fold: bool,
}

impl Pattern {
    /// An ASCII case-insensitive pattern (EQL `:`, `like~`).
    pub fn new(pattern: &str) -> Pattern {
        Pattern::with_case(pattern, true)
    }

    /// A pattern that ignores ASCII case when `fold`, else matches case-sensitively (`like`).
    pub fn with_case(pattern: &str, fold: bool) -> Pattern {
        let mut tokens: Vec<Token> = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let token = match c {
                '*' => Token::Star,
                '?' => Token::One,
                c if fold => Token::Lit(c.to_ascii_lowercase()),
                c => Token::Lit(c),
            };
            // `**` matches what `*` matches; collapsing keeps backtracking short.
            if token == Token::Star && tokens.last() == Some(&Token::Star) {
                continue;
            }
            tokens.push(token);
        }
        Pattern {
            source: pattern.to_string(),
            tokens,
            fold,
        }
    }

    /// Whether the whole of `value` matches (ASCII case-insensitively if the pattern folds).
    ///
    /// Greedy scan that, on a mismatch, retries from the last `*` with it swallowing one more
    /// code point. Only the last `*` ever needs revisiting (earlier ones can only be
    /// worse placed), so this is O(len(value) × len(pattern)) at worst, never exponential.
    pub fn is_match(&self, value: &str) -> bool {
        let tokens = &self.tokens;
        let mut t = 0; // next token
        let mut v = 0; // byte offset of the next code point of `value`
                       // (token after the last `*`, byte offset the `*` has swallowed up to)
        let mut retry: Option<(usize, usize)> = None;
        while let Some(c) = value[v..].chars().next() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    t += 1;
                    retry = Some((t, v));
                    continue;
                }
                Some(Token::One) => {
                    t += 1;
                    v += c.len_utf8();
                    continue;
                }
                Some(Token::Lit(want))
                    if *want == if self.fold { c.to_ascii_lowercase() } else { c } =>
                {
                    t += 1;
                    v += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            // Mismatch (or tokens used up with value left): let the last `*` take one more.
            let Some((after_star, swallowed)) = retry else {
                return false;
            };
            let skipped = value[swallowed..].chars().next().map_or(0, char::len_utf8);
            retry = Some((after_star, swallowed + skipped));
            t = after_star;
            v = swallowed + skipped;
        }
        tokens[t..].iter().all(|token| *token == Token::Star)
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
