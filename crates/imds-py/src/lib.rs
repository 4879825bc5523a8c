//! Python bindings of imds-core: the private module `imds_scan._engine`.
//!
//! The scan runs on a worker thread with the GIL released; this thread wakes every 50 ms to
//! let Python deliver signals (and to report progress), so Ctrl-C cancels the scan within a
//! buffer's time, and the scan returns what it found so far, marked interrupted.
//! `Scanner.scan_iter` runs the scan on a thread of its own that sends batches of hits (and
//! their NDJSON records) through a bounded channel; `next()` waits for one in the same way and
//! hands it out as a `HitBatch`, which holds no Python object per hit unless hits are asked for.

mod arrow_ipc;
mod sequence;

// mimalloc for small blocks, the system's for large ones (imds_core::allocator says why).
#[global_allocator]
static ALLOCATOR: imds_core::allocator::Split = imds_core::allocator::Split;

use imds_core::{
    AlertRule, Engine, FileStats, Hit, HitForms, HitRows, Input, RecordMeta, RuleMeta, ScanEvent,
    ScanOptions, StatValue, TimeWindow,
};
use pyo3::exceptions::{
    PyIndexError, PyKeyboardInterrupt, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyString, PyTuple};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type WitnessTuple = (String, &'static str, String, String);
type HitTuple = (usize, u64, usize, usize, Option<WitnessTuple>, String);
/// `records=(source names, rule descriptions)` of `scan_iter`.
type RecordNames<'py> = (Vec<Bound<'py, PyAny>>, Vec<Bound<'py, PyAny>>);
type ScanTuple<'py> = (Vec<HitTuple>, Vec<Bound<'py, PyDict>>, bool);

/// How often the progress callback is called, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A set of compiled rules, ready to scan.
#[pyclass(frozen, module = "imds_scan._engine")]
struct Scanner {
    engine: Arc<Engine>,
}

