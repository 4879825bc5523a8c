//! Hits as rows of the hits frame (`SCHEMA` of python/imds_scan/report/frame.py), one plain
//! buffer per column, so the binding can hand a batch to Polars (as Arrow) without a Python
//! object per hit. The values are `hits_frame`'s: the ECS columns are a field's values joined
//! with ", " in document order, `@timestamp` the first value parsed as spec/semantics.md says.

use super::{Hit, RecordError, RecordMeta};
use crate::eval::Witness;
use crate::event::{field_values, parse_document, parse_line_projected, Projection};
use crate::timestamp::parse_timestamp;
use serde_json::Value;
use std::borrow::Cow;

/// The ECS fields copied into columns of their own, in column order (`ECS_COLUMNS`).
pub const ECS_COLUMNS: [&str; 9] = [
    "host.name",
    "user.name",
    "process.name",
    "process.executable",
    "process.command_line",
    "process.parent.name",
    "destination.ip",
    "destination.address",
    "url.domain",
];

/// [`ECS_COLUMNS`] split into their parts.
const ECS_PATHS: [&[&str]; 9] = [
    &["host", "name"],
    &["user", "name"],
    &["process", "name"],
    &["process", "executable"],
    &["process", "command_line"],
    &["process", "parent", "name"],
    &["destination", "ip"],
    &["destination", "address"],
    &["url", "domain"],
];

/// The witness columns (`MATCHED_COLUMNS`).
pub const MATCHED_COLUMNS: [&str; 4] = [
    "matched.field",
    "matched.op",
    "matched.pattern",
    "matched.value",
];

/// What joins the values of a multi-valued field (`MULTI_VALUE_SEPARATOR`).
const SEPARATOR: &str = ", ";

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// A 64-bit signed integer.
    Int64,
    /// Microseconds since 1970-01-01T00:00:00Z.
    TimestampMicrosUtc,
}

/// A text column: value k is `data[offsets[k]..offsets[k + 1]]`, null where `valid[k]` is
/// false (then empty).
#[derive(Debug, Clone, Default)]
pub struct TextColumn {
    /// `len + 1` offsets into `data`, from 0.
    pub offsets: Vec<i64>,
    /// The values' UTF-8 bytes, one after the other.
    pub data: Vec<u8>,
    /// Whether each value is present.
    pub valid: Vec<bool>,
}

impl TextColumn {
    fn new() -> TextColumn {
        TextColumn {
            offsets: vec![0],
            ..TextColumn::default()
        }
    }

    /// Empty, with room for as many values and bytes as `like` holds, and an eighth more.
    fn room_of(like: &TextColumn) -> TextColumn {
        let values = like.valid.len() + like.valid.len() / 8;
        let mut offsets = Vec::with_capacity(values + 1);
        offsets.push(0);
        TextColumn {
            offsets,
            data: Vec::with_capacity(like.data.len() + like.data.len() / 8),
            valid: Vec::with_capacity(values),
        }
    }

    fn push(&mut self, value: Option<&str>) {
        self.valid.push(value.is_some());
        self.data
            .extend_from_slice(value.unwrap_or_default().as_bytes());
        self.offsets
            .push(i64::try_from(self.data.len()).unwrap_or(i64::MAX));
    }

    /// Value `k`, or `None` when it is null or out of range.
    pub fn get(&self, k: usize) -> Option<&str> {
        if !*self.valid.get(k)? {
            return None;
        }
        let start = usize::try_from(self.offsets[k]).ok()?;
        let end = usize::try_from(self.offsets[k + 1]).ok()?;
        std::str::from_utf8(&self.data[start..end]).ok()
    }
}

/// An integer column (`Int64` or a timestamp): null where `valid[k]` is false (then 0).
#[derive(Debug, Clone, Default)]
pub struct IntColumn {
    /// The values.
    pub values: Vec<i64>,
    /// Whether each value is present.
    pub valid: Vec<bool>,
}

