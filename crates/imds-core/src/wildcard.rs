//! EQL `:` patterns: whole-value match, ASCII-only case folding, `*` and `?` over code points.

#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
}

impl Pattern {
    pub fn new(pattern: &str) -> Pattern {
        Pattern {
            source: pattern.to_string(),
        }
    }

    pub fn is_match(&self, _value: &str) -> bool {
        todo!("helper A")
    }
}
