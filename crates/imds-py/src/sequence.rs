//! `SequenceMatcher`: the binding of `imds_core::sequence` (spec/sequences.md, "Matchers"),
//! with the interface of `imds_scan.reference.sequence.SequenceMatcher`.

use imds_core::sequence::{self, AddError, KeyJson, Preparer, Spill};
use imds_core::Hit;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The matcher of one sequence or sample rule: candidates go in with `add`, results come out
/// of `finish`.
#[pyclass(module = "imds_scan._engine")]
pub struct SequenceMatcher {
    /// None once finished, or while a scan has it.
    inner: Option<sequence::SequenceMatcher>,
    /// A scan has it (`Scanner.scan_iter(router=…)`).
    lent: bool,
}

impl SequenceMatcher {
    fn unusable(&self) -> PyErr {
        if self.lent {
            PyRuntimeError::new_err("the sequence matcher is in use by a scan")
        } else {
            PyRuntimeError::new_err("the sequence matcher has finished")
        }
    }
}

fn add_error(e: AddError) -> PyErr {
    match e {
        AddError::Stage(_) => PyValueError::new_err(e.to_string()),
        AddError::Io(_) => PyOSError::new_err(e.to_string()),
    }
}

#[pymethods]
impl SequenceMatcher {
    /// A matcher of a sequence or sample rule's IR (JSON); ValueError when it is invalid.
    /// About `memory_budget` bytes of candidate records stay in memory; past it, sorted runs
    /// go to files in `spill_dir` (default: the system's temporary directory).
    #[new]
    #[pyo3(signature = (rule_ir_json, memory_budget = 268_435_456, spill_dir = None))]
    fn new(rule_ir_json: &str, memory_budget: usize, spill_dir: Option<PathBuf>) -> PyResult<Self> {
        let inner = sequence::SequenceMatcher::new(rule_ir_json, memory_budget, spill_dir)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(SequenceMatcher {
            inner: Some(inner),
            lent: false,
        })
    }

    /// Add a candidate of `stage` (the number of stages: the until stage) at (input `rank`,
    /// `line`) with its event text; `ref` comes back in the results. ValueError for a stage
    /// the rule does not have, OSError when spilling to disk fails.
    #[pyo3(signature = (stage, rank, line, event, r#ref))]
    fn add(&mut self, stage: usize, rank: u32, line: u64, event: &str, r#ref: u64) -> PyResult<()> {
        let unusable = self.unusable();
        let inner = self.inner.as_mut().ok_or(unusable)?;
        inner
            .add(stage, rank, line, event, r#ref)
            .map_err(add_error)
    }

    /// Match the candidates (without the GIL) and give the results; the matcher is then
    /// finished (RuntimeError on further use). Signals are delivered meanwhile: a Ctrl-C
    /// (KeyboardInterrupt, or whatever a handler raises) stops the matching soon after.
    fn finish(&mut self, py: Python<'_>) -> PyResult<MatchResult> {
        let inner = match self.inner.take() {
            Some(inner) => inner,
            None => return Err(self.unusable()),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let (done, mut finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let _ = done.send(inner.finish_with(flag));
        });
        let result = loop {
            let wait = std::time::Duration::from_millis(10);
            // The receiver goes to the detached closure and back (it is Send, not Sync).
            let (got, back) = py.detach(move || (finished.recv_timeout(wait), finished));
            finished = back;
            match got {
                Ok(result) => break result,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(err) = py.check_signals() {
                        cancel.store(true, Ordering::Relaxed);
                        // Its spilled runs are removed as it stops.
                        let _ = py.detach(|| worker.join());
                        return Err(err);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = worker.join();
                    return Err(PyRuntimeError::new_err("the sequence matcher failed"));
                }
            }
        };
        let _ = py.detach(|| worker.join());
        let result = result.map_err(|e| {
            PyOSError::new_err(format!("cannot read sequence candidates back: {e}"))
        })?;
        // Kept in Rust: the records are written from them with no Python object per result.
        Ok(MatchResult {
            matches: result.matches,
            no_time: result.no_time,
            no_time_refs: result.no_time_refs,
        })
    }
}

/// A result as Python sees it: (its refs, its join key values).
type MatchTuple = (Vec<Option<u64>>, Vec<Py<PyAny>>);

fn match_tuple(py: Python<'_>, refs: &[Option<u64>], keys: &[KeyJson]) -> PyResult<MatchTuple> {
    let keys = (keys.iter().cloned())
        .map(|k| key_object(py, k))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((refs.to_vec(), keys))
}

fn key_object(py: Python<'_>, key: KeyJson) -> PyResult<Py<PyAny>> {
    match key {
        KeyJson::Null => Ok(py.None()),
        KeyJson::Str(s) => s.into_py_any(py),
        KeyJson::Int(n) => n.into_py_any(py),
        KeyJson::Float(x) => x.into_py_any(py),
        KeyJson::Bool(b) => b.into_py_any(py),
    }
}

/// What `SequenceMatcher.finish` gives.
#[pyclass(frozen, module = "imds_scan._engine")]
pub struct MatchResult {
    matches: Vec<(Vec<Option<u64>>, Vec<KeyJson>)>,
    #[pyo3(get)]
    no_time: u64,
    #[pyo3(get)]
    no_time_refs: Vec<u64>,
}

#[pymethods]
impl MatchResult {
    /// Per result, in output order: (each stage's ref, None for a missing-event stage; the
    /// join key values).
    #[getter]
    fn matches(&self, py: Python<'_>) -> PyResult<Vec<MatchTuple>> {
        (self.matches.iter())
            .map(|(refs, keys)| match_tuple(py, refs, keys))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.matches.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "MatchResult(matches={}, no_time={})",
            self.matches.len(),
            self.no_time
        )
    }
}

