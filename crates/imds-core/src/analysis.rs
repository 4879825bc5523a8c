//! Text analysis of `text` fields (spec/kql.md, Analysis), mirrored by
//! python/imds_scan/reference/analysis.py: Elasticsearch's `standard` analyzer (Lucene's
//! StandardTokenizer grammar, then lowercase) and Elastic's `powershell_script` pattern
//! analyzer, Java's `Character.toLowerCase`, and what a `query_string` wildcard with
//! `analyze_wildcard` tests each token against.
//!
//! The tokenizer runs the grammar as a DFA over character classes; the classes, the DFA and
//! the lowercase table are generated (spec/analysis/generate_tables.py) into
//! `analysis_tables.rs`.

#[path = "analysis_tables.rs"]
#[allow(clippy::all)]
mod tables;

pub use tables::{LOWERCASE_UNICODE_VERSION, UNICODE_VERSION};

/// Lucene's scanner buffer (StandardTokenizer's default max token length), in UTF-16 units.
pub const MAX_TOKEN_UNITS: usize = 255;

/// An analyzer a text field can name (the IR's `analyzer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Analyzer {
    /// Elasticsearch's `standard`: Lucene's StandardTokenizer, then lowercase.
    Standard,
    /// Elastic's Windows integration `powershell_script_analyzer`: split at runs of
    /// `[\W&&[^-]]`, then lowercase.
    PowershellScript,
}

impl Analyzer {
    /// The analyzer of an IR name (`"standard"`, `"powershell_script"`).
    pub fn from_name(name: &str) -> Option<Analyzer> {
        match name {
            "standard" => Some(Analyzer::Standard),
            "powershell_script" => Some(Analyzer::PowershellScript),
            _ => None,
        }
    }

    /// The IR name.
    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Standard => "standard",
            Analyzer::PowershellScript => "powershell_script",
        }
    }
}

// The classes of ASCII characters, looked up once (most log text is ASCII).
const ASCII_CLASSES: [u8; 128] = {
    let mut classes = [0u8; 128];
    let mut range = 0;
    let mut cp = 0;
    while cp < 128 {
        while range + 1 < tables::RANGE_STARTS.len() && tables::RANGE_STARTS[range + 1] <= cp {
            range += 1;
        }
        classes[cp as usize] = tables::RANGE_CLASSES[range];
        cp += 1;
    }
    classes
};

fn char_class(c: char) -> usize {
    let cp = c as u32;
    if cp < 128 {
        return ASCII_CLASSES[cp as usize] as usize;
    }
    let at = tables::RANGE_STARTS.partition_point(|&start| start <= cp) - 1;
    tables::RANGE_CLASSES[at] as usize
}

fn lower_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let cp = c as u32;
    let at = tables::LOWER_RUNS.partition_point(|&(first, ..)| first <= cp);
    if at == 0 {
        return c;
    }
    let (first, count, stride, delta) = tables::LOWER_RUNS[at - 1];
    let offset = cp - first;
    if !offset.is_multiple_of(stride) || offset / stride >= count {
        return c;
    }
    char::from_u32(cp.wrapping_add_signed(delta)).unwrap_or(c)
}

/// Java's `Character.toLowerCase` per code point: the simple mapping only (no locale, no
/// special casing, no final sigma), so the number of code points never changes.
pub fn lowercase(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.chars().map(lower_char).collect()
}

/// Lucene's StandardTokenizer, before lowercasing: at each point the longest match of the
/// grammar within the scanner's window of 255 UTF-16 units, else one code point skipped.
pub fn standard_tokens(text: &str) -> Vec<&str> {
    // per code point: byte offset, class, UTF-16 length
    let chars: Vec<(usize, u8, u8)> = text
        .char_indices()
        .map(|(at, c)| (at, char_class(c) as u8, c.len_utf16() as u8))
        .collect();
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(at, ..)| at);
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let (mut state, mut units, mut end) = (tables::START as usize, 0, start);
        for (pos, &(_, class, width)) in chars.iter().enumerate().skip(start) {
            units += width as usize;
            if units > MAX_TOKEN_UNITS {
                break;
            }
            state = tables::NEXT[state * tables::CLASSES + class as usize] as usize;
            if state == 0 {
                break;
            }
            if tables::ACCEPTING[state] {
                end = pos + 1;
            }
        }
        if end > start {
            tokens.push(&text[offset(start)..offset(end)]);
            start = end;
        } else {
            start += 1;
        }
    }
    tokens
}

/// The pattern tokenizer of `[\W&&[^-]]+` (Java's ASCII `\W`): the non-empty runs of ASCII
/// letters, digits, `_` and `-`.
pub fn powershell_tokens(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|piece| !piece.is_empty())
        .collect()
}

