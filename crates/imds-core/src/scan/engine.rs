//! Streaming inputs through the decoder, the prefilter and the rules, in parallel.
//!
//! Memory: each worker thread holds at most two read buffers of `buffer_size` (a line longer
//! than the buffer grows the buffer holding it, to at most twice the line and never beyond
//! `max_line_bytes` + 1: a longer line is streamed past, counted but not evaluated; the
//! buffer shrinks back once the long line is scanned), plus, per input
//! being read, a decoder's state (gzip: a 256 KiB read buffer and a 32 KiB window; zstd: a
//! 256 KiB read buffer and the frame's window, 8 MiB at most for levels up to 19 without
//! `--long`). Nothing grows with the size of the input.

use crate::eval::{CompiledRule, Verdict, Witness};
use crate::event;
use crate::ir::RuleIr;
use crate::prefilter::{Prefilter, RuleGate};
use crate::source::{self, Compression, Counted, Input};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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
    /// Index into the paths given to [`Engine::scan_paths`].
    pub source: usize,
    /// 1-based line number.
    pub line: u64,
    /// Index into the engine's rules.
    pub rule: usize,
    /// Index of the rule's matching branch.
    pub branch: usize,
    pub witness: Option<Witness>,
    /// The event's line (without line ending).
    pub event: String,
}

/// What happened to one input.
#[derive(Debug, Clone, Default)]
pub struct FileStats {
    pub bytes: u64,
    /// Non-blank lines.
    pub events: u64,
    /// Lines the prefilter passed to the JSON parser (all events when it is off).
    pub candidates: u64,
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
    /// Set when the input could not be read (fully): the reason, with the byte offset where
    /// reading stopped. Stats and hits cover what was read before it.
    pub error: Option<String>,
    /// `Some("gzip")`/`Some("zstd")` for compressed input (`bytes` counts decompressed bytes).
    pub compression: Option<&'static str>,
    /// Bytes read from the source itself (compressed bytes for compressed input).
    pub source_bytes: u64,
    /// (rule, allowlist entry) → events a branch of the rule matched that the entry (the
    /// first matching one) dropped.
    pub allowlisted: BTreeMap<(usize, usize), u64>,
}

#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// One per input path, in the order given.
    pub files: Vec<FileStats>,
    /// Sorted by (source, line, rule).
    pub hits: Vec<Hit>,
    /// True when the scan stopped early because `cancel` was set.
    pub cancelled: bool,
}

pub struct Engine {
    pub rules: Vec<CompiledRule>,
    pub prefilter: Prefilter,
    /// With several rules: which of them a candidate line can match (off with the prefilter).
    pub gate: Option<RuleGate>,
}

/// Why a skipped line is malformed: it cannot be a JSON object.
const NOT_OBJECT: &str = "not a JSON object line";

/// How far the prefilter searches ahead of the line being counted: small enough that the
/// bytes are still in cache when the lines are walked.
const SEARCH_WINDOW: usize = 256 << 10;

impl Engine {
    pub fn new(rules: Vec<RuleIr>) -> Result<Engine, crate::Error> {
        let prefilter = Prefilter::new(&rules);
        let gate = (rules.len() > 1).then(|| RuleGate::new(&rules));
        let rules = rules
            .into_iter()
            .map(CompiledRule::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine {
            rules,
            prefilter,
            gate,
        })
    }

    /// Scan files; see [`Engine::scan_inputs`].
    pub fn scan_paths(
        &self,
        paths: &[PathBuf],
        opts: &ScanOptions,
        cancel: &AtomicBool,
    ) -> ScanReport {
        let inputs = paths.iter().cloned().map(Input::Path).collect();
        self.scan_inputs(inputs, opts, cancel, &AtomicU64::new(0))
    }

