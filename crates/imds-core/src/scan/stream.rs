//! Hits handed out while the scan runs, in input order then line order, in bounded memory.
//!
//! The scan's work is cut into *lanes*: a whole input, or one region of a large plain file.
//! Lanes are numbered in output order (input order, then region order) and claimed in that
//! order by the lane threads. The unfinished lane with the smallest number is the *head*: it
//! alone hands hits to the sink, with line numbers made absolute (the lines of the regions
//! before it are known once those are finished). Any other lane keeps its hits until they
//! take more than the reorder cap, then waits for its turn (backpressure). A lane that
//! finishes before its turn is *parked* (its hits and statistics kept) while all parked lanes
//! take no more than the cap, and its thread claims the next lane; else it waits for its
//! turn. The thread that finishes the head hands over the parked lanes that follow it.
//!
//! Memory: at most one lane per lane thread is running, each holding at most the cap plus
//! the hits of one read (one chunk; for a compressed input scanned with several threads, one
//! batch of chunks), and the parked lanes at most the cap, so it does not grow with the
//! number of hits.
//!
//! Why this cannot deadlock: a lane thread waits only (a) for its turn, when its lane is not
//! the head, or (b) in the sink, when its lane is the head (the consumer's backpressure).
//! Lanes are claimed in order, so when a lane is claimed every lane before it is claimed
//! too: the head is always running (or is the next one a free thread claims, or is parked
//! and handed over by the thread that finished the lane before it), and its thread waits for
//! no other lane, so it finishes and the turn passes on. (Parking and passing the turn both
//! happen under the order's lock: a lane is never parked after the turn passed it by.) The pool threads that scan
//! the pieces of a compressed input in parallel never wait for a turn: they only read and
//! scan, and the lane thread hands their hits on after they return. (Lanes are not rayon
//! tasks because a rayon thread waiting in a join runs other queued tasks on its stack: a
//! later lane waiting for its turn there would hold up the head below it.)

use super::lines::absorb_stats;
use super::source::{self, Compression};
use super::{
    failed, hit_bytes, open_file, Engine, FileStats, Hit, HitForms, Input, Outlet, ScanEvent,
    ScanOptions, Stream,
};
use super::{ScanReport, DEFAULT_REORDER_BYTES};
use crate::error::{InputError, InputErrorKind};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::iter::Enumerate;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The order of the lanes: whose turn it is, and the merged statistics of the current
/// input's finished regions.
struct Sequencer<'e> {
    /// The head lane's number.
    head: AtomicU64,
    order: Mutex<Order>,
    turn: Condvar,
    sink: Mutex<&'e mut (dyn FnMut(ScanEvent) + Send)>,
    cap: usize,
    max_examples: usize,
    /// Lane threads waiting for their lane's turn, and lane threads out of work: cores a
    /// running lane may use through the pool.
    waiting: AtomicUsize,
    done_threads: AtomicUsize,
}

#[derive(Default)]
struct Order {
    /// The finished regions of the current input: statistics, lines, cancelled.
    regions: Option<(FileStats, u64, bool)>,
    cancelled: bool,
    /// A lane thread panicked: nobody waits for turns any more.
    poisoned: bool,
    /// Lanes finished before their turn, by number, and what their hits take.
    parked: BTreeMap<u64, Done>,
    parked_bytes: usize,
}