#[pymethods]
impl Scanner {
    /// Compile rules given as IR JSON documents, on `threads` threads at most (0: one per
    /// core); ValueError if one is invalid.
    #[new]
    #[pyo3(signature = (rules, threads = 0))]
    fn new(py: Python<'_>, rules: Vec<String>, threads: usize) -> PyResult<Self> {
        // Without the GIL: Python may go on with other set-up while many rules compile.
        let engine = py
            .detach(|| Engine::from_json_on(&rules, threads))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Scanner {
            engine: Arc::new(engine),
        })
    }

    /// Each rule's prefilter needles as ``Scanner([rule]).needles()`` gives them, the rules
    /// compiled side by side on ``threads`` threads at most (0: one per core) with the GIL
    /// released; ValueError if one is invalid.
    #[staticmethod]
    #[pyo3(signature = (rules, threads = 0))]
    fn needles_each(
        py: Python<'_>,
        rules: Vec<String>,
        threads: usize,
    ) -> PyResult<Vec<Option<Vec<String>>>> {
        py.detach(|| Engine::needles_each_on(&rules, threads))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The prefilter's needles, or None when the rules force a parse of every line.
    fn needles(&self) -> Option<Vec<String>> {
        self.engine.needles()
    }

    /// Per rule, how many lines of `sample` (bytes) a scan would evaluate it on: the
    /// candidate lines, narrowed by the rule gate when several rules run.
    fn open_lines(&self, py: Python<'_>, sample: &[u8]) -> Vec<u64> {
        py.detach(|| self.engine.open_lines(sample))
    }

    /// Scan inputs: paths (str or os.PathLike; "-" is standard input), byte ranges of plain
    /// files or seekable binary streams (`(path or stream, start, end)`: the lines that start
    /// in `[start, end)`, numbered from the range's first line; `stats["lines"]` is how many
    /// it owns), or binary file-like
    /// objects (anything with `read(n)`, called with the GIL for each buffer). gzip and zstd
    /// are decoded. `progress(bytes)` is called every 100 ms or so with the bytes read from
    /// the sources so far, and once at the end. Returns (hits, per-input stats, interrupted):
    /// on Ctrl-C the scan stops and returns what it found, with interrupted True.
    #[pyo3(signature = (
        inputs, threads=0, buffer_size=4194304, prefilter=true, max_examples=5, progress=None,
        max_line_bytes=67108864
    ))]
    #[allow(clippy::too_many_arguments)]
    fn scan<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Bound<'py, PyAny>>,
        threads: usize,
        buffer_size: usize,
        prefilter: bool,
        max_examples: usize,
        progress: Option<Py<PyAny>>,
        max_line_bytes: usize,
    ) -> PyResult<ScanTuple<'py>> {
        let inputs = inputs.iter().map(to_input).collect::<PyResult<Vec<_>>>()?;
        let opts = options(
            threads,
            buffer_size,
            prefilter,
            max_examples,
            max_line_bytes,
        );
        self.run(py, inputs, &opts, progress.as_ref())
    }

    /// Scan like `scan`, handing hits out while the scan runs, in the same order, in bounded
    /// memory, as `HitBatch`es: see `ScanIter`. `names = (sources, rules)` names the inputs
    /// (one per input) and rules ((name, id, severity, branch names) per rule) for records
    /// and rows. `records`: the names (as `names`, records on) or a bool (records with
    /// `names`) gives each batch's NDJSON records as bytes; `rows=True` (with names) its rows
    /// of the hits frame as an Arrow IPC stream; `hits=False` leaves `hits` None.
    /// `reorder_bytes` (0 = 16 MiB) caps the hits a part of the scan ahead of the output
    /// order keeps. `since`/`until` (microseconds since the epoch) keep only the hits whose
    /// `@timestamp` is in `[since, until)`; the others are counted in `HitBatch.outside`.
    /// `alerts` (with names): per rule, (`event.severity` or None, the `"rule": …` and
    /// `"threat": …` members as `json.dumps` writes them) gives each batch's ECS alert
    /// documents (`report/alerts.py`'s `alert_json` of each hit, one line each) as bytes.
    /// `router` (a `StageRouter` without a time window, with `ranks`: each input's rank):
    /// the stage hits of its Rust matchers go to them in the scan, read where they are found
    /// (never handed out; counted in `rule_counts` and the router's `candidates()`); the
    /// matchers and the router are the scan's until it ends (done, closed, Ctrl-C), and a
    /// failure to spill or add them stops the scan and is raised by `next()` (OSError).
    #[pyo3(signature = (
        inputs, threads=0, buffer_size=4194304, prefilter=true, max_examples=5, progress=None,
        max_line_bytes=67108864, batch=4096, records=None, hits=true, reorder_bytes=0,
        rows=false, names=None, since=None, until=None, alerts=None, router=None, ranks=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn scan_iter(
        &self,
        inputs: Vec<Bound<'_, PyAny>>,
        threads: usize,
        buffer_size: usize,
        prefilter: bool,
        max_examples: usize,
        progress: Option<Py<PyAny>>,
        max_line_bytes: usize,
        batch: usize,
        records: Option<Bound<'_, PyAny>>,
        hits: bool,
        reorder_bytes: usize,
        rows: bool,
        names: Option<RecordNames<'_>>,
        since: Option<i64>,
        until: Option<i64>,
        alerts: Option<Vec<(Option<i64>, String)>>,
        router: Option<Bound<'_, sequence::StageRouter>>,
        ranks: Option<Vec<u32>>,
    ) -> PyResult<ScanIter> {
        let count = inputs.len();
        if router.is_some() && (since.is_some() || until.is_some()) {
            return Err(PyValueError::new_err(
                "router with since/until: the router's own window applies (add_batch)",
            ));
        }
        // `records` is a bool, or the names themselves (records on).
        let (with_records, records_names) = match records {
            None => (false, None),
            Some(value) if value.is_instance_of::<PyBool>() => (value.extract::<bool>()?, None),
            Some(value) => (
                true,
                Some(value.extract::<RecordNames<'_>>().map_err(|_| {
                    PyTypeError::new_err("records is a bool or (source names, rule descriptions)")
                })?),
            ),
        };
        let names = match (names, records_names) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err(
                    "names given twice: as names= and as records=",
                ))
            }
            (names, other) => names.or(other),
        };
        let with_alerts = alerts.is_some();
        for (wanted, what) in [
            (with_records, "records=True"),
            (rows, "rows=True"),
            (with_alerts, "alerts"),
        ] {
            if wanted && names.is_none() {
                return Err(PyValueError::new_err(format!(
                    "{what} needs names=(source names, rule descriptions)"
                )));
            }
        }
        let inputs = inputs.iter().map(to_input).collect::<PyResult<Vec<_>>>()?;
        let meta = names
            .map(|(sources, rules)| record_meta(&self.engine, count, &sources, &rules))
            .transpose()?;
        let window = TimeWindow { since, until };
        let mut forms = HitForms::new(&self.engine, meta, with_records, rows, hits, window)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(alerts) = alerts {
            let rules = (alerts.into_iter())
                .map(|(risk, detection)| AlertRule { risk, detection })
                .collect();
            forms = (forms.with_alerts(rules)).map_err(|e| PyValueError::new_err(e.to_string()))?;
        }
        let opts = options(
            threads,
            buffer_size,
            prefilter,
            max_examples,
            max_line_bytes,
        );
        // Last: nothing fails once the matchers are lent.
        let loan = match router {
            Some(router) => {
                let ranks = ranks.ok_or_else(|| PyValueError::new_err("router needs ranks"))?;
                let (loan, stages, lender) = sequence::StageRouter::lend(&router, count, ranks)?;
                forms = match forms.with_stages(stages) {
                    Ok(forms) => forms,
                    Err(e) => {
                        let _ = loan.give_back(router.py(), &lender);
                        return Err(PyValueError::new_err(e.to_string()));
                    }
                };
                Some((loan, lender))
            }
            None => None,
        };
        Ok(ScanIter::start(
            Arc::clone(&self.engine),
            inputs,
            opts,
            Feed {
                batch: batch.max(1),
                forms,
                records: with_records,
                rows,
                alerts: with_alerts,
                hits,
                rules: self.engine.rules().len(),
                reorder_bytes,
            },
            progress,
            loan,
        ))
    }
}