/// The events of a chunk of results, read back ([`StageRouter::read_results`]).
#[pyclass(frozen, module = "imds_scan._engine")]
#[derive(Default)]
pub struct ResultChunk {
    /// Each event read: (ref, input rank, line, its text's range in `texts`).
    events: Vec<(u64, u32, u64, std::ops::Range<usize>)>,
    texts: String,
    /// The results' events one after another (an index in `events`; `None`: missing).
    refs: Vec<Option<usize>>,
    /// Where each result's events end in `refs`.
    ends: Vec<usize>,
    /// Each result's join key values (none when read by refs alone).
    keys: Vec<Vec<KeyJson>>,
}

impl ResultChunk {
    fn result(&self, k: usize) -> &[Option<usize>] {
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.refs[start..self.ends[k]]
    }

    /// Result `k`'s first event (`None`: it has none, or no such result).
    fn first(&self, k: usize) -> Option<&(u64, u32, u64, std::ops::Range<usize>)> {
        let events = (k < self.ends.len()).then(|| self.result(k))?;
        events.iter().flatten().next().map(|&e| &self.events[e])
    }
}

#[pymethods]
impl ResultChunk {
    fn __len__(&self) -> usize {
        self.ends.len()
    }

    /// Each event read: ref -> (input rank, line, text).
    fn events(&self) -> HashMap<u64, (u32, u64, &str)> {
        (self.events.iter())
            .map(|(r, rank, line, text)| (*r, (*rank, *line, &self.texts[text.clone()])))
            .collect()
    }

    /// Per result: (its refs, its join key values), as `MatchResult.matches` gives them.
    fn matches(&self, py: Python<'_>) -> PyResult<Vec<MatchTuple>> {
        (0..self.ends.len())
            .map(|k| {
                let refs: Vec<Option<u64>> = (self.result(k).iter())
                    .map(|e| e.map(|e| self.events[e].0))
                    .collect();
                match_tuple(py, &refs, self.keys.get(k).map_or(&[], Vec::as_slice))
            })
            .collect()
    }

