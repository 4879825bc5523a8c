//! THROWAWAY STUB until the `regex` helper's Lucene translation lands (its file replaces this
//! one): only patterns without any Lucene operator (plain literals) are accepted, matched as
//! whole-value equality; everything else is refused.

/// A Lucene regular expression (`regexp` query syntax), matched against a whole value.
#[derive(Debug, Clone)]
pub struct LuceneRegex {
    literal: String,
    case_insensitive: bool,
}

impl LuceneRegex {
    /// Translate `pattern`; the error is the refusal, `regex "<pattern>": <why>`.
    pub fn new(pattern: &str, case_insensitive: bool) -> Result<LuceneRegex, String> {
        if let Some(c) = pattern
            .chars()
            .find(|c| ".?+*|{}()[]\"\\#@&<>~".contains(*c))
        {
            return Err(format!("regex {pattern:?}: {c:?} is not supported"));
        }
        Ok(LuceneRegex {
            literal: if case_insensitive {
                pattern.to_ascii_lowercase()
            } else {
                pattern.to_owned()
            },
            case_insensitive,
        })
    }

    /// A text every matching value contains (lower case when case-insensitive), if any.
    pub fn required_literal(&self) -> Option<&str> {
        (!self.literal.is_empty()).then_some(self.literal.as_str())
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        if self.case_insensitive {
            value.eq_ignore_ascii_case(&self.literal)
        } else {
            value == self.literal
        }
    }
}