/// The names of records, checked against the inputs and the engine's rules.
fn record_meta(
    engine: &Engine,
    inputs: usize,
    sources: &[Bound<'_, PyAny>],
    rules: &[Bound<'_, PyAny>],
) -> PyResult<RecordMeta> {
    // A str with surrogates (os.fsdecode of a name that is not UTF-8) has no UTF-8 form: the
    // caller builds those records itself.
    let text = |item: &Bound<'_, PyAny>, what: &str| -> PyResult<String> {
        item.extract::<String>().map_err(|_| {
            PyValueError::new_err(format!(
                "records: {what} is not a str encodable as UTF-8 (surrogates?)"
            ))
        })
    };
    if sources.len() != inputs {
        return Err(PyValueError::new_err(format!(
            "records: {} source names for {inputs} inputs",
            sources.len()
        )));
    }
    let sources = sources
        .iter()
        .enumerate()
        .map(|(k, name)| text(name, &format!("source {k}")))
        .collect::<PyResult<Vec<_>>>()?;
    if rules.len() != engine.rules().len() {
        return Err(PyValueError::new_err(format!(
            "records: {} rules described, the scanner has {}",
            rules.len(),
            engine.rules().len()
        )));
    }
    let mut metas = Vec::with_capacity(rules.len());
    for (k, (item, rule)) in rules.iter().zip(engine.rules()).enumerate() {
        let (name, id, severity, branches): (
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            Bound<'_, PyAny>,
            Vec<Bound<'_, PyAny>>,
        ) = item.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "records: rule {k} is not (name, id, severity, branch names)"
            ))
        })?;
        if branches.len() != rule.ir.branches.len() {
            return Err(PyValueError::new_err(format!(
                "records: rule {k} has {} branches, {} names given",
                rule.ir.branches.len(),
                branches.len()
            )));
        }
        let what = format!("a text of rule {k}");
        metas.push(RuleMeta {
            name: text(&name, &what)?,
            id: text(&id, &what)?,
            severity: text(&severity, &what)?,
            branches: branches
                .iter()
                .map(|b| text(b, &what))
                .collect::<PyResult<_>>()?,
        });
    }
    Ok(RecordMeta {
        sources,
        rules: metas,
    })
}

/// What the scan thread of a `ScanIter` puts in each batch.
struct Feed {
    batch: usize,
    /// What each hit is made into where it is found (the names of sources and rules
    /// checked against the inputs and rules).
    forms: HitForms,
    records: bool,
    rows: bool,
    alerts: bool,
    hits: bool,
    /// How many rules the engine has.
    rules: usize,
    reorder_bytes: usize,
}

/// A batch from the scan thread.
#[derive(Default)]
struct Batch {
    hits: Vec<Hit>,
    records: Option<Vec<u8>>,
    alerts: Option<Vec<u8>>,
    /// The rows while the batch fills.
    rows: Option<Box<HitRows>>,
    /// The rows as an Arrow IPC stream, once the batch is full.
    ipc: Option<Vec<u8>>,
    count: usize,
    /// (input index, line) per hit.
    positions: Vec<(usize, u64)>,
    /// Hits per rule index (those outside the time window too).
    rule_counts: Vec<u64>,
    /// Hits outside the time window.
    outside: u64,
    files: Vec<(usize, FileStats)>,
}

/// Bytes the engine made (a batch's records, rows or alerts), lent to Python as a read-only
/// buffer (`memoryview(buffer)`, a file's `write`, pyarrow): no copy into a `bytes` object,
/// which took ~10 ms per 100 MB scanned on the main thread, holding the GIL, per form.
#[pyclass(frozen, module = "imds_scan._engine")]
struct Buffer {
    data: Vec<u8>,
}

#[pymethods]
impl Buffer {
    /// The bytes, read-only (a writable view is refused).
    #[allow(unsafe_code)]
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> PyResult<()> {
        let data = &slf.get().data;
        let len = isize::try_from(data.len())
            .map_err(|_| pyo3::exceptions::PyBufferError::new_err("buffer too large"))?;
        // SAFETY: `view` is the caller's Py_buffer to fill. The bytes live as long as `slf`
        // (a frozen object: `data` never changes), which the view holds a reference to until
        // it is released; they are lent read-only (`readonly` 1: a writable request fails).
        let filled = unsafe {
            pyo3::ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                data.as_ptr().cast_mut().cast(),
                len,
                1,
                flags,
            )
        };
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.data.len()
    }
}

impl Buffer {
    fn new(py: Python<'_>, data: Vec<u8>) -> PyResult<Py<Buffer>> {
        Py::new(py, Buffer { data })
    }

    fn bytes(slf: &Py<Buffer>, py: Python<'_>) -> Py<PyBytes> {
        PyBytes::new(py, &slf.get().data).unbind()
    }
}

/// One batch of hits handed to Python (`ScanIter.__next__`): the hits as tuples (when asked
/// for) and their NDJSON records, plus what needs no Python object per hit.
#[pyclass(frozen, module = "imds_scan._engine")]
struct HitBatch {
    count: usize,
    hits: Option<Py<PyList>>,
    records: Option<Py<Buffer>>,
    rows: Option<Py<Buffer>>,
    alerts: Option<Py<Buffer>>,
    rule_counts: Vec<u64>,
    outside: u64,
    positions: Vec<(usize, u64)>,
}

