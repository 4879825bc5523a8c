//! `SequenceMatcher`: the binding of `imds_core::sequence` (spec/sequences.md, "Matchers"),
//! with the interface of `imds_scan.reference.sequence.SequenceMatcher`.

use imds_core::sequence::{self, AddError, KeyJson};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
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
