//! Turning one line into a JSON document and reading a field's values (spec/ir.md).

use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::ops::{ControlFlow, Range};

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The reason, for the user.
    pub reason: String,
}

/// A parsed line.
#[derive(Debug)]
pub struct ParsedLine<'l> {
    /// The JSON object. Numbers are stored as [`Value::String`]s holding their JSON text
    /// verbatim (see [`parse_document`]).
    pub doc: Value,
    /// The event's text: the line (lossily decoded when it was not valid UTF-8), or, for an
    /// exporter's wrapper, the text of its `_source` object. Borrowed from the line when it
    /// is valid UTF-8 (no copy of a long line).
    pub text: Cow<'l, str>,
    /// The line was not valid UTF-8 (decoded with U+FFFD replacements).
    pub invalid_utf8: bool,
    /// Which of `doc`'s strings were JSON numbers: their text buffers' addresses, sorted
    /// ([`is_json_number`]). Typed fields read a JSON number and a string differently.
    pub numbers: Vec<usize>,
}

/// Whether `value`, a value of a document parsed with `numbers` ([`ParsedLine::numbers`]),
/// was a JSON number: a number's text is its own allocation, so its address names it. (A
/// number of a document built elsewhere, a [`Value::Number`], comes owned.)
#[allow(clippy::ptr_arg)] // whether the value is borrowed is the point
pub fn is_json_number(value: &Cow<'_, str>, numbers: &[usize]) -> bool {
    match value {
        Cow::Borrowed(s) => !s.is_empty() && numbers.binary_search(&(s.as_ptr() as usize)).is_ok(),
        Cow::Owned(_) => true,
    }
}

/// JSON's insignificant whitespace; a line of only these is blank (not an event).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parse one line (without its `\n`; a trailing `\r` is dropped here). `Ok(None)` for a blank line.
pub fn parse_line(line: &[u8]) -> Result<Option<ParsedLine<'_>>, Malformed> {
    parse_line_with(line, None, &mut Scratch::default(), true)
}

/// [`parse_line`], building only the members on a path of `projection` (the rest is checked
/// as before but not built), so the document gives the same values for those paths and the
/// line is malformed exactly when, and for the same reason as, with [`parse_line`].
pub fn parse_line_projected<'l>(
    line: &'l [u8],
    projection: &Projection,
) -> Result<Option<ParsedLine<'l>>, Malformed> {
    parse_line_with(
        line,
        Some((projection, None)),
        &mut Scratch::default(),
        true,
    )
}

/// [`parse_line_projected`] of an event's text as a hit holds it (a line's, or the `_source`
/// of an exporter's wrapper): the text is the event, so an `_index` and an object `_source`
/// in it are fields like any other (no wrapper is unwrapped again, as the rows read it).
pub fn parse_event_projected<'t>(
    text: &'t str,
    projection: &Projection,
) -> Result<Option<ParsedLine<'t>>, Malformed> {
    let projection = Some((projection, None));
    parse_line_with(text.as_bytes(), projection, &mut Scratch::default(), false)
}

/// [`parse_line_projected`] for the rules `open` holds (a set of [`OpenRules::fill`]) of a
/// projection [`Projection::by_rule`] made: only the members on their paths are built, so the
/// document gives the same values as [`parse_line`] for every field of an open rule (a
/// projection without rules builds all its paths). Malformed exactly as with [`parse_line`].
pub fn parse_line_for<'l>(
    line: &'l [u8],
    projection: &Projection,
    open: &OpenRules,
) -> Result<Option<ParsedLine<'l>>, Malformed> {
    parse_line_reusing(line, projection, Some(open), &mut Scratch::default())
}

/// [`parse_line_for`] (or, without `open`, [`parse_line_projected`]), building the document
/// in the buffers of the documents given back to `scratch` ([`Scratch::recycle`]), so that
/// most lines allocate little.
pub(crate) fn parse_line_reusing<'l>(
    line: &'l [u8],
    projection: &Projection,
    open: Option<&OpenRules>,
    scratch: &mut Scratch,
) -> Result<Option<ParsedLine<'l>>, Malformed> {
    let open = open.filter(|_| !projection.rules_unknown).map(|o| &o.0[..]);
    parse_line_with(line, Some((projection, open)), scratch, true)
}

/// Buffers of the documents parsed before ([`Scratch::recycle`]), which
/// [`parse_line_reusing`] builds the next ones in: a candidate line's few maps, arrays and
/// strings are then not allocated and freed each time. Keeps a bounded number of small ones.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    maps: Vec<Map<String, Value>>,
    arrays: Vec<Vec<Value>>,
    strings: Vec<String>,
    numbers: Vec<usize>,
}

/// Buffers of each kind a [`Scratch`] keeps, and the most entries (or bytes, for a string)
/// of one it keeps: the memory it holds stays small whatever the lines.
const SCRATCH_BUFFERS: usize = 64;
const SCRATCH_ENTRIES: usize = 64;
const SCRATCH_BYTES: usize = 256;

impl Scratch {
    /// Give back a line's document and numbers once done with them.
    pub(crate) fn recycle(&mut self, line: ParsedLine<'_>) {
        let mut numbers = line.numbers;
        if numbers.capacity() <= SCRATCH_BYTES {
            numbers.clear();
            self.numbers = numbers;
        }
        self.put(line.doc);
    }

    fn put(&mut self, value: Value) {
        match value {
            Value::String(mut s) => {
                if s.capacity() <= SCRATCH_BYTES && self.strings.len() < SCRATCH_BUFFERS {
                    s.clear();
                    self.strings.push(s);
                }
            }
            Value::Array(mut items) => {
                let keep = items.len() <= SCRATCH_ENTRIES;
                for item in items.drain(..) {
                    self.put(item);
                }
                if keep && self.arrays.len() < SCRATCH_BUFFERS {
                    self.arrays.push(items);
                }
            }
            Value::Object(mut map) => {
                let keep = map.len() <= SCRATCH_ENTRIES;
                // (The keys go: a map gives none back without being consumed.)
                map.retain(|_, value| {
                    self.put(std::mem::take(value));
                    false
                });
                if keep && self.maps.len() < SCRATCH_BUFFERS {
                    self.maps.push(map);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn array(&mut self) -> Vec<Value> {
        self.arrays.pop().unwrap_or_default()
    }

    fn map(&mut self) -> Map<String, Value> {
        self.maps.pop().unwrap_or_default()
    }

    fn string(&mut self, text: &str) -> String {
        match self.strings.pop() {
            Some(mut s) => {
                s.push_str(text);
                s
            }
            None => text.to_owned(),
        }
    }

    fn key(&mut self, key: Cow<'_, str>) -> String {
        match key {
            Cow::Borrowed(key) => self.string(key),
            Cow::Owned(key) => key,
        }
    }
}

/// `unwrap`: an exporter's wrapper is its `_source` (a line), or a document like any other
/// (an event's text).
fn parse_line_with<'l>(
    line: &'l [u8],
    projection: Option<(&Projection, Option<&[u64]>)>,
    scratch: &mut Scratch,
    unwrap: bool,
) -> Result<Option<ParsedLine<'l>>, Malformed> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|&b| is_json_space(b)) {
        return Ok(None);
    }
    let (text, invalid_utf8) = match std::str::from_utf8(line) {
        Ok(text) => (Cow::Borrowed(text), false),
        // U+FFFD per maximal invalid subpart, as spec/ir.md (and Python's decoder) do.
        Err(_) => (String::from_utf8_lossy(line), true),
    };
    let (doc, source, mut numbers) = parse_top(&text, projection, scratch)?;
    numbers.sort_unstable();
    let source = source.filter(|_| unwrap);
    Ok(Some(match unwrap_export(doc, source) {
        Ok((doc, span)) => ParsedLine {
            doc,
            text: match text {
                Cow::Borrowed(text) => Cow::Borrowed(&text[span]),
                Cow::Owned(text) => Cow::Owned(text[span].to_owned()),
            },
            invalid_utf8,
            numbers,
        },
        Err(doc) => ParsedLine {
            doc,
            text,
            invalid_utf8,
            numbers,
        },
    }))
}

/// An exporter's wrapper (spec/ir.md, Lines): a top-level object with an `_index` member and
/// an `_source` member that is an object, as elasticdump writes and as search hits are. The
/// event is the `_source` object (with where its text is in the line); other documents are
/// given back as they are.
fn unwrap_export(doc: Value, span: Option<Range<usize>>) -> Result<(Value, Range<usize>), Value> {
    match (doc, span) {
        (Value::Object(mut map), Some(span))
            if map.contains_key("_index")
                && matches!(map.get("_source"), Some(Value::Object(_))) =>
        {
            let source = map.remove("_source").unwrap_or_default();
            Ok((source, span))
        }
        (doc, _) => Err(doc),
    }
}

/// A document, where its `_source` member's value is, and its numbers' addresses.
type Parsed = (Value, Option<Range<usize>>, Vec<usize>);

/// Parse a JSON text that must be an object.
///
/// serde_json decides what is valid JSON (and words the errors), but its `arbitrary_precision`
/// numbers are not verbatim: it rewrites exponents (`1E3` → `1e+3`). So the document is built
/// here, with each number kept as a string of its exact JSON text, which is what a string
/// field compares it as.
pub fn parse_document(text: &str) -> Result<Value, Malformed> {
    parse_top(text, None, &mut Scratch::default()).map(|(doc, _, _)| doc)
}

/// [`parse_document`], and where the value of the top-level object's last `_source` member is.
///
/// One pass builds the document and checks the grammar serde_json accepts. The line is
/// malformed as if serde_json checked it first: when the builder stops, serde_json reads the
/// text, and its error, if any, is the reason (the builder's own reasons are for JSON that is
/// no object or nests too deep). Malformed lines are rare, so the second read costs nothing.
fn parse_top(
    text: &str,
    projection: Option<(&Projection, Option<&[u64]>)>,
    scratch: &mut Scratch,
) -> Result<Parsed, Malformed> {
    let numbers = std::mem::take(&mut scratch.numbers);
    let mut builder = Builder {
        text,
        pos: 0,
        depth: 0,
        kinds: [0; KIND_WORDS],
        source: None,
        projection: projection.map(|(p, _)| p),
        open: projection.and_then(|(_, open)| open),
        numbers,
        scratch,
    };
    match builder.document() {
        Ok(doc) => Ok((doc, builder.source, builder.numbers)),
        Err(ours) => {
            serde_json::from_str::<IgnoredAny>(text).map_err(|e| json_error(&e, 0))?;
            Err(ours)
        }
    }
}

/// serde_json's message, with the column in the line (lines are single-line, so its "line 1"
/// adds nothing). `offset`: where the text serde_json parsed starts in the line.
fn json_error(e: &serde_json::Error, offset: usize) -> Malformed {
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let what = message.strip_suffix(&position).unwrap_or(&message);
    Malformed {
        reason: format!("invalid JSON: {what} at column {}", offset + e.column()),
    }
}

/// Words in [`Builder::kinds`]: a bit for each nesting level up to [`MAX_NESTING`].
const KIND_WORDS: usize = MAX_NESTING / 64 + 1;

/// Builds a [`Value`] from a JSON text, checking as it goes the grammar serde_json's
/// `IgnoredAny` accepts (RFC 8259: four whitespace bytes, no control byte in a string, escapes
/// `\" \\ \/ \b \f \n \r \t \uXXXX` with any code unit, numbers of any size; no depth limit of
/// its own) and the nesting limit. Members a projection does not read are checked, not built.
/// (String escapes are decoded by serde_json; a `\u` escape of a lone surrogate, which
/// serde_json refuses, becomes U+FFFD as Elasticsearch indexes it: spec/ir.md, Lines.)
struct Builder<'t> {
    text: &'t str,
    pos: usize,
    /// Containers open around `pos`.
    depth: usize,
    /// For [`Builder::skip_value`]: bit `d` is set when the container open at depth `d` is an
    /// object (clear: an array).
    kinds: [u64; KIND_WORDS],
    /// The text of the value of the top-level object's last `_source` member.
    source: Option<Range<usize>>,
    /// The paths to build (`None`: all).
    projection: Option<&'t Projection>,
    /// Only those of these rules ([`Projection::by_rule`]; `None`: of every rule).
    open: Option<&'t [u64]>,
    /// The addresses of the number strings built ([`ParsedLine::numbers`]).
    numbers: Vec<usize>,
    /// Where maps, arrays and strings come from.
    scratch: &'t mut Scratch,
}

