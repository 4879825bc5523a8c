//! A batch of hit rows as an Arrow IPC stream (one schema message, one record batch, the end
//! marker), which `polars.read_ipc_stream` reads. Hand-written: the rows need three column
//! types, and the arrow crates would add far more to build than this (see the commit).
//!
//! The messages are flatbuffers (Arrow's Message.fbs and Schema.fbs, metadata version V5),
//! written front to back: a table first, then what it points to, so every offset points
//! forward as the format requires; each table's vtable sits just before it.

use imds_core::{ColumnData, ColumnType, HitRows};

/// A scalar or a reference (patched once its target is written) in a table.
#[derive(Clone, Copy)]
enum Slot {
    U8(u8),
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    /// An offset to an object written later: [`Fb::point`] fills it.
    Ref,
}

impl Slot {
    fn size(self) -> usize {
        match self {
            Slot::U8(_) | Slot::Bool(_) => 1,
            Slot::I16(_) => 2,
            Slot::I32(_) | Slot::Ref => 4,
            Slot::I64(_) => 8,
        }
    }
}

/// A flatbuffer being written front to back.
struct Fb {
    buf: Vec<u8>,
}

impl Fb {
    /// A buffer whose root offset (at 0) will point at the first table.
    fn new() -> Fb {
        Fb { buf: vec![0; 4] }
    }

    fn pad_to(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    /// Make the offset at `at` point at `target`.
    fn point(&mut self, at: usize, target: usize) {
        let delta = u32::try_from(target - at).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&delta.to_le_bytes());
    }

    /// Write a table of `(field id, value)`; gives its position and the positions of its
    /// `Ref` slots, in the order given.
    fn table(&mut self, fields: &[(u16, Slot)]) -> (usize, Vec<usize>) {
        let slots = fields.iter().map(|(id, _)| *id + 1).max().unwrap_or(0);
        // Vtable: its size, the table's size, then a u16 per field id (0 = absent), placed so
        // that the table after it starts 8-aligned.
        let vtable_len = 4 + 2 * usize::from(slots);
        self.pad_to(2);
        while !(self.buf.len() + vtable_len).is_multiple_of(8) {
            self.buf.extend_from_slice(&[0, 0]);
        }
        let vtable = self.buf.len();
        self.buf.resize(vtable + vtable_len, 0);
        let table = self.buf.len();
        let soffset = i32::try_from(table - vtable).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&soffset.to_le_bytes());
        // Widest first: each field lands on its own alignment without padding.
        let mut order: Vec<usize> = (0..fields.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(fields[k].1.size()));
        let mut refs = vec![0; fields.len()];
        for k in order {
            let (id, slot) = fields[k];
            self.pad_to(slot.size());
            let at = self.buf.len();
            match slot {
                Slot::U8(v) => self.buf.push(v),
                Slot::Bool(v) => self.buf.push(u8::from(v)),
                Slot::I16(v) => self.buf.extend_from_slice(&v.to_le_bytes()),
                Slot::I32(v) => self.buf.extend_from_slice(&v.to_le_bytes()),
                Slot::I64(v) => self.buf.extend_from_slice(&v.to_le_bytes()),
                Slot::Ref => self.buf.extend_from_slice(&[0; 4]),
            }
            refs[k] = at;
            let entry = vtable + 4 + 2 * usize::from(id);
            let field_offset = u16::try_from(at - table).unwrap_or(u16::MAX);
            self.buf[entry..entry + 2].copy_from_slice(&field_offset.to_le_bytes());
        }
        let table_len = u16::try_from(self.buf.len() - table).unwrap_or(u16::MAX);
        let vtable_len = u16::try_from(vtable_len).unwrap_or(u16::MAX);
        self.buf[vtable..vtable + 2].copy_from_slice(&vtable_len.to_le_bytes());
        self.buf[vtable + 2..vtable + 4].copy_from_slice(&table_len.to_le_bytes());
        let refs = fields
            .iter()
            .zip(refs)
            .filter(|((_, slot), _)| matches!(slot, Slot::Ref))
            .map(|(_, at)| at)
            .collect();
        (table, refs)
    }

    fn string(&mut self, s: &str) -> usize {
        self.pad_to(4);
        let at = self.buf.len();
        self.buf
            .extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        at
    }

    /// A vector of `n` offsets to fill: its position and the positions of its items.
    fn refs(&mut self, n: usize) -> (usize, Vec<usize>) {
        self.pad_to(4);
        let at = self.buf.len();
        self.buf
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        let items = (0..n).map(|k| at + 4 + 4 * k).collect();
        self.buf.resize(at + 4 + 4 * n, 0);
        (at, items)
    }

    /// A vector of structs of two i64s (FieldNode, Buffer).
    fn pairs(&mut self, items: &[(i64, i64)]) -> usize {
        while !(self.buf.len() + 4).is_multiple_of(8) {
            self.buf.push(0);
        }
        let at = self.buf.len();
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&n.to_le_bytes());
        for (a, b) in items {
            self.buf.extend_from_slice(&a.to_le_bytes());
            self.buf.extend_from_slice(&b.to_le_bytes());
        }
        at
    }
}