#[pymethods]
impl HitBatch {
    /// Hits in this batch.
    #[getter]
    fn count(&self) -> usize {
        self.count
    }

    /// The hit tuples, or None when the scan was asked for `hits=False`.
    #[getter]
    fn hits(&self, py: Python<'_>) -> Option<Py<PyList>> {
        self.hits.as_ref().map(|list| list.clone_ref(py))
    }

    /// The hits' NDJSON records (one line each), or None without records (a copy: see
    /// `records_buffer`).
    #[getter]
    fn records(&self, py: Python<'_>) -> Option<Py<PyBytes>> {
        self.records
            .as_ref()
            .map(|buffer| Buffer::bytes(buffer, py))
    }

    /// The hits' ECS alert documents (one line each), or None without alerts (a copy).
    #[getter]
    fn alerts(&self, py: Python<'_>) -> Option<Py<PyBytes>> {
        self.alerts.as_ref().map(|buffer| Buffer::bytes(buffer, py))
    }

    /// The hits' rows as an Arrow IPC stream, or None without rows (a copy).
    #[getter]
    fn rows(&self, py: Python<'_>) -> Option<Py<PyBytes>> {
        self.rows.as_ref().map(|buffer| Buffer::bytes(buffer, py))
    }

    /// `records` as the engine's own buffer, uncopied.
    #[getter]
    fn records_buffer(&self, py: Python<'_>) -> Option<Py<Buffer>> {
        self.records.as_ref().map(|buffer| buffer.clone_ref(py))
    }

    /// `alerts` as the engine's own buffer, uncopied.
    #[getter]
    fn alerts_buffer(&self, py: Python<'_>) -> Option<Py<Buffer>> {
        self.alerts.as_ref().map(|buffer| buffer.clone_ref(py))
    }

    /// `rows` as the engine's own buffer, uncopied.
    #[getter]
    fn rows_buffer(&self, py: Python<'_>) -> Option<Py<Buffer>> {
        self.rows.as_ref().map(|buffer| buffer.clone_ref(py))
    }

    /// Hits per rule index in this batch, those outside the time window included.
    #[getter]
    fn rule_counts(&self) -> Vec<u64> {
        self.rule_counts.clone()
    }

    /// Hits of this batch's stretch of the scan left out as outside the time window.
    #[getter]
    fn outside(&self) -> u64 {
        self.outside
    }

    /// (input index, line) of the k-th hit (0-based); IndexError out of range.
    fn position(&self, k: usize) -> PyResult<(usize, u64)> {
        self.positions
            .get(k)
            .copied()
            .ok_or_else(|| PyIndexError::new_err(format!("hit {k} of a batch of {}", self.count)))
    }

    fn __len__(&self) -> usize {
        self.count
    }

    fn __repr__(&self) -> String {
        format!("<HitBatch of {} hits>", self.count)
    }
}

enum Msg {
    Batch(Batch),
    /// The scan ended; whether it was cancelled.
    Done(bool),
}

/// Batches in flight between the scan thread and Python: the scan waits when they are full.
const QUEUED_BATCHES: usize = 2;

/// A partial batch is sent when a hit or an input's end comes this long after the last batch,
/// so that a slow trickle of hits is not held back.
const BATCH_AGE: Duration = Duration::from_millis(200);

/// A running streaming scan (`Scanner.scan_iter`).
#[pyclass(module = "imds_scan._engine")]
struct ScanIter {
    rx: Mutex<Option<Receiver<Msg>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    cancel: Arc<AtomicBool>,
    read: Arc<AtomicU64>,
    progress: Option<Py<PyAny>>,
    files: Vec<(usize, FileStats)>,
    /// Batches the scan handed over after Ctrl-C stopped it: given out before the end.
    kept: VecDeque<Batch>,
    cancelled: bool,
    done: bool,
    with_records: bool,
    with_hits: bool,
    /// Who gets the stage matchers back, and where the scan thread leaves them.
    lender: Option<sequence::Lender>,
    loan: Arc<Mutex<Option<sequence::StageLoan>>>,
    /// Why the scan stopped routing stage hits: raised by `next()`.
    failure: Option<PyErr>,
}

impl ScanIter {
    /// A batch for Python: the hit tuples only when they were asked for.
    fn item(&self, py: Python<'_>, batch: Batch) -> PyResult<HitBatch> {
        let hits = if self.with_hits {
            Some(PyList::new(py, batch.hits.into_iter().map(hit_tuple))?.unbind())
        } else {
            None
        };
        let records = batch
            .records
            .map(|data| Buffer::new(py, data))
            .transpose()?;
        let rows = batch.ipc.map(|data| Buffer::new(py, data)).transpose()?;
        let alerts = batch.alerts.map(|data| Buffer::new(py, data)).transpose()?;
        Ok(HitBatch {
            count: batch.count,
            hits,
            records,
            rows,
            alerts,
            rule_counts: batch.rule_counts,
            outside: batch.outside,
            positions: batch.positions,
        })
    }