/// The field paths the rules read, as a tree of path parts: the members a projected parse
/// builds ([`parse_line_projected`]).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    root: Node,
    /// For the top-level `_source` member: the root's paths (it may be the event) and the
    /// paths through `_source`.
    source: Node,
    /// Made by [`Projection::new`]: its paths belong to no rule, so every one is built.
    rules_unknown: bool,
}

/// The rules open on a line, as [`parse_line_for`] takes them: bit `r` for rule `r`.
#[derive(Debug, Clone, Default)]
pub struct OpenRules(Vec<u64>);

impl OpenRules {
    /// Hold the rules `open` lists, of `rules` rules.
    pub fn fill(&mut self, open: &[usize], rules: usize) {
        self.0.clear();
        self.0.resize(rules.div_ceil(64), 0);
        for &r in open {
            self.0[r / 64] |= 1 << (r % 64);
        }
    }
}

/// Whether the rule sets `a` and `b` (bit `r`: rule `r`) share a rule.
fn meets(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// A path ends here: everything below is built.
    end: bool,
    children: Vec<(String, Node)>,
    /// Bit `b % 64` set when a child's name starts with a byte `b` (bit 0 too for the empty
    /// name): most keys of an event are ruled out by one test, without comparing names.
    first_bytes: u64,
    /// With rules ([`Projection::by_rule`]): bit `r` set when a path of rule `r` ends here.
    ends: Vec<u64>,
    /// Bit `r` set when a path of rule `r` ends here or below.
    uses: Vec<u64>,
}

impl Node {
    fn add<'p>(&mut self, path: impl IntoIterator<Item = &'p str>, rule: Option<usize>) {
        let mark = |bits: &mut Vec<u64>| {
            if let Some(r) = rule {
                if bits.len() <= r / 64 {
                    bits.resize(r / 64 + 1, 0);
                }
                bits[r / 64] |= 1 << (r % 64);
            }
        };
        let mut node = self;
        mark(&mut node.uses);
        for part in path {
            let at = match node.children.iter().position(|(p, _)| p == part) {
                Some(at) => at,
                None => {
                    node.first_bytes |= first_byte_bit(part);
                    node.children.push((part.to_owned(), Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
            mark(&mut node.uses);
        }
        node.end = true;
        mark(&mut node.ends);
    }

    /// Whether a path ends here (of one of the `open` rules, when given).
    fn ends_for(&self, open: Option<&[u64]>) -> bool {
        self.end && open.is_none_or(|open| meets(&self.ends, open))
    }

    /// What to build of the member `key` (split on `.`, as field lookup reads it): `None` to
    /// skip it, `Some(None)` all of it (a path ends at or above it), `Some(Some(node))` the
    /// paths of `node` below it. (Walks the key's parts in place: no splitting per member.)
    /// `open`: only the paths of these rules ([`Projection::by_rule`]).
    fn member(&self, key: &str, open: Option<&[u64]>) -> Option<Option<&Node>> {
        let mut node = self;
        let mut rest = key;
        loop {
            if node.ends_for(open) {
                return Some(None);
            }
            if node.first_bytes & first_byte_bit(rest) == 0 {
                return None;
            }
            // The child named by the key's next part (names hold no `.`).
            let first = rest.as_bytes().first();
            let (child, after) = node.children.iter().find_map(|(name, child)| {
                // Most names differ at their first byte: no comparison call for them.
                if name.as_bytes().first().is_some_and(|b| Some(b) != first) {
                    return None;
                }
                let after = rest.strip_prefix(name.as_str())?;
                (after.is_empty() || after.starts_with('.')).then_some((child, after))
            })?;
            if open.is_some_and(|open| !meets(&child.uses, open)) {
                return None; // only closed rules' paths go there
            }
            node = child;
            match after.strip_prefix('.') {
                Some(after) => rest = after,
                None => return Some((!node.ends_for(open)).then_some(node)),
            }
        }
    }
}

/// [`Node::first_bytes`]'s bit for a name (or key rest) starting with `name`'s first byte.
fn first_byte_bit(name: &str) -> u64 {
    // A rest that is empty or starts with `.` has an empty next part, which only an empty
    // name matches: both take the empty name's bit 0 (no name starts with `.`).
    match name.as_bytes().first() {
        None | Some(b'.') => 1,
        Some(&b) => 1 << (b % 64),
    }
}

impl Projection {
    /// The projection of these fields (dotted paths, as in the IR).
    pub fn new<'f>(fields: impl IntoIterator<Item = &'f str>) -> Projection {
        let mut projection = Projection {
            rules_unknown: true,
            ..Projection::default()
        };
        for field in fields {
            projection.add(field, None);
        }
        projection
    }

    /// The projection of each rule's fields (rule `r`: the `r`-th), which
    /// [`parse_line_for`] narrows to the rules open on a line; [`parse_line_projected`]
    /// builds every rule's paths, as with [`Projection::new`].
    pub fn by_rule<'f, F>(rules: impl IntoIterator<Item = F>) -> Projection
    where
        F: IntoIterator<Item = &'f str>,
    {
        let mut projection = Projection::default();
        for (r, fields) in rules.into_iter().enumerate() {
            for field in fields {
                projection.add(field, Some(r));
            }
        }
        projection
    }

    fn add(&mut self, field: &str, rule: Option<usize>) {
        self.root.add(field.split('.'), rule);
        self.source.add(field.split('.'), rule);
        if let Some(rest) = field.strip_prefix("_source.") {
            self.source.add(rest.split('.'), rule);
        } else if field == "_source" {
            // The whole of a wrapper's `_source`, whichever rules are open.
            self.source.end = true;
        }
    }
}

/// Most containers (objects and arrays) one document may nest: the limit of Elasticsearch's
/// JSON parser (Jackson's `StreamReadConstraints` default), so no document a cluster could
/// index is dropped. Bounds the builder's recursion, so hostile input cannot overflow the
/// stack (`IgnoredAny` checks no depth).
pub const MAX_NESTING: usize = 1000;

impl<'t> Builder<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    #[inline]
    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_json_space) {
            self.pos += 1;
        }
    }

    /// The builder's reason for text that is not JSON; only seen if serde_json disagreed
    /// ([`parse_top`] asks it for its own reason first).
    #[cold]
    fn unexpected(&self) -> Malformed {
        Malformed {
            reason: format!("invalid JSON at column {}", self.pos + 1),
        }
    }

    /// Consume `byte` (after whitespace) if it is next.
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Malformed> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// The whole text: an object, projected or not, and nothing after it but whitespace.
    fn document(&mut self) -> Result<Value, Malformed> {
        self.skip_space();
        if self.peek() != Some(b'{') {
            return Err(Malformed {
                reason: "not a JSON object".into(),
            });
        }
        let doc = match self.projection {
            Some(projection) => self.object_in(&projection.root)?,
            None => self.object()?,
        };
        self.skip_space();
        if self.pos == self.text.len() {
            Ok(doc)
        } else {
            Err(self.unexpected())
        }
    }

    fn value(&mut self) -> Result<Value, Malformed> {
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal("false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal("null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number_value(),
            _ => Err(self.unexpected()),
        }
    }

    /// A number, kept as its text, whose address is remembered ([`ParsedLine::numbers`]).
    /// Not inlined: `value` recurses as deep as the document nests, so its frame stays small.
    #[inline(never)]
    fn number_value(&mut self) -> Result<Value, Malformed> {
        let start = self.pos;
        self.number()?;
        let text = self.scratch.string(&self.text[start..self.pos]);
        self.numbers.push(text.as_ptr() as usize);
        Ok(Value::String(text))
    }

    fn literal(&mut self, word: &str) -> Result<(), Malformed> {
        if self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// A number ([`skip_number`]).
    fn number(&mut self) -> Result<(), Malformed> {
        match skip_number(self.text.as_bytes(), self.pos) {
            Ok(end) => {
                self.pos = end;
                Ok(())
            }
            Err(at) => {
                self.pos = at;
                Err(self.unexpected())
            }
        }
    }

    /// Pass over the string whose opening quote is at `pos`, checking it; whether it has
    /// escapes (else its contents are the text between its quotes). Inlined: a line is
    /// mostly short strings without escapes, which take one step here.
    #[inline(always)]
    fn scan_string(&mut self) -> Result<bool, Malformed> {
        let bytes = self.text.as_bytes();
        let i = string_stop(bytes, self.pos + 1);
        if bytes.get(i) == Some(&b'"') {
            self.pos = i + 1;
            return Ok(false);
        }
        self.scan_escapes(i)
    }

    /// The rest of [`Builder::scan_string`] from `i`, a backslash, a control byte or the end.
    #[inline(never)]
    fn scan_escapes(&mut self, i: usize) -> Result<bool, Malformed> {
        match skip_escapes(self.text.as_bytes(), i) {
            Ok(end) => {
                self.pos = end;
                Ok(true)
            }
            Err(at) => {
                self.pos = at;
                Err(self.unexpected())
            }
        }
    }

    /// The decoded contents of the string at `pos`.
    fn string(&mut self) -> Result<String, Malformed> {
        let start = self.pos;
        if !self.scan_string()? {
            return Ok(self.scratch.string(&self.text[start + 1..self.pos - 1]));
        }
        let (raw, quoted) = (
            &self.text[start + 1..self.pos - 1],
            &self.text[start..self.pos],
        );
        if let Some(decoded) = unescape_short(raw) {
            return Ok(decoded);
        }
        serde_json::from_str::<String>(quoted)
            .or_else(|e| unescape_lossy(raw).ok_or_else(|| json_error(&e, start)))
    }

    /// A member's key, borrowed from the text unless it has escapes: most members of a
    /// projected object are passed over, so their keys are never copied.
    fn key(&mut self) -> Result<Cow<'t, str>, Malformed> {
        let text: &'t str = self.text;
        let start = self.pos;
        if self.scan_string()? {
            self.pos = start;
            return self.string().map(Cow::Owned);
        }
        Ok(Cow::Borrowed(&text[start + 1..self.pos - 1]))
    }

    /// A value a repeated key replaced is dropped while the line is parsed: its numbers'
    /// addresses are forgotten, or a string built later at one of them would pass for a
    /// number ([`ParsedLine::numbers`]). Repeated keys are rare; a loop, not recursion.
    #[cold]
    #[inline(never)]
    fn forget_numbers(&mut self, old: &Value) {
        let mut stack = vec![old];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(s) => {
                    let at = s.as_ptr() as usize;
                    if let Some(i) = self.numbers.iter().position(|&n| n == at) {
                        self.numbers.swap_remove(i);
                    }
                }
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.values()),
                _ => {}
            }
        }
    }

    /// The reason for a bracket at `pos` nested deeper than [`MAX_NESTING`].
    #[cold]
    fn too_deep(&self) -> Malformed {
        Malformed {
            reason: format!(
                "nested deeper than {MAX_NESTING} levels (Elasticsearch's limit) at column {}",
                self.pos + 1
            ),
        }
    }

    /// Enter `[` or `{` (at `pos`), or fail when nested too deep.
    fn open(&mut self) -> Result<(), Malformed> {
        if self.depth == MAX_NESTING {
            return Err(self.too_deep());
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    /// Pass over the next value, checking it, without building it ([`skip`]).
    fn skip_value(&mut self) -> Result<(), Malformed> {
        match skip(self.text.as_bytes(), self.pos, self.depth, &mut self.kinds) {
            Ok(end) => {
                self.pos = end;
                Ok(())
            }
            Err(stop) => Err(self.stopped(stop)),
        }
    }

    /// The reason for where a [`skip`] stopped.
    #[cold]
    fn stopped(&mut self, stop: Stop) -> Malformed {
        match stop {
            Stop::Syntax(at) => {
                self.pos = at;
                self.unexpected()
            }
            Stop::Deep(at) => {
                self.pos = at;
                self.too_deep()
            }
        }
    }

    fn array(&mut self) -> Result<Value, Malformed> {
        self.open()?;
        let mut items = self.scratch.array();
        if self.eat(b']') {
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat(b']') {
                self.depth -= 1;
                return Ok(Value::Array(items));
            }
            self.expect(b',')?;
        }
    }

    fn object(&mut self) -> Result<Value, Malformed> {
        self.open()?;
        let mut map = self.scratch.map();
        if self.eat(b'}') {
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let key = self.string()?;
            self.expect(b':')?;
            self.skip_space();
            let start = self.pos;
            let value = self.value()?;
            if self.depth == 1 && key == "_source" {
                self.source = Some(start..self.pos);
            }
            // A repeated key keeps its first position and takes the last value (IndexMap).
            if let Some(old) = map.insert(key, value) {
                self.forget_numbers(&old);
            }
            if self.eat(b'}') {
                self.depth -= 1;
                return Ok(Value::Object(map));
            }
            self.expect(b',')?;
        }
    }

    /// The next value, with only the paths below `node` built. (Apart from the full
    /// [`Builder::value`], whose frames are on the stack once per nesting level.)
    fn value_in(&mut self, node: &'t Node) -> Result<Value, Malformed> {
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.object_in(node),
            // Field lookup reads an array's elements as the array itself.
            Some(b'[') => {
                self.open()?;
                let mut items = self.scratch.array();
                if self.eat(b']') {
                    self.depth -= 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value_in(node)?);
                    if self.eat(b']') {
                        self.depth -= 1;
                        return Ok(Value::Array(items));
                    }
                    self.expect(b',')?;
                }
            }
            _ => self.value(),
        }
    }

    fn object_in(&mut self, node: &'t Node) -> Result<Value, Malformed> {
        self.open()?;
        let mut map = self.scratch.map();
        if self.eat(b'}') {
            self.depth -= 1;
            return Ok(Value::Object(map));
        }
        // The keys that may be read: those `node.member` does not rule out by their first
        // byte, and the top level's `_source` and `_index`.
        let read = node.first_bytes | if self.depth == 1 { key_bit(b'_') } else { 0 };
        loop {
            self.skip_space();
            // Most members are read by no path: passed over in one loop.
            match skip_members(
                self.text.as_bytes(),
                self.pos,
                self.depth,
                &mut self.kinds,
                read,
            ) {
                Ok((end, true)) => {
                    self.pos = end;
                    self.depth -= 1;
                    return Ok(Value::Object(map));
                }
                Ok((at, false)) => self.pos = at,
                Err(stop) => return Err(self.stopped(stop)),
            }
            let key = self.key()?;
            self.expect(b':')?;
            self.skip_space();
            let start = self.pos;
            let member = if self.depth == 1 && key == "_source" {
                // Whether a wrapper's `_source` is the event is only known at the end.
                Some(self.projection.map(|p| &p.source).filter(|s| !s.end))
            } else {
                node.member(&key, self.open)
            };
            let value = match member {
                Some(None) => self.value()?,
                Some(Some(node)) => self.value_in(node)?,
                None => {
                    self.skip_value()?;
                    if self.depth == 1 && key == "_index" {
                        // Only its presence matters (to unwrap a wrapper); no path reads it.
                        map.insert(self.scratch.key(key), Value::Null);
                    }
                    if self.eat(b'}') {
                        self.depth -= 1;
                        return Ok(Value::Object(map));
                    }
                    self.expect(b',')?;
                    continue;
                }
            };
            if self.depth == 1 && key == "_source" {
                self.source = Some(start..self.pos);
            }
            if let Some(old) = map.insert(self.scratch.key(key), value) {
                self.forget_numbers(&old);
            }
            if self.eat(b'}') {
                self.depth -= 1;
                return Ok(Value::Object(map));
            }
            self.expect(b',')?;
        }
    }
}