/// MetadataVersion V5.
const V5: i16 = 4;
/// MessageHeader: Schema, RecordBatch.
const HEADER_SCHEMA: u8 = 1;
const HEADER_RECORD_BATCH: u8 = 3;
/// Type union: Int, Timestamp, LargeUtf8 (i64 offsets: a batch's text may pass 2 GiB).
const TYPE_INT: u8 = 2;
const TYPE_TIMESTAMP: u8 = 10;
const TYPE_LARGE_UTF8: u8 = 20;
/// TimeUnit MICROSECOND.
const MICROSECOND: i16 = 2;

/// A Message table around a header written by `header`; `body` is the body's length.
fn message(kind: u8, body: usize, header: impl FnOnce(&mut Fb) -> usize) -> Vec<u8> {
    let mut fb = Fb::new();
    let body = i64::try_from(body).unwrap_or(i64::MAX);
    let (root, refs) = fb.table(&[
        (0, Slot::I16(V5)),
        (1, Slot::U8(kind)),
        (2, Slot::Ref),
        (3, Slot::I64(body)),
    ]);
    fb.point(0, root);
    let at = header(&mut fb);
    fb.point(refs[0], at);
    fb.buf
}

fn schema_message(columns: &[(&str, ColumnType)]) -> Vec<u8> {
    message(HEADER_SCHEMA, 0, |fb| {
        let (schema, refs) = fb.table(&[(0, Slot::I16(0)), (1, Slot::Ref)]);
        let (vector, items) = fb.refs(columns.len());
        fb.point(refs[0], vector);
        for ((name, kind), item) in columns.iter().zip(items) {
            let type_id = match kind {
                ColumnType::String => TYPE_LARGE_UTF8,
                ColumnType::Int64 => TYPE_INT,
                ColumnType::TimestampMicrosUtc => TYPE_TIMESTAMP,
            };
            let (field, refs) = fb.table(&[
                (0, Slot::Ref),
                (1, Slot::Bool(true)),
                (2, Slot::U8(type_id)),
                (3, Slot::Ref),
                (5, Slot::Ref),
            ]);
            fb.point(item, field);
            let at = fb.string(name);
            fb.point(refs[0], at);
            let at = match kind {
                ColumnType::String => fb.table(&[]).0,
                ColumnType::Int64 => fb.table(&[(0, Slot::I32(64)), (1, Slot::Bool(true))]).0,
                ColumnType::TimestampMicrosUtc => {
                    let (at, refs) = fb.table(&[(0, Slot::I16(MICROSECOND)), (1, Slot::Ref)]);
                    let zone = fb.string("UTC");
                    fb.point(refs[0], zone);
                    at
                }
            };
            fb.point(refs[1], at);
            let (children, _) = fb.refs(0);
            fb.point(refs[2], children);
        }
        schema
    })
}

