//! `SequenceMatcher`: the binding of `imds_core::sequence` (spec/sequences.md, "Matchers"),
//! with the interface of `imds_scan.reference.sequence.SequenceMatcher`.

use imds_core::sequence::{self, AddError, KeyJson};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use std::path::PathBuf;

/// The matcher of one sequence or sample rule: candidates go in with `add`, results come out
/// of `finish`.
#[pyclass(module = "imds_scan._engine")]
pub struct SequenceMatcher {
    /// None once finished.
    inner: Option<sequence::SequenceMatcher>,
}

fn finished() -> PyErr {
    PyRuntimeError::new_err("the sequence matcher has finished")
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
        Ok(SequenceMatcher { inner: Some(inner) })
    }

    /// Add a candidate of `stage` (the number of stages: the until stage) at (input `rank`,
    /// `line`) with its event text; `ref` comes back in the results. ValueError for a stage
    /// the rule does not have, OSError when spilling to disk fails.
    #[pyo3(signature = (stage, rank, line, event, r#ref))]
    fn add(&mut self, stage: usize, rank: u32, line: u64, event: &str, r#ref: u64) -> PyResult<()> {
        let inner = self.inner.as_mut().ok_or_else(finished)?;
        inner
            .add(stage, rank, line, event, r#ref)
            .map_err(|e| match e {
                AddError::Stage(_) => PyValueError::new_err(e.to_string()),
                AddError::Io(_) => PyOSError::new_err(e.to_string()),
            })
    }

    /// Match the candidates (without the GIL) and give the results; the matcher is then
    /// finished (RuntimeError on further use).
    fn finish(&mut self, py: Python<'_>) -> PyResult<MatchResult> {
        let inner = self.inner.take().ok_or_else(finished)?;
        let result = py.detach(move || inner.finish()).map_err(|e| {
            PyOSError::new_err(format!("cannot read sequence candidates back: {e}"))
        })?;
        let matches = PyList::empty(py);
        for (refs, keys) in result.matches {
            let keys = keys
                .into_iter()
                .map(|k| key_object(py, k))
                .collect::<PyResult<Vec<_>>>()?;
            matches.append((refs, keys))?;
        }
        Ok(MatchResult {
            matches: matches.unbind(),
            no_time: result.no_time,
            no_time_refs: result.no_time_refs,
        })
    }
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
    matches: Py<PyList>,
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
    fn matches(&self, py: Python<'_>) -> Py<PyList> {
        self.matches.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "MatchResult(matches={}, no_time={})",
            self.matches.bind(py).len(),
            self.no_time
        )
    }
}

/// A spilled candidate's header: input rank (u32), line (u64), text length (u64), little
/// endian; then the text (the layout of `imds_scan.sequences._Spill`).
const HEADER: usize = 4 + 8 + 8;
/// Candidates' bytes gathered before they are written to the spill file.
const WRITE_SIZE: usize = 1 << 20;

/// Where an engine rule's hits go: nowhere (a single-event rule), a Rust matcher, or a Python
/// object's `add(stage, rank, line, event, ref)`.
enum Route {
    Event,
    Rust(Py<SequenceMatcher>, usize),
    Python(Py<PyAny>, usize),
}

/// The stage hits of a scan's batches into their rules' matchers with no Python call per
/// candidate for a Rust matcher (spec/sequences.md, "Scan layer"), and the spill file of the
/// candidates' (input rank, line, text), which a candidate's `ref` (its offset) finds again.
#[pyclass(module = "imds_scan._engine")]
pub struct StageRouter {
    routes: Vec<Route>,
    within: Option<Py<PyAny>>,
    file: Option<std::fs::File>,
    /// The spill file's path while it is to be removed at close (not where it is unlinked).
    path: Option<PathBuf>,
    end: u64,
    written: u64,
    pending: Vec<u8>,
    /// (rank, line, offset) of the candidate written last: a line's hits share its text.
    last: Option<(u32, u64, u64)>,
}

fn spill_error(e: &std::io::Error) -> PyErr {
    match e.raw_os_error() {
        Some(code) => PyOSError::new_err((code, e.to_string())),
        None => PyOSError::new_err(e.to_string()),
    }
}

impl StageRouter {
    fn file(&mut self) -> PyResult<&mut std::fs::File> {
        self.file
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the candidates' spill file is closed"))
    }