/// Where [`skip`] stopped: at the first byte that breaks the grammar, or at a bracket nested
/// deeper than [`MAX_NESTING`].
enum Stop {
    Syntax(usize),
    Deep(usize),
}

/// The byte at `i`, or 0 past the end (0 is wrong everywhere in JSON outside strings).
#[inline(always)]
fn byte_at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// The first byte at or after `i` that is not JSON whitespace.
#[inline(always)]
fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while is_json_space(byte_at(bytes, i)) {
        i += 1;
    }
    i
}

/// Where the JSON value at `i` (after whitespace) ends, checked as the parser checks it;
/// `None` where it breaks.
pub(crate) fn value_end(bytes: &[u8], i: usize) -> Option<usize> {
    let mut kinds = [0u64; KIND_WORDS];
    skip(bytes, i, 0, &mut kinds).ok()
}

/// Pass over the members, from the key at `i`, of an object whose keys' first bytes are
/// outside `read` (bits as [`key_bit`] gives them; an escaped key is never passed over):
/// `(end, true)` when the object ends (after its `}`), `(at, false)` at a member whose key may
/// be read (at its quote); `None` where the text breaks.
pub(crate) fn pass_members(bytes: &[u8], i: usize, read: u64) -> Option<(usize, bool)> {
    let mut kinds = [0u64; KIND_WORDS];
    skip_members(bytes, i, 0, &mut kinds, read).ok()
}

/// Pass over the value at `i` (after whitespace) in a text whose containers open around `i`
/// are `depth` deep, checking it as [`Builder`] does; where the value ends. A loop, not
/// recursion: `kinds` (as [`Builder::kinds`]) says which kind each open container is. Apart
/// from the builder's methods so that the position and depth stay in registers: most of a
/// projected line passes through here.
fn skip(
    bytes: &[u8],
    mut i: usize,
    base: usize,
    kinds: &mut [u64; KIND_WORDS],
) -> Result<usize, Stop> {
    let mut depth = base;
    'value: loop {
        // A value is next.
        i = skip_ws(bytes, i);
        match byte_at(bytes, i) {
            b'"' => i = skip_string(bytes, i).map_err(Stop::Syntax)?,
            open @ (b'{' | b'[') => {
                if depth == MAX_NESTING {
                    return Err(Stop::Deep(i));
                }
                depth += 1;
                let (word, bit) = (depth / 64, 1u64 << (depth % 64));
                i = skip_ws(bytes, i + 1);
                if open == b'{' {
                    kinds[word] |= bit;
                    if byte_at(bytes, i) == b'}' {
                        i += 1;
                        depth -= 1;
                    } else {
                        match plain_member(bytes, i) {
                            Plain::Member(end) => i = end,
                            Plain::Key(value) => {
                                i = value;
                                continue 'value;
                            }
                            Plain::No => {
                                i = skip_member_key(bytes, i)?;
                                continue 'value;
                            }
                        }
                    }
                } else {
                    kinds[word] &= !bit;
                    if byte_at(bytes, i) != b']' {
                        continue 'value;
                    }
                    i += 1;
                    depth -= 1;
                }
            }
            b't' => i = skip_word(bytes, i, b"true")?,
            b'f' => i = skip_word(bytes, i, b"false")?,
            b'n' => i = skip_word(bytes, i, b"null")?,
            b'-' | b'0'..=b'9' => i = skip_number(bytes, i).map_err(Stop::Syntax)?,
            _ => return Err(Stop::Syntax(i)),
        }
        // A value ended: close the containers that end here, until one goes on.
        loop {
            if depth == base {
                return Ok(i);
            }
            let object = kinds[depth / 64] & (1 << (depth % 64)) != 0;
            i = skip_ws(bytes, i);
            match byte_at(bytes, i) {
                b',' => {
                    i += 1;
                    if object {
                        i = skip_ws(bytes, i);
                        match plain_member(bytes, i) {
                            Plain::Member(end) => {
                                i = end;
                                continue;
                            }
                            Plain::Key(value) => i = value,
                            Plain::No => i = skip_member_key(bytes, i)?,
                        }
                    }
                    continue 'value;
                }
                b'}' if object => {}
                b']' if !object => {}
                _ => return Err(Stop::Syntax(i)),
            }
            i += 1;
            depth -= 1;
        }
    }
}

/// Pass over the members, from the key at `i`, of the object open at `depth` whose keys'
/// first bytes are outside `read` (bits as [`Node::first_bytes`]; an escaped key is never
/// passed over): `(end, true)` when the object ends (after its `}`), `(at, false)` at a member
/// whose key may be read (at its quote).
#[inline(always)]
fn skip_members(
    bytes: &[u8],
    mut i: usize,
    depth: usize,
    kinds: &mut [u64; KIND_WORDS],
    read: u64,
) -> Result<(usize, bool), Stop> {
    loop {
        if byte_at(bytes, i) != b'"' {
            return Err(Stop::Syntax(i));
        }
        let first = byte_at(bytes, i + 1);
        if first == b'\\' || read & key_bit(first) != 0 {
            return Ok((i, false));
        }
        i = match plain_member(bytes, i) {
            Plain::Member(end) => end,
            Plain::Key(value) => skip(bytes, value, depth, kinds)?,
            Plain::No => skip(bytes, skip_member_key(bytes, i)?, depth, kinds)?,
        };
        i = skip_ws(bytes, i);
        match byte_at(bytes, i) {
            b',' => i = skip_ws(bytes, i + 1),
            b'}' => return Ok((i + 1, true)),
            _ => return Err(Stop::Syntax(i)),
        }
    }
}

/// The member at `i` when it is `"key":"value"` with neither string holding an escape or a
/// control byte, and both within 64 bytes (most members of a log line): where it ends. One
/// scan of the 64 bytes finds its four quotes, where two [`skip_string`]s take two scans and
/// more branches.
#[inline(always)]
fn plain_member(bytes: &[u8], i: usize) -> Plain {
    let Some(chunk) = bytes.get(i..i + 64) else {
        return Plain::No;
    };
    if chunk[0] != b'"' {
        return Plain::No;
    }
    // The stops after the key's opening quote: the first must close the key, right before
    // `:`; then, for a string value, the next must close it.
    let stops = stops_64(chunk) & !1;
    let key_end = stops.trailing_zeros() as usize;
    if key_end >= 62 || chunk[key_end] != b'"' || chunk[key_end + 1] != b':' {
        return Plain::No;
    }
    if chunk[key_end + 2] != b'"' {
        return Plain::Key(i + key_end + 2);
    }
    let stops = stops & !(2u64 << (key_end + 2)).wrapping_sub(1);
    let value_end = stops.trailing_zeros() as usize;
    if value_end < 64 && chunk[value_end] == b'"' {
        Plain::Member(i + value_end + 1)
    } else {
        Plain::Key(i + key_end + 2)
    }
}

