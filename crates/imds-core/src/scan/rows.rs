//! Hits as rows of the hits frame (`SCHEMA` of python/imds_scan/report/frame.py), one plain
//! buffer per column, so the binding can hand a batch to Polars (as Arrow) without a Python
//! object per hit. The values are `hits_frame`'s: the ECS columns are a field's values joined
//! with ", " in document order, `@timestamp` the first value parsed as spec/semantics.md says.

use super::{Hit, RecordError, RecordMeta};
use crate::eval::Witness;
use crate::event::{field_values, parse_document, parse_line_projected, Projection};
use crate::timestamp::parse_timestamp;
use serde_json::Value;

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
        let mut cells = RowCells {
            timestamp,
            ..RowCells::default()
        };
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
        let mut values = Vec::new();
        for (k, path) in ECS_PATHS.into_iter().enumerate() {
            values.clear();
            if let Some(doc) = doc {
                field_values(doc, path, &mut values);
            }
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    cells.text.push_str(SEPARATOR);
                }
                cells.text.push_str(value);
            }
            cells.ends[4 + k] = cells.text.len();
            cells.valid[4 + k] = !values.is_empty();
        }
        cells.text.push_str(super::record::py_strip(event));
        cells
    }

    /// The cells of an event's text (`event`, as a hit holds it), parsed again with
    /// `projection` ([`row_projection`]): only the row's fields are built. A text that no
    /// longer parses (it did when the hit was made) gives null fields.
    pub fn of_text(event: &str, witness: Option<&Witness>, projection: &Projection) -> RowCells {
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

    /// What the cells take in memory.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<RowCells>() + self.text.len()
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
    /// its text parsed again (only the row's fields are built); an event text that no
    /// longer parses (it did when the hit was made) gives null fields.
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