    fn start(
        engine: Arc<Engine>,
        inputs: Vec<Input>,
        opts: ScanOptions,
        feed: Feed,
        progress: Option<Py<PyAny>>,
        loan: Option<(sequence::StageLoan, sequence::Lender)>,
    ) -> ScanIter {
        let cancel = Arc::new(AtomicBool::new(false));
        let read = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::sync_channel(QUEUED_BATCHES);
        let (with_records, with_hits) = (feed.records, feed.hits);
        let slot = Arc::new(Mutex::new(None));
        let (stages, lender) = match loan {
            Some((loan, lender)) => {
                let stages = sequence::LoanSlot {
                    loan: Some(loan),
                    slot: Arc::clone(&slot),
                };
                (Some(stages), Some(lender))
            }
            None => (None, None),
        };
        let worker = {
            let (cancel, read) = (Arc::clone(&cancel), Arc::clone(&read));
            std::thread::spawn(move || {
                feed_batches(&engine, inputs, &opts, &feed, stages, &cancel, &read, &tx)
            })
        };
        ScanIter {
            rx: Mutex::new(Some(rx)),
            worker: Mutex::new(Some(worker)),
            cancel,
            read,
            progress,
            files: Vec::new(),
            kept: VecDeque::new(),
            cancelled: false,
            done: false,
            with_records,
            with_hits,
            lender,
            loan: slot,
            failure: None,
        }
    }

    /// The stage matchers back into their Python objects, once the scan thread has ended.
    fn give_back(&mut self, py: Python<'_>) {
        let Some(lender) = self.lender.take() else {
            return;
        };
        let loan = self
            .loan
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match loan {
            Some(loan) => {
                if let Some(err) = loan.give_back(py, &lender) {
                    self.failure.get_or_insert(err);
                }
            }
            None => lender.lost(py),
        }
    }

    /// The end of the batches: the routing failure, if one stopped the scan.
    fn end(&mut self) -> PyResult<Option<HitBatch>> {
        match self.failure.take() {
            Some(err) => Err(err),
            None => Ok(None),
        }
    }

    /// Cancel the scan, wait for it to end keeping the statistics it sends, and join its
    /// thread (with the GIL released: its inputs may be Python streams). The hits it still
    /// sends are kept for `__next__` when `keep_hits` (Ctrl-C: what was found is still given
    /// out), else dropped. `cancelled` is set when the scan says it was cancelled, or hits
    /// were dropped here.
    fn stop(&mut self, py: Python<'_>, keep_hits: bool) {
        self.cancel.store(true, Ordering::Relaxed);
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut files = Vec::new();
        let mut kept = VecDeque::new();
        let mut cancelled = false;
        py.detach(|| {
            if let Some(rx) = rx {
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Batch(mut batch) => {
                            files.append(&mut batch.files);
                            if keep_hits && (batch.count > 0 || batch.outside > 0) {
                                kept.push_back(batch);
                            } else if batch.count > 0 {
                                cancelled = true;
                            }
                        }
                        Msg::Done(was) => cancelled |= was,
                    }
                }
            }
            if let Some(worker) = worker {
                let _ = worker.join();
            }
        });
        self.files.extend(files);
        self.kept.append(&mut kept);
        self.cancelled |= cancelled;
        self.done = true;
        self.give_back(py);
    }
}