    /// Scan the inputs, decoding gzip and zstd (found by their magic bytes). An input that
    /// cannot be read, or only in part, is recorded in its `FileStats::error`, with what was
    /// read before the failure scanned; the other inputs are scanned. Checks `cancel` at
    /// least once per buffer: a cancelled scan returns what it found so far. `progress` is
    /// increased by every byte read from the sources (compressed bytes for compressed input).
    /// Runs on a pool of `opts.threads` threads: inputs in parallel, and when there are fewer
    /// inputs than threads, chunks of each input too. Memory: see the module documentation.
    pub fn scan_inputs(
        &self,
        inputs: Vec<Input>,
        opts: &ScanOptions,
        cancel: &AtomicBool,
        progress: &AtomicU64,
    ) -> ScanReport {
        let count = inputs.len();
        let parts = in_pool(opts.threads, || {
            let workers = rayon::current_num_threads().div_ceil(count.max(1));
            inputs
                .into_par_iter()
                .with_max_len(1)
                .enumerate()
                .map(|(source, input)| {
                    self.scan_input(input, source, opts, cancel, workers, progress)
                })
                .collect::<Vec<_>>()
        });
        let mut report = ScanReport::default();
        for part in parts {
            report.files.extend(part.files);
            report.hits.extend(part.hits);
            report.cancelled |= part.cancelled;
        }
        report
    }

    /// Scan one input with up to `workers` threads of the current pool.
    fn scan_input(
        &self,
        input: Input,
        source: usize,
        opts: &ScanOptions,
        cancel: &AtomicBool,
        workers: usize,
        progress: &AtomicU64,
    ) -> ScanReport {
        if cancel.load(Ordering::Relaxed) {
            let mut report = failed("not read: the scan was interrupted".into());
            report.cancelled = true;
            return report;
        }
        let scan = Stream {
            source,
            opts,
            cancel,
            workers,
            own: &AtomicU64::new(0),
            progress,
        };
        match input {
            Input::Path(path) => {
                let mut file = match open_file(&path) {
                    Ok(file) => file,
                    Err(e) => return failed(e.to_string()),
                };
                let head = match source::read_head(&mut file) {
                    Ok(head) => head,
                    Err(e) => return failed(format!("read error at byte 0: {e}")),
                };
                #[cfg(unix)]
                if workers > 1 && Compression::detect(&head) == Ok(Compression::Plain) {
                    if let Some(report) = self.scan_regions(&file, &scan) {
                        return report;
                    }
                }
                self.scan_source(head, file, &scan)
            }
            Input::Stdin => self.scan_raw(source::CancellableStdin::new(cancel), &scan),
            Input::Reader(reader) => self.scan_raw(reader, &scan),
        }
    }

    /// Scan a stream (a file, stdin, a socket), decoding gzip or zstd, in buffers of
    /// `opts.buffer_size` (a line longer than the buffer grows it), on `opts.threads`
    /// threads. Returns one `FileStats`; hits carry `source`. A read or decoding error ends
    /// the scan of this stream and is recorded in `FileStats::error`; `cancel` is checked
    /// once per buffer.
    pub fn scan_reader<R: Read + Send>(
        &self,
        reader: R,
        source: usize,
        opts: &ScanOptions,
        cancel: &AtomicBool,
    ) -> ScanReport {
        in_pool(opts.threads, || {
            let scan = Stream {
                source,
                opts,
                cancel,
                workers: rayon::current_num_threads(),
                own: &AtomicU64::new(0),
                progress: &AtomicU64::new(0),
            };
            self.scan_raw(reader, &scan)
        })
    }

    /// Read the first bytes of a stream, then scan it.
    fn scan_raw<R: Read + Send>(&self, mut reader: R, scan: &Stream<'_>) -> ScanReport {
        match source::read_head(&mut reader) {
            Ok(head) => self.scan_source(head, reader, scan),
            Err(e) => failed(format!("read error at byte 0: {e}")),
        }
    }