    /// Per result: its first event's (input rank, line), `None` when it has none.
    fn firsts(&self) -> Vec<Option<(u32, u64)>> {
        (0..self.ends.len())
            .map(|k| self.first(k).map(|&(_, rank, line, _)| (rank, line)))
            .collect()
    }

    /// The results' NDJSON records (`records.record_parts`): `labels`, the rule's part after
    /// the line number; `names[rank]`, an input's name as JSON. Only for results read with
    /// their keys (`StageRouter.read_matches`).
    fn records<'py>(
        &self,
        py: Python<'py>,
        labels: &[u8],
        names: Vec<Vec<u8>>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        if self.keys.len() != self.ends.len() {
            return Err(PyValueError::new_err(
                "results read without their join keys",
            ));
        }
        let mut out = Vec::with_capacity(self.texts.len() * 2 + 256 * self.ends.len());
        let mut events = Vec::new();
        let mut keys_json = Vec::new();
        for (k, keys) in self.keys.iter().enumerate() {
            keys_json.clear();
            imds_core::write_keys_json(keys, &mut keys_json);
            events.clear();
            for event in self.result(k) {
                events.push(match event {
                    None => None,
                    Some(e) => {
                        let (_, rank, line, text) = &self.events[*e];
                        let source = names.get(*rank as usize).ok_or_else(|| {
                            PyValueError::new_err(format!("no name for input rank {rank}"))
                        })?;
                        Some(imds_core::ResultEvent {
                            source,
                            line: *line,
                            text: &self.texts[text.clone()],
                        })
                    }
                });
            }
            imds_core::write_result_record(&mut out, labels, &keys_json, &events);
        }
        Ok(pyo3::types::PyBytes::new(py, &out))
    }
}

/// Where an engine rule's hits go: nowhere (a single-event rule), a Rust matcher, or a Python
/// object's `add(stage, rank, line, event, ref)`; each hit to each of the stages, in order.
enum Route {
    Event,
    Rust(Py<SequenceMatcher>, Vec<usize>),
    Python(Py<PyAny>, Vec<usize>),
}

/// A route's stages as given: one stage, or several (a run of stages with one condition,
/// whose stage rule runs once for all).
#[derive(FromPyObject)]
enum Stages {
    One(usize),
    Several(Vec<usize>),
}

impl Stages {
    fn into_vec(self) -> PyResult<Vec<usize>> {
        match self {
            Stages::One(stage) => Ok(vec![stage]),
            Stages::Several(stages) if stages.is_empty() => {
                Err(PyValueError::new_err("a route with no stage"))
            }
            Stages::Several(stages) => Ok(stages),
        }
    }
}

/// The candidate spilled at `offset`, its text as a `str`.
fn read_back(spill: &mut Spill, offset: u64) -> PyResult<(u32, u64, String)> {
    let (rank, line, text) = spill.get(offset).map_err(|e| spill_error(&e))?;
    let text = String::from_utf8(text)
        .map_err(|_| PyValueError::new_err(format!("spilled candidate {offset} is not UTF-8")))?;
    Ok((rank, line, text))
}

/// The stage hits of a scan's batches into their rules' matchers with no Python call per
/// candidate for a Rust matcher (spec/sequences.md, "Scan layer"), and the spill file of the
/// candidates' (input rank, line, text), which a candidate's `ref` (its offset) finds again.
/// A scan may take the Rust matchers' stage hits itself (`Scanner.scan_iter(router=…)`,
/// [`StageRouter::lend`]).
#[pyclass(module = "imds_scan._engine")]
pub struct StageRouter {
    routes: Vec<Route>,
    within: Option<Py<PyAny>>,
    spill: Arc<Mutex<Spill>>,
    /// The spill file's path while it is to be removed at close (not where it is unlinked).
    path: Option<PathBuf>,
    /// Stage hits the scans that took them counted, per input rank.
    candidates: HashMap<u32, u64>,
    /// A scan has the Rust matchers.
    lent: bool,
}