/// The scan thread of a `ScanIter`: hits and statistics in batches to `tx`; when nobody
/// receives any more, the scan is cancelled. The stage hits of `stages` go to its matchers
/// instead, in scan order; the loan goes back to its slot however this ends.
#[allow(clippy::too_many_arguments)]
fn feed_batches(
    engine: &Engine,
    inputs: Vec<Input>,
    opts: &ScanOptions,
    feed: &Feed,
    mut stages: Option<sequence::LoanSlot>,
    cancel: &AtomicBool,
    read: &AtomicU64,
    tx: &SyncSender<Msg>,
) {
    // A batch's records and rows are reserved at the size of the last one: no growing by
    // doubling (copies of the whole batch).
    let fresh = |last: Option<&Batch>| {
        let size = last.and_then(|b| b.records.as_ref()).map_or(0, Vec::len);
        let alerts = last.and_then(|b| b.alerts.as_ref()).map_or(0, Vec::len);
        let rows = match last.and_then(|b| b.rows.as_deref()) {
            Some(like) => HitRows::with_room_of(like),
            None => HitRows::new(),
        };
        Batch {
            records: feed.records.then(|| Vec::with_capacity(size + size / 8)),
            alerts: feed.alerts.then(|| Vec::with_capacity(alerts + alerts / 8)),
            rows: feed.rows.then(|| Box::new(rows)),
            rule_counts: vec![0; feed.rules],
            ..Batch::default()
        }
    };
    let mut batch = fresh(None);
    let mut sent = Instant::now();
    let mut alive = true;
    let mut sink = |event| {
        if !alive {
            return;
        }
        // A live input waits for data: the hits so far go out now, not with later ones.
        let mut waits = false;
        match event {
            ScanEvent::Hit(mut hit) => {
                if let Some(n) = batch.rule_counts.get_mut(hit.rule) {
                    *n += 1;
                }
                if let Some(loan) = stages.as_mut().and_then(|s| s.loan.as_mut()) {
                    if loan.route(&mut hit, cancel) {
                        return;
                    }
                }
                if hit.extra.as_ref().is_some_and(|e| e.outside) {
                    batch.outside += 1;
                    return;
                }
                // The indices were checked against the inputs and rules; the record and row
                // were made where the hit was found: here they are only put together.
                if let Some(out) = &mut batch.records {
                    let _ = feed.forms.write_record(&hit, out);
                }
                if let Some(rows) = &mut batch.rows {
                    let _ = feed.forms.push_row(&hit, rows);
                }
                if let Some(out) = &mut batch.alerts {
                    let _ = feed.forms.write_alert(&hit, out);
                }
                batch.positions.push((hit.source, hit.line));
                if feed.hits {
                    batch.hits.push(hit);
                }
                batch.count += 1;
            }
            ScanEvent::File { source, stats } => batch.files.push((source, stats)),
            ScanEvent::Idle => waits = true,
        }
        let some = batch.count > 0 || batch.outside > 0;
        if batch.count >= feed.batch || (some && (waits || sent.elapsed() >= BATCH_AGE)) {
            let next = fresh(Some(&batch));
            let full = sealed(std::mem::replace(&mut batch, next));
            if tx.send(Msg::Batch(full)).is_err() {
                alive = false;
                cancel.store(true, Ordering::Relaxed);
            }
            sent = Instant::now();
        }
    };
    let cancelled = engine.scan_stream_with(
        inputs,
        opts,
        cancel,
        read,
        feed.reorder_bytes,
        (!feed.forms.is_plain()).then_some(&feed.forms),
        &mut sink,
    );
    if alive {
        let _ = tx.send(Msg::Batch(sealed(batch)));
        let _ = tx.send(Msg::Done(cancelled));
    }
}

/// A batch ready to send: its rows encoded (on the scan thread, not holding the GIL).
fn sealed(mut batch: Batch) -> Batch {
    if let Some(rows) = batch.rows.take() {
        batch.ipc = Some(arrow_ipc::ipc_stream(&rows));
    }
    batch
}