    fn flush(&mut self) -> PyResult<()> {
        use std::io::{Seek, SeekFrom, Write};
        let written = self.written;
        let pending = std::mem::take(&mut self.pending);
        let file = self.file()?;
        file.seek(SeekFrom::Start(written))
            .and_then(|_| file.write_all(&pending))
            .map_err(|e| spill_error(&e))?;
        self.pending = pending;
        self.pending.clear();
        self.written = self.end;
        Ok(())
    }

    fn spill(&mut self, rank: u32, line: u64, text: &str) -> PyResult<u64> {
        if let Some((r, l, offset)) = self.last {
            if (r, l) == (rank, line) {
                return Ok(offset);
            }
        }
        let offset = self.end;
        self.pending.extend_from_slice(&rank.to_le_bytes());
        self.pending.extend_from_slice(&line.to_le_bytes());
        self.pending
            .extend_from_slice(&(text.len() as u64).to_le_bytes());
        self.pending.extend_from_slice(text.as_bytes());
        self.end += (HEADER + text.len()) as u64;
        self.last = Some((rank, line, offset));
        if self.pending.len() >= WRITE_SIZE {
            self.flush()?;
        }
        Ok(offset)
    }
}

#[pymethods]
impl StageRouter {
    /// `routes[i]`: engine rule `i`'s (matcher, stage), None for a single-event rule; a
    /// candidate of a stage rule goes to its matcher (a `SequenceMatcher` directly, any other
    /// object through its `add`) unless `within(event_text)` says it is outside the time
    /// window. The spill file is made in `spill_dir` (removed when closed).
    #[new]
    #[pyo3(signature = (routes, spill_dir, within = None))]
    fn new(
        routes: Vec<Option<(Bound<'_, PyAny>, usize)>>,
        spill_dir: PathBuf,
        within: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static MADE: AtomicU64 = AtomicU64::new(0);
        let routes = routes
            .into_iter()
            .map(|route| match route {
                None => Route::Event,
                Some((matcher, stage)) => match matcher.cast::<SequenceMatcher>() {
                    Ok(rust) => Route::Rust(rust.clone().unbind(), stage),
                    Err(_) => Route::Python(matcher.unbind(), stage),
                },
            })
            .collect();
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
            file: Some(file),
            path,
            end: 0,
            written: 0,
            pending: Vec::new(),
            last: None,
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
            let (matcher, stage) = match self.routes.get(rule) {
                Some(Route::Event) => {
                    keep.push(k);
                    continue;
                }
                Some(Route::Rust(m, s)) => (Ok(m.clone_ref(py)), *s),
                Some(Route::Python(m, s)) => (Err(m.clone_ref(py)), *s),
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
            let reference = self.spill(rank, line, event)?;
            match matcher {
                Ok(rust) => rust
                    .bind(py)
                    .borrow_mut()
                    .add(stage, rank, line, event, reference)?,
                Err(other) => {
                    other.call_method1(py, "add", (stage, rank, line, &text, reference))?;
                }
            }
        }
        Ok((keep, candidates))
    }

    /// Spill a candidate (input `rank`, `line`, `text`) and give its offset; the hits of one
    /// line (the last one spilled) share one copy.
    fn put(&mut self, rank: u32, line: u64, text: &str) -> PyResult<u64> {
        self.spill(rank, line, text)
    }

    /// The candidate spilled at `offset`: (input rank, line, text).
    fn get(&mut self, offset: u64) -> PyResult<(u32, u64, String)> {
        use std::io::{Read, Seek, SeekFrom};
        if !self.pending.is_empty() {
            self.flush()?;
        }
        let file = self.file()?;
        let mut head = [0u8; HEADER];
        let mut read = || -> std::io::Result<(u32, u64, Vec<u8>)> {
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut head)?;
            let rank = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
            let line = u64::from_le_bytes(head[4..12].try_into().expect("8 bytes"));
            let size = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
            let mut text = vec![0u8; usize::try_from(size).map_err(std::io::Error::other)?];
            file.read_exact(&mut text)?;
            Ok((rank, line, text))
        };
        let (rank, line, text) = read().map_err(|e| spill_error(&e))?;
        let text = String::from_utf8(text).map_err(|_| {
            PyValueError::new_err(format!("spilled candidate {offset} is not UTF-8"))
        })?;
        Ok((rank, line, text))
    }

    /// Close (and remove) the spill file.
    fn close(&mut self) {
        self.file = None;
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for StageRouter {
    fn drop(&mut self) {
        self.close();
    }
}