impl IntColumn {
    fn room_of(like: &IntColumn) -> IntColumn {
        let values = like.valid.len() + like.valid.len() / 8;
        IntColumn {
            values: Vec::with_capacity(values),
            valid: Vec::with_capacity(values),
        }
    }

    fn push(&mut self, value: Option<i64>) {
        self.valid.push(value.is_some());
        self.values.push(value.unwrap_or(0));
    }
}

/// One column's values.
#[derive(Debug, Clone, Copy)]
pub enum ColumnData<'a> {
    /// Text.
    Text(&'a TextColumn),
    /// Integers.
    Int(&'a IntColumn),
}

/// The rows of a batch of hits, column by column.
#[derive(Debug, Clone)]
pub struct HitRows {
    len: usize,
    source: TextColumn,
    line: IntColumn,
    timestamp: IntColumn,
    /// rule_id, rule, severity, branch.
    rule: [TextColumn; 4],
    matched: [TextColumn; 4],
    ecs: [TextColumn; 9],
    event: TextColumn,
    /// join_keys and events (JSON text), event_count: a sequence or sample result's columns,
    /// null for a hit (results reach the frame from Python, never through these rows).
    result_text: [TextColumn; 2],
    event_count: IntColumn,
}

impl Default for HitRows {
    fn default() -> Self {
        HitRows {
            len: 0,
            source: TextColumn::new(),
            line: IntColumn::default(),
            timestamp: IntColumn::default(),
            rule: std::array::from_fn(|_| TextColumn::new()),
            matched: std::array::from_fn(|_| TextColumn::new()),
            ecs: std::array::from_fn(|_| TextColumn::new()),
            event: TextColumn::new(),
            result_text: std::array::from_fn(|_| TextColumn::new()),
            event_count: IntColumn::default(),
        }
    }
}

/// The fields a row reads from the event: what a re-parse of a hit's line builds.
pub fn row_projection() -> Projection {
    Projection::new(ECS_COLUMNS.iter().copied().chain(["@timestamp"]))
}

/// What a row takes from its event and witness: the witness and ECS cells, then the event's
/// stripped text, one after the other in `text`, and the `@timestamp`. Made in the thread
/// that found the hit, from the event as it was parsed there.
#[derive(Debug, Clone, Default)]
pub struct RowCells {
    text: String,
    /// Where each of the 4 witness and 9 ECS cells ends in `text`.
    ends: [usize; 13],
    valid: [bool; 13],
    timestamp: Option<i64>,
}

impl RowCells {
    /// The cells of an event (`doc`: its document, with at least the fields of
    /// [`row_projection`]; `None`: nulls), its witness, its text and its time
    /// ([`event_timestamp`] of `doc`).
    pub fn new(
        doc: Option<&Value>,
        witness: Option<&Witness>,
        event: &str,
        timestamp: Option<i64>,
    ) -> RowCells {
        let mut values: Vec<(usize, Cow<'_, str>)> = Vec::new();
        if let Some(doc) = doc {
            let mut found = Vec::new();
            for (p, path) in ECS_PATHS.into_iter().enumerate() {
                field_values(doc, path, &mut found);
                values.extend(found.drain(..).map(|v| (p, v)));
            }
        }
        RowCells::of_values(&values, witness, event, timestamp)
    }

    /// The cells of an event whose [`ECS_PATHS`]' values are `values` (path, value), each
    /// path's in document order; other paths' are left out.
    fn of_values(
        values: &[(usize, Cow<'_, str>)],
        witness: Option<&Witness>,
        event: &str,
        timestamp: Option<i64>,
    ) -> RowCells {
        let mut cells = RowCells {
            timestamp,
            ..RowCells::default()
        };
        let size: usize = values.iter().map(|(_, v)| v.len() + 2).sum();
        cells.text.reserve(size + event.len() + 64);
        let matched = [
            witness.map(|w| w.field.as_str()),
            witness.map(|w| w.op),
            witness.map(|w| w.pattern.as_str()),
            witness.map(|w| w.value.as_str()),
        ];
        for (k, value) in matched.into_iter().enumerate() {
            cells.text.push_str(value.unwrap_or_default());
            cells.ends[k] = cells.text.len();
            cells.valid[k] = value.is_some();
        }
        for k in 0..ECS_PATHS.len() {
            let mut any = false;
            for (_, value) in values.iter().filter(|(p, _)| *p == k) {
                if any {
                    cells.text.push_str(SEPARATOR);
                }
                cells.text.push_str(value);
                any = true;
            }
            cells.ends[4 + k] = cells.text.len();
            cells.valid[4 + k] = any;
        }
        cells.text.push_str(super::record::py_strip(event));
        cells
    }

    /// The cells of an event's text (`event`, as a hit holds it), read again: straight from
    /// the text ([`RowCells::read`]), or where that gives up parsed with `projection`
    /// ([`row_projection`]: only the row's fields are built). A text that no longer parses
    /// (it did when the hit was made) gives null fields.
    pub fn of_text(event: &str, witness: Option<&Witness>, projection: &Projection) -> RowCells {
        if let Some(cells) = RowCells::read(event, witness) {
            return cells;
        }
        let doc = match parse_line_projected(event.as_bytes(), projection) {
            // The text of an exporter's wrapper is its `_source` object, which the Python
            // layer reads as it is: a text that is itself a wrapper is read in full, as is.
            Ok(Some(parsed)) if parsed.text.len() != event.len() => parse_document(event).ok(),
            Ok(Some(parsed)) => Some(parsed.doc),
            Ok(None) | Err(_) => None,
        };
        let time = doc.as_ref().and_then(event_timestamp);
        RowCells::new(doc.as_ref(), witness, event, time)
    }

    /// The cells of an event's text read straight from it, without building a document:
    /// `None` when the text needs the full reading (a repeated key or an escaped key on the
    /// way to a field, a string [`parse_document`] would decode lossily, anything that is
    /// not JSON).
    fn read(event: &str, witness: Option<&Witness>) -> Option<RowCells> {
        let mut walk = Walk {
            text: event,
            pos: 0,
            values: Vec::with_capacity(16),
        };
        walk.space();
        let all: [(usize, usize); ROW_PATHS] = std::array::from_fn(|p| (p, 0));
        walk.object(&all)?;
        let time = (walk.values.iter())
            .find(|(p, _)| *p == STAMP)
            .and_then(|(_, v)| parse_timestamp(v));
        Some(RowCells::of_values(&walk.values, witness, event, time))
    }

    /// What the cells take in memory.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<RowCells>() + self.text.len()
    }
}

/// The paths a row reads: [`ECS_PATHS`], then `@timestamp`.
const ROW_PATHS: usize = 10;

/// `@timestamp`'s place in [`row_path`].
const STAMP: usize = ROW_PATHS - 1;

/// Most keys one object may have on the way to the row's fields before the reading gives up.
const SEEN_KEYS: usize = 16;

fn row_path(p: usize) -> &'static [&'static str] {
    ECS_PATHS.get(p).copied().unwrap_or(&["@timestamp"])
}

/// Reads the values of the row's paths from an event's text (one the engine parsed) in one
/// pass, building nothing but those values, in the order [`field_values`] gives them from
/// the parsed document (document order, which is the document's member order when no key
/// on the way repeats). Gives up (`None`) on what it does not read as the parser would.
struct Walk<'t> {
    text: &'t str,
    pos: usize,
    /// The values so far, each with its path of [`row_path`], in document order.
    values: Vec<(usize, Cow<'t, str>)>,
}

/// A path of [`row_path`] and how many of its parts are behind.
type Active = (usize, usize);

impl<'t> Walk<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        let at = self.peek() == Some(byte);
        self.pos += usize::from(at);
        at
    }

    /// The object at `pos` (after whitespace), with the paths `active` to follow in it.
    fn object(&mut self, active: &[Active]) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        // The keys on the way to a field: one seen twice gives up (a map keeps the last).
        let mut seen: [&'t str; SEEN_KEYS] = [""; SEEN_KEYS];
        let mut seen_len = 0;
        // The first bytes of the paths' next parts: the members whose keys start otherwise
        // are passed over together, as the parser passes over members no rule reads.
        let read = active.iter().fold(0, |set, &(p, done)| {
            let b = row_path(p)[done]
                .as_bytes()
                .first()
                .copied()
                .unwrap_or(b'"');
            set | crate::event::key_bit(b)
        });
        loop {
            self.space();
            let (at, ended) = crate::event::pass_members(self.text.as_bytes(), self.pos, read)?;
            self.pos = at;
            if ended {
                return Some(());
            }
            let key = self.plain_string()?;
            if !self.eat(b':') {
                return None;
            }
            self.space();
            let first = key.as_bytes().first().copied();
            let mut deeper = [(0, 0); ROW_PATHS];
            let mut count = 0;
            let mut end = None;
            for &(p, done) in active {
                let path = &row_path(p)[done..];
                // Most keys are ruled out by their first byte.
                if path[0].as_bytes().first().copied() != first {
                    continue;
                }
                if let Some(rest) = strip_key(key, path) {
                    if rest == 0 {
                        end = Some(p);
                    } else {
                        deeper[count] = (p, path.len() - rest + done);
                        count += 1;
                    }
                }
            }
            if end.is_some() || count > 0 {
                if seen[..seen_len].contains(&key) || seen_len == SEEN_KEYS {
                    return None;
                }
                seen[seen_len] = key;
                seen_len += 1;
            }
            match end {
                Some(p) => self.flatten(p)?,
                None if count > 0 => self.descend(&deeper[..count])?,
                None => self.skip()?,
            }
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A value on the way to the `active` paths: an object is looked into, an array's items
    /// are, the rest has no fields.
    fn descend(&mut self, active: &[Active]) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(active),
            b'[' => self.items(|walk| walk.descend(active)),
            _ => self.skip(),
        }
    }

    /// A value at the end of path `p`: its strings, numbers (as written) and booleans, an
    /// array's too; no value for null or an object.
    fn flatten(&mut self, p: usize) -> Option<()> {
        let value = match self.peek()? {
            b'[' => return self.items(|walk| walk.flatten(p)),
            b'{' | b'n' => return self.skip(),
            b'"' => self.value_string()?,
            b't' | b'f' => {
                let word = if self.peek() == Some(b't') {
                    "true"
                } else {
                    "false"
                };
                self.skip()?;
                Cow::Borrowed(word)
            }
            _ => {
                let start = self.pos;
                self.skip()?;
                Cow::Borrowed(&self.text[start..self.pos])
            }
        };
        self.values.push((p, value));
        Some(())
    }

    /// The items of the array at `pos`, each read by `item` (after whitespace).
    fn items(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.pos += 1;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.space();
            item(self)?;
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// A string without escapes (a key), borrowed; `None` for one with escapes.
    fn plain_string(&mut self) -> Option<&'t str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.pos + 1;
        let end = crate::event::string_stop(self.text.as_bytes(), start);
        if self.text.as_bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.pos = end + 1;
        Some(&self.text[start..end])
    }

    /// A string value, decoded as the parser decodes it (`None` for a lone surrogate, which
    /// it decodes its own way).
    fn value_string(&mut self) -> Option<Cow<'t, str>> {
        let start = self.pos;
        if let Some(plain) = self.plain_string() {
            return Some(Cow::Borrowed(plain));
        }
        self.skip_string()?;
        if let Some(decoded) = crate::event::unescape_short(&self.text[start + 1..self.pos - 1]) {
            return Some(Cow::Owned(decoded));
        }
        serde_json::from_str::<String>(&self.text[start..self.pos])
            .ok()
            .map(Cow::Owned)
    }

    /// Pass over the string at `pos`.
    fn skip_string(&mut self) -> Option<()> {
        self.pos = string_end(self.text.as_bytes(), self.pos + 1)?;
        Some(())
    }

    /// Pass over the value at `pos` (the parser's own pass: a text it accepted).
    fn skip(&mut self) -> Option<()> {
        self.pos = crate::event::value_end(self.text.as_bytes(), self.pos)?;
        Some(())
    }
}