/// How a lane ended.
enum Done {
    /// A whole input (or one that failed): its report.
    Whole(usize, ScanReport),
    /// A region of an input.
    Region {
        source: usize,
        part: Box<FileStats>,
        lines: u64,
        hits: Vec<Hit>,
        cancelled: bool,
        last: bool,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<'e> Sequencer<'e> {
    /// Wait until lane `seq` is the head; false if a lane thread panicked.
    fn wait_turn(&self, seq: u64) -> bool {
        let mut order = lock(&self.order);
        if self.head.load(Ordering::Acquire) != seq && !order.poisoned {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            while self.head.load(Ordering::Acquire) != seq && !order.poisoned {
                order = self
                    .turn
                    .wait(order)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        !order.poisoned
    }

    /// Hand the head's hits to the sink, their line numbers made absolute. After a region of
    /// the input stopped part-way, the lines before the head are not all counted: its hits
    /// cannot be placed, and the input ends there (whether the head hands them over as it
    /// scans or when it is done).
    fn emit(&self, hits: &mut Vec<Hit>) {
        if hits.is_empty() {
            return;
        }
        let (base, cut) = lock(&self.order)
            .regions
            .as_ref()
            .map_or((0, false), |r| (r.1, r.2));
        if cut {
            hits.clear();
            return;
        }
        let mut sink = lock(&self.sink);
        for mut hit in hits.drain(..) {
            hit.line += base;
            (*sink)(ScanEvent::Hit(hit));
        }
    }

    /// Lane `seq` is finished: park it if it is not the head and there is room, else in its
    /// turn hand over its hits and (for the last part of an input) the input's statistics,
    /// then pass the turn on, handing over the parked lanes that follow.
    fn finish(&self, seq: u64, done: Done) {
        let bytes = done.bytes();
        {
            let mut order = lock(&self.order);
            if self.head.load(Ordering::Acquire) != seq
                && order.parked_bytes + bytes <= self.cap
                && !order.poisoned
            {
                order.parked_bytes += bytes;
                order.parked.insert(seq, done);
                return;
            }
        }
        if !self.wait_turn(seq) {
            return;
        }
        let mut done = done;
        loop {
            self.hand_over(done);
            let mut order = lock(&self.order);
            let next = self.head.fetch_add(1, Ordering::Release) + 1;
            self.turn.notify_all();
            match order.parked.remove(&next) {
                Some(parked) => {
                    order.parked_bytes -= parked.bytes();
                    done = parked;
                }
                None => return,
            }
        }
    }

    /// The head lane's hits and (for the last part of an input) the input's statistics to
    /// the sink.
    fn hand_over(&self, done: Done) {
        let file = match done {
            Done::Whole(source, mut report) => {
                self.emit(&mut report.hits);
                lock(&self.order).cancelled |= report.cancelled;
                report.files.pop().map(|stats| (source, stats))
            }
            Done::Region {
                source,
                part,
                lines,
                mut hits,
                cancelled,
                last,
            } => {
                self.emit(&mut hits);
                let mut order = lock(&self.order);
                let merged = match order.regions.take() {
                    None => (*part, lines, cancelled),
                    Some(before) if before.2 => before,
                    Some((mut stats, base, was)) => {
                        absorb_stats(&mut stats, *part, base, self.max_examples);
                        (stats, base + lines, was || cancelled)
                    }
                };
                if last {
                    let (mut stats, lines, cancelled) = merged;
                    stats.source_bytes = stats.bytes;
                    stats.lines = lines;
                    if cancelled && stats.error.is_none() {
                        stats.error = Some(InputError::interrupted(stats.bytes, lines));
                    }
                    order.cancelled |= cancelled;
                    Some((source, stats))
                } else {
                    order.regions = Some(merged);
                    None
                }
            }
        };
        if let Some((source, stats)) = file {
            (*lock(&self.sink))(ScanEvent::File { source, stats });
        }
    }

    fn poison(&self) {
        lock(&self.order).poisoned = true;
        self.turn.notify_all();
    }
}

impl Done {
    /// What it takes in memory: its hits (by [`hit_bytes`]) and statistics, so that the cap
    /// bounds the parked lanes without hits too.
    fn bytes(&self) -> usize {
        let (hits, stats) = match self {
            Done::Whole(_, report) => (&report.hits, report.files.first()),
            Done::Region { hits, part, .. } => (hits, Some(&**part)),
        };
        let examples = stats.map_or(0, |s| {
            s.malformed_examples
                .iter()
                .map(|(_, why)| why.len() + 8)
                .sum()
        });
        std::mem::size_of::<Done>()
            + std::mem::size_of::<FileStats>()
            + examples
            + hits.iter().map(hit_bytes).sum::<usize>()
    }
}

/// A running lane.
struct Lane<'s, 'e> {
    seq: u64,
    order: &'s Sequencer<'e>,
}

impl Outlet for Lane<'_, '_> {
    fn offer(&self, hits: &mut Vec<Hit>, held: &mut usize) {
        let order = self.order;
        if order.head.load(Ordering::Acquire) != self.seq {
            if *held <= order.cap {
                return;
            }
            if !order.wait_turn(self.seq) {
                return;
            }
        }
        order.emit(hits);
        *held = 0;
    }

    fn idle(&self) {
        // Only the head lane's hits are out; another's wait for their turn anyway.
        if self.order.head.load(Ordering::Acquire) == self.seq {
            (*lock(&self.order.sink))(ScanEvent::Idle);
        }
    }

    fn help_wanted(&self) -> bool {
        let order = self.order;
        order.waiting.load(Ordering::Relaxed) + order.done_threads.load(Ordering::Relaxed) > 0
    }
}

/// Poisons the sequencer when a lane thread unwinds, so that no thread waits forever.
struct PanicGuard<'s, 'e>(&'s Sequencer<'e>);

impl Drop for PanicGuard<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison();
        }
    }
}

/// One unit of work, claimed in order.
enum Job {
    /// An input scanned as a whole.
    Input(usize, Input),
    /// A plain or compressed file, opened, its first bytes read.
    Opened(usize, File, Vec<u8>),
    /// An input that failed to open, or was not started because the scan was cancelled.
    Failed(usize, ScanReport),
    /// The lines of a plain file that start in `[start, end)`.
    Region {
        source: usize,
        file: Arc<File>,
        start: u64,
        end: u64,
        last: bool,
    },
}

/// The inputs not yet claimed, and the regions of the last one opened.
struct Plan {
    inputs: Enumerate<std::vec::IntoIter<Input>>,
    regions: VecDeque<Job>,
    next: u64,
}

impl Engine {
    /// Scan the inputs like [`Engine::scan_inputs`], handing each hit to `sink` as it is
    /// found, in the order `scan_inputs` returns them (input order, then line, then rule),
    /// and each input's statistics after its hits, in input order. `reorder_bytes` caps the
    /// hits a part of the scan that is not at the head of the order keeps before it waits for
    /// its turn (0 = the default, 16 MiB; see the module documentation). Returns whether
    /// `cancel` stopped the scan: the parts running then stop within a buffer and still hand
    /// over, in order, the whole hits they found; inputs not started get an `interrupted`
    /// error. The sink is called from the scan's threads, one call at a time.
    pub fn scan_stream(
        &self,
        inputs: Vec<Input>,
        opts: &ScanOptions,
        cancel: &AtomicBool,
        progress: &AtomicU64,
        reorder_bytes: usize,
        sink: &mut (dyn FnMut(ScanEvent) + Send),
    ) -> bool {
        self.scan_stream_with(inputs, opts, cancel, progress, reorder_bytes, None, sink)
    }

