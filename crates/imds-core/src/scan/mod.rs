//! Streaming inputs through the decoder, the prefilter and the rules, in parallel.
//!
//! Memory: each worker thread holds at most two read buffers of `buffer_size` (a line longer
//! than the buffer grows the buffer holding it, to at most twice the line and never beyond
//! `max_line_bytes` + 1: a longer line is streamed past, counted but not evaluated; the
//! buffer shrinks back once the long line is scanned), plus, per input
//! being read, a decoder's state (gzip: a 256 KiB read buffer and a 32 KiB window; zstd: a
//! 256 KiB read buffer and the frame's window, 8 MiB at most for levels up to 19 without
//! `--long`). Nothing grows with the size of the input. Hits are handed out in order while
//! the scan runs ([`Engine::scan_stream`]); a part of the scan ahead of the order keeps at
//! most a capped amount of them (see `stream`), so nothing grows with the number of hits
//! either, unless the caller collects them ([`Engine::scan_inputs`]).
//!
//! Layout: this file holds the shared types ([`Engine`], options, hits, statistics); `engine`
//! is the engine's interface and the dispatch of each input (decoders, regions, byte ranges);
//! `source` is where bytes come from and how they are decoded; `regions` cuts a large plain
//! file into regions read in parallel and reads byte-range inputs; `lines` is the line
//! framing: chunks of whole lines, the stream driver, and the per-line scanner; `stream` runs
//! the scan's parts (whole inputs, regions) on threads and hands their hits out in order;
//! `record` writes a hit's NDJSON record, `rows` its row of the hits frame, `alert` its ECS
//! alert document, and `forms` makes them (and applies the time window) where the hit is
//! found. Dependencies go one way:
//! engine → stream → regions → lines → forms → this file's types (and source).

mod alert;
mod engine;
mod forms;
mod lines;
mod record;
mod regions;
mod rows;
pub(crate) mod source;
mod stream;

pub use alert::AlertRule;
pub use forms::{HitExtra, HitForms, TimeWindow};
pub use record::{
    write_keys_json, write_result_record, RecordError, RecordMeta, ResultEvent, RuleMeta,
};
pub use rows::{
    event_timestamp, row_projection, ColumnData, ColumnType, HitRows, IntColumn, RowCells,
    TextColumn, ECS_COLUMNS, MATCHED_COLUMNS,
};
pub use source::{Compression, Input, ReadSeek};

use crate::error::{InputError, InputErrorKind};
use crate::eval::{CompiledRule, Witness};
use crate::event::Projection;
use crate::prefilter::{Prefilter, RuleGate};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};

/// Compiled rules with their prefilter: scans inputs.
pub struct Engine {
    pub(super) rules: Vec<CompiledRule>,
    pub(super) prefilter: Prefilter,
    /// With several rules: which of them a candidate line can match (off with the prefilter).
    pub(super) gate: Option<RuleGate>,
    /// The fields all rules read: what a candidate line's parse builds.
    pub(super) projection: Projection,
    /// Per rule: its place among rules with the same branches' conditions and allowlist,
    /// which share one verdict per line (a sequence's `with runs=60` stages).
    pub(super) twins: Vec<Twin>,
}

/// A rule's place among the rules with its conditions ([`Engine::twins`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Twin {
    /// No other rule has them.
    Alone,
    /// The first of several: its verdict on a line is kept for the others.
    First,
    /// A later one: the verdict of this earlier rule is its own.
    Of(usize),
}

/// What one input's scan needs besides the reader.
#[derive(Clone, Copy)]
pub(super) struct Stream<'a> {
    pub(super) source: usize,
    pub(super) opts: &'a ScanOptions,
    pub(super) cancel: &'a AtomicBool,
    /// Threads of the current pool this input may use.
    pub(super) workers: usize,
    /// Bytes read from this input's source.
    pub(super) own: &'a AtomicU64,
    /// Bytes read from all sources.
    pub(super) progress: &'a AtomicU64,
    /// Where hits go while the stream is read (`None`: they are kept until the end).
    pub(super) outlet: Option<&'a dyn Outlet>,
    /// The pool that scans pieces in parallel when `workers` > 1 (`None`: the current one).
    pub(super) pool: Option<&'a rayon::ThreadPool>,
    /// What each hit is made into where it is found (`None`: a plain [`Hit`]).
    pub(super) forms: Option<&'a HitForms>,
}