    /// Scan a stream whose first bytes (`head`) were read already: plain, or decoded.
    fn scan_source<R: Read + Send>(&self, head: Vec<u8>, rest: R, scan: &Stream<'_>) -> ScanReport {
        scan.own.fetch_add(head.len() as u64, Ordering::Relaxed);
        scan.progress
            .fetch_add(head.len() as u64, Ordering::Relaxed);
        let compression = match Compression::detect(&head) {
            Ok(compression) => compression,
            Err(kind) => return failed(source::refusal(kind)),
        };
        let input = source::rejoin(head, Counted::new(rest, scan.own, scan.progress));
        let (mut lines, mut cancelled, mut error) = match compression {
            Compression::Plain => self.stream_lines(input, scan, true),
            Compression::Gzip => match self.decoded(source::gzip(input), "gzip", scan) {
                Ok(scanned) => scanned,
                Err(reason) => return failed(reason),
            },
            Compression::Zstd => match source::zstd(input) {
                Ok(decoder) => match self.decoded(decoder, "zstd", scan) {
                    Ok(scanned) => scanned,
                    Err(reason) => return failed(reason),
                },
                Err(e) => return failed(format!("zstd decoder: {e}")),
            },
        };
        if error.as_ref().is_some_and(source::is_cancelled) {
            (cancelled, error) = (true, None);
        }
        let raw = scan.own.load(Ordering::Relaxed);
        let stats = &mut lines.stats;
        stats.compression = compression.name();
        stats.source_bytes = raw;
        let (bytes, line) = (stats.bytes, lines.line_no);
        stats.error = match (error, compression.name()) {
            (Some(e), Some(kind)) => Some(format!(
                "{kind} data damaged or cut short near compressed byte {raw} ({e}); the \
                 {bytes} bytes ({line} lines) decompressed before it were scanned"
            )),
            (Some(e), None) => Some(format!("read error at byte {bytes} (line {line}): {e}")),
            (None, _) if cancelled => Some(interrupted_at(bytes, line)),
            (None, _) => None,
        };
        lines.finish(cancelled)
    }

