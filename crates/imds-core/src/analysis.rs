//! Text analysis (spec/kql.md, "Analysis").
//!
//! STAND-IN (kqlops): the smallest analysis with the agreed signature, until kqlan's
//! implementation lands on main: tokens are the maximal runs of word characters (ASCII
//! letters and digits, every non-ASCII code point; `powershell_script` also `_` and `-`),
//! lowercased as the `lowercase` normalizer does. The Python reference engine's
//! `reference/analysis.py` has the same stand-in.

use crate::ir::Analyzer;

/// The tokens of `text` under `analyzer`, in order.
pub fn analyze(analyzer: Analyzer, text: &str) -> Vec<String> {
    let word = |c: char| match analyzer {
        Analyzer::Standard => c.is_ascii_alphanumeric() || !c.is_ascii(),
        Analyzer::PowershellScript => {
            c.is_ascii_alphanumeric() || !c.is_ascii() || c == '_' || c == '-'
        }
    };
    text.split(|c: char| !word(c))
        .filter(|t| !t.is_empty())
        .map(|t| crate::typed::java_lowercase(t).into_owned())
        .collect()
}
