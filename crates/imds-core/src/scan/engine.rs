//! The engine's interface: compiling rules, and the dispatch of a scan's inputs to the
//! decoders, the regions of a large file, or byte ranges.

use super::lines::LineScanner;
use super::source::{self, Compression, Counted, Input};
use super::{failed, open_file, Engine, ScanEvent, ScanOptions, ScanReport, Stream, Twin};
use crate::error::{InputError, InputErrorKind};
use crate::eval::{CompiledRule, FieldSlots};
use crate::event::Projection;
use crate::ir::RuleIr;
use crate::prefilter::{Prefilter, RuleGate, PARALLEL_FROM};
use rayon::prelude::*;
use std::collections::hash_map::{Entry, HashMap};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

impl Engine {
    /// Compile `rules`; an error names the rule's branch and field at fault.
    pub fn new(rules: Vec<RuleIr>) -> Result<Engine, crate::Error> {
        // The prefilter's automata and the rules' compilation are independent: with many
        // rules, built side by side.
        let compile = |rules: &[RuleIr]| {
            rules
                .iter()
                .cloned()
                .map(CompiledRule::new)
                .collect::<Result<Vec<_>, _>>()
        };
        let (prefilter, compiled) = if rules.len() >= PARALLEL_FROM {
            rayon::join(|| Prefilter::new(&rules), || compile(&rules))
        } else {
            (Prefilter::new(&rules), compile(&rules))
        };
        let mut compiled = compiled?;
        let mut slots = FieldSlots::default();
        compiled
            .iter_mut()
            .for_each(|rule| rule.number_fields(&mut slots));
        let gate = (rules.len() > 1 && !prefilter.gates_rules()).then(|| RuleGate::new(&rules));
        let projection = Projection::by_rule(compiled.iter().map(CompiledRule::fields));
        Ok(Engine {
            rules: compiled,
            prefilter,
            gate,
            projection,
            twins: twins(&rules),
        })
    }

    /// An engine of rules given as IR JSON documents ([`RuleIr::from_json`], parsed side by
    /// side when there are many); the error is the first faulty rule's.
    pub fn from_json(texts: &[String]) -> Result<Engine, crate::Error> {
        Engine::new(parse_all(texts)?)
    }

    /// [`Engine::from_json`] with the set-up spread over `threads` threads at most (0: rayon's
    /// pool, a thread per core): a scan told to use one thread sets up on one too.
    pub fn from_json_on(texts: &[String], threads: usize) -> Result<Engine, crate::Error> {
        on_threads(threads, || Engine::from_json(texts))
    }

    /// Each rule's prefilter needles as an engine of that rule alone has them
    /// ([`Engine::needles`]; what the prefilter warnings weigh), the rules side by side; the
    /// error is the first faulty rule's.
    pub fn needles_each(texts: &[String]) -> Result<Vec<Option<Vec<String>>>, crate::Error> {
        let alone = |text: &String| {
            let rule = RuleIr::from_json(text)?;
            Ok(Engine::new(vec![rule])?.needles())
        };
        texts
            .par_iter()
            .map(alone)
            .collect::<Vec<_>>()
            .into_iter()
            .collect()
    }

    /// [`Engine::needles_each`] on `threads` threads at most (0: rayon's pool), as
    /// [`Engine::from_json_on`].
    pub fn needles_each_on(
        texts: &[String],
        threads: usize,
    ) -> Result<Vec<Option<Vec<String>>>, crate::Error> {
        on_threads(threads, || Engine::needles_each(texts))
    }