    /// Scan decompressed data, unless it is compressed again (`.gz.gz`) or UTF-16/32 text:
    /// those are refused (`Err`), not decoded a second time.
    fn decoded<'a, R: Read + Send>(
        &'a self,
        mut decoder: R,
        outer: &str,
        scan: &Stream<'a>,
    ) -> Result<(LineScanner<'a>, bool, Option<io::Error>), String> {
        let (head, error) = source::read_head_keep(&mut decoder);
        if let Err(kind) = Compression::detect(&head).and_then(|inner| match inner.name() {
            Some(name) => Err(name),
            None => Ok(inner),
        }) {
            return Err(match kind {
                "gzip" | "zstd" => format!(
                    "{outer} data that holds {kind}-compressed data (compressed twice?) is not \
                     supported: not scanned"
                ),
                _ => format!("decompressed {outer} data: {}", source::refusal(kind)),
            });
        }
        let rest = source::Failing(error).chain(decoder);
        Ok(self.stream_lines(source::rejoin(head, rest), scan, true))
    }

    /// Scan bytes already in memory on the calling thread (one source, index 0).
    pub fn scan_bytes(&self, data: &[u8], opts: &ScanOptions) -> ScanReport {
        let mut scan = LineScanner::new(self, 0, opts);
        scan.stats.bytes = data.len() as u64;
        scan.lines(data, true);
        scan.finish(false)
    }

    /// A regular file large enough is cut into regions that start at line starts, each read
    /// by its own thread with positional reads: no single reader to wait for, and each
    /// thread scans bytes it has just read. `None` when the file is not suitable.
    #[cfg(unix)]
    fn scan_regions(&self, file: &File, scan: &Stream<'_>) -> Option<ScanReport> {
        let meta = file.metadata().ok()?;
        let len = meta.len();
        let size = scan.opts.buffer_size.max(1) as u64;
        // Two regions per worker even out uneven regions and busy cores.
        let count = (2 * scan.workers as u64).min(len / size);
        if !meta.is_file() || count < 2 {
            return None;
        }
        let mut starts = vec![0];
        for k in 1..count {
            let start = line_start_at_or_after(file, len * k / count, len)?;
            if start > *starts.last()? && start < len {
                starts.push(start);
            }
        }
        let ends: Vec<u64> = starts.iter().skip(1).copied().chain([len]).collect();
        let one = Stream {
            workers: 1,
            ..*scan
        };
        let parts: Vec<_> = starts
            .par_iter()
            .zip(ends)
            .with_max_len(1)
            .map(|(&start, end)| {
                let reader = Region {
                    file,
                    pos: start,
                    end,
                };
                let reader = Counted::new(reader, scan.own, scan.progress);
                let (mut part, cancelled, error) = self.stream_lines(reader, &one, start == 0);
                // Byte offsets in the whole file, for the first region that failed.
                if let Some(e) = error {
                    let at = start + part.stats.bytes;
                    part.stats.error = Some(format!("read error at byte {at}: {e}"));
                }
                (part, cancelled)
            })
            .collect();
        let mut parts = parts.into_iter();
        let (mut total, mut cancelled) = parts.next()?;
        for (part, part_cancelled) in parts {
            total.absorb(part);
            cancelled |= part_cancelled;
        }
        total.stats.source_bytes = total.stats.bytes;
        if cancelled && total.stats.error.is_none() {
            total.stats.error = Some(interrupted_at(total.stats.bytes, total.line_no));
        }
        Some(total.finish(cancelled))
    }

    /// The scan of one stream (`at_start`: it begins at the start of its input, where a BOM
    /// may be): the scanner holds line numbers relative to the stream's first line. Read in
    /// chunks of whole lines; with `scan.workers` > 1, batches of chunks are scanned in
    /// parallel while the next batch is read, and their line numbers fixed up afterwards.
    /// Returns the scanner, whether `cancel` stopped it, and the read error that ended it.
    fn stream_lines<'a, R: Read + Send>(
        &'a self,
        reader: R,
        scan: &Stream<'a>,
        at_start: bool,
    ) -> (LineScanner<'a>, bool, Option<io::Error>) {
        let Stream {
            source,
            opts,
            cancel,
            workers,
            ..
        } = *scan;
        let size = opts.buffer_size.max(1);
        let mut input = ChunkReader::new(reader, size, opts.max_line_bytes, cancel);
        let mut total = LineScanner::new(self, source, opts);
        let mut cancelled = false;
        let mut first = at_start;
        if workers <= 1 {
            let mut chunk = Chunk::new(size);
            loop {
                if cancel.load(Ordering::Relaxed) {
                    cancelled = true;
                    break;
                }
                if !input.next(&mut chunk) {
                    break;
                }
                match chunk.long {
                    Some(len) => total.skipped_line(len),
                    None => total.lines(chunk.bytes(), first),
                }
                first = false;
            }
        } else {
            let mut batch: Vec<Chunk> = (0..workers).map(|_| Chunk::new(size)).collect();
            let mut spare: Vec<Chunk> = (0..workers).map(|_| Chunk::new(size)).collect();
            let mut filled = input.fill(&mut batch);
            while filled > 0 {
                if cancel.load(Ordering::Relaxed) {
                    cancelled = true;
                    break;
                }
                // Pieces smaller than a chunk, so the thread that was reading can share the
                // scanning of the batch evenly once it is done.
                // A skipped over-long line is a piece of its own (`Err(length)`).
                let pieces: Vec<Result<&[u8], u64>> = batch[..filled]
                    .iter()
                    .flat_map(|c| match c.long {
                        Some(len) => vec![Err(len)],
                        None => split_lines(c.bytes(), PIECES_PER_CHUNK)
                            .into_iter()
                            .map(Ok)
                            .collect(),
                    })
                    .collect();
                let (next_filled, parts) = rayon::join(
                    || input.fill(&mut spare),
                    || {
                        pieces
                            .par_iter()
                            .with_max_len(1)
                            .enumerate()
                            .map(|(k, piece)| {
                                let mut part = LineScanner::new(self, source, opts);
                                match *piece {
                                    Ok(piece) => part.lines(piece, first && k == 0),
                                    Err(len) => part.skipped_line(len),
                                }
                                part
                            })
                            .collect::<Vec<_>>()
                    },
                );
                for part in parts {
                    total.absorb(part);
                }
                std::mem::swap(&mut batch, &mut spare);
                filled = next_filled;
                first = false;
            }
        }
        total.stats.bytes = input.bytes;
        (total, cancelled || input.cancelled, input.error.take())
    }
}

/// What one input's scan needs besides the reader.
#[derive(Clone, Copy)]
struct Stream<'a> {
    source: usize,
    opts: &'a ScanOptions,
    cancel: &'a AtomicBool,
    /// Threads of the current pool this input may use.
    workers: usize,
    /// Bytes read from this input's source.
    own: &'a AtomicU64,
    /// Bytes read from all sources.
    progress: &'a AtomicU64,
}

/// Open a file to scan (a directory is an error, not something to read).
fn open_file(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    Ok(file)
}

/// The report of an input that could not be scanned at all.
fn failed(reason: String) -> ScanReport {
    ScanReport {
        files: vec![FileStats {
            error: Some(reason),
            ..FileStats::default()
        }],
        hits: Vec::new(),
        cancelled: false,
    }
}

