//! imds-core: the scanning engine of imds-scan, in pure Rust (no Python).
//!
//! Data flow: bytes from a source (plain, gzip, zstd; `scan/source.rs`) → the prefilter
//! (`prefilter/`: Aho-Corasick over whole buffers) → candidate line → `event` (JSON parse +
//! field lookup) → `eval` (rule IR) → [`Hit`].
//!
//! Layout: the semantics (`event`, `eval`, `ip`, `wildcard`, `endpoint`, `ir`) are mirrored
//! one to one by the Python reference engine; `prefilter/` decides which lines are parsed;
//! `scan/` moves bytes through both.

#![deny(missing_docs)]

#[cfg(feature = "mimalloc")]
pub mod allocator;
pub mod analysis;
mod endpoint;
mod error;
mod eval;
mod event;
mod expr;
mod ip;
mod ir;
pub mod lucene_regex;
mod prefilter;
mod scan;
pub mod sequence;
mod timestamp;
mod typed;
mod wildcard;

pub use error::{Error, InputError, InputErrorKind, RuleError};
pub use eval::{CompiledRule, Match, Verdict, Witness};
pub use event::{
    field_values, parse_document, parse_line, parse_line_for, parse_line_projected, Malformed,
    OpenRules, ParsedLine, Projection,
};
pub use ir::{
    Branch, Call, FieldRef, FieldType, Func, LitType, Literal, Node, Op, Predicate, RuleIr,
    ValueExpr,
};
pub use prefilter::Prefilter;
pub use scan::{
    event_timestamp, row_projection, write_keys_json, write_result_record, AlertRule, ColumnData,
    ColumnType, Compression, Engine, FileStats, Hit, HitExtra, HitForms, HitRows, Input, IntColumn,
    ReadSeek, RecordError, RecordMeta, ResultEvent, RowCells, RuleMeta, ScanEvent, ScanOptions,
    ScanReport, StatValue, TextColumn, TimeWindow, DEFAULT_REORDER_BYTES, ECS_COLUMNS,
    MATCHED_COLUMNS,
};
pub use timestamp::parse_timestamp;

/// The decoders and their read sizes, for this crate's tests and fuzz targets only (feature
/// `test-api`).
#[cfg(feature = "test-api")]
pub mod source {
    pub use crate::scan::source::{gzip, idle, zstd, DECODED_READ};
}