fn spill_error(e: &std::io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(code) => PyOSError::new_err((code, e.to_string())),
        None => PyOSError::new_err(e.to_string()),
    }
}

impl StageRouter {
    fn spill(&self) -> PyResult<std::sync::MutexGuard<'_, Spill>> {
        let spill = self.spill.lock().unwrap_or_else(PoisonError::into_inner);
        if !spill.is_open() {
            return Err(PyRuntimeError::new_err(
                "the candidates' spill file is closed",
            ));
        }
        Ok(spill)
    }
}

/// Why a scan stopped routing stage hits.
enum Failure {
    Spill(std::io::Error),
    Add(AddError),
}

/// What a scan routing stage hits itself has of a router while it runs
/// ([`StageRouter::lend`]); back with [`StageLoan::give_back`] once it ended.
pub(crate) struct StageLoan {
    /// Per engine rule: its matcher (an index into `matchers`) and stages, for a stage rule
    /// of a Rust matcher.
    routes: Vec<Option<(usize, Vec<usize>)>>,
    matchers: Vec<sequence::SequenceMatcher>,
    spill: Arc<Mutex<Spill>>,
    /// Per input (index): its rank.
    ranks: Vec<u32>,
    candidates: HashMap<u32, u64>,
    failure: Option<Failure>,
    /// (rank, line, offset) of the line spilled last: the scan's stage hits of one line come
    /// together, the first with the text (`HitForms::with_stages`), and share one copy.
    last: Option<(u32, u64, u64)>,
}

/// Per engine rule: the reader and stages of a stage rule a scan routes itself.
pub(crate) type StageReaders = Vec<Option<(Preparer, Vec<usize>)>>;

/// The Python objects a [`StageLoan`] goes back to.
pub(crate) struct Lender {
    router: Py<StageRouter>,
    matchers: Vec<Py<SequenceMatcher>>,
}

impl StageRouter {
    /// Lend the Rust matchers and the spill file to a scan of `inputs` inputs (`ranks`: each
    /// one's rank): the scan routes their stage hits itself, in scan order (with
    /// [`StageLoan::route`]), and gives them back when it ends. Gives the loan, the readers
    /// of its stage rules per engine rule (for `HitForms::with_stages`) and who gets it back.
    pub(crate) fn lend(
        router: &Bound<'_, StageRouter>,
        inputs: usize,
        ranks: Vec<u32>,
    ) -> PyResult<(StageLoan, StageReaders, Lender)> {
        let py = router.py();
        let mut this = router.borrow_mut();
        if this.lent {
            return Err(PyRuntimeError::new_err(
                "the stage router is in use by a scan",
            ));
        }
        if this.within.is_some() {
            return Err(PyValueError::new_err(
                "a router with a time window routes its hits itself (add_batch)",
            ));
        }
        if ranks.len() != inputs {
            return Err(PyValueError::new_err(format!(
                "{} ranks for {inputs} inputs",
                ranks.len()
            )));
        }
        drop(this.spill()?);
        // Each matcher once (several stage rules share one), checked before any is taken.
        let mut lenders: Vec<Py<SequenceMatcher>> = Vec::new();
        let mut routes = Vec::with_capacity(this.routes.len());
        for route in &this.routes {
            routes.push(match route {
                Route::Rust(matcher, stages) => {
                    let index = match lenders.iter().position(|m| m.is(matcher)) {
                        Some(index) => index,
                        None => {
                            let m = matcher.bind(py).borrow();
                            if m.inner.is_none() {
                                return Err(m.unusable());
                            }
                            lenders.push(matcher.clone_ref(py));
                            lenders.len() - 1
                        }
                    };
                    Some((index, stages.clone()))
                }
                Route::Event | Route::Python(..) => None,
            });
        }
        let matchers: Vec<sequence::SequenceMatcher> = lenders
            .iter()
            .map(|m| {
                let mut m = m.bind(py).borrow_mut();
                m.lent = true;
                m.inner.take().expect("checked above")
            })
            .collect();
        let preparers = routes
            .iter()
            .map(|route| {
                (route.as_ref())
                    .map(|(m, stages)| (matchers[*m].preparer().clone(), stages.clone()))
            })
            .collect();
        this.lent = true;
        let loan = StageLoan {
            routes,
            matchers,
            spill: Arc::clone(&this.spill),
            ranks,
            candidates: HashMap::new(),
            failure: None,
            last: None,
        };
        let lender = Lender {
            router: router.clone().unbind(),
            matchers: lenders,
        };
        Ok((loan, preparers, lender))
    }
}