    /// Per rule, how many of `data`'s lines (split at `\n`; blank ones are no events) a scan
    /// with the prefilter would evaluate it on: the candidate lines, narrowed by the rule gate
    /// when several rules run (what the prefilter warnings weigh).
    pub fn open_lines(&self, data: &[u8]) -> Vec<u64> {
        let mut counts = vec![0u64; self.rules.len()];
        let mut open = Vec::new();
        let active = self.prefilter.is_active();
        for line in data.split(|&b| b == b'\n') {
            if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                continue;
            }
            // A finder of its own per line: `fill_open` then tells of this line.
            let mut finder = self.prefilter.finder();
            if active && finder.find(line, 0, line.len()).is_none() {
                continue;
            }
            if !finder.fill_open(&mut open) {
                match &self.gate {
                    Some(gate) => gate.open(line, &mut open),
                    None => {
                        open.clear();
                        open.extend(0..self.rules.len());
                    }
                }
            }
            for &r in &open {
                counts[r] += 1;
            }
        }
        counts
    }

    /// The compiled rules, in the order given.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The prefilter of the rules.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// The prefilter's needles, or `None` when the rules force a parse of every line.
    pub fn needles(&self) -> Option<Vec<String>> {
        self.prefilter.is_active().then(|| self.prefilter.needles())
    }

    /// Scan files; see [`Engine::scan_inputs`] (tests only: callers give [`Input`]s).
    #[cfg(any(test, feature = "test-api"))]
    pub fn scan_paths(
        &self,
        paths: &[std::path::PathBuf],
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
        let mut report = ScanReport::default();
        let mut sink = |event| match event {
            ScanEvent::Hit(hit) => report.hits.push(hit),
            ScanEvent::File { stats, .. } => report.files.push(stats),
            ScanEvent::Idle => {}
        };
        report.cancelled = self.scan_stream(inputs, opts, cancel, progress, 0, &mut sink);
        report
    }

    /// Scan one input as a whole (a file is opened here only when `scan_stream` did not
    /// open it to cut it into regions).
    pub(super) fn scan_input(&self, input: Input, scan: &Stream<'_>) -> ScanReport {
        match input {
            Input::Path(path) => {
                let mut file = match open_file(&path, scan.cancel) {
                    Ok(file) => file,
                    Err(e) => return failed(e),
                };
                match source::read_head(&mut file) {
                    Ok(head) => self.scan_source(head, file, scan),
                    Err(e) => failed(InputError::read(0, None, &e)),
                }
            }
            Input::Range { path, start, end } => self.scan_range(&path, start, end, scan),
            Input::StreamRange { reader, start, end } => {
                self.scan_range_of(reader, start, end, scan)
            }
            Input::Stdin => self.scan_raw(source::CancellableStdin::new(scan.cancel), scan),
            Input::Reader(reader) => self.scan_raw(reader, scan),
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
                outlet: None,
                pool: None,
                forms: None,
            };
            self.scan_raw(reader, &scan)
        })
    }

    /// Read the first bytes of a stream, then scan it.
    fn scan_raw<R: Read + Send>(&self, mut reader: R, scan: &Stream<'_>) -> ScanReport {
        match source::read_head(&mut reader) {
            Ok(head) => self.scan_source(head, reader, scan),
            Err(e) => failed(InputError::read(0, None, &e)),
        }
    }

    /// Scan a stream whose first bytes (`head`) were read already: plain, or decoded.
    pub(super) fn scan_source<R: Read + Send>(
        &self,
        head: Vec<u8>,
        rest: R,
        scan: &Stream<'_>,
    ) -> ScanReport {
        scan.own.fetch_add(head.len() as u64, Ordering::Relaxed);
        scan.progress
            .fetch_add(head.len() as u64, Ordering::Relaxed);
        let compression = match Compression::detect(&head) {
            Ok(compression) => compression,
            Err(kind) => return failed(InputError::unsupported(kind, None)),
        };
        let input = source::rejoin(head, Counted::new(rest, scan.own, scan.progress));
        let (mut lines, mut cancelled, mut error) = match compression {
            Compression::Plain => self.stream_lines(input, scan, true),
            // A decoder takes an idle read for a failure: it waits for its data instead.
            Compression::Gzip => {
                match self.decoded(source::gzip(source::WaitIdle(input)), "gzip", scan) {
                    Ok(scanned) => scanned,
                    Err(reason) => return failed(reason),
                }
            }
            Compression::Zstd => match source::zstd(source::WaitIdle(input)) {
                Ok(decoder) => match self.decoded(decoder, "zstd", scan) {
                    Ok(scanned) => scanned,
                    Err(reason) => return failed(reason),
                },
                Err(e) => {
                    return failed(InputError {
                        compression: Some("zstd"),
                        ..InputError::new(InputErrorKind::Decoder).with_cause(&e)
                    })
                }
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
            (Some(e), Some(kind)) => Some(InputError {
                offset: Some(raw),
                line: Some(line),
                compression: Some(kind),
                decoded: Some(bytes),
                ..InputError::new(InputErrorKind::Damaged).with_cause(&e)
            }),
            (Some(e), None) => Some(InputError::read(bytes, Some(line), &e)),
            (None, _) if cancelled => Some(InputError::interrupted(bytes, line)),
            (None, _) => None,
        };
        lines.finish(cancelled)
    }

    /// Scan decompressed data, unless it is compressed again (`.gz.gz`) or UTF-16/32 text:
    /// those are refused (`Err`), not decoded a second time.
    fn decoded<'a, R: Read + Send>(
        &'a self,
        mut decoder: R,
        outer: &'static str,
        scan: &Stream<'a>,
    ) -> Result<(LineScanner<'a>, bool, Option<io::Error>), InputError> {
        let (head, error) = source::read_head_keep(&mut decoder);
        if let Err(kind) = Compression::detect(&head).and_then(|inner| match inner.name() {
            Some(name) => Err(name),
            None => Ok(inner),
        }) {
            return Err(match kind {
                "gzip" | "zstd" => InputError {
                    compression: Some(outer),
                    format: Some(kind),
                    ..InputError::new(InputErrorKind::NestedCompression)
                },
                _ => InputError::unsupported(kind, Some(outer)),
            });
        }
        let rest = source::Failing(error).chain(decoder);
        Ok(self.stream_lines(source::rejoin(head, rest), scan, true))
    }

    /// Scan bytes already in memory on the calling thread (one source, index 0), in one
    /// piece: the reference the chunked scans are tested against.
    #[cfg(any(test, feature = "test-api"))]
    pub fn scan_bytes(&self, data: &[u8], opts: &ScanOptions) -> ScanReport {
        let mut scan = LineScanner::new(self, 0, opts, None);
        scan.stats.bytes = data.len() as u64;
        scan.lines(data, true);
        scan.finish(false)
    }
}