#[pymethods]
impl ScanIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next `HitBatch` (never empty, unless all its hits were outside the time window:
    /// then `count` is 0 and `outside` says how many). Waits with the GIL released,
    /// checking signals every 50 ms: on Ctrl-C (or an exception from a signal handler or the
    /// progress callback) the scan is cancelled and stopped, then the exception is raised.
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<HitBatch>> {
        let mut reported = Instant::now();
        loop {
            if let Some(batch) = self.kept.pop_front() {
                return self.item(py, batch).map(Some);
            }
            if self.done {
                return self.end();
            }
            let rx = &self.rx;
            let received = py.detach(|| {
                let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
                rx.as_ref()
                    .map(|rx| rx.recv_timeout(Duration::from_millis(50)))
            });
            let Some(received) = received else {
                self.done = true;
                return Ok(None);
            };
            match received {
                Ok(Msg::Batch(mut batch)) => {
                    self.files.append(&mut batch.files);
                    // (A batch of hits outside the time window only is still counted.)
                    if batch.count == 0 && batch.outside == 0 {
                        continue;
                    }
                    // A Ctrl-C pending now would strike in Python once the batch is out and
                    // lose it: take it here, keeping the batch for the calls after.
                    if let Err(err) = py.check_signals() {
                        self.kept.push_back(batch);
                        self.stop(py, true);
                        self.cancelled = true;
                        return Err(err);
                    }
                    return self.item(py, batch).map(Some);
                }
                Ok(Msg::Done(cancelled)) => {
                    self.cancelled |= cancelled;
                    self.stop(py, false);
                    if let Some(callback) = &self.progress {
                        callback.call1(py, (self.read.load(Ordering::Relaxed),))?;
                    }
                    return self.end();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop(py, false);
                    self.failure = None;
                    return Err(PyRuntimeError::new_err("the scan thread failed"));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let polled = py.check_signals().and_then(|()| match &self.progress {
                        Some(callback) if reported.elapsed() >= PROGRESS_EVERY => {
                            reported = Instant::now();
                            callback.call1(py, (self.read.load(Ordering::Relaxed),))?;
                            Ok(())
                        }
                        _ => Ok(()),
                    });
                    if let Err(err) = polled {
                        // The hits found until now still come, after the exception.
                        self.stop(py, true);
                        self.cancelled = true;
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Cancel the scan (if it still runs) and wait for its threads; the hits not yet taken
    /// are dropped, the statistics kept. Idempotent.
    fn close(&mut self, py: Python<'_>) {
        if !self.done {
            self.stop(py, false);
        }
        if !self.kept.is_empty() {
            self.kept.clear();
            self.cancelled = true;
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) {
        self.close(py);
    }

    /// The statistics of the inputs finished so far, in input order (all once done).
    #[getter]
    fn files<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.files
            .iter()
            .map(|(_, stats)| stats_dict(py, stats))
            .collect()
    }

    /// Whether the scan stopped early (Ctrl-C, `close()`, or the iterator dropped).
    #[getter]
    fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// Whether the scan has ended (the iterator is exhausted or closed).
    #[getter]
    fn done(&self) -> bool {
        self.done
    }

    /// Whether batches carry NDJSON records.
    #[getter]
    fn records(&self) -> bool {
        self.with_records
    }

    /// Bytes read from the sources so far.
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
}

impl Drop for ScanIter {
    fn drop(&mut self) {
        if !self.done {
            Python::attach(|py| self.stop(py, false));
        }
    }
}

impl Scanner {
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Input>,
        opts: &ScanOptions,
        progress: Option<&Py<PyAny>>,
    ) -> PyResult<ScanTuple<'py>> {
        let cancel = AtomicBool::new(false);
        let read = AtomicU64::new(0);
        let mut failure: Option<PyErr> = None;
        let mut interrupted = false;
        let report = py.detach(|| {
            std::thread::scope(|scope| {
                // The worker says when it is done, so a short scan returns at once instead of
                // after the first 50 ms poll.
                let (done, finished) = mpsc::channel::<()>();
                let (cancel, read) = (&cancel, &read);
                let worker = scope.spawn(move || {
                    let report = self.engine.scan_inputs(inputs, opts, cancel, read);
                    let _ = done.send(());
                    report
                });
                let mut reported = Instant::now();
                loop {
                    // Done, or Disconnected (the worker panicked; join says so). Either way the
                    // signals are checked once more: a Ctrl-C that ended a blocking read must
                    // still count as an interruption, not surface later as a bare one.
                    let done = !matches!(
                        finished.recv_timeout(Duration::from_millis(50)),
                        Err(RecvTimeoutError::Timeout)
                    );
                    if !cancel.load(Ordering::Relaxed) {
                        let polled: PyResult<()> = Python::attach(|py| {
                            py.check_signals()?;
                            match progress {
                                Some(callback) if !done && reported.elapsed() >= PROGRESS_EVERY => {
                                    reported = Instant::now();
                                    callback.call1(py, (read.load(Ordering::Relaxed),))?;
                                    Ok(())
                                }
                                _ => Ok(()),
                            }
                        });
                        if let Err(err) = polled {
                            cancel.store(true, Ordering::Relaxed);
                            if Python::attach(|py| err.is_instance_of::<PyKeyboardInterrupt>(py)) {
                                interrupted = true;
                            } else {
                                failure = Some(err);
                            }
                        }
                    }
                    if done {
                        break;
                    }
                }
                worker.join().expect("scan thread panicked")
            })
        });
        if let Some(err) = failure {
            return Err(err);
        }
        if let (Some(callback), false) = (progress, interrupted) {
            callback.call1(py, (read.load(Ordering::Relaxed),))?;
        }
        let hits = report.hits.into_iter().map(hit_tuple).collect();
        let files = report
            .files
            .iter()
            .map(|stats| stats_dict(py, stats))
            .collect::<PyResult<_>>()?;
        Ok((hits, files, interrupted || report.cancelled))
    }
}

fn options(
    threads: usize,
    buffer_size: usize,
    prefilter: bool,
    max_examples: usize,
    max_line_bytes: usize,
) -> ScanOptions {
    ScanOptions {
        threads,
        buffer_size: buffer_size.max(64),
        prefilter,
        max_examples,
        max_line_bytes,
    }
}

/// "-" is stdin; a str or os.PathLike is a path; a tuple `(path, start, end)` is a byte
/// range; an object with `read` is a stream.
fn to_input(item: &Bound<'_, PyAny>) -> PyResult<Input> {
    if let Ok(tuple) = item.cast::<PyTuple>() {
        let (source, start, end): (Bound<'_, PyAny>, u64, u64) = tuple.extract().map_err(|_| {
            PyTypeError::new_err(
                "a byte range is a tuple (path or seekable binary stream, start, end) with \
                     start and end ≥ 0",
            )
        })?;
        if start > end {
            return Err(PyValueError::new_err(format!(
                "byte range ({start}, {end}): start is past end"
            )));
        }
        if let Ok(path) = source.extract::<PathBuf>() {
            return Ok(Input::Range { path, start, end });
        }
        if source.hasattr("read")? && source.hasattr("seek")? {
            let reader = PyReader {
                stream: source.unbind(),
            };
            return Ok(Input::StreamRange {
                reader: Box::new(reader),
                start,
                end,
            });
        }
        return Err(PyTypeError::new_err(format!(
            "cannot scan a byte range of a {}: expected a path or a seekable binary stream",
            source.get_type().name()?
        )));
    }
    if let Ok(text) = item.cast::<PyString>() {
        // A name that is not UTF-8 (surrogates from os.fsdecode) is no `-`: a path, below.
        if text.to_cow().is_ok_and(|t| t == "-") {
            return Ok(Input::Stdin);
        }
    }
    if let Ok(path) = item.extract::<PathBuf>() {
        return Ok(Input::Path(path));
    }
    if item.hasattr("read")? {
        return Ok(Input::Reader(Box::new(PyReader {
            stream: item.clone().unbind(),
        })));
    }
    Err(PyTypeError::new_err(format!(
        "cannot scan a {}: expected a path, '-', (path, start, end) or a binary file-like \
         object",
        item.get_type().name()?
    )))
}

/// A Python binary stream read from Rust: `read(n)` with the GIL attached, once per buffer.
struct PyReader {
    stream: Py<PyAny>,
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Python::attach(|py| {
            let data = self
                .stream
                .call_method1(py, "read", (buf.len(),))
                .map_err(|e| io::Error::other(e.to_string()))?;
            if data.is_none(py) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the stream is non-blocking and had no data",
                ));
            }
            let data: Cow<'_, [u8]> = data
                .extract(py)
                .map_err(|e| io::Error::other(format!("read() did not return bytes: {e}")))?;
            if data.len() > buf.len() {
                return Err(io::Error::other("read(n) returned more than n bytes"));
            }
            buf[..data.len()].copy_from_slice(&data);
            Ok(data.len())
        })
    }
}