/// Where a running lane's hits go: the sink (the head) or the lane's own buffer (the others,
/// up to the cap).
pub(crate) trait Outlet: Sync {
    /// Take `hits` (relative line numbers; `held` is their size by [`hit_bytes`]) when it is
    /// this lane's turn; else leave them unless they exceed the cap, and then wait for the
    /// turn.
    fn offer(&self, hits: &mut Vec<Hit>, held: &mut usize);

    /// The input waits for data (a live stream): the hits handed on so far may be passed
    /// on now, not held for more ([`ScanEvent::Idle`]).
    fn idle(&self);

    /// Whether another lane thread is free (waiting for its lane's turn, or out of work), so
    /// that this lane's pieces are better scanned on the pool: with many hits, a lane ahead
    /// of the head waits once its hits fill the cap, and the files were scanned one at a
    /// time.
    fn help_wanted(&self) -> bool {
        false
    }
}

/// What a hit held in memory costs, for the reorder cap.
pub(super) fn hit_bytes(hit: &Hit) -> usize {
    let witness = hit.witness.as_ref().map_or(0, |w| {
        w.field.len() + w.op.len() + w.pattern.len() + w.value.len()
    });
    let extra = hit.extra.as_ref().map_or(0, |e| e.bytes());
    std::mem::size_of::<Hit>() + hit.event.len() + witness + extra
}

/// Open a file to scan (a directory is an error, not something to read).
pub(super) fn open_file(path: &Path, cancel: &AtomicBool) -> Result<File, InputError> {
    let file = if is_fifo(path) {
        open_waiting(path, cancel)?
    } else {
        File::open(path).map_err(|e| InputError::open(&e))?
    };
    match file.metadata() {
        Ok(meta) if meta.is_dir() => Err(InputError::new(InputErrorKind::IsDirectory)),
        Ok(_) => Ok(file),
        Err(e) => Err(InputError::open(&e)),
    }
}

#[cfg(unix)]
fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[cfg(not(unix))]
fn is_fifo(_: &Path) -> bool {
    false
}

/// Open a FIFO: the open waits for a writer, so it runs on a thread of its own while this one
/// watches `cancel` (Ctrl-C must stop the scan). On cancel that thread is left waiting: it
/// ends once a writer comes, or with the process.
fn open_waiting(path: &Path, cancel: &AtomicBool) -> Result<File, InputError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("imds-open-fifo".into())
        .spawn(move || {
            let _ = tx.send(File::open(owned));
        })
        .map_err(|e| InputError::open(&e))?;
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(opened) => return opened.map_err(|e| InputError::open(&e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(InputError::interrupted(0, 0));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let e = std::io::Error::other("the open of the FIFO ended without a result");
                return Err(InputError::open(&e));
            }
        }
    }
}

/// The report of an input that could not be scanned at all.
pub(super) fn failed(error: InputError) -> ScanReport {
    ScanReport {
        files: vec![FileStats {
            error: Some(error),
            ..FileStats::default()
        }],
        hits: Vec::new(),
        cancelled: false,
    }
}

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Worker threads; 0 = all cores.
    pub threads: usize,
    /// Read buffer size in bytes.
    pub buffer_size: usize,
    /// false = evaluate every line (used to test that the prefilter is sound).
    pub prefilter: bool,
    /// How many malformed lines per file are kept as examples (all are counted).
    pub max_examples: usize,
    /// A line longer than this (in bytes, without its `\n`) is not evaluated: it is read
    /// past in bounded memory and counted in `FileStats::long_lines` (and as malformed).
    pub max_line_bytes: usize,
}

/// The default cap of [`Engine::scan_stream`]'s reorder buffer per running part: 16 MiB.
pub const DEFAULT_REORDER_BYTES: usize = 16 << 20;