    /// [`Engine::scan_stream`], each hit made as `forms` says in the thread that found it
    /// (its [`Hit::extra`]; see [`HitForms`]).
    #[allow(clippy::too_many_arguments)]
    pub fn scan_stream_with(
        &self,
        inputs: Vec<Input>,
        opts: &ScanOptions,
        cancel: &AtomicBool,
        progress: &AtomicU64,
        reorder_bytes: usize,
        forms: Option<&HitForms>,
        sink: &mut (dyn FnMut(ScanEvent) + Send),
    ) -> bool {
        let count = inputs.len();
        let threads = match opts.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let workers = threads.div_ceil(count.max(1));
        // Compressed inputs and streams scanned by several threads scan pieces on this pool;
        // so does a lane of one of several inputs while another lane thread is free
        // (`Outlet::help_wanted`).
        let pool = if threads > 1 {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .ok()
        } else {
            None
        };
        let workers = if pool.is_some() { workers } else { 1 };
        let plan = Mutex::new(Plan {
            inputs: inputs.into_iter().enumerate(),
            regions: VecDeque::new(),
            next: 0,
        });
        let order = Sequencer {
            head: AtomicU64::new(0),
            order: Mutex::new(Order::default()),
            turn: Condvar::new(),
            sink: Mutex::new(sink),
            cap: if reorder_bytes == 0 {
                DEFAULT_REORDER_BYTES
            } else {
                reorder_bytes
            },
            max_examples: opts.max_examples,
            waiting: AtomicUsize::new(0),
            done_threads: AtomicUsize::new(0),
        };
        // One input per thread (each scanned on the pool too once another lane thread is
        // free), or the regions of fewer inputs on all threads.
        let lanes = if workers > 1 {
            threads
        } else {
            threads.min(count)
        };
        std::thread::scope(|scope| {
            for _ in 0..lanes {
                scope.spawn(|| {
                    let _guard = PanicGuard(&order);
                    while let Some((seq, job)) = self.claim(&plan, opts, cancel, workers) {
                        let lane = Lane { seq, order: &order };
                        let own = AtomicU64::new(0);
                        let scan = Stream {
                            source: 0,
                            opts,
                            cancel,
                            workers,
                            own: &own,
                            progress,
                            outlet: Some(&lane),
                            pool: pool.as_ref(),
                            forms,
                        };
                        let done = self.run_job(job, scan);
                        order.finish(seq, done);
                    }
                    order.done_threads.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        let order = order
            .order
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        order.cancelled
    }

    /// The next job in order, with its lane number; `None` when all are claimed.
    fn claim(
        &self,
        plan: &Mutex<Plan>,
        opts: &ScanOptions,
        cancel: &AtomicBool,
        workers: usize,
    ) -> Option<(u64, Job)> {
        let mut plan = lock(plan);
        let job = match plan.regions.pop_front() {
            Some(job) => job,
            None => {
                let (source, input) = plan.inputs.next()?;
                if cancel.load(Ordering::Relaxed) {
                    let mut report = failed(InputError::new(InputErrorKind::Interrupted));
                    report.cancelled = true;
                    Job::Failed(source, report)
                } else {
                    let mut regions = Vec::new();
                    let job = open_input(source, input, opts, cancel, workers, &mut regions);
                    plan.regions.extend(regions);
                    job
                }
            }
        };
        let seq = plan.next;
        plan.next += 1;
        Some((seq, job))
    }

    fn run_job(&self, job: Job, scan: Stream<'_>) -> Done {
        match job {
            Job::Input(source, input) => {
                Done::Whole(source, self.scan_input(input, &Stream { source, ..scan }))
            }
            Job::Opened(source, file, head) => Done::Whole(
                source,
                self.scan_source(head, file, &Stream { source, ..scan }),
            ),
            Job::Failed(source, report) => Done::Whole(source, report),
            Job::Region {
                source,
                file,
                start,
                end,
                last,
            } => {
                // A region is short: it keeps to its lane (no pool, which it would take
                // once another lane thread is free: batch buffers per region).
                let one = Stream {
                    source,
                    workers: 1,
                    pool: None,
                    ..scan
                };
                let (part, cancelled) = self.scan_region(&file, start, end, &one);
                let report = part.finish(cancelled);
                let ScanReport {
                    mut files, hits, ..
                } = report;
                let part = Box::new(files.pop().unwrap_or_default());
                Done::Region {
                    source,
                    lines: part.lines,
                    part,
                    hits,
                    cancelled,
                    last,
                }
            }
        }
    }
}

/// The job of an input: a file is opened and its first bytes read, and a large plain file
/// is cut into regions (the first is the job, the others go to `regions`).
fn open_input(
    source: usize,
    input: Input,
    opts: &ScanOptions,
    cancel: &AtomicBool,
    workers: usize,
    regions: &mut Vec<Job>,
) -> Job {
    let Input::Path(path) = input else {
        return Job::Input(source, input);
    };
    let mut file = match open_file(&path, cancel) {
        Ok(file) => file,
        Err(e) => return Job::Failed(source, failed(e)),
    };
    let head = match source::read_head(&mut file) {
        Ok(head) => head,
        Err(e) => return Job::Failed(source, failed(InputError::read(0, None, &e))),
    };
    #[cfg(unix)]
    if workers > 1 && Compression::detect(&head) == Ok(Compression::Plain) {
        if let Some(ranges) = super::regions::plan_regions(&file, opts.buffer_size, workers) {
            let file = Arc::new(file);
            let n = ranges.len();
            regions.extend(
                ranges
                    .into_iter()
                    .enumerate()
                    .map(|(k, (start, end))| Job::Region {
                        source,
                        file: Arc::clone(&file),
                        start,
                        end,
                        last: k + 1 == n,
                    }),
            );
            return regions.remove(0);
        }
    }
    #[cfg(not(unix))]
    let _ = (opts, workers, regions, Compression::Plain);
    Job::Opened(source, file, head)
}