impl Seek for PyReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (offset, whence) = match pos {
            SeekFrom::Start(n) => (i128::from(n), 0),
            SeekFrom::Current(n) => (i128::from(n), 1),
            SeekFrom::End(n) => (i128::from(n), 2),
        };
        Python::attach(|py| {
            self.stream
                .call_method1(py, "seek", (offset, whence))
                .and_then(|at| at.extract::<u64>(py))
                .map_err(|e| io::Error::other(e.to_string()))
        })
    }
}

fn hit_tuple(hit: Hit) -> HitTuple {
    let witness = hit.witness.map(|w| (w.field, w.op, w.pattern, w.value));
    (
        hit.source, hit.line, hit.rule, hit.branch, witness, hit.event,
    )
}

/// The per-input statistics as a dict keyed by `FileStats::FIELDS` (`STATS_FIELDS`).
fn stats_dict<'py>(py: Python<'py>, stats: &FileStats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in stats.fields() {
        match value {
            StatValue::Count(n) => dict.set_item(name, n)?,
            StatValue::Number(n) => dict.set_item(name, n)?,
            StatValue::Text(text) => dict.set_item(name, text)?,
            StatValue::Examples(examples) => dict.set_item(name, examples.to_vec())?,
            StatValue::Lines(lines) => dict.set_item(name, lines.to_vec())?,
            StatValue::Allowlisted(counts) => dict.set_item(name, counts.clone())?,
            StatValue::Flag(flag) => dict.set_item(name, flag)?,
        }
    }
    Ok(dict)
}

/// The tokens of `text` under a text analyzer (spec/kql.md, Analysis): for the test that
/// holds the Rust analysis to the reference engine's.
#[pyfunction]
fn analyze(analyzer: &str, text: &str) -> PyResult<Vec<String>> {
    let Some(analyzer) = imds_core::analysis::Analyzer::from_name(analyzer) else {
        return Err(PyValueError::new_err(format!(
            "unknown analyzer '{analyzer}' (expected standard or powershell_script)"
        )));
    };
    Ok(imds_core::analysis::analyze(analyzer, text))
}

/// What each token is tested against for a `wildcard_query` literal on a text field
/// (spec/kql.md, Analysis): `(kind, text)` pairs, kind `term`, `prefix`, `wildcard` or
/// `exists`; for the test that holds the Rust reading to the reference engine's.
#[pyfunction]
#[pyo3(signature = (analyzer, pattern, analyze_wildcard=false))]
fn wildcard_on_text(
    analyzer: &str,
    pattern: &str,
    analyze_wildcard: bool,
) -> PyResult<Vec<(&'static str, String)>> {
    use imds_core::analysis::TokenQuery;
    let Some(analyzer) = imds_core::analysis::Analyzer::from_name(analyzer) else {
        return Err(PyValueError::new_err(format!(
            "unknown analyzer '{analyzer}' (expected standard or powershell_script)"
        )));
    };
    let queries = if analyze_wildcard {
        imds_core::analysis::wildcard_on_text_analyzed(analyzer, pattern)
    } else {
        imds_core::analysis::wildcard_on_text(analyzer, pattern)
    };
    Ok(queries
        .into_iter()
        .map(|q| match q {
            TokenQuery::Term(t) => ("term", t),
            TokenQuery::Prefix(t) => ("prefix", t),
            TokenQuery::Wildcard(t) => ("wildcard", t),
            TokenQuery::Exists => ("exists", String::new()),
        })
        .collect())
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scanner>()?;
    m.add_class::<ScanIter>()?;
    m.add_class::<HitBatch>()?;
    m.add_class::<Buffer>()?;
    m.add_class::<sequence::SequenceMatcher>()?;
    m.add_class::<sequence::MatchResult>()?;
    m.add_class::<sequence::StageRouter>()?;
    m.add_class::<sequence::ResultChunk>()?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(wildcard_on_text, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("STATS_FIELDS", PyTuple::new(m.py(), FileStats::FIELDS)?)?;
    Ok(())
}