/// What [`Engine::scan_stream`] hands to its sink.
#[derive(Debug)]
pub enum ScanEvent {
    /// A hit, in order: input, then line, then rule.
    Hit(Hit),
    /// An input's statistics, after its hits, in input order.
    File {
        /// Index into the inputs.
        source: usize,
        /// Its statistics.
        stats: FileStats,
    },
    /// The input being scanned waits for data (a live stream, such as `tail -f` into
    /// standard input): the hits given so far need not wait for more to be passed on.
    Idle,
}

/// The default of [`ScanOptions::max_line_bytes`]: 64 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 << 20;

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: 0,
            buffer_size: 4 << 20,
            prefilter: true,
            max_examples: 5,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// One alerting event.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index into the inputs given to [`Engine::scan_inputs`].
    pub source: usize,
    /// 1-based line number (for a byte-range input: counted from the range's first line).
    pub line: u64,
    /// Index into the engine's rules.
    pub rule: usize,
    /// Index of the rule's matching branch.
    pub branch: usize,
    /// The value that made the branch match, when it has one.
    pub witness: Option<Witness>,
    /// The event's line (without line ending); empty when the scan's [`HitForms`] did not
    /// keep it.
    pub event: String,
    /// What the scan's [`HitForms`] made of the hit (`None` without forms).
    pub extra: Option<Box<HitExtra>>,
}

/// What happened to one input.
#[derive(Debug, Clone, Default)]
pub struct FileStats {
    /// Bytes scanned (decompressed bytes for compressed input).
    pub bytes: u64,
    /// Non-blank lines.
    pub events: u64,
    /// Lines the prefilter passed to the JSON parser (all events when it is off).
    pub candidates: u64,
    /// Hits (an event matching several rules counts once per rule).
    pub hits: u64,
    /// Lines that are not events: for lines the prefilter skips, only the framing is checked
    /// (first non-blank byte `{`, last `}`); candidate lines are fully parsed.
    pub malformed: u64,
    /// Parsed lines that were not valid UTF-8 (lines the prefilter skips are not checked).
    pub invalid_utf8: u64,
    /// Lines longer than `max_line_bytes`: not evaluated, also counted in `malformed` (with
    /// their length in the example's reason).
    pub long_lines: u64,
    /// (1-based line, reason) for the first `max_examples` malformed lines.
    pub malformed_examples: Vec<(u64, String)>,
    /// The 1-based lines of the first `max_examples` lines counted in `invalid_utf8`.
    pub invalid_utf8_lines: Vec<u64>,
    /// Set when the input could not be read (fully): its kind, and the byte offset and line
    /// where reading stopped. Stats and hits cover what was read before it.
    pub error: Option<InputError>,
    /// `Some("gzip")`/`Some("zstd")` for compressed input (`bytes` counts decompressed bytes).
    pub compression: Option<&'static str>,
    /// Bytes read from the source itself (compressed bytes for compressed input).
    pub source_bytes: u64,
    /// (rule, allowlist entry) → events a branch of the rule matched that the entry (the
    /// first matching one) dropped.
    pub allowlisted: BTreeMap<(usize, usize), u64>,
    /// Lines read, blank ones included (the number of the last line). For a byte-range
    /// input, the lines it owns: the next range's line numbers follow on from them.
    pub lines: u64,
    /// Some line parsed as an event. Lines the prefilter skips are parsed too while none has
    /// (per part of a parallel scan), so it is exact however the input was cut: an input of
    /// lines that only look like objects (`{'a': 1}`) has no valid event.
    pub valid_event: bool,
}

