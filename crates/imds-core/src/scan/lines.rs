//! Line framing: a stream cut into chunks of whole lines (an over-long line read past), and
//! the per-stream scanner that walks lines through the prefilter, the parser and the rules.

use super::forms::LineCache;
use super::{hit_bytes, Engine, FileStats, Hit, HitForms, ScanOptions, ScanReport, Stream, Twin};
use crate::eval::{LookupRoom, Lookups, Verdict};
use crate::event::{self, OpenRules, Projection, Scratch};
use crate::prefilter::RuleGate;
use rayon::prelude::*;
use std::io::{self, ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a skipped line is malformed: it cannot be a JSON object.
const NOT_OBJECT: &str = "not a JSON object line";

/// How far the prefilter searches ahead of the line being counted: small enough that the
/// bytes are still in cache when the lines are walked.
const SEARCH_WINDOW: usize = 256 << 10;

thread_local! {
    /// The read buffer of the last stream this thread scanned alone, for its next one: a file
    /// is cut into regions of two buffers each, and a fresh buffer is zeroed (2% of the
    /// default rule's time over the benchmark corpus).
    static SPARE_CHUNK: std::cell::Cell<Option<Chunk>> = const { std::cell::Cell::new(None) };
}

impl Engine {
    /// The scan of one stream (`at_start`: it begins at the start of its input, where a BOM
    /// may be): the scanner holds line numbers relative to the stream's first line. Read in
    /// chunks of whole lines; with `scan.workers` > 1, batches of chunks are scanned in
    /// parallel while the next batch is read, and their line numbers fixed up afterwards.
    /// Returns the scanner, whether `cancel` stopped it, and the read error that ended it.
    pub(super) fn stream_lines<'a, R: Read + Send>(
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
        let mut total = LineScanner::new(self, source, opts, scan.forms);
        let mut cancelled = false;
        let mut first = at_start;
        // The bytes of the lines scanned: on cancel, what was read past them is not.
        let mut scanned = 0u64;
        let consumed = |c: &Chunk| c.long.map_or(c.len as u64, |len| len + 1);
        // One of several lanes goes on with the pool once another lane thread is free.
        let mut workers = workers;
        if workers <= 1 {
            let mut chunk = SPARE_CHUNK
                .take()
                .filter(|c| c.buf.len() == size)
                .unwrap_or_else(|| Chunk::new(size));
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
                scanned += consumed(&chunk);
                total.offer(scan);
                if input.idle {
                    total.idle(scan);
                }
                first = false;
                let helpers = scan
                    .pool
                    .filter(|_| scan.outlet.is_some_and(|o| o.help_wanted()));
                if let Some(pool) = helpers {
                    workers = pool.current_num_threads();
                    break;
                }
            }
            SPARE_CHUNK.set(Some(chunk));
        }
        if workers > 1 && !cancelled {
            let mut batch: Vec<Chunk> = (0..workers).map(|_| Chunk::new(size)).collect();
            let mut spare: Vec<Chunk> = (0..workers).map(|_| Chunk::new(size)).collect();
            let mut filled = input.fill(&mut batch);
            // The batch ends where the input waits for data: it is scanned and its hits
            // handed on before the next read, which may wait long.
            let mut waits = input.idle;
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
                let mut step = || {
                    rayon::join(
                        || if waits { 0 } else { input.fill(&mut spare) },
                        || {
                            pieces
                                .par_iter()
                                .with_max_len(1)
                                .enumerate()
                                .map(|(k, piece)| {
                                    let mut part = LineScanner::new(self, source, opts, scan.forms);
                                    match *piece {
                                        Ok(piece) => part.lines(piece, first && k == 0),
                                        Err(len) => part.skipped_line(len),
                                    }
                                    part
                                })
                                .collect::<Vec<_>>()
                        },
                    )
                };
                // The pool only reads and scans; the hits are handed on from this thread.
                let (next_filled, parts) = match scan.pool {
                    Some(pool) => pool.install(step),
                    None => step(),
                };
                for part in parts {
                    total.absorb(part);
                }
                scanned += batch[..filled].iter().map(consumed).sum::<u64>();
                total.offer(scan);
                let next_filled = if waits {
                    total.idle(scan);
                    input.fill(&mut spare)
                } else {
                    next_filled
                };
                waits = input.idle;
                std::mem::swap(&mut batch, &mut spare);
                filled = next_filled;
                first = false;
            }
        }
        let cancelled = cancelled || input.cancelled;
        total.stats.bytes = if cancelled {
            scanned.min(input.bytes)
        } else {
            input.bytes
        };
        (total, cancelled, input.error.take())
    }
}