/// What [`plain_member`] passed over.
enum Plain {
    /// The whole member: where it ends.
    Member(usize),
    /// Its key and `:`: where the value starts.
    Key(usize),
    /// Nothing.
    No,
}

/// Bit `k` set when byte `k` of `chunk` (64 bytes) is `"`, `\` or a control byte: where a
/// string's scan stops ([`string_stop`]).
#[inline(always)]
fn stops_64(chunk: &[u8]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use safe_arch::*;
        let splat = |b: u8| set_splat_i8_m128i(b as i8);
        let stops = |part: &[u8]| {
            let v = load_unaligned_m128i(part.try_into().unwrap_or(&[0; 16]));
            let control = cmp_eq_mask_i8_m128i(min_u8_m128i(v, splat(0x1F)), v);
            let quote = cmp_eq_mask_i8_m128i(v, splat(b'"'));
            let backslash = cmp_eq_mask_i8_m128i(v, splat(b'\\'));
            u64::from(
                move_mask_i8_m128i(bitor_m128i(control, bitor_m128i(quote, backslash))) as u16,
            )
        };
        stops(&chunk[..16])
            | stops(&chunk[16..32]) << 16
            | stops(&chunk[32..48]) << 32
            | stops(&chunk[48..64]) << 48
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        chunk.iter().take(64).enumerate().fold(0, |m, (k, &b)| {
            m | u64::from(b == b'"' || b == b'\\' || b < 0x20) << k
        })
    }
}

/// [`first_byte_bit`] of a key whose first byte (after its opening quote) is `b`.
#[inline(always)]
pub(crate) fn key_bit(b: u8) -> u64 {
    match b {
        b'"' | b'.' => 1,
        b => 1 << (b % 64),
    }
}

/// Pass over the member key at `i` and its `:`.
#[inline(always)]
fn skip_member_key(bytes: &[u8], i: usize) -> Result<usize, Stop> {
    if byte_at(bytes, i) != b'"' {
        return Err(Stop::Syntax(i));
    }
    let i = skip_ws(bytes, skip_string(bytes, i).map_err(Stop::Syntax)?);
    if byte_at(bytes, i) != b':' {
        return Err(Stop::Syntax(i));
    }
    Ok(i + 1)
}

/// Pass over `word` (`true`, `false`, `null`) at `i`.
#[inline(always)]
fn skip_word(bytes: &[u8], i: usize, word: &[u8]) -> Result<usize, Stop> {
    match bytes.get(i..i + word.len()) {
        Some(w) if w == word => Ok(i + word.len()),
        _ => Err(Stop::Syntax(i)),
    }
}

/// Pass over the string whose opening quote is at `i`, checking it: where it ends (after its
/// closing quote), or where it breaks. Most strings have no escape: one step of
/// [`string_stop`].
#[inline(always)]
fn skip_string(bytes: &[u8], i: usize) -> Result<usize, usize> {
    let j = string_stop(bytes, i + 1);
    if byte_at(bytes, j) == b'"' {
        return Ok(j + 1);
    }
    skip_escapes(bytes, j)
}

/// The rest of a string from `i`, a backslash, a control byte or the end: where it ends
/// (after its closing quote), or where it breaks (a bad escape, a control byte, no closing
/// quote). Escapes as serde_json checks them: `\" \\ \/ \b \f \n \r \t` and `\u` with
/// four hex digits of any code unit.
#[inline(never)]
fn skip_escapes(bytes: &[u8], mut i: usize) -> Result<usize, usize> {
    loop {
        match bytes.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => {
                let ok = match bytes.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                        i += 2;
                        true
                    }
                    Some(b'u') => {
                        let hex = bytes.get(i + 2..i + 6);
                        i += 6;
                        hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                    }
                    _ => false,
                };
                if !ok {
                    return Err(i.min(bytes.len()));
                }
            }
            // A control byte, or the end of the text.
            _ => return Err(i),
        }
        i = string_stop(bytes, i);
    }
}

/// Pass over the number at `i`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`;
/// where it ends, or where it breaks.
#[inline(always)]
fn skip_number(bytes: &[u8], mut i: usize) -> Result<usize, usize> {
    let digits = |mut j: usize| -> usize {
        while byte_at(bytes, j).is_ascii_digit() {
            j += 1;
        }
        j
    };
    if byte_at(bytes, i) == b'-' {
        i += 1;
    }
    match byte_at(bytes, i) {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(i + 1),
        _ => return Err(i),
    }
    if byte_at(bytes, i) == b'.' {
        let end = digits(i + 1);
        if end == i + 1 {
            return Err(i + 1);
        }
        i = end;
    }
    if matches!(byte_at(bytes, i), b'e' | b'E') {
        i += 1;
        if matches!(byte_at(bytes, i), b'+' | b'-') {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return Err(i);
        }
        i = end;
    }
    Ok(i)
}

/// The first byte at or after `i` where a string's scan must stop: `"`, `\` or a control
/// byte (which JSON forbids in strings); `bytes.len()` if none. Most of a line is strings,
/// mostly short: 16 bytes at a time with SSE2 (x86-64's baseline), else 8 (SWAR).
#[inline(always)]
pub(crate) fn string_stop(bytes: &[u8], mut i: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use safe_arch::*;
        let splat = |b: u8| set_splat_i8_m128i(b as i8);
        // Bit `k` set when byte `k` of the 16 stops the scan.
        let stops = |chunk: &[u8]| {
            let v = load_unaligned_m128i(chunk.try_into().unwrap_or(&[0; 16]));
            // x ≤ 0x1F, unsigned: min(x, 0x1F) == x.
            let control = cmp_eq_mask_i8_m128i(min_u8_m128i(v, splat(0x1F)), v);
            let quote = cmp_eq_mask_i8_m128i(v, splat(b'"'));
            let backslash = cmp_eq_mask_i8_m128i(v, splat(b'\\'));
            move_mask_i8_m128i(bitor_m128i(control, bitor_m128i(quote, backslash))) as u32
        };
        // 32 bytes a step: most strings (keys, names, addresses, times) end in the first, so
        // the loop's exit is well predicted.
        while let Some(chunk) = bytes.get(i..i + 32) {
            let found = stops(&chunk[..16]) | stops(&chunk[16..]) << 16;
            if found != 0 {
                return i + found.trailing_zeros() as usize;
            }
            i += 32;
        }
        if let Some(chunk) = bytes.get(i..i + 16) {
            let found = stops(chunk);
            if found != 0 {
                return i + found.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // The high bit of each byte below 0x20, or equal to the quote or backslash. A borrow
        // only carries past a byte that is itself flagged, so the lowest flag is exact.
        let found = ((word.wrapping_sub(ONES * 0x20) & !word)
            | (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash))
            & HIGH;
        if found != 0 {
            return i + (found.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// The contents of a JSON string (between its quotes, already checked as the builder checks
/// them) decoded, when its escapes are all of one character (`\"`, `\n`, ...); `None` when
/// it has a `\u` escape, which serde_json decodes (most escapes in logs are of quotes and
/// backslashes in command lines and paths: no detour through serde_json for them).
pub(crate) fn unescape_short(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(k) = memchr::memchr(b'\\', &bytes[at..]) {
        out.extend_from_slice(&bytes[at..at + k]);
        let escaped = match bytes.get(at + k + 1)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            _ => return None,
        };
        out.push(escaped);
        at += k + 2;
    }
    out.extend_from_slice(&bytes[at..]);
    // Only whole characters were copied around ASCII escapes.
    String::from_utf8(out).ok()
}

/// The contents of a JSON string (between its quotes, already checked by the builder)
/// decoded with each lone surrogate as U+FFFD; `None` on a bad escape. Only used when
/// serde_json refused the string, so it need not be fast.
fn unescape_lossy(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    let mut pending: Option<u16> = None; // a high surrogate waiting for its low half
    let hex = |chars: &mut std::str::Chars<'_>| -> Option<u16> {
        let digits: String = chars.by_ref().take(4).collect();
        (digits.len() == 4)
            .then(|| u16::from_str_radix(&digits, 16).ok())
            .flatten()
    };
    while let Some(c) = chars.next() {
        let unit = if c == '\\' {
            match chars.next()? {
                'u' => Some(hex(&mut chars)?),
                e => {
                    out.push(match e {
                        '"' => '"',
                        '\\' => '\\',
                        '/' => '/',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        _ => return None,
                    });
                    None
                }
            }
        } else {
            None
        };
        // A high surrogate must be followed at once by a low one.
        if let Some(high) = pending.take() {
            match unit {
                Some(low @ 0xDC00..=0xDFFF) => {
                    let code =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    out.push(char::from_u32(code)?);
                    continue;
                }
                _ => {
                    // The pushed escape (if any) came after the lone high surrogate.
                    let tail = if unit.is_none() && c == '\\' {
                        out.pop()
                    } else {
                        None
                    };
                    out.push('\u{FFFD}');
                    out.extend(tail);
                }
            }
        }
        match unit {
            Some(high @ 0xD800..=0xDBFF) => pending = Some(high),
            Some(0xDC00..=0xDFFF) => out.push('\u{FFFD}'),
            Some(code) => out.push(char::from_u32(u32::from(code))?),
            None if c != '\\' => out.push(c),
            None => {}
        }
    }
    if pending.is_some() {
        out.push('\u{FFFD}');
    }
    Some(out)
}

/// Append the values of `path` (already split on `.`) found in `doc`, in document order.
pub fn field_values<'a>(doc: &'a Value, path: &[&str], out: &mut Vec<Cow<'a, str>>) {
    let _ = for_each_value(doc, path, &mut |value| {
        out.push(value);
        ControlFlow::<()>::Continue(())
    });
}

/// Call `f` with each value of `path` in `doc`, in document order (spec/ir.md "Field values"),
/// stopping early when `f` breaks. Lets the evaluator stop at the first satisfying value
/// without collecting the others.
pub fn for_each_value<'a, S, B>(
    doc: &'a Value,
    path: &[S],
    f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    for_each_node(doc, path, &mut |node| flatten(node, f))
}

/// Append the nodes of `path` in `doc` that [`for_each_value`] reads its values from, in the
/// same order: [`flatten`] of each, in turn, gives the same values.
pub(crate) fn field_nodes<'a, S: AsRef<str>>(doc: &'a Value, path: &[S], out: &mut Vec<&'a Value>) {
    let _ = for_each_node(doc, path, &mut |node| {
        out.push(node);
        ControlFlow::<()>::Continue(())
    });
}

/// Call `leaf` with each node at `path` in `doc` (each a field's value, whole), in document
/// order.
fn for_each_node<'a, S, B>(
    doc: &'a Value,
    path: &[S],
    leaf: &mut impl FnMut(&'a Value) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    match doc {
        Value::Object(map) => walk_object(map, path, leaf),
        _ => ControlFlow::Continue(()),
    }
}

fn walk_object<'a, S, B>(
    map: &'a Map<String, Value>,
    path: &[S],
    leaf: &mut impl FnMut(&'a Value) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    for (key, value) in map {
        let Some(rest) = strip_key(key, path) else {
            continue;
        };
        if rest.is_empty() {
            leaf(value)?;
        } else {
            descend(value, rest, leaf)?;
        }
    }
    ControlFlow::Continue(())
}