impl StageLoan {
    /// Take `hit` if it is a stage hit of a lent matcher: its text into the spill file, its
    /// candidate (read where it was found, else here) into the matcher. On a failure the
    /// scan is cancelled (`cancel`) and the failure kept for [`StageLoan::give_back`].
    pub(crate) fn route(&mut self, hit: &mut Hit, cancel: &AtomicBool) -> bool {
        let Some((m, stages)) = self.routes.get(hit.rule).and_then(Option::as_ref) else {
            return false;
        };
        if self.failure.is_some() {
            return true;
        }
        if hit.extra.as_ref().is_some_and(|e| e.outside) {
            return false; // (no time window with a router: not reached)
        }
        let Some(&rank) = self.ranks.get(hit.source) else {
            return false; // (the inputs were counted: not reached)
        };
        *self.candidates.entry(rank).or_default() += 1;
        let prepared = hit
            .extra
            .as_mut()
            .map(|e| e.take_stages())
            .unwrap_or_default();
        let spilled = match self.last {
            Some((r, l, offset)) if (r, l) == (rank, hit.line) => Ok(offset),
            _ => (self.spill.lock().unwrap_or_else(PoisonError::into_inner))
                .put(rank, hit.line, &hit.event)
                .map_err(Failure::Spill),
        };
        if let Ok(offset) = spilled {
            self.last = Some((rank, hit.line, offset));
        }
        let matcher = &mut self.matchers[*m];
        let added = spilled.and_then(|reference| {
            if prepared.is_empty() {
                (stages.iter())
                    .try_for_each(|&s| matcher.add(s, rank, hit.line, &hit.event, reference))
            } else {
                (prepared.into_iter())
                    .try_for_each(|p| matcher.push(p, rank, hit.line, &hit.event, reference))
            }
            .map_err(Failure::Add)
        });
        if let Err(failure) = added {
            self.failure = Some(failure);
            cancel.store(true, Ordering::Relaxed);
        }
        true
    }

    /// The matchers and counts back into their Python objects; the failure that stopped the
    /// scan, if one did.
    pub(crate) fn give_back(self, py: Python<'_>, lender: &Lender) -> Option<PyErr> {
        for (object, inner) in lender.matchers.iter().zip(self.matchers) {
            let mut m = object.bind(py).borrow_mut();
            m.inner = Some(inner);
            m.lent = false;
        }
        let mut router = lender.router.bind(py).borrow_mut();
        router.lent = false;
        for (rank, n) in self.candidates {
            *router.candidates.entry(rank).or_default() += n;
        }
        self.failure.map(|f| match f {
            Failure::Spill(e) => spill_error(&e),
            Failure::Add(e) => add_error(e),
        })
    }
}

impl Lender {
    /// No loan came back (the scan thread ended without one): the matchers stay unusable.
    pub(crate) fn lost(&self, py: Python<'_>) {
        for object in &self.matchers {
            object.bind(py).borrow_mut().lent = false;
        }
        self.router.bind(py).borrow_mut().lent = false;
    }
}

/// Where a scan's loan goes when the scan thread ends, however it ends (a panic too).
pub(crate) struct LoanSlot {
    pub(crate) loan: Option<StageLoan>,
    pub(crate) slot: Arc<Mutex<Option<StageLoan>>>,
}