/// Just after the end of the string whose contents start at `i` (its escapes passed over).
#[inline]
fn string_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = crate::event::string_stop(bytes, i);
        match bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1, // a control byte (not in an accepted event's strings)
        }
    }
}

/// How many parts of `path` are left when `key`, split on `.`, is a prefix of it (as
/// [`field_values`] matches keys); `None` when it is not.
fn strip_key(mut key: &str, path: &[&str]) -> Option<usize> {
    let mut rest = path;
    loop {
        let (first, tail) = rest.split_first()?;
        let after = key.strip_prefix(first)?;
        rest = tail;
        if after.is_empty() {
            return Some(rest.len());
        }
        key = after.strip_prefix('.')?;
    }
}

/// An event's time (spec/semantics.md, @timestamp): its first `@timestamp` value, parsed.
pub fn event_timestamp(doc: &Value) -> Option<i64> {
    let mut values = Vec::new();
    field_values(doc, &["@timestamp"], &mut values);
    values.first().and_then(|v| parse_timestamp(v))
}

impl HitRows {
    /// No rows yet.
    pub fn new() -> HitRows {
        HitRows::default()
    }

    /// No rows yet, with room for about as many as `like` holds (a batch the size of the
    /// last one then grows no column by copying).
    pub fn with_room_of(like: &HitRows) -> HitRows {
        let text = TextColumn::room_of;
        HitRows {
            len: 0,
            source: text(&like.source),
            line: IntColumn::room_of(&like.line),
            timestamp: IntColumn::room_of(&like.timestamp),
            rule: std::array::from_fn(|k| text(&like.rule[k])),
            matched: std::array::from_fn(|k| text(&like.matched[k])),
            ecs: std::array::from_fn(|k| text(&like.ecs[k])),
            event: text(&like.event),
            result_text: std::array::from_fn(|k| text(&like.result_text[k])),
            event_count: IntColumn::room_of(&like.event_count),
        }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append `hit`'s row, named by `meta`; `projection` is [`row_projection`]. The event is
    /// its text read again ([`RowCells::of_text`]).
    pub fn push(
        &mut self,
        hit: &Hit,
        meta: &RecordMeta,
        projection: &Projection,
    ) -> Result<(), RecordError> {
        let cells = RowCells::of_text(&hit.event, hit.witness.as_ref(), projection);
        self.push_cells(hit, meta, &cells)
    }

    /// Append the row of `hit` whose event's cells are `cells` (made where the hit was found,
    /// from the parsed event).
    pub(super) fn push_cells(
        &mut self,
        hit: &Hit,
        meta: &RecordMeta,
        cells: &RowCells,
    ) -> Result<(), RecordError> {
        let source = (meta.sources.get(hit.source))
            .ok_or_else(|| RecordError(format!("no source {}", hit.source)))?;
        let (rule, branch) = meta.rule_branch(hit.rule, hit.branch)?;
        self.source.push(Some(source));
        self.line.push(i64::try_from(hit.line).ok());
        self.timestamp.push(cells.timestamp);
        for (column, value) in
            self.rule
                .iter_mut()
                .zip([&rule.id, &rule.name, &rule.severity, branch])
        {
            column.push(Some(value));
        }
        let mut start = 0;
        for (k, column) in self.matched.iter_mut().chain(&mut self.ecs).enumerate() {
            let end = cells.ends[k];
            column.push(cells.valid[k].then(|| &cells.text[start..end]));
            start = end;
        }
        self.event.push(Some(&cells.text[start..]));
        for column in &mut self.result_text {
            column.push(None);
        }
        self.event_count.push(None);
        self.len += 1;
        Ok(())
    }

    /// Every column as (name, type, values), in the frame's column order.
    pub fn columns(&self) -> Vec<(&'static str, ColumnType, ColumnData<'_>)> {
        use ColumnType::{Int64, String, TimestampMicrosUtc};
        let mut out = vec![
            ("source", String, ColumnData::Text(&self.source)),
            ("line", Int64, ColumnData::Int(&self.line)),
            (
                "@timestamp",
                TimestampMicrosUtc,
                ColumnData::Int(&self.timestamp),
            ),
        ];
        let rule_names = ["rule_id", "rule", "severity", "branch"];
        for (name, column) in rule_names.into_iter().zip(&self.rule) {
            out.push((name, String, ColumnData::Text(column)));
        }
        for (name, column) in MATCHED_COLUMNS.into_iter().zip(&self.matched) {
            out.push((name, String, ColumnData::Text(column)));
        }
        for (name, column) in ECS_COLUMNS.into_iter().zip(&self.ecs) {
            out.push((name, String, ColumnData::Text(column)));
        }
        out.push(("event", String, ColumnData::Text(&self.event)));
        let [join_keys, events] = &self.result_text;
        out.push(("join_keys", String, ColumnData::Text(join_keys)));
        out.push(("event_count", Int64, ColumnData::Int(&self.event_count)));
        out.push(("events", String, ColumnData::Text(events)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::RuleMeta;
    use proptest::prelude::*;

    fn meta() -> RecordMeta {
        RecordMeta {
            sources: vec!["in.ndjson".into()],
            rules: vec![RuleMeta {
                name: "n".into(),
                id: "i".into(),
                severity: "high".into(),
                branches: vec!["b0".into()],
            }],
        }
    }

    fn hit(event: &str, witness: Option<Witness>) -> Hit {
        Hit {
            source: 0,
            line: 7,
            rule: 0,
            branch: 0,
            witness,
            event: event.into(),
            extra: None,
        }
    }

    fn text<'a>(rows: &'a HitRows, name: &str, k: usize) -> Option<&'a str> {
        let columns = rows.columns();
        let (_, _, data) = columns.iter().find(|(n, _, _)| *n == name).unwrap();
        match data {
            ColumnData::Text(column) => column.get(k),
            ColumnData::Int(_) => panic!("{name} is not text"),
        }
    }

    #[test]
    fn rows_hold_the_frames_values() {
        let projection = row_projection();
        let mut rows = HitRows::new();
        let witness = Witness {
            field: "process.name".into(),
            op: "==",
            pattern: "curl".into(),
            value: "curl".into(),
        };
        let events = [
            // Nested and dotted spellings and arrays, in document order; numbers as written.
            " {\"host\": {\"name\": [\"a\", [\"b\"]]}, \"host.name\": \"c\", \"user\": \
             {\"name\": 1.50}, \"process.name\": true, \"@timestamp\": \
             [\"2024-05-01T10:00:00.1234567+02:00\", \"x\"]}\r",
            // No fields; a timestamp that is not one; an escape and non-ASCII text.
            "{\"@timestamp\": \"2024-05-01 10:00\", \"url\": {\"domain\": \"\\u00e9😀\"}}",
            // An exporter's wrapper's `_source` that is itself a wrapper: read as it is.
            "{\"_index\": \"i\", \"_source\": {\"host\": {\"name\": \"inner\"}}, \
             \"host.name\": \"outer\"}",
        ];
        for (k, event) in events.iter().enumerate() {
            let w = (k == 0).then(|| witness.clone());
            rows.push(&hit(event, w), &meta(), &projection).unwrap();
        }
        assert_eq!(rows.len(), 3);
        assert_eq!(text(&rows, "host.name", 0), Some("a, b, c"));
        assert_eq!(text(&rows, "user.name", 0), Some("1.50"));
        assert_eq!(text(&rows, "process.name", 0), Some("true"));
        assert_eq!(text(&rows, "matched.op", 0), Some("=="));
        assert_eq!(text(&rows, "matched.op", 1), None);
        assert_eq!(text(&rows, "host.name", 1), None);
        assert_eq!(text(&rows, "url.domain", 1), Some("é😀"));
        assert_eq!(text(&rows, "host.name", 2), Some("outer"));
        assert_eq!(text(&rows, "event", 0), Some(events[0].trim()));
        assert_eq!(text(&rows, "rule_id", 2), Some("i"));
        assert_eq!(text(&rows, "branch", 2), Some("b0"));
        assert_eq!(text(&rows, "source", 1), Some("in.ndjson"));
        let columns = rows.columns();
        let ColumnData::Int(stamps) = columns[2].2 else {
            panic!("@timestamp")
        };
        // 2024-05-01T08:00:00.123456Z, truncated.
        assert_eq!(stamps.values[0], 1_714_550_400_123_456);
        assert_eq!(stamps.valid, [true, false, false]);
        let ColumnData::Int(lines) = columns[1].2 else {
            panic!("line")
        };
        assert_eq!(lines.values, [7, 7, 7]);
        assert_eq!(columns.len(), 24);
        assert_eq!(text(&rows, "join_keys", 0), None);
        assert_eq!(text(&rows, "events", 2), None);
        let ColumnData::Int(counts) = columns[22].2 else {
            panic!("event_count")
        };
        assert_eq!(counts.valid, [false, false, false]);
    }

    /// The cells as the parsed document gives them (the reading [`RowCells::read`] spares).
    fn parsed_cells(event: &str) -> RowCells {
        let doc = match parse_line_projected(event.as_bytes(), &row_projection()) {
            Ok(Some(parsed)) if parsed.text.len() != event.len() => parse_document(event).ok(),
            Ok(Some(parsed)) => Some(parsed.doc),
            _ => None,
        };
        let time = doc.as_ref().and_then(event_timestamp);
        RowCells::new(doc.as_ref(), None, event, time)
    }

    #[test]
    fn cells_read_from_the_text_are_the_parsed_documents() {
        let same = |cells: &RowCells, other: &RowCells| {
            (
                cells.text.as_str(),
                cells.ends,
                cells.valid,
                cells.timestamp,
            ) == (
                other.text.as_str(),
                other.ends,
                other.valid,
                other.timestamp,
            )
        };
        let read = [
            "{\"host\": {\"name\": [\"a\", [\"b\", null, {\"x\": 1}], 2.50, true]}, \
             \"host.name\": \"c\", \"@timestamp\": [\"2024-05-01T10:00:00Z\", 1]}",
            "{\"process\": [{\"parent\": {\"name\": \"p\"}}, {\"parent.name\": 1E3}], \
             \"process.name\": \"a\\\"b\\u00e9\\ud83d\\ude00\", \"x\": {\"host\": \
             {\"name\": \"no\"}}, \"y\": [\"[\\\"]\", \"{\"], \"z\": -1.5e-3}",
            " { \"user\" : { \"name\" : false } , \"url\" : { \"domain\" : null } , \
             \"destination\": {\"ip\": \"1.2.3.4\", \"ip\u{e9}\": 1}, \"@timestamp\": 17} ",
            "{\"_index\": \"i\", \"_source\": {\"host\": {\"name\": \"in\"}}, \
             \"host.name\": \"out\", \"hostx\": 1, \"host.\": 2, \"\": 3}",
            "{\"event\": {\"k\": 1, \"k\": 2}, \"host\": {\"id\": 1, \"id\": 2}}",
        ];
        for event in read {
            let cells = RowCells::read(event, None).expect(event);
            assert!(same(&cells, &parsed_cells(event)), "{event}");
        }
        // The full reading: a repeated key on the way, an escaped key, a lone surrogate.
        let parsed = [
            "{\"host\": {\"name\": \"a\"}, \"host\": {\"name\": \"b\"}}",
            "{\"host\": {\"name\": \"a\", \"name\": \"b\"}}",
            "{\"ho\\u0073t\": {\"name\": \"a\"}}",
            "{\"user\": {\"name\": \"\\ud800x\"}}",
        ];
        for event in parsed {
            assert!(RowCells::read(event, None).is_none(), "{event}");
            let cells = RowCells::of_text(event, None, &row_projection());
            assert!(same(&cells, &parsed_cells(event)), "{event}");
        }
    }

    /// Keys of the row's paths, parts and joins of them, near misses, repeats and escapes.
    const KEYS: &[&str] = &[
        "host",
        "name",
        "host.name",
        "process",
        "parent",
        "parent.name",
        "process.parent",
        "process.name",
        "command_line",
        "@timestamp",
        "user",
        "url",
        "domain",
        "destination",
        "ip",
        "hostx",
        "h",
        "na",
        "",
        "ho\\u0073t",
        "\\u0068ost",
        "n\\\"ame",
        "event",
        "(",
    ];

    /// Values: strings with and without escapes (simple and `\u`), numbers, words, and the
    /// containers `inner` makes.
    fn leaf() -> impl Strategy<Value = String> {
        prop::sample::select(
            &[
                "\"a\"",
                "\"\"",
                "\"C:\\\\x \\\"q\\\" \\/\\t\"",
                "\"\\u00e9\\ud83d\\ude00\"",
                "\"\\ud800\"",
                "\"2024-05-01T10:00:00.5Z\"",
                "\"\u{e9}x\"",
                "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"",
                "-1.5e-3",
                "17",
                "true",
                "false",
                "null",
            ][..],
        )
        .prop_map(str::to_owned)
    }

    fn json() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(", "))),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(
                    |members| {
                        let members: Vec<String> = (members.iter())
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }
                ),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// What the reading straight from the text gives, when it reads, is what the parsed
        /// document gives; and the cells of any text are the parsed document's (serde_json's).
        #[test]
        fn cells_read_are_the_parsed_documents_cells(
            members in prop::collection::vec((prop::sample::select(KEYS), json()), 0..8)
        ) {
            let members: Vec<String> =
                members.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            let event = format!("{{{}}}", members.join(", "));
            // serde_json's document where it reads the text (it refuses lone surrogates),
            // so that the oracle shares no decoding with what it checks.
            let want = match serde_json::from_str::<Value>(&event) {
                Ok(doc) => RowCells::new(Some(&doc), None, &event, event_timestamp(&doc)),
                Err(_) => parsed_cells(&event),
            };
            let key = |c: &RowCells| (c.text.clone(), c.ends, c.valid, c.timestamp);
            if let Some(cells) = RowCells::read(&event, None) {
                prop_assert_eq!(key(&cells), key(&want), "{}", event);
            }
            let cells = RowCells::of_text(&event, None, &row_projection());
            prop_assert_eq!(key(&cells), key(&want), "{}", event);
        }
    }

    #[test]
    fn string_ends_are_found_at_any_offset() {
        for len in 0..40 {
            for escape in [None, Some(0), Some(len / 2)] {
                let mut text = "x".repeat(len);
                if let Some(at) = escape.filter(|&at| at + 2 <= len) {
                    text.replace_range(at..at + 2, "\\\"");
                }
                let bytes = format!("\"{text}\" \"").into_bytes();
                assert_eq!(string_end(&bytes, 1), Some(len + 2), "{text}");
            }
        }
        assert_eq!(string_end(b"\"abc", 1), None);
    }

    #[test]
    fn ecs_paths_are_the_columns_split() {
        for (path, column) in ECS_PATHS.iter().zip(ECS_COLUMNS) {
            assert_eq!(path.join("."), column);
        }
    }

    #[test]
    fn unknown_names_are_errors() {
        let mut h = hit("{}", None);
        h.rule = 3;
        let err = HitRows::new()
            .push(&h, &meta(), &row_projection())
            .unwrap_err();
        assert_eq!(err, RecordError("no rule 3".into()));
    }
}