/// The value of one field of [`FileStats`], as [`FileStats::fields`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum StatValue<'a> {
    /// A count.
    Count(u64),
    /// A number that may be absent.
    Number(Option<u64>),
    /// A text that may be absent.
    Text(Option<String>),
    /// (line, reason) pairs.
    Examples(&'a [(u64, String)]),
    /// Line numbers.
    Lines(&'a [u64]),
    /// (rule, allowlist entry) → count.
    Allowlisted(&'a BTreeMap<(usize, usize), u64>),
    /// A yes or no.
    Flag(bool),
}

impl FileStats {
    /// The error's text, as users see it.
    pub fn error_text(&self) -> Option<String> {
        self.error.as_ref().map(ToString::to_string)
    }

    /// The names of the per-input statistics, in the order of [`FileStats::fields`]: the one
    /// definition of their shape, which the Python binding exposes as `STATS_FIELDS`.
    /// `error` is the error's text; `error_kind` ([`crate::InputErrorKind::as_str`]),
    /// `error_offset` and `error_line` are its fields.
    pub const FIELDS: [&'static str; 18] = [
        "bytes",
        "events",
        "candidates",
        "hits",
        "malformed",
        "invalid_utf8",
        "long_lines",
        "malformed_examples",
        "invalid_utf8_lines",
        "error",
        "error_kind",
        "error_offset",
        "error_line",
        "compression",
        "source_bytes",
        "allowlisted",
        "lines",
        "valid_event",
    ];

    /// Every statistic as (name, value), named as in [`FileStats::FIELDS`].
    pub fn fields(&self) -> [(&'static str, StatValue<'_>); 18] {
        // Destructured without `..`: a field added to the struct must be added here too.
        let FileStats {
            bytes,
            events,
            candidates,
            hits,
            malformed,
            invalid_utf8,
            long_lines,
            malformed_examples,
            invalid_utf8_lines,
            error,
            compression,
            source_bytes,
            allowlisted,
            lines,
            valid_event,
        } = self;
        let values = [
            StatValue::Count(*bytes),
            StatValue::Count(*events),
            StatValue::Count(*candidates),
            StatValue::Count(*hits),
            StatValue::Count(*malformed),
            StatValue::Count(*invalid_utf8),
            StatValue::Count(*long_lines),
            StatValue::Examples(malformed_examples),
            StatValue::Lines(invalid_utf8_lines),
            StatValue::Text(error.as_ref().map(ToString::to_string)),
            StatValue::Text(error.as_ref().map(|e| e.kind.as_str().to_string())),
            StatValue::Number(error.as_ref().and_then(|e| e.offset)),
            StatValue::Number(error.as_ref().and_then(|e| e.line)),
            StatValue::Text(compression.map(str::to_string)),
            StatValue::Count(*source_bytes),
            StatValue::Allowlisted(allowlisted),
            StatValue::Count(*lines),
            StatValue::Flag(*valid_event),
        ];
        let mut names = Self::FIELDS.into_iter();
        values.map(|value| (names.next().unwrap_or_default(), value))
    }
}

/// The result of a scan.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// One per input path, in the order given.
    pub files: Vec<FileStats>,
    /// Sorted by (source, line, rule).
    pub hits: Vec<Hit>,
    /// True when the scan stopped early because `cancel` was set.
    pub cancelled: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InputErrorKind;

    #[test]
    fn stats_fields_agree_with_the_struct() {
        let stats = FileStats {
            error: Some(InputError::read(7, Some(2), &std::io::Error::other("x"))),
            ..FileStats::default()
        };
        let names: Vec<&str> = stats.fields().iter().map(|(name, _)| *name).collect();
        assert_eq!(names, FileStats::FIELDS);
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "a name is listed twice");
        let value = |name| {
            stats
                .fields()
                .into_iter()
                .find(|(n, _)| *n == name)
                .unwrap()
                .1
        };
        assert_eq!(value("error_offset"), StatValue::Number(Some(7)));
        assert_eq!(value("error_line"), StatValue::Number(Some(2)));
        assert_eq!(
            value("error_kind"),
            StatValue::Text(Some(InputErrorKind::Read.as_str().into()))
        );
        assert_eq!(
            value("error"),
            StatValue::Text(Some("read error at byte 7 (line 2): x".into()))
        );
        // Every struct field has a name: the destructuring in `fields` has no `..`, and the
        // three derived `error_*` names are the only extra ones.
        assert_eq!(FileStats::FIELDS.len(), 15 + 3);
    }
}