impl Drop for LoanSlot {
    fn drop(&mut self) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = self.loan.take();
    }
}

#[pymethods]
impl StageRouter {
    /// `routes[i]`: engine rule `i`'s (matcher, stage), None for a single-event rule; a
    /// candidate of a stage rule goes to its matcher (a `SequenceMatcher` directly, any other
    /// object through its `add`) unless `within(event_text)` says it is outside the time
    /// window. A route's stage may be a list of stages: each hit is a candidate of each, in
    /// order. The spill file is made in `spill_dir` (removed when closed); the candidates
    /// past its first `compress_from` bytes are compressed.
    #[new]
    #[pyo3(signature = (routes, spill_dir, within = None, compress_from = sequence::COMPRESS_FROM))]
    fn new(
        routes: Vec<Option<(Bound<'_, PyAny>, Stages)>>,
        spill_dir: PathBuf,
        within: Option<Py<PyAny>>,
        compress_from: u64,
    ) -> PyResult<Self> {
        use std::sync::atomic::AtomicU64;
        static MADE: AtomicU64 = AtomicU64::new(0);
        let routes = routes
            .into_iter()
            .map(|route| {
                Ok(match route {
                    None => Route::Event,
                    Some((matcher, stages)) => {
                        let stages = stages.into_vec()?;
                        match matcher.cast::<SequenceMatcher>() {
                            Ok(rust) => Route::Rust(rust.clone().unbind(), stages),
                            Err(_) => Route::Python(matcher.unbind(), stages),
                        }
                    }
                })
            })
            .collect::<PyResult<_>>()?;
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let path = spill_dir.join(format!("imds-scan-candidates-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| spill_error(&e))?;
        // Unlinked while open where the system allows it: nothing is left behind on a crash.
        let path = if cfg!(unix) && std::fs::remove_file(&path).is_ok() {
            None
        } else {
            Some(path)
        };
        Ok(StageRouter {
            routes,
            within,
            spill: Arc::new(Mutex::new(Spill::compressing_from(file, compress_from))),
            path,
            candidates: HashMap::new(),
            lent: false,
        })
    }

    /// Take the stage hits out of a batch's hit tuples (input index, line, engine rule,
    /// branch, witness, event text): each into its matcher with its spill offset as `ref`.
    /// `ranks[i]`: input `i`'s rank. Gives the indexes of the other hits (ascending) and the
    /// stage hits per input index (those outside the time window too).
    fn add_batch(
        &mut self,
        py: Python<'_>,
        tuples: &Bound<'_, PyList>,
        ranks: Vec<u32>,
    ) -> PyResult<(Vec<usize>, Vec<u64>)> {
        let mut keep = Vec::new();
        let mut candidates = vec![0u64; ranks.len()];
        for (k, item) in tuples.iter().enumerate() {
            let tuple = item.cast::<PyTuple>()?;
            let rule: usize = tuple.get_borrowed_item(2)?.extract()?;
            let (matcher, stages) = match self.routes.get(rule) {
                Some(Route::Event) => {
                    keep.push(k);
                    continue;
                }
                Some(Route::Rust(m, s)) => (Ok(m.clone_ref(py)), s.clone()),
                Some(Route::Python(m, s)) => (Err(m.clone_ref(py)), s.clone()),
                None => {
                    return Err(PyValueError::new_err(format!(
                        "a hit of rule {rule}, of {} rules",
                        self.routes.len()
                    )))
                }
            };
            let input: usize = tuple.get_borrowed_item(0)?.extract()?;
            let line: u64 = tuple.get_borrowed_item(1)?.extract()?;
            let text = tuple.get_borrowed_item(5)?;
            let rank = *ranks
                .get(input)
                .ok_or_else(|| PyValueError::new_err(format!("a hit of input {input}")))?;
            candidates[input] += 1;
            if let Some(within) = &self.within {
                if !within.bind(py).call1((&text,))?.is_truthy()? {
                    continue;
                }
            }
            let string = text.cast::<PyString>()?;
            let event = string.to_str()?;
            let reference = self.put(rank, line, event)?;
            for stage in stages {
                match &matcher {
                    Ok(rust) => rust
                        .bind(py)
                        .borrow_mut()
                        .add(stage, rank, line, event, reference)?,
                    Err(other) => {
                        other.call_method1(py, "add", (stage, rank, line, &text, reference))?;
                    }
                }
            }
        }
        Ok((keep, candidates))
    }

    /// Spill a candidate (input `rank`, `line`, `text`) and give its offset; the hits of one
    /// line (the last one spilled) share one copy.
    fn put(&mut self, rank: u32, line: u64, text: &str) -> PyResult<u64> {
        (self.spill()?.put(rank, line, text)).map_err(|e| spill_error(&e))
    }

    /// The candidate spilled at `offset`: (input rank, line, text).
    fn get(&mut self, offset: u64) -> PyResult<(u32, u64, String)> {
        read_back(&mut *self.spill()?, offset)
    }

    /// The events of results (`results[k]`: result `k`'s refs, `None` for a missing-event
    /// stage) read back in one call, each ref once, kept here: their records are then
    /// written without a Python object per event.
    fn read_results(&mut self, results: Vec<Vec<Option<u64>>>) -> PyResult<ResultChunk> {
        self.read_chunk(results.iter().map(Vec::as_slice), Vec::new())
    }

    /// [`StageRouter::read_results`] of results `start..stop` of a matcher's `found`, with
    /// their join keys.
    fn read_matches(
        &mut self,
        found: PyRef<'_, MatchResult>,
        start: usize,
        stop: usize,
    ) -> PyResult<ResultChunk> {
        let chunk = found.matches.get(start..stop).ok_or_else(|| {
            PyValueError::new_err(format!(
                "no results {start}..{stop} of {}",
                found.matches.len()
            ))
        })?;
        let keys = chunk.iter().map(|(_, keys)| keys.clone()).collect();
        self.read_chunk(chunk.iter().map(|(refs, _)| refs.as_slice()), keys)
    }

    /// Stage hits per input rank that scans routed themselves (`Scanner.scan_iter(router=…)`).
    fn candidates(&self) -> HashMap<u32, u64> {
        self.candidates.clone()
    }

    /// The spilled candidates' bytes, and the spill file's size (what is written so far).
    fn spill_sizes(&self) -> (u64, u64) {
        (self.spill.lock().unwrap_or_else(PoisonError::into_inner)).sizes()
    }

    /// Close (and remove) the spill file.
    fn close(&mut self) {
        self.spill
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .close();
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl StageRouter {
    fn read_chunk<'r>(
        &mut self,
        results: impl Iterator<Item = &'r [Option<u64>]>,
        keys: Vec<Vec<KeyJson>>,
    ) -> PyResult<ResultChunk> {
        let mut chunk = ResultChunk {
            keys,
            ..ResultChunk::default()
        };
        // Each ref once, in the order first named.
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut wanted = Vec::new();
        for refs in results {
            for r in refs {
                chunk.refs.push(r.map(|offset| {
                    *index.entry(offset).or_insert_with(|| {
                        wanted.push(offset);
                        wanted.len() - 1
                    })
                }));
            }
            chunk.ends.push(chunk.refs.len());
        }
        let read = self.spill()?.get_many(&wanted);
        for (offset, (rank, line, text)) in wanted.iter().zip(read.map_err(|e| spill_error(&e))?) {
            let text = std::str::from_utf8(&text).map_err(|_| {
                PyValueError::new_err(format!("spilled candidate {offset} is not UTF-8"))
            })?;
            let start = chunk.texts.len();
            chunk.texts.push_str(text);
            (chunk.events).push((*offset, rank, line, start..chunk.texts.len()));
        }
        Ok(chunk)
    }
}

impl Drop for StageRouter {
    fn drop(&mut self) {
        self.close();
    }
}