/// The tokens of `text` in position order (token `i` at position `i`).
pub fn analyze(analyzer: Analyzer, text: &str) -> Vec<String> {
    let tokens = match analyzer {
        Analyzer::Standard => standard_tokens(text),
        Analyzer::PowershellScript => powershell_tokens(text),
    };
    tokens.into_iter().map(lowercase).collect()
}

/// What one token is tested against (spec/kql.md, Analysis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenQuery {
    /// Some token equals this.
    Term(String),
    /// Some token starts with this.
    Prefix(String),
    /// Some token matches this whole, in the IR wildcard syntax (`*`, `?`, `\x`).
    Wildcard(String),
    /// The field has a value (as the `exists` op on text).
    Exists,
}

#[derive(Clone, Copy, PartialEq)]
enum Item {
    Lit(char),
    Esc(char),
    Star,
    Question,
}

// Lucene's query parser separates terms at these (Kibana escapes none of them).
fn is_parser_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{3000}')
}

fn pieces(pattern: &str) -> Vec<Vec<Item>> {
    let mut pieces = vec![Vec::new()];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let item = match c {
            '\\' => match chars.next() {
                Some(escaped) => Item::Esc(escaped),
                None => Item::Lit('\\'),
            },
            '*' => Item::Star,
            '?' => Item::Question,
            c if is_parser_space(c) => {
                pieces.push(Vec::new());
                continue;
            }
            c => Item::Lit(c),
        };
        pieces.last_mut().expect("never empty").push(item);
    }
    pieces.retain(|piece| !piece.is_empty());
    pieces
}

fn normalized_wildcard(items: &[Item]) -> String {
    // Literal runs are lowercased; escaped characters and wildcards are kept as they are.
    let mut out = String::new();
    for item in items {
        match *item {
            Item::Lit(c) => {
                let lower = lower_char(c);
                if matches!(lower, '*' | '?' | '\\') {
                    out.push('\\');
                }
                out.push(lower);
            }
            Item::Esc(c) => {
                out.push('\\');
                out.push(c);
            }
            Item::Star => out.push('*'),
            Item::Question => out.push('?'),
        }
    }
    out
}

/// A `wildcard_query` literal on a text field, as Elasticsearch's query_string parser reads
/// the query Kibana sends for it (no `analyze_wildcard`: spec/kql.md): the pred holds when
/// some entry holds for some token of the field's values; no entries: nothing matches.
pub fn wildcard_on_text(analyzer: Analyzer, pattern: &str) -> Vec<TokenQuery> {
    query_string(analyzer, pattern, false)
}

/// The same with `analyze_wildcard: true` (a prefix term's text is tokenized).
pub fn wildcard_on_text_analyzed(analyzer: Analyzer, pattern: &str) -> Vec<TokenQuery> {
    query_string(analyzer, pattern, true)
}

fn query_string(analyzer: Analyzer, pattern: &str, analyze_wildcard: bool) -> Vec<TokenQuery> {
    let mut out = Vec::new();
    for items in pieces(pattern) {
        let wild: Vec<usize> = (0..items.len())
            .filter(|&i| matches!(items[i], Item::Star | Item::Question))
            .collect();
        let text: String = items
            .iter()
            .filter_map(|item| match *item {
                Item::Lit(c) | Item::Esc(c) => Some(c),
                _ => None,
            })
            .collect();
        if wild.is_empty() {
            out.extend(analyze(analyzer, &text).into_iter().map(TokenQuery::Term));
        } else if items == [Item::Star] {
            out.push(TokenQuery::Exists);
        } else if wild == [items.len() - 1] && items[items.len() - 1] == Item::Star {
            if !analyze_wildcard {
                out.push(TokenQuery::Prefix(lowercase(&text)));
                continue;
            }
            let mut tokens = analyze(analyzer, &text);
            if let Some(last) = tokens.pop() {
                out.extend(tokens.into_iter().map(TokenQuery::Term));
                out.push(TokenQuery::Prefix(last));
            }
        } else {
            out.push(TokenQuery::Wildcard(normalized_wildcard(&items)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        assert_eq!(tables::RANGE_STARTS[0], 0);
        assert!(tables::RANGE_STARTS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(tables::NEXT.len() % tables::CLASSES, 0);
        assert_eq!(
            tables::NEXT.len() / tables::CLASSES,
            tables::ACCEPTING.len()
        );
        assert!(tables::NEXT[..tables::CLASSES].iter().all(|&s| s == 0));
        for cp in 0..128u32 {
            let at = tables::RANGE_STARTS.partition_point(|&start| start <= cp) - 1;
            assert_eq!(
                ASCII_CLASSES[cp as usize],
                tables::RANGE_CLASSES[at],
                "{cp}"
            );
        }
    }

    #[test]
    fn lowercase_is_simple() {
        assert_eq!(lowercase("İSTANBUL ΣΑΣ ẞ \u{212A}"), "istanbul σασ ß k");
        assert_eq!(lowercase("ß ı ſ"), "ß ı ſ");
    }
}