/// In parallel scans, each chunk is cut into this many pieces at line ends.
pub(super) const PIECES_PER_CHUNK: usize = 4;

/// `buf` cut at line ends into about `n` pieces of similar size.
pub(super) fn split_lines(buf: &[u8], n: usize) -> Vec<&[u8]> {
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

/// A read buffer: `buf` is allocated and zeroed once; `len` bytes of it hold data.
pub(super) struct Chunk {
    buf: Vec<u8>,
    len: usize,
    /// Set instead of data: the length of an over-long line that was read past.
    pub(super) long: Option<u64>,
}

impl Chunk {
    pub(super) fn new(size: usize) -> Chunk {
        Chunk {
            buf: vec![0; size],
            len: 0,
            long: None,
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Cuts a stream into chunks of whole lines; a line longer than `max_line` is read past in
/// the chunk's buffer and given as a [`Chunk::long`] chunk.
pub(super) struct ChunkReader<'c, R> {
    reader: R,
    size: usize,
    max_line: usize,
    cancel: &'c AtomicBool,
    /// Bytes read after the last complete line of the previous chunk.
    carry: Vec<u8>,
    /// `carry` may hold `\n`s (it follows a long line read past).
    carry_lines: bool,
    done: bool,
    /// The last read found no data on an input still open ([`source::idle`]): the chunk
    /// given holds the whole lines read so far, not a buffer's worth.
    pub(super) idle: bool,
    /// `cancel` was seen while reading a long line.
    pub(super) cancelled: bool,
    pub(super) bytes: u64,
    pub(super) error: Option<io::Error>,
}

impl<'c, R: Read> ChunkReader<'c, R> {
    pub(super) fn new(
        reader: R,
        size: usize,
        max_line: usize,
        cancel: &'c AtomicBool,
    ) -> ChunkReader<'c, R> {
        ChunkReader {
            reader,
            size,
            max_line,
            cancel,
            carry: Vec::new(),
            carry_lines: false,
            done: false,
            idle: false,
            cancelled: false,
            bytes: 0,
            error: None,
        }
    }

    /// Fill chunks in order until the stream ends or waits for data; how many were filled.
    pub(super) fn fill(&mut self, chunks: &mut [Chunk]) -> usize {
        let mut n = 0;
        while n < chunks.len() && self.next(&mut chunks[n]) {
            n += 1;
            if self.idle {
                break;
            }
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
                Err(e) if super::source::is_idle(&e) => {
                    self.idle = true;
                    return 0;
                }
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
    pub(super) fn next(&mut self, chunk: &mut Chunk) -> bool {
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
        self.idle = false;
        loop {
            while chunk.len < chunk.buf.len() && !self.done && !self.idle {
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
            if self.idle {
                // No whole line yet: wait on for one.
                self.idle = false;
                unsearched = chunk.len;
                continue;
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
            if n == 0 && self.idle {
                self.idle = false; // the long line goes on when more comes
                continue;
            }
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
pub(super) struct LineScanner<'e> {
    engine: &'e Engine,
    opts: &'e ScanOptions,
    source: usize,
    /// Search with the prefilter (else every line is parsed).
    filter: bool,
    /// Lines seen so far (the number of the last one).
    pub(super) line_no: u64,
    pub(super) stats: FileStats,
    hits: Vec<Hit>,
    /// What `hits` take, by [`hit_bytes`].
    held: usize,
    /// With several rules and the prefilter on: which rules a candidate line can match.
    gate: Option<&'e RuleGate>,
    /// Scratch: the rules the gate leaves open on the current line, in order.
    open: Vec<usize>,
    /// Scratch: `open` as the parse takes it.
    open_rules: OpenRules,
    /// The buffers of the documents parsed before, for the next ones.
    scratch: Scratch,
    /// What hits are made into (`None`: plain hits).
    forms: Option<&'e HitForms>,
    /// What candidate lines are parsed into.
    projection: &'e Projection,
    /// `open` was filled by the prefilter for the current line (the gate need not run).
    opened: bool,
    /// Scratch: the verdicts on the current line of the rules others are the same as.
    twins: Vec<(usize, Verdict)>,
    /// The room of a line's shared field lookups, kept for the next.
    lookups: LookupRoom,
}

impl<'e> LineScanner<'e> {
    pub(super) fn new(
        engine: &'e Engine,
        source: usize,
        opts: &'e ScanOptions,
        forms: Option<&'e HitForms>,
    ) -> LineScanner<'e> {
        LineScanner {
            engine,
            opts,
            source,
            filter: opts.prefilter && engine.prefilter.is_active(),
            line_no: 0,
            stats: FileStats::default(),
            hits: Vec::new(),
            held: 0,
            gate: engine.gate.as_ref().filter(|_| opts.prefilter),
            open: Vec::new(),
            open_rules: OpenRules::default(),
            scratch: Scratch::default(),
            opened: false,
            twins: Vec::new(),
            lookups: LookupRoom::default(),
            forms,
            projection: forms
                .and_then(HitForms::projection)
                .unwrap_or(&engine.projection),
        }
    }

    /// Scan whole lines: `buf` ends with `\n`, or is the end of the stream.
    pub(super) fn lines(&mut self, mut buf: &[u8], stream_start: bool) {
        // A BOM counts in the first line's length, as when the line is read past.
        let mut bom = 0;
        if stream_start {
            if let Some(rest) = buf.strip_prefix(b"\xEF\xBB\xBF") {
                (buf, bom) = (rest, 3);
            }
        }
        let mut pf = self.engine.prefilter.finder();
        let judges = self.filter && self.engine.prefilter.judges_lines();
        let len = buf.len();
        let mut pos = 0;
        // The prefilter has searched buf[..searched], finding `hit` (the first relevant
        // position at or after the current line) or nothing.
        let mut searched = 0;
        let mut hit: Option<usize> = None;
        while pos < len {
            let end = memchr::memchr(b'\n', &buf[pos..]).map_or(len, |i| pos + i);
            self.line_no += 1;
            let judged = if judges {
                pf.judge_line(buf, pos, end)
            } else {
                None
            };
            let candidate = !self.filter
                || judged.unwrap_or_else(|| loop {
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
                });
            self.opened = false;
            if candidate && self.filter {
                hit = None;
                searched = end;
                self.opened = pf.fill_open(&mut self.open);
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
        // Exports concatenated with `cat` keep each part's byte-order mark at a line start.
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let Some(first) = line.iter().position(|&b| !is_space(b)) else {
            return; // blank: not an event
        };
        self.stats.events += 1;
        if !candidate {
            let last = line.iter().rposition(|&b| !is_space(b)).unwrap_or(first);
            if line[first] != b'{' || line[last] != b'}' {
                self.malformed(NOT_OBJECT.to_string());
            } else if !self.stats.valid_event {
                // Until one is found (a cost of the first lines only); not counted as malformed
                // when it is not: the count must not depend on how the input was cut.
                self.stats.valid_event =
                    event::parse_line_projected(line, &self.engine.projection).is_ok();
            }
            return;
        }
        self.stats.candidates += 1;
        let gated = self.opened || self.gate.is_some();
        if let Some(gate) = self.gate.filter(|_| !self.opened) {
            gate.open(line, &mut self.open);
        }
        // Only the fields of the rules that can match the line are built (all of a hit's
        // forms' projection, which is by no rule).
        let open = gated.then(|| {
            self.open_rules.fill(&self.open, self.engine.rules.len());
            &self.open_rules
        });
        let parsed = event::parse_line_reusing(line, self.projection, open, &mut self.scratch);
        match parsed {
            Ok(Some(parsed)) => {
                self.stats.valid_event = true;
                if parsed.invalid_utf8 {
                    self.stats.invalid_utf8 += 1;
                    if self.stats.invalid_utf8_lines.len() < self.opts.max_examples {
                        self.stats.invalid_utf8_lines.push(self.line_no);
                    }
                }
                let mut cache = LineCache::default();
                let lookups = Lookups::new(&parsed.doc, &mut self.lookups);
                self.twins.clear();
                // Only the open rules: the others' needles are not all in the line.
                let mut open = std::mem::take(&mut self.open);
                if !gated {
                    open.clear();
                    open.extend(0..self.engine.rules.len());
                }
                for &rule in &open {
                    let compiled = &self.engine.rules[rule];
                    let twin = self.engine.twins[rule];
                    let known = match twin {
                        Twin::Of(first) => self.twins.iter().find(|t| t.0 == first),
                        _ => None,
                    };
                    let verdict = match known {
                        Some((_, verdict)) => verdict.clone(),
                        None => compiled.judge_line_sharing(&parsed, &lookups),
                    };
                    if twin == Twin::First {
                        self.twins.push((rule, verdict.clone()));
                    }
                    match verdict {
                        Verdict::Hit(m) => {
                            self.stats.hits += 1;
                            let at = (self.source, self.line_no, rule);
                            let hit = match self.forms {
                                Some(forms) => forms.hit(at, m, &parsed, &mut cache),
                                None => Hit {
                                    source: self.source,
                                    line: self.line_no,
                                    rule,
                                    branch: m.branch,
                                    witness: m.witness,
                                    event: parsed.text.to_string(),
                                    extra: None,
                                },
                            };
                            self.held += hit_bytes(&hit);
                            self.hits.push(hit);
                        }
                        Verdict::Allowed(entry) => {
                            *self.stats.allowlisted.entry((rule, entry)).or_default() += 1;
                        }
                        Verdict::Miss => {}
                    }
                }
                self.open = open;
                lookups.done(&mut self.lookups);
                self.scratch.recycle(parsed);
            }
            Ok(None) => {}
            Err(m) => self.malformed(m.reason),
        }
    }

    /// The next line was read past: `len` bytes, longer than `max_line_bytes`.
    pub(super) fn skipped_line(&mut self, len: u64) {
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

    /// Hand the hits found so far on to the stream's outlet, if it takes them now.
    fn offer(&mut self, scan: &Stream<'_>) {
        if let Some(outlet) = scan.outlet {
            outlet.offer(&mut self.hits, &mut self.held);
        }
    }

    /// The input waits for data: tell the stream's outlet.
    fn idle(&self, scan: &Stream<'_>) {
        if let Some(outlet) = scan.outlet {
            outlet.idle();
        }
    }

    /// Append the results of the chunk that follows this one.
    pub(super) fn absorb(&mut self, next: LineScanner<'_>) {
        let base = self.line_no;
        absorb_stats(&mut self.stats, next.stats, base, self.opts.max_examples);
        self.held += next.held;
        self.hits.extend(next.hits.into_iter().map(|mut h| {
            h.line += base;
            h
        }));
        self.line_no += next.line_no;
    }

    pub(super) fn finish(mut self, cancelled: bool) -> ScanReport {
        self.stats.lines = self.line_no;
        ScanReport {
            files: vec![self.stats],
            hits: self.hits,
            cancelled,
        }
    }
}

/// Add the statistics `b` of the part that follows `a` (whose lines are `base`) to `a`.
pub(super) fn absorb_stats(a: &mut FileStats, b: FileStats, base: u64, max_examples: usize) {
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
    a.valid_event |= b.valid_event;
    let room = max_examples.saturating_sub(a.invalid_utf8_lines.len());
    a.invalid_utf8_lines.extend(
        b.invalid_utf8_lines
            .into_iter()
            .take(room)
            .map(|l| l + base),
    );
    let room = max_examples.saturating_sub(a.malformed_examples.len());
    a.malformed_examples.extend(
        b.malformed_examples
            .into_iter()
            .take(room)
            .map(|(line, why)| (line + base, why)),
    );
}

/// JSON's insignificant whitespace (a trailing `\r` is one).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}