/// The body of a record batch: its buffers, each 8-aligned, laid out first (their offset and
/// length) and copied once, straight into the stream, after the message that describes them.
#[derive(Default)]
struct Body<'r> {
    parts: Vec<Part<'r>>,
    buffers: Vec<(i64, i64)>,
    len: usize,
}

/// One buffer of the body: the rows' own bytes, or bytes made for the stream.
enum Part<'r> {
    Borrowed(&'r [u8]),
    Owned(Vec<u8>),
}

impl<'r> Body<'r> {
    fn push(&mut self, part: Part<'r>) {
        let len = match &part {
            Part::Borrowed(data) => data.len(),
            Part::Owned(data) => data.len(),
        };
        let offset = i64::try_from(self.len).unwrap_or(i64::MAX);
        self.buffers
            .push((offset, i64::try_from(len).unwrap_or(i64::MAX)));
        self.len += len.next_multiple_of(8);
        self.parts.push(part);
    }

    /// The validity bitmap (least significant bit first), or an empty buffer when nothing is
    /// null; gives the null count.
    fn validity(&mut self, valid: &[bool]) -> usize {
        let nulls = valid.iter().filter(|v| !**v).count();
        if nulls == 0 {
            self.push(Part::Borrowed(&[]));
            return 0;
        }
        let mut bits = vec![0u8; valid.len().div_ceil(8)];
        for (k, _) in valid.iter().enumerate().filter(|(_, v)| **v) {
            bits[k / 8] |= 1 << (k % 8);
        }
        self.push(Part::Owned(bits));
        nulls
    }

    /// Append the buffers, each padded to 8 bytes.
    fn write(&self, out: &mut Vec<u8>) {
        for part in &self.parts {
            let data = match part {
                Part::Borrowed(data) => data,
                Part::Owned(data) => data.as_slice(),
            };
            out.extend_from_slice(data);
            out.resize(out.len() + (data.len().next_multiple_of(8) - data.len()), 0);
        }
    }
}

fn le_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Append one message (continuation marker, metadata length, metadata padded to 8) and its
/// body.
fn frame(out: &mut Vec<u8>, mut meta: Vec<u8>, body: &Body<'_>) {
    while !meta.len().is_multiple_of(8) {
        meta.push(0);
    }
    out.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    out.extend_from_slice(&i32::try_from(meta.len()).unwrap_or(i32::MAX).to_le_bytes());
    out.extend_from_slice(&meta);
    body.write(out);
}

/// `rows` as an Arrow IPC stream: the schema, one record batch, the end-of-stream marker.
pub fn ipc_stream(rows: &HitRows) -> Vec<u8> {
    let columns = rows.columns();
    let len = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let mut body = Body::default();
    let mut nodes = Vec::with_capacity(columns.len());
    for (_, _, data) in &columns {
        let nulls = match data {
            ColumnData::Int(column) => {
                let nulls = body.validity(&column.valid);
                body.push(Part::Owned(le_bytes(&column.values)));
                nulls
            }
            ColumnData::Text(column) => {
                let nulls = body.validity(&column.valid);
                body.push(Part::Owned(le_bytes(&column.offsets)));
                body.push(Part::Borrowed(&column.data));
                nulls
            }
        };
        nodes.push((len, i64::try_from(nulls).unwrap_or(i64::MAX)));
    }
    let named: Vec<(&str, ColumnType)> = columns.iter().map(|(n, t, _)| (*n, *t)).collect();
    // Reserved whole: the text is copied once, from the rows into the stream.
    let mut out = Vec::with_capacity(body.len + 8192);
    frame(&mut out, schema_message(&named), &Body::default());
    let batch = message(HEADER_RECORD_BATCH, body.len, |fb| {
        let (table, refs) = fb.table(&[(0, Slot::I64(len)), (1, Slot::Ref), (2, Slot::Ref)]);
        let at = fb.pairs(&nodes);
        fb.point(refs[0], at);
        let at = fb.pairs(&body.buffers);
        fb.point(refs[1], at);
        table
    });
    frame(&mut out, batch, &body);
    out.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out
}