/// The rules of IR JSON documents, in order, parsed side by side when there are many; the
/// first faulty one's error.
fn parse_all(texts: &[String]) -> Result<Vec<RuleIr>, crate::Error> {
    if texts.len() < PARALLEL_FROM {
        return texts.iter().map(|t| RuleIr::from_json(t)).collect();
    }
    let parsed: Vec<_> = texts.par_iter().map(|t| RuleIr::from_json(t)).collect();
    parsed.into_iter().collect()
}

/// Run `f` on a pool of `threads` threads (0 = all cores), or on the current one when no
/// pool can be built.
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// `work` run with rayon's parallel work on a pool of `threads` threads (0, or a pool that
/// cannot be made: rayon's global pool).
fn on_threads<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    let pool = (threads > 0)
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .ok()
        })
        .flatten();
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Per rule: its place among the rules with the same conditions (each branch's, in order)
/// and allowlist. Names, ids and severities are labels only.
fn twins(rules: &[RuleIr]) -> Vec<Twin> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut twins = vec![Twin::Alone; rules.len()];
    for (k, rule) in rules.iter().enumerate() {
        let exprs: Vec<_> = rule.branches.iter().map(|b| &b.expr).collect();
        // A rule that cannot be written out has no twin.
        let Ok(key) = serde_json::to_string(&(exprs, &rule.allowlist)) else {
            continue;
        };
        match first.entry(key) {
            Entry::Occupied(e) => {
                twins[*e.get()] = Twin::First;
                twins[k] = Twin::Of(*e.get());
            }
            Entry::Vacant(e) => {
                e.insert(k);
            }
        }
    }
    twins
}

#[cfg(test)]
mod tests {
    use super::on_threads;

    #[test]
    fn work_runs_on_the_threads_asked_for() {
        for threads in [1, 3] {
            assert_eq!(on_threads(threads, rayon::current_num_threads), threads);
        }
        assert_eq!(
            on_threads(0, rayon::current_num_threads),
            rayon::current_num_threads()
        );
    }
}
