//! Turning one line into a JSON document and reading a field's values (docs/ir.md).

use serde_json::Value;
use std::borrow::Cow;

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub reason: String,
}

/// A parsed line.
pub struct ParsedLine {
    pub doc: Value,
    /// The line as text (lossily decoded when it was not valid UTF-8).
    pub text: String,
    pub invalid_utf8: bool,
}

/// Parse one line (without its `\n`; a trailing `\r` is dropped here). `Ok(None)` for a blank line.
pub fn parse_line(_line: &[u8]) -> Result<Option<ParsedLine>, Malformed> {
    todo!("helper A")
}

/// Append the values of `path` (already split on `.`) found in `doc`, in document order.
pub fn field_values<'a>(_doc: &'a Value, _path: &[&str], _out: &mut Vec<Cow<'a, str>>) {
    todo!("helper A")
}