/// The rest of `path` when `key`, split on `.`, is a prefix of it.
/// (Path parts hold no `.`; compared as prefixes, so most keys are ruled out by a byte or two.)
fn strip_key<'p, S: AsRef<str>>(key: &str, path: &'p [S]) -> Option<&'p [S]> {
    let mut key = key.as_bytes();
    let mut rest = path;
    loop {
        let (first, tail) = rest.split_first()?;
        let first = first.as_ref().as_bytes();
        let n = first.len();
        // Most keys differ at their first byte, or at the byte after the part (the key's end
        // or a `.`): ruled out without a comparison call.
        if first.first().is_some_and(|b| Some(b) != key.first())
            || key.len() < n
            || (key.len() > n && key[n] != b'.')
            || key[..n] != *first
        {
            return None;
        }
        rest = tail;
        if key.len() == n {
            return Some(rest);
        }
        key = &key[n + 1..];
    }
}

/// Look for the rest of the path in an object, or in each object of an array (nested arrays
/// flattened); other values have no fields.
fn descend<'a, S, B>(
    value: &'a Value,
    rest: &[S],
    leaf: &mut impl FnMut(&'a Value) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    match value {
        Value::Object(map) => walk_object(map, rest, leaf),
        Value::Array(items) => {
            for item in items {
                descend(item, rest, leaf)?;
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    }
}

/// A field's value as strings: arrays give their elements (nested arrays flattened); `null`
/// and objects give nothing.
pub(crate) fn flatten<'a, B>(
    value: &'a Value,
    f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    match value {
        Value::String(s) => f(Cow::Borrowed(s)),
        // Documents from parse_document hold numbers as strings; this is for other Values.
        Value::Number(n) => f(Cow::Owned(n.to_string())),
        Value::Bool(true) => f(Cow::Borrowed("true")),
        Value::Bool(false) => f(Cow::Borrowed("false")),
        Value::Array(items) => {
            for item in items {
                flatten(item, f)?;
            }
            ControlFlow::Continue(())
        }
        Value::Null | Value::Object(_) => ControlFlow::Continue(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        parse_line(text.as_bytes()).unwrap().unwrap().doc
    }

    fn values(text: &str, field: &str) -> Vec<String> {
        let doc = doc(text);
        let path: Vec<&str> = field.split('.').collect();
        let mut out = Vec::new();
        field_values(&doc, &path, &mut out);
        out.into_iter().map(Cow::into_owned).collect()
    }

    fn malformed(line: &[u8]) -> String {
        match parse_line(line) {
            Err(Malformed { reason }) => reason,
            Ok(Some(_)) => panic!("{line:?} parsed"),
            Ok(None) => panic!("{line:?} is blank"),
        }
    }

    #[test]
    fn empty_path_parts_and_keys_sharing_a_first_byte() {
        // Names are ruled out by their first byte before they are compared: an empty part
        // (`a..b`) has none and matches a key starting with `.` or an empty key.
        let text = r#"{"a":{"":{"b":"x"},".b":"y","bb":"n","b":"z"},"a..b":"w","ab":"n"}"#;
        assert_eq!(values(text, "a..b"), ["x", "y", "w"]);
        assert_eq!(values(text, "a.b"), ["z"]);
        for field in ["a..b", "a.b", "ab"] {
            let projection = Projection::new([field]);
            let built = parse_line_projected(text.as_bytes(), &projection)
                .unwrap()
                .unwrap()
                .doc;
            let path: Vec<&str> = field.split('.').collect();
            let mut got = Vec::new();
            field_values(&built, &path, &mut got);
            assert_eq!(got, values(text, field), "{field}");
        }
    }

    #[test]
    fn nested_dotted_and_mixed_keys() {
        assert_eq!(
            values(r#"{"process":{"name":"curl"}}"#, "process.name"),
            ["curl"]
        );
        assert_eq!(
            values(r#"{"process.name":"curl"}"#, "process.name"),
            ["curl"]
        );
        assert_eq!(
            values(r#"{"process":{"parent.name":"x"}}"#, "process.parent.name"),
            ["x"]
        );
        assert_eq!(
            values(r#"{"process.parent":{"name":"x"}}"#, "process.parent.name"),
            ["x"]
        );
        assert_eq!(values(r#"{"a":{"b.c":{"d":"x"}}}"#, "a.b.c.d"), ["x"]);
        // Both forms in one document: all values, in document order.
        assert_eq!(
            values(
                r#"{"process.name":"a","process":{"name":"b","x":1},"process.name.x":"no"}"#,
                "process.name"
            ),
            ["a", "b"]
        );
        assert_eq!(
            values(
                r#"{"process":{"name":"b"},"process.name":"a"}"#,
                "process.name"
            ),
            ["b", "a"]
        );
    }

    #[test]
    fn keys_match_whole_parts_only() {
        assert!(values(r#"{"process":{"names":"x"}}"#, "process.name").is_empty());
        assert!(values(r#"{"proc":{"ess.name":"x"}}"#, "process.name").is_empty());
        assert!(values(r#"{"process.name.first":"x"}"#, "process.name").is_empty());
        assert!(values(r#"{"process":"x"}"#, "process.name").is_empty());
        assert!(values(r#"{"Process":{"Name":"x"}}"#, "process.name").is_empty());
        assert!(values(r#"{"process..name":"x"}"#, "process.name").is_empty());
        assert!(values(r#"{"process":{"":{"name":"x"}}}"#, "process.name").is_empty());
    }

    #[test]
    fn arrays() {
        assert_eq!(
            values(
                r#"{"event":{"category":["host","network"]}}"#,
                "event.category"
            ),
            ["host", "network"]
        );
        assert_eq!(values(r#"{"a":[["x",["y"]],"z"]}"#, "a"), ["x", "y", "z"]);
        assert!(values(r#"{"a":[]}"#, "a").is_empty());
        assert!(values(r#"{"a":[[]]}"#, "a").is_empty());
        // Arrays of objects: the rest of the path is looked up in each object.
        assert_eq!(
            values(
                r#"{"a":[{"b":"1"},"skip",{"c":"2"},[{"b":["3","4"]}]]}"#,
                "a.b"
            ),
            ["1", "3", "4"]
        );
        assert_eq!(
            values(r#"{"a":[{"b.c":"x"},{"b":{"c":"y"}}]}"#, "a.b.c"),
            ["x", "y"]
        );
        // Objects where a string is expected are no value.
        assert_eq!(values(r#"{"a":[{"b":"1"},"s"]}"#, "a"), ["s"]);
    }

    #[test]
    fn null_and_objects_are_no_value() {
        assert!(values(r#"{"a":null}"#, "a").is_empty());
        assert!(values(r#"{"a":[null]}"#, "a").is_empty());
        assert_eq!(values(r#"{"a":[null,"x",null]}"#, "a"), ["x"]);
        assert!(values(r#"{"a":{"b":"x"}}"#, "a").is_empty());
        assert!(values(r#"{"a":null}"#, "a.b").is_empty());
        assert!(values(r#"{}"#, "a").is_empty());
    }

    #[test]
    fn numbers_and_bools_as_text() {
        assert_eq!(values(r#"{"a":123}"#, "a"), ["123"]);
        assert_eq!(values(r#"{"a":true,"b":false}"#, "a"), ["true"]);
        assert_eq!(values(r#"{"a":true,"b":false}"#, "b"), ["false"]);
        assert_eq!(
            values(
                r#"{"a":[1.0,1e3,1E3,1e+3,1E-07,-0,0.50,123456789012345678901234567890,1e400]}"#,
                "a"
            ),
            [
                "1.0",
                "1e3",
                "1E3",
                "1e+3",
                "1E-07",
                "-0",
                "0.50",
                "123456789012345678901234567890",
                "1e400"
            ]
        );
        assert_eq!(values(r#"{"a":[ 1 , 2 ]}"#, "a"), ["1", "2"]);
    }

    #[test]
    fn serde_numbers_also_flatten() {
        // Values not built by parse_document (e.g. json!) hold real numbers.
        let doc = serde_json::json!({"a": [7, 2.5, true, null]});
        let mut out = Vec::new();
        field_values(&doc, &["a"], &mut out);
        assert_eq!(out, ["7", "2.5", "true"]);
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        assert_eq!(values(r#"{"a":"1","a":"2"}"#, "a"), ["2"]);
        let text = r#"{"x":"1","b":"2","x":"3","x.y":"z"}"#;
        let d = doc(text);
        let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["x", "b", "x.y"]);
        assert_eq!(values(text, "x"), ["3"]);
        // The dotted and nested forms are different keys, so both stay.
        assert_eq!(
            values(r#"{"a.b":"1","a":{"b":"2"},"a.b":"3"}"#, "a.b"),
            ["3", "2"]
        );
        assert_eq!(values(r#"{"a":[1e3],"a":{"b":1E3}}"#, "a.b"), ["1E3"]);
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(
            values(
                r#"{"c":"latest\/meta-data \u0069am \"q\" \\ \n\ud83d\ude00"}"#,
                "c"
            ),
            ["latest/meta-data iam \"q\" \\ \n😀"]
        );
        assert_eq!(
            values(r#"{"pro\u0063ess.n\u0061me":"x"}"#, "process.name"),
            ["x"]
        );
        assert_eq!(values(r#"{"a":"\\"}"#, "a"), ["\\"]);
        assert_eq!(values(r#"{"a":"\\\""}"#, "a"), ["\\\""]);
    }

    #[test]
    fn early_stop() {
        let d = doc(r#"{"a":["x","y","z"]}"#);
        let mut seen = Vec::new();
        let found = for_each_value(&d, &["a"], &mut |v| {
            seen.push(v.clone());
            if v == "y" {
                ControlFlow::Break(v)
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(found, ControlFlow::Break(Cow::Borrowed("y")));
        assert_eq!(seen, ["x", "y"]);
    }

    #[test]
    fn blank_lines() {
        for line in [&b""[..], b"\r", b"   ", b" \t \r", b"\t\r\r", b"\n"] {
            assert!(parse_line(line).unwrap().is_none(), "{line:?}");
        }
        // Only JSON whitespace is blank; a form feed is a malformed line.
        assert!(malformed(b"\x0c").starts_with("invalid JSON"));
        assert!(malformed(b"\xc2\xa0").starts_with("invalid JSON"));
    }

    #[test]
    fn line_text_and_carriage_return() {
        let parsed = parse_line(b"{\"a\":1}\r").unwrap().unwrap();
        assert_eq!(parsed.text, "{\"a\":1}");
        assert!(!parsed.invalid_utf8);
        // Only one `\r` is dropped; the next is JSON whitespace.
        let parsed = parse_line(b" {\"a\":1} \r\r").unwrap().unwrap();
        assert_eq!(parsed.text, " {\"a\":1} \r");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let parsed = parse_line(b"{\"a\":\"x\xff\xe2\x82y\"}").unwrap().unwrap();
        assert!(parsed.invalid_utf8);
        // One U+FFFD per maximal invalid subpart: `\xff` and the truncated `\xe2\x82`.
        assert_eq!(parsed.text, "{\"a\":\"x\u{FFFD}\u{FFFD}y\"}");
        assert_eq!(parsed.doc["a"], "x\u{FFFD}\u{FFFD}y");
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(malformed(b"[1,2]"), "not a JSON object");
        assert_eq!(malformed(b"\"s\""), "not a JSON object");
        assert_eq!(malformed(b"12"), "not a JSON object");
        assert_eq!(malformed(b"null"), "not a JSON object");
        for line in [
            &b"{"[..],
            b"{\"a\":1",
            b"{\"a\":1}x",
            b"{\"a\":1}{}",
            b"{\"a\":NaN}",
            b"{\"a\":Infinity}",
            b"{\"a\":-Infinity}",
            b"{\"a\":01}",
            b"{\"a\":1.}",
            b"{\"a\":+1}",
            b"{'a':1}",
            b"{\"a\":1,}",
            b"{\"a\":\"\x01\"}",
            b"{\"a\":\"\\x\"}",
            b"\xef\xbb\xbf{}",
            b"[\"\\ud800\"",
            b"{\"a\":\"\\ud800\\x\"}",
            b"{\"a\":\"\\ud800\\u00\"}",
        ] {
            let reason = malformed(line);
            assert!(reason.starts_with("invalid JSON"), "{line:?}: {reason}");
        }
        assert_eq!(
            malformed(b"{\"a\":}"),
            "invalid JSON: expected value at column 6"
        );
    }

    #[test]
    fn exporter_wrappers_are_unwrapped() {
        let line = br#"{"_index":"logs-1","_id":"x","_score":1.0, "_source" : {"process":{"name":"curl"}} ,"sort":[1]}"#;
        let parsed = parse_line(line).unwrap().unwrap();
        assert_eq!(parsed.text, r#"{"process":{"name":"curl"}}"#);
        assert_eq!(
            values(std::str::from_utf8(line).unwrap(), "process.name"),
            ["curl"]
        );
        assert!(parsed.doc.get("_index").is_none());
        // The last `_source` wins, as for any repeated key.
        let parsed = parse_line(br#"{"_source":{"a":1},"_index":"i","_source":{"a":2}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.text, r#"{"a":2}"#);
        // Not wrappers: no `_index`, `_source` not an object, or not at the top level.
        for line in [
            r#"{"_source":{"a":1}}"#,
            r#"{"_index":"i","_source":"text"}"#,
            r#"{"_index":"i","_source":null}"#,
            r#"{"x":{"_index":"i","_source":{"a":1}}}"#,
            r#"{"_index":"i","_source":{"a":1},"_source":[1]}"#,
        ] {
            assert_eq!(parse_line(line.as_bytes()).unwrap().unwrap().text, line);
        }
        // Invalid UTF-8 inside `_source`: the span is in the decoded text.
        let parsed = parse_line(b"{\"_index\":\"i\",\"_source\":{\"a\":\"\xff\"}}")
            .unwrap()
            .unwrap();
        assert_eq!(parsed.text, "{\"a\":\"\u{FFFD}\"}");
        assert!(parsed.invalid_utf8);
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        // As Elasticsearch indexes them (spec/ir.md, Lines): the event is kept.
        for (line, want) in [
            (r#"{"a":"\ud800"}"#, "\u{FFFD}"),
            (r#"{"a":"\udc00"}"#, "\u{FFFD}"),
            (r#"{"a":"x\ud800"}"#, "x\u{FFFD}"),
            (r#"{"a":"\ud800\u0041"}"#, "\u{FFFD}A"),
            (r#"{"a":"\ud800\ud800\udc00"}"#, "\u{FFFD}\u{10000}"),
            (r#"{"a":"\ud800\n\udc00é"}"#, "\u{FFFD}\n\u{FFFD}é"),
            (r#"{"a":"\ud83d\ude00\/\"\udbff"}"#, "😀/\"\u{FFFD}"),
        ] {
            assert_eq!(values(line, "a"), [want], "{line}");
        }
        assert_eq!(values(r#"{"\ud800x":1}"#, "\u{FFFD}x"), ["1"]);
        // The event's text is the line as written.
        let parsed = parse_line(br#"{"a":"\ud800"}"#).unwrap().unwrap();
        assert_eq!(parsed.text, r#"{"a":"\ud800"}"#);
    }

    /// The projected parse of `text` for `fields`: each field's values, which must be those
    /// of the full parse.
    fn projected(text: &str, fields: &[&str]) -> Vec<Vec<String>> {
        let projection = Projection::new(fields.iter().copied());
        let doc = parse_line_projected(text.as_bytes(), &projection)
            .unwrap()
            .unwrap()
            .doc;
        let full = parse_line(text.as_bytes()).unwrap().unwrap().doc;
        fields
            .iter()
            .map(|field| {
                let path: Vec<&str> = field.split('.').collect();
                let (mut got, mut want) = (Vec::new(), Vec::new());
                field_values(&doc, &path, &mut got);
                field_values(&full, &path, &mut want);
                assert_eq!(got, want, "{field} in {text}");
                got.into_iter().map(Cow::into_owned).collect()
            })
            .collect()
    }

    #[test]
    fn projection_builds_only_the_paths_read() {
        let projection = Projection::new(["process.name", "event"]);
        let text = r#"{"process":{"name":"curl","pid":1,"parent":{"name":"sh"}},"process.name":"a","process.name.x":"b","event":{"type":["start"]},"host":{"name":"h"},"processes":"x","_index":"i"}"#;
        let doc = parse_line_projected(text.as_bytes(), &projection)
            .unwrap()
            .unwrap()
            .doc;
        // Kept: keys on a path, either way round, nested or dotted; the rest is not built
        // (`_index` only stands there, for unwrapping).
        assert_eq!(
            doc,
            serde_json::json!({"process":{"name":"curl"},"process.name":"a",
                "process.name.x":"b","event":{"type":["start"]},"_index":null})
        );
        assert_eq!(
            projected(text, &["process.name", "event.type", "host"]),
            [vec!["curl", "a"], vec!["start"], vec![]]
        );
        // Arrays of objects, and dotted keys inside nested objects.
        assert_eq!(
            projected(
                r#"{"a":[{"b.c":"1","d":2},[{"b":{"c":"2"}}],"s"],"a.b":{"c":"3"}}"#,
                &["a.b.c"]
            ),
            [vec!["1", "2", "3"]]
        );
        // Escaped keys are read decoded; duplicate keys keep their first place, last value.
        assert_eq!(
            projected(
                r#"{"pro\u0063ess":{"name":"x"},"a":"1","b":"s","a":"2","process.name":"y"}"#,
                &["process.name", "a"]
            ),
            [vec!["x", "y"], vec!["2"]]
        );
    }

    #[test]
    fn projection_by_rule_builds_the_open_rules_paths() {
        let rules: [&[&str]; 4] = [
            &["process.name", "event.type"],
            &["process.parent.name", "user"],
            &["process", "_source.host.name"],
            &[],
        ];
        let projection = Projection::by_rule(rules.iter().map(|r| r.iter().copied()));
        let line = r#"{"process":{"name":"a","parent":{"name":"p","pid":1},"pid":2},"process.parent.name":"q","event":{"type":["start"],"kind":"e"},"user":{"name":"u"},"user.id":7,"host":{"name":"h"},"_index":"i"}"#;
        let full = parse_line(line.as_bytes()).unwrap().unwrap();
        let parse = |open: &[bool]| {
            let mut rules = OpenRules::default();
            let list: Vec<usize> = (0..open.len()).filter(|&r| open[r]).collect();
            rules.fill(&list, open.len());
            parse_line_for(line.as_bytes(), &projection, &rules)
                .unwrap()
                .unwrap()
        };
        let values = |doc: &Value, field: &str| {
            let path: Vec<&str> = field.split('.').collect();
            let mut out = Vec::new();
            field_values(doc, &path, &mut out);
            out.into_iter().map(Cow::into_owned).collect::<Vec<_>>()
        };
        for open in 0..16u32 {
            let open: Vec<bool> = (0..4).map(|r| open & (1 << r) != 0).collect();
            let parsed = parse(&open);
            assert_eq!(parsed.text, full.text);
            for (rule, fields) in rules.iter().enumerate().filter(|(r, _)| open[*r]) {
                for field in *fields {
                    assert_eq!(
                        values(&parsed.doc, field),
                        values(&full.doc, field),
                        "{field} with {open:?}"
                    );
                }
                // A number of an open rule's field is still known as one.
                if rule == 2 {
                    let mut pid = Vec::new();
                    field_values(&parsed.doc, &["process", "pid"], &mut pid);
                    assert!(is_json_number(&pid[0], &parsed.numbers));
                }
            }
        }
        // Only what the open rules read is built.
        assert_eq!(
            parse(&[true, false, false, false]).doc,
            serde_json::json!({"process":{"name":"a"},"event":{"type":["start"]},"_index":null})
        );
        assert_eq!(
            parse(&[false, true, false, true]).doc,
            serde_json::json!({"process":{"parent":{"name":"p"}},"process.parent.name":"q",
                "user":{"name":"u"},"user.id":"7","_index":null})
        );
        assert_eq!(parse(&[false; 4]).doc, serde_json::json!({"_index":null}));
        // Every rule's paths without the rules open, and with a projection of no rules.
        let all = parse_line_projected(line.as_bytes(), &projection)
            .unwrap()
            .unwrap();
        assert_eq!(all.doc, parse(&[true; 4]).doc);
        let mut none = OpenRules::default();
        none.fill(&[], 4);
        let plain = Projection::new(["user"]);
        assert_eq!(
            parse_line_for(line.as_bytes(), &plain, &none)
                .unwrap()
                .unwrap()
                .doc,
            serde_json::json!({"user":{"name":"u"},"user.id":"7","_index":null})
        );
        // Malformed as with the full parse, in a member no open rule reads.
        let bad = br#"{"process":{"name":"a"},"host":{"name":01}}"#;
        let mut first = OpenRules::default();
        first.fill(&[0], 4);
        assert_eq!(
            parse_line_for(bad, &projection, &first).unwrap_err().reason,
            malformed(bad)
        );
    }

    #[test]
    fn projection_keeps_exporter_wrappers() {
        let line = r#"{"_index":{"x":[1]},"_id":"1","_source":{"process":{"name":"curl","pid":1}},"sort":[1]}"#;
        let projection = Projection::new(["process.name"]);
        let parsed = parse_line_projected(line.as_bytes(), &projection)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.text, r#"{"process":{"name":"curl","pid":1}}"#);
        assert_eq!(parsed.doc, serde_json::json!({"process":{"name":"curl"}}));
        assert_eq!(projected(line, &["process.name"]), [vec!["curl"]]);
        // Not wrappers: the fields are read at the top level, `_source.…` too.
        for line in [
            r#"{"_source":{"a":"1"},"a":"2"}"#,
            r#"{"_index":"i","_source":{"a":"1"},"_source":[{"a":"3"}],"a":"2"}"#,
        ] {
            let parsed = parse_line_projected(line.as_bytes(), &Projection::new(["a"]))
                .unwrap()
                .unwrap();
            assert_eq!(parsed.text, line);
            projected(line, &["a", "_source.a", "_source", "_index"]);
        }
    }

    /// serde_json's reason for a text it does not read (as the builder words it).
    fn serde_reason(text: &str) -> String {
        json_error(&serde_json::from_str::<IgnoredAny>(text).unwrap_err(), 0).reason
    }

    #[test]
    fn malformed_reasons_are_serde_jsons_in_built_and_skipped_members() {
        // Each fault in a member that is built (`a`) and in one that is passed over (`b`),
        // at the top and nested: the one-pass builder stops, serde_json words it.
        let faults = [
            "\"x\u{1}\"",
            "\"x\ty\"",
            "\"\\x\"",
            "\"\\u12G4\"",
            "\"\\u12\"",
            "\"abc",
            "01",
            "-",
            "-x",
            "1.",
            "1.e3",
            "1e",
            "1e+",
            "+1",
            ".5",
            "tru",
            "nul",
            "falsey",
            "[1,]",
            "[1 2]",
            "{\"k\" 1}",
            "{\"k\":1,}",
            "{k:1}",
            "{\"k\":1]",
            "[1}",
            "[",
            "",
        ];
        let projection = Projection::new(["a"]);
        for fault in faults {
            for line in [
                format!("{{\"a\":{fault}}}"),
                format!("{{\"b\":{fault}}}"),
                format!("{{\"b\":[{{\"c\":{fault}}}],\"a\":1}}"),
                format!("{{\"a\":[{{\"c\":{fault}}}]}}"),
                format!("{{\"b{fault}\":1}}"),
                format!("{{\"a\":1}}{fault}"),
            ] {
                let Err(e) = serde_json::from_str::<IgnoredAny>(&line) else {
                    continue; // e.g. a fault that is fine inside a key
                };
                let want = json_error(&e, 0).reason;
                assert_eq!(malformed(line.as_bytes()), want, "{line}");
                match parse_line_projected(line.as_bytes(), &projection) {
                    Err(Malformed { reason }) => assert_eq!(reason, want, "{line}"),
                    other => panic!("{line}: {other:?}"),
                }
            }
        }
        // JSON but no object, and JSON after too deep a nesting: serde_json's reason first.
        assert_eq!(malformed(b" [1, 2] "), "not a JSON object");
        let deep_then_bad = format!("{{\"b\":{}1{},}}", "[".repeat(1200), "]".repeat(1200));
        assert_eq!(
            malformed(deep_then_bad.as_bytes()),
            serde_reason(&deep_then_bad)
        );
    }

    #[test]
    fn string_stop_finds_the_first_quote_backslash_or_control_byte() {
        // Every stop byte at every offset of lines of every length around the 8- and
        // 16-byte steps, after bytes just outside the stop set.
        let filler = [b' ', b'!', b'#', b'[', b']', 0x7F, 0x80, 0xC3, 0xFF, b'a'];
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\', 0x00, 0x0A, 0x1F] {
                    let mut bytes: Vec<u8> = (0..len).map(|i| filler[i % filler.len()]).collect();
                    if at < len {
                        bytes[at] = stop;
                    }
                    for from in 0..=at {
                        assert_eq!(string_stop(&bytes, from), at, "{bytes:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn member_lookup_reads_keys_as_split_on_dots() {
        // The in-place walk against splitting the key, over keys with empty parts.
        let fields = ["a.b", "a.bc.d", "x", ".e", "f..g", "h."];
        let projection = Projection::new(fields);
        let split = |key: &str| -> Option<Option<Vec<String>>> {
            // What the key selects: None (skip), Some(None) all, Some(Some(rest paths)).
            let parts: Vec<&str> = key.split('.').collect();
            let mut below = Vec::new();
            let mut all = false;
            for field in fields {
                let path: Vec<&str> = field.split('.').collect();
                if path.len() <= parts.len() && parts[..path.len()] == path[..] {
                    all = true;
                } else if path.len() > parts.len() && path[..parts.len()] == parts[..] {
                    below.push(path[parts.len()..].join("."));
                }
            }
            if all {
                Some(None)
            } else if below.is_empty() {
                None
            } else {
                below.sort();
                Some(Some(below))
            }
        };
        // The paths below a node, its children's names joined with dots.
        fn paths(node: &Node, prefix: Option<String>, out: &mut Vec<String>) {
            if node.end {
                out.push(prefix.clone().unwrap_or_default());
            }
            for (name, child) in &node.children {
                let path = prefix
                    .as_ref()
                    .map_or(name.clone(), |p| format!("{p}.{name}"));
                paths(child, Some(path), out);
            }
        }
        for key in [
            "a", "a.b", "a.b.c", "a.bc", "a.bc.d", "a.bcd", "ab", "a.", ".", "", ".e", ".e.f", "e",
            "f", "f.", "f..g", "f..g.h", "f.g", "h", "h.", "h..", "x", "x.y", "xy", "b",
        ] {
            let got = projection.root.member(key, None).map(|node| {
                node.map(|node| {
                    let mut out = Vec::new();
                    paths(node, None, &mut out);
                    out.sort();
                    out
                })
            });
            assert_eq!(got, split(key), "{key:?}");
        }
    }

    #[test]
    fn projection_checks_what_it_skips() {
        let projection = Projection::new(["a"]);
        let reason = |line: &[u8]| match parse_line_projected(line, &projection) {
            Err(Malformed { reason }) => reason,
            other => panic!("{line:?}: {other:?}"),
        };
        // Too deep in a member that is not built: the same reason, at the same column.
        for line in [
            format!(
                "{{\"b\":{}1{}}}",
                "[".repeat(MAX_NESTING),
                "]".repeat(MAX_NESTING)
            ),
            format!(
                "{{\"b\":[\"]\",{{\"c\":{}1{}}}]}}",
                "{\"d\":".repeat(MAX_NESTING),
                "}".repeat(MAX_NESTING)
            ),
        ] {
            assert_eq!(reason(line.as_bytes()), malformed(line.as_bytes()));
            assert!(reason(line.as_bytes()).starts_with("nested deeper"));
        }
        for line in [&b"{\"b\":[1,}"[..], b"{\"b\":\"\\x\"}", b"{\"b\":01}"] {
            assert_eq!(reason(line), malformed(line));
        }
        // Lone surrogates and invalid UTF-8 in skipped members are still fine.
        let parsed = parse_line_projected(b"{\"b\":\"\\ud800\xff\",\"a\":[1, 2 ]}", &projection)
            .unwrap()
            .unwrap();
        assert!(parsed.invalid_utf8);
        assert_eq!(
            projected(r#"{"b":"\ud800","a":[1, 2 ],"c":true}"#, &["a"]),
            [vec!["1", "2"]]
        );
    }

    #[test]
    fn plain_members_passed_over_from_one_scan_keep_the_keys_read() {
        // Members `"k":"v"` are passed over from one scan of 64 bytes: never one a path reads
        // (at the top or nested), nor past an escape, a number, or the 64 bytes.
        let tail = format!(r#""z":"{}""#, "x".repeat(70));
        for (line, field, want) in [
            (format!(r#"{{"s":"x","a":"y",{tail}}}"#), "a", vec!["y"]),
            (
                format!(r#"{{"s":"x","t":"","a":"y",{tail}}}"#),
                "a",
                vec!["y"],
            ),
            (
                format!(r#"{{"e":{{"k":"x","a":"y",{tail}}}}}"#),
                "e.a",
                vec!["y"],
            ),
            (format!(r#"{{"s":"x\"","a":"y",{tail}}}"#), "a", vec!["y"]),
            (
                format!(r#"{{"s":"x","n":1,"a":"y",{tail}}}"#),
                "a",
                vec!["y"],
            ),
            (
                format!(r#"{{"s":"{}","a":"y",{tail}}}"#, "x".repeat(50)),
                "a",
                vec!["y"],
            ),
            (
                format!(r#"{{"a.b":"x","ab":"w","a":"y",{tail}}}"#),
                "a",
                vec!["y"],
            ),
        ] {
            assert_eq!(projected(&line, &[field]), [want], "{line}");
        }
    }

    #[test]
    fn reused_buffers_give_the_same_documents_and_numbers() {
        let rules: [&[&str]; 3] = [&["a", "b.c"], &["n", "_index"], &["s"]];
        let projection = Projection::by_rule(rules.iter().map(|r| r.iter().copied()));
        let lines = [
            r#"{"a":1,"b":{"c":["x",2.5e1]},"n":"3","s":"long string of more than thirty-two bytes"}"#,
            r#"{"a":"1","n":3,"b":[{"c":"y"},{"c":[[7]]}],"s":{"t":1}}"#,
            r#"{"a":[1,"2",null,true],"b.c":"z","a":"last","n":[]}"#,
            r#"{"a":1,"b":{"c":01}}"#,
            r#"{"_index":"i","_source":{"a":"w","n":-0},"s":"x"}"#,
            r#"{"a":"\u0031","n":"","b":{"c":{"d":1}}}"#,
        ];
        let flagged = |line: &ParsedLine<'_>, field: &str| {
            let path: Vec<&str> = field.split('.').collect();
            let mut values = Vec::new();
            field_values(&line.doc, &path, &mut values);
            let numbers: Vec<bool> = values
                .iter()
                .map(|v| is_json_number(v, &line.numbers))
                .collect();
            let values: Vec<String> = values.into_iter().map(Cow::into_owned).collect();
            (values, numbers)
        };
        let mut scratch = Scratch::default();
        for open in [&[0, 1, 2][..], &[0], &[1, 2]] {
            let mut open_rules = OpenRules::default();
            open_rules.fill(open, 3);
            for _ in 0..3 {
                for line in lines {
                    let fresh = parse_line_for(line.as_bytes(), &projection, &open_rules);
                    let reused = parse_line_reusing(
                        line.as_bytes(),
                        &projection,
                        Some(&open_rules),
                        &mut scratch,
                    );
                    match (fresh, reused) {
                        (Ok(Some(fresh)), Ok(Some(reused))) => {
                            assert_eq!(fresh.doc, reused.doc, "{line}");
                            assert_eq!(fresh.text, reused.text);
                            for field in ["a", "b.c", "n", "s"] {
                                assert_eq!(flagged(&fresh, field), flagged(&reused, field));
                            }
                            scratch.recycle(reused);
                        }
                        (fresh, reused) => assert_eq!(fresh.err(), reused.err(), "{line}"),
                    }
                }
            }
        }
        // What it keeps is bounded.
        assert!(scratch.strings.len() <= SCRATCH_BUFFERS && scratch.maps.len() <= SCRATCH_BUFFERS);
        let wide = format!("{{\"a\":[{}]}}", vec!["\"x\""; 1000].join(","));
        let parsed = parse_line_reusing(wide.as_bytes(), &projection, None, &mut scratch);
        scratch.recycle(parsed.unwrap().unwrap());
        assert!(
            scratch.strings.len() <= SCRATCH_BUFFERS && scratch.arrays.len() <= SCRATCH_BUFFERS
        );
        assert!(scratch.arrays.iter().all(|a| a.capacity() < 1000));
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_crash() {
        let nested =
            |arrays: usize| format!("{{\"a\":{}1{}}}", "[".repeat(arrays), "]".repeat(arrays));
        // The object plus 999 arrays is the most Elasticsearch's parser (Jackson) allows.
        assert_eq!(values(&nested(MAX_NESTING - 1), "a"), ["1"]);
        assert_eq!(values(&nested(200), "a"), ["1"]);
        assert_eq!(
            malformed(nested(MAX_NESTING).as_bytes()),
            "nested deeper than 1000 levels (Elasticsearch's limit) at column 1005"
        );
        assert!(malformed(nested(100_000).as_bytes()).contains("nested deeper"));
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert_eq!(
            values(&objects(MAX_NESTING), &vec!["a"; 1000].join(".")),
            ["1"]
        );
        assert!(malformed(objects(MAX_NESTING + 1).as_bytes()).contains("nested deeper"));
        // Siblings do not add up.
        let wide = format!("{{\"a\":[{}]}}", vec![nested(MAX_NESTING - 3); 3].join(","));
        assert_eq!(values(&wide, "a.a"), ["1", "1", "1"]);
    }

    /// A key matches the path's first parts when, split on `.`, they are its parts: the
    /// rest of the path after them.
    #[test]
    fn a_key_strips_the_path_parts_it_spells() {
        let plain = |key: &str, path: &[&str]| -> Option<usize> {
            let parts: Vec<&str> = key.split('.').collect();
            (path.len() >= parts.len() && path[..parts.len()] == parts[..])
                .then(|| path.len() - parts.len())
        };
        let path = ["process", "parent", "name"];
        for key in [
            "process",
            "process.parent",
            "process.parent.name",
            "process.parent.name.x",
            "processx",
            "processxparent",
            "proces",
            "process.",
            "process.par",
            "process.parentx",
            "p",
            "",
            "parent",
            ".process",
            "process..parent",
            "process.parent.",
            "Process",
        ] {
            let got = strip_key(key, &path).map(|rest| rest.len());
            assert_eq!(got, plain(key, &path), "{key:?}");
        }
        // Empty parts (a field written with `..`) are parts too.
        let path = ["a", "", "b"];
        for key in ["a", "a.", "a..b", "a.b", "a..", ""] {
            assert_eq!(
                strip_key(key, &path).map(<[_]>::len),
                plain(key, &path),
                "{key:?}"
            );
        }
    }
}

#[cfg(test)]
mod number_tests {
    use super::*;

    #[test]
    fn a_number_replaced_by_a_repeated_key_names_no_later_string() {
        // The replaced number's text is freed while the line is parsed: a string built
        // after it may get its address, and must not be taken for a number.
        for line in [
            r#"{"a":7,"a":8,"b":"80"}"#,
            r#"{"a":7,"a":"x","b":"80"}"#,
            r#"{"a":[7],"a":null,"b":"80","c":"81"}"#,
            r#"{"a":{"n":7},"a":{"n":8},"b":"80","c":"81"}"#,
            r#"{"x":{"a":7,"a":8},"b":"80","c":"81"}"#,
        ] {
            for projection in [None, Some(Projection::new(["a", "x", "b", "c"]))] {
                let parsed = match &projection {
                    None => parse_line(line.as_bytes()),
                    Some(p) => parse_line_projected(line.as_bytes(), p),
                }
                .unwrap()
                .unwrap();
                for field in ["b", "c"] {
                    let mut values = Vec::new();
                    field_values(&parsed.doc, &[field], &mut values);
                    for v in &values {
                        assert!(!is_json_number(v, &parsed.numbers), "{field} in {line}");
                    }
                }
                let mut numbers = Vec::new();
                field_values(&parsed.doc, &["a"], &mut numbers);
                field_values(&parsed.doc, &["a", "n"], &mut numbers);
                field_values(&parsed.doc, &["x", "a"], &mut numbers);
                for v in &numbers {
                    let digits = v.bytes().all(|b| b.is_ascii_digit());
                    assert_eq!(is_json_number(v, &parsed.numbers), digits, "{v} in {line}");
                }
            }
        }
    }

    #[test]
    fn a_lines_numbers_are_known_from_its_strings() {
        let line = br#"{"a":80,"b":"80","c":[1.5,"x",-0],"_source":{"d":7}}"#;
        let parsed = parse_line(line).unwrap().unwrap();
        let kinds = |field: &str| -> Vec<bool> {
            let path: Vec<&str> = field.split('.').collect();
            let mut out = Vec::new();
            field_values(&parsed.doc, &path, &mut out);
            out.iter()
                .map(|v| is_json_number(v, &parsed.numbers))
                .collect()
        };
        assert_eq!(kinds("a"), [true]);
        assert_eq!(kinds("b"), [false]);
        assert_eq!(kinds("c"), [true, false, true]);
        assert_eq!(kinds("_source.d"), [true]);
        // A projected parse records the numbers it builds.
        let projection = Projection::new(["c"]);
        let parsed = parse_line_projected(line, &projection).unwrap().unwrap();
        assert_eq!(parsed.numbers.len(), 2);
    }
}

/// A nested document (spec/ir.md, "Nested scopes"): an object of the event (or the event
/// itself, the top scope), or the one-member document `{key: value}` that a dotted key running
/// past a nested path gives (`"b.c": 1` under `a`, for path `a.b`, is `{"c": 1}`).
#[derive(Debug, Clone, Copy)]
pub enum NestedDoc<'a> {
    /// An object (a value that is not one has no fields).
    Object(&'a Value),
    /// `{key: value}`: the rest of a dotted key past the path, and the member's value.
    Member(&'a str, &'a Value),
}

/// Where a predicate reads a field's values: the event, or a nested document of it.
pub trait Scope<'a>: Copy {
    /// [`for_each_value`] in this scope (`path` relative to it).
    fn for_each_value<S: AsRef<str>, B>(
        self,
        path: &[S],
        f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
    ) -> ControlFlow<B>;
}

impl<'a> Scope<'a> for &'a Value {
    fn for_each_value<S: AsRef<str>, B>(
        self,
        path: &[S],
        f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        for_each_value(self, path, f)
    }
}

impl<'a> Scope<'a> for NestedDoc<'a> {
    fn for_each_value<S: AsRef<str>, B>(
        self,
        path: &[S],
        f: &mut impl FnMut(Cow<'a, str>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        match self {
            NestedDoc::Object(value) => for_each_value(value, path, f),
            NestedDoc::Member(key, value) => match strip_key(key, path) {
                Some([]) => flatten(value, f),
                Some(rest) => descend(value, rest, &mut |node| flatten(node, f)),
                None => ControlFlow::Continue(()),
            },
        }
    }
}

/// Call `f` with each nested document at `path` (split on `.`, relative to `scope`), in
/// document order (spec/ir.md, "Nested scopes": `docs`), stopping early when `f` breaks.
pub fn for_each_nested_doc<'a, S, B>(
    scope: NestedDoc<'a>,
    path: &[S],
    f: &mut impl FnMut(NestedDoc<'a>) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    match scope {
        NestedDoc::Object(value) => nested_in(value, path, f),
        NestedDoc::Member(key, value) => nested_in_member(key, value, path, f),
    }
}

/// The nested documents of one member `key: value` at `path`.
fn nested_in_member<'a, S, B>(
    key: &'a str,
    value: &'a Value,
    path: &[S],
    f: &mut impl FnMut(NestedDoc<'a>) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    // The key's parts against the path's: a prefix of it, or the whole path and more.
    let (mut rest, mut key_rest) = (path, key);
    loop {
        let Some((first, tail)) = rest.split_first() else {
            return f(NestedDoc::Member(key_rest, value));
        };
        let Some(after) = key_rest.strip_prefix(first.as_ref()) else {
            return ControlFlow::Continue(());
        };
        rest = tail;
        if after.is_empty() {
            break;
        }
        let Some(after) = after.strip_prefix('.') else {
            return ControlFlow::Continue(());
        };
        key_rest = after;
    }
    if rest.is_empty() {
        objects(value, f)
    } else {
        nested_in(value, rest, f)
    }
}

/// The nested documents at `path` below an object, or below each object of an array (nested
/// arrays flattened); other values have none.
fn nested_in<'a, S, B>(
    value: &'a Value,
    path: &[S],
    f: &mut impl FnMut(NestedDoc<'a>) -> ControlFlow<B>,
) -> ControlFlow<B>
where
    S: AsRef<str>,
{
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                nested_in_member(key, value, path, f)?;
            }
            ControlFlow::Continue(())
        }
        Value::Array(items) => {
            for item in items {
                nested_in(item, path, f)?;
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    }
}

/// The value at a nested path as nested documents: an object, or each object of an array
/// (nested arrays flattened); scalars and `null` give none.
fn objects<'a, B>(
    value: &'a Value,
    f: &mut impl FnMut(NestedDoc<'a>) -> ControlFlow<B>,
) -> ControlFlow<B> {
    match value {
        Value::Object(_) => f(NestedDoc::Object(value)),
        Value::Array(items) => {
            for item in items {
                objects(item, f)?;
            }
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    }
}

#[cfg(test)]
mod nested_doc_tests {
    use super::*;

    /// The nested documents at `path`, as JSON text (numbers are strings in a parsed line).
    fn docs(line: &str, path: &str) -> Vec<String> {
        let doc = parse_line(line.as_bytes()).unwrap().unwrap().doc;
        let parts: Vec<&str> = path.split('.').collect();
        let mut out = Vec::new();
        let _ = for_each_nested_doc(NestedDoc::Object(&doc), &parts, &mut |d| {
            out.push(match d {
                NestedDoc::Object(v) => v.to_string(),
                NestedDoc::Member(k, v) => serde_json::json!({ k: v }).to_string(),
            });
            ControlFlow::<()>::Continue(())
        });
        out
    }

    #[test]
    fn objects_and_arrays_of_objects_in_document_order() {
        let line = r#"{"a":{"b":[{"c":1},"s",null,[{"c":2},[{"c":3}]],{}]},"a.b":{"c":4}}"#;
        assert_eq!(
            docs(line, "a.b"),
            [
                r#"{"c":"1"}"#,
                r#"{"c":"2"}"#,
                r#"{"c":"3"}"#,
                "{}",
                r#"{"c":"4"}"#
            ]
        );
        // Objects of arrays on the way down are walked too.
        let line = r#"{"a":[{"b":{"c":1}},{"x":1},5,[{"b":[{"c":2}]}]]}"#;
        assert_eq!(docs(line, "a.b"), [r#"{"c":"1"}"#, r#"{"c":"2"}"#]);
        for none in [
            r#"{"a":{"b":"x"}}"#,
            r#"{"a":{"b":null}}"#,
            r#"{"a":{"b":[]}}"#,
            r#"{"a":{"b":[1,[true]]}}"#,
            r#"{"a":"b"}"#,
            r#"{"ab":{"c":1}}"#,
            r#"{"a":{"bc":{"c":1}}}"#,
        ] {
            assert_eq!(docs(none, "a.b"), Vec::<String>::new(), "{none}");
        }
    }

    #[test]
    fn a_key_running_past_the_path_is_a_document_of_its_own() {
        let line = r#"{"a":{"b.c":1,"b.d":[2]},"a.b.e.f":null,"a.bx.c":3}"#;
        assert_eq!(
            docs(line, "a.b"),
            [r#"{"c":"1"}"#, r#"{"d":["2"]}"#, r#"{"e.f":null}"#]
        );
        // Values and documents below a one-member document.
        let doc = parse_line(br#"{"a.b.c":{"d":[{"e":1},{"e":2}],"f":"x"}}"#)
            .unwrap()
            .unwrap()
            .doc;
        let mut outer = None;
        let _ = for_each_nested_doc(NestedDoc::Object(&doc), &["a", "b"], &mut |d| {
            outer = Some(d);
            ControlFlow::<()>::Break(())
        });
        let outer = outer.unwrap();
        assert!(matches!(outer, NestedDoc::Member("c", _)));
        let mut values = Vec::new();
        let _ = outer.for_each_value(&["c", "f"], &mut |v| {
            values.push(v);
            ControlFlow::<()>::Continue(())
        });
        assert_eq!(values, ["x"]);
        let mut inner = Vec::new();
        let _ = for_each_nested_doc(outer, &["c", "d"], &mut |d| {
            let _ = d.for_each_value(&["e"], &mut |v| {
                inner.push(v);
                ControlFlow::<()>::Continue(())
            });
            ControlFlow::<()>::Continue(())
        });
        assert_eq!(inner, ["1", "2"]);
    }

    #[test]
    fn the_walk_stops_when_told() {
        let line = br#"{"a":[{"n":1},{"n":2},{"n":3}]}"#;
        let doc = parse_line(line).unwrap().unwrap().doc;
        let mut seen = 0;
        let found = for_each_nested_doc(NestedDoc::Object(&doc), &["a"], &mut |d| {
            seen += 1;
            let mut two = false;
            let _ = d.for_each_value(&["n"], &mut |v| {
                two = v == "2";
                ControlFlow::<()>::Continue(())
            });
            if two {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((found, seen), (ControlFlow::Break(()), 2));
    }
}