fn interrupted_at(bytes: u64, line: u64) -> String {
    format!("interrupted: scanned up to byte {bytes} (line {line})")
}

/// Where the first line starting at or after `at` starts (`len` if none): just after the
/// first `\n` at or after `at - 1`.
#[cfg(unix)]
fn line_start_at_or_after(file: &File, at: u64, len: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    if at == 0 {
        return Some(0);
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = at - 1;
    while pos < len {
        let n = file.read_at(&mut buf, pos).ok()?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Some(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Some(len)
}

/// A byte range of a file, read with positional reads (so threads can share the file).
#[cfg(unix)]
struct Region<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

#[cfg(unix)]
impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// In parallel scans, each chunk is cut into this many pieces at line ends.
const PIECES_PER_CHUNK: usize = 4;

/// `buf` cut at line ends into about `n` pieces of similar size.
fn split_lines(buf: &[u8], n: usize) -> Vec<&[u8]> {
    let step = (buf.len() / n.max(1)).max(1);
    let mut pieces = Vec::with_capacity(n);
    let mut start = 0;
    while start < buf.len() {
        let target = start + step;
        let end = match buf.get(target..) {
            Some(rest) => memchr::memchr(b'\n', rest).map_or(buf.len(), |i| target + i + 1),
            None => buf.len(),
        };
        pieces.push(&buf[start..end]);
        start = end;
    }
    pieces
}

/// Run `f` on a pool of `threads` threads (0 = all cores), or on the current one when no
/// pool can be built.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// A read buffer: `buf` is allocated and zeroed once; `len` bytes of it hold data.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    /// Set instead of data: the length of an over-long line that was read past.
    long: Option<u64>,
}

impl Chunk {
    fn new(size: usize) -> Chunk {
        Chunk {
            buf: vec![0; size],
            len: 0,
            long: None,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Cuts a stream into chunks of whole lines; a line longer than `max_line` is read past in
/// the chunk's buffer and given as a [`Chunk::long`] chunk.
struct ChunkReader<'c, R> {
    reader: R,
    size: usize,
    max_line: usize,
    cancel: &'c AtomicBool,
    /// Bytes read after the last complete line of the previous chunk.
    carry: Vec<u8>,
    /// `carry` may hold `\n`s (it follows a long line read past).
    carry_lines: bool,
    done: bool,
    /// `cancel` was seen while reading a long line.
    cancelled: bool,
    bytes: u64,
    error: Option<io::Error>,
}

impl<'c, R: Read> ChunkReader<'c, R> {
    fn new(reader: R, size: usize, max_line: usize, cancel: &'c AtomicBool) -> ChunkReader<'c, R> {
        ChunkReader {
            reader,
            size,
            max_line,
            cancel,
            carry: Vec::new(),
            carry_lines: false,
            done: false,
            cancelled: false,
            bytes: 0,
            error: None,
        }
    }

    /// Fill chunks in order until the stream ends; how many were filled.
    fn fill(&mut self, chunks: &mut [Chunk]) -> usize {
        let mut n = 0;
        while n < chunks.len() && self.next(&mut chunks[n]) {
            n += 1;
        }
        n
    }

    /// One read into `buf` (retrying on EINTR); 0 at the end, after an error or on cancel.
    fn read_some(&mut self, buf: &mut [u8]) -> usize {
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                self.cancelled = true;
                self.done = true;
                return 0;
            }
            match self.reader.read(buf) {
                Ok(0) => {
                    self.done = true;
                    return 0;
                }
                Ok(n) => {
                    self.bytes += n as u64;
                    return n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                    return 0;
                }
            }
        }
    }

    /// The next run of whole lines (the last one may lack its `\n`), or an over-long line
    /// read past; false at the end.
    fn next(&mut self, chunk: &mut Chunk) -> bool {
        chunk.len = 0;
        chunk.long = None;
        let want = self.size.max(self.carry.len() + 1);
        if chunk.buf.len() > want {
            // A long line grew it: give the memory back (before taking the new buffer).
            chunk.buf = Vec::new();
            chunk.buf = vec![0; want];
        } else if chunk.buf.len() < want {
            chunk.buf.resize(want, 0);
        }
        chunk.buf[..self.carry.len()].copy_from_slice(&self.carry);
        chunk.len = self.carry.len();
        if self.carry.capacity() > self.size {
            self.carry = Vec::new();
        } else {
            self.carry.clear();
        }
        // Unless they follow a long line, the carried bytes hold no `\n`: search only what
        // is read after them.
        let mut unsearched = if self.carry_lines { 0 } else { chunk.len };
        self.carry_lines = false;
        loop {
            while chunk.len < chunk.buf.len() && !self.done {
                let mut buf = std::mem::take(&mut chunk.buf);
                chunk.len += self.read_some(&mut buf[chunk.len..]);
                chunk.buf = buf;
            }
            if self.done {
                if self.cancelled {
                    return false;
                }
                return chunk.len > 0;
            }
            if let Some(i) = memchr::memrchr(b'\n', &chunk.buf[unsearched..chunk.len]) {
                let end = unsearched + i + 1;
                self.carry.extend_from_slice(&chunk.buf[end..chunk.len]);
                chunk.len = end;
                return true;
            }
            // One line fills the buffer.
            if chunk.len > self.max_line {
                return self.skip_long_line(chunk);
            }
            unsearched = chunk.len;
            let grown = (chunk.buf.len() * 2).min(self.max_line.saturating_add(1));
            chunk.buf.resize(grown, 0);
        }
    }

    /// The chunk holds the start of a line longer than `max_line` and no `\n`: read on to
    /// the line's end in the same buffer, keeping what follows it for the next chunk.
    fn skip_long_line(&mut self, chunk: &mut Chunk) -> bool {
        let mut length = chunk.len as u64;
        let mut buf = std::mem::take(&mut chunk.buf);
        loop {
            let n = self.read_some(&mut buf);
            if n == 0 {
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
                length += i as u64;
                self.carry.extend_from_slice(&buf[i + 1..n]);
                self.carry_lines = true;
                break;
            }
            length += n as u64;
        }
        chunk.buf = buf;
        chunk.len = 0;
        chunk.long = Some(length);
        !self.cancelled
    }
}

/// The per-stream state: line numbers, stats, hits.
struct LineScanner<'e> {
    engine: &'e Engine,
    opts: &'e ScanOptions,
    source: usize,
    /// Search with the prefilter (else every line is parsed).
    filter: bool,
    /// Lines seen so far (the number of the last one).
    line_no: u64,
    stats: FileStats,
    hits: Vec<Hit>,
    /// With several rules and the prefilter on: which rules a candidate line can match.
    gate: Option<&'e RuleGate>,
    /// Scratch: the rules the gate leaves open on the current line.
    open: Vec<bool>,
}

impl<'e> LineScanner<'e> {
    fn new(engine: &'e Engine, source: usize, opts: &'e ScanOptions) -> LineScanner<'e> {
        LineScanner {
            engine,
            opts,
            source,
            filter: opts.prefilter && engine.prefilter.is_active(),
            line_no: 0,
            stats: FileStats::default(),
            hits: Vec::new(),
            gate: engine.gate.as_ref().filter(|_| opts.prefilter),
            open: Vec::new(),
        }
    }

    /// Scan whole lines: `buf` ends with `\n`, or is the end of the stream.
    fn lines(&mut self, mut buf: &[u8], stream_start: bool) {
        // A BOM counts in the first line's length, as when the line is read past.
        let mut bom = 0;
        if stream_start {
            if let Some(rest) = buf.strip_prefix(b"\xEF\xBB\xBF") {
                (buf, bom) = (rest, 3);
            }
        }
        let mut pf = self.engine.prefilter.finder();
        let len = buf.len();
        let mut pos = 0;
        // The prefilter has searched buf[..searched], finding `hit` (the first relevant
        // position at or after the current line) or nothing.
        let mut searched = 0;
        let mut hit: Option<usize> = None;
        while pos < len {
            let end = memchr::memchr(b'\n', &buf[pos..]).map_or(len, |i| pos + i);
            self.line_no += 1;
            let candidate = !self.filter
                || loop {
                    if let Some(h) = hit {
                        break h < end;
                    }
                    if searched >= end {
                        break false;
                    }
                    // Search up to a line end, so no needle is cut.
                    let target = (searched + SEARCH_WINDOW).max(end);
                    let stop = match buf.get(target..) {
                        Some(rest) => memchr::memchr(b'\n', rest).map_or(len, |i| target + i),
                        None => len,
                    };
                    hit = pf.find(buf, searched, stop);
                    searched = stop;
                };
            if candidate && self.filter {
                hit = None;
                searched = end;
            }
            if end - pos + bom > self.opts.max_line_bytes {
                self.long_line((end - pos + bom) as u64);
            } else {
                self.line(&buf[pos..end], candidate);
            }
            bom = 0;
            pos = end + 1;
        }
    }

    fn line(&mut self, line: &[u8], candidate: bool) {
        let Some(first) = line.iter().position(|&b| !is_space(b)) else {
            return; // blank: not an event
        };
        self.stats.events += 1;
        if !candidate {
            let last = line.iter().rposition(|&b| !is_space(b)).unwrap_or(first);
            if line[first] != b'{' || line[last] != b'}' {
                self.malformed(NOT_OBJECT.to_string());
            }
            return;
        }
        self.stats.candidates += 1;
        match event::parse_line(line) {
            Ok(Some(parsed)) => {
                if parsed.invalid_utf8 {
                    self.stats.invalid_utf8 += 1;
                }
                if let Some(gate) = self.gate {
                    gate.open(line, &mut self.open);
                }
                for (rule, compiled) in self.engine.rules.iter().enumerate() {
                    if self.gate.is_some() && !self.open[rule] {
                        continue; // none of its needles in the line: it cannot match
                    }
                    match compiled.judge(&parsed.doc) {
                        Verdict::Hit(m) => {
                            self.stats.hits += 1;
                            self.hits.push(Hit {
                                source: self.source,
                                line: self.line_no,
                                rule,
                                branch: m.branch,
                                witness: m.witness,
                                event: parsed.text.to_string(),
                            });
                        }
                        Verdict::Allowed(entry) => {
                            *self.stats.allowlisted.entry((rule, entry)).or_default() += 1;
                        }
                        Verdict::Miss => {}
                    }
                }
            }
            Ok(None) => {}
            Err(m) => self.malformed(m.reason),
        }
    }

    /// The next line was read past: `len` bytes, longer than `max_line_bytes`.
    fn skipped_line(&mut self, len: u64) {
        self.line_no += 1;
        self.long_line(len);
    }

    /// A line of `len` bytes, longer than `max_line_bytes`: counted, not evaluated.
    fn long_line(&mut self, len: u64) {
        self.stats.events += 1;
        self.stats.long_lines += 1;
        self.malformed(format!(
            "line of {len} bytes is longer than max-line-bytes ({}): not evaluated",
            self.opts.max_line_bytes
        ));
    }

    fn malformed(&mut self, reason: String) {
        self.stats.malformed += 1;
        if self.stats.malformed_examples.len() < self.opts.max_examples {
            self.stats.malformed_examples.push((self.line_no, reason));
        }
    }

    /// Append the results of the chunk that follows this one.
    fn absorb(&mut self, next: LineScanner<'_>) {
        let base = self.line_no;
        let (a, b) = (&mut self.stats, next.stats);
        a.bytes += b.bytes;
        a.source_bytes += b.source_bytes;
        if a.error.is_none() {
            a.error = b.error;
        }
        a.events += b.events;
        a.candidates += b.candidates;
        a.hits += b.hits;
        a.malformed += b.malformed;
        a.invalid_utf8 += b.invalid_utf8;
        for (key, count) in b.allowlisted {
            *a.allowlisted.entry(key).or_default() += count;
        }
        a.long_lines += b.long_lines;
        let room = self
            .opts
            .max_examples
            .saturating_sub(a.malformed_examples.len());
        a.malformed_examples.extend(
            b.malformed_examples
                .into_iter()
                .take(room)
                .map(|(line, why)| (line + base, why)),
        );
        self.hits.extend(next.hits.into_iter().map(|mut h| {
            h.line += base;
            h
        }));
        self.line_no += next.line_no;
    }

    fn finish(self, cancelled: bool) -> ScanReport {
        ScanReport {
            files: vec![self.stats],
            hits: self.hits,
            cancelled,
        }
    }
}

/// JSON's insignificant whitespace (a trailing `\r` is one).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}
