//! Python bindings of imds-core: the private module `imds_scan._engine`.
//!
//! The scan runs on a worker thread with the GIL released; this thread wakes every 50 ms to
//! let Python deliver signals, so Ctrl-C cancels the scan and surfaces as KeyboardInterrupt.

use imds_core::{Engine, FileStats, Hit, RuleIr, ScanOptions};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type WitnessTuple = (String, &'static str, String, String);
type HitTuple = (usize, u64, usize, usize, Option<WitnessTuple>, String);

/// A set of compiled rules, ready to scan.
#[pyclass(frozen, module = "imds_scan._engine")]
struct Scanner {
    engine: Engine,
}

#[pymethods]
impl Scanner {
    /// Compile rules given as IR JSON documents; ValueError if one is invalid.
    #[new]
    fn new(rules: Vec<String>) -> PyResult<Self> {
        let irs = rules
            .iter()
            .map(|text| RuleIr::from_json(text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let engine = Engine::new(irs).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Scanner { engine })
    }

    /// The prefilter's needles, or None when the rules force a parse of every line.
    fn needles(&self) -> Option<Vec<String>> {
        let prefilter = &self.engine.prefilter;
        prefilter.is_active().then(|| prefilter.needles())
    }

    /// Scan files; returns (hits, per-file stats, cancelled).
    #[pyo3(signature = (paths, threads=0, buffer_size=4 << 20, prefilter=true, max_examples=5))]
    fn scan_paths<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        threads: usize,
        buffer_size: usize,
        prefilter: bool,
        max_examples: usize,
    ) -> PyResult<(Vec<HitTuple>, Vec<Bound<'py, PyDict>>)> {
        let opts = ScanOptions {
            threads,
            buffer_size: buffer_size.max(64),
            prefilter,
            max_examples,
        };
        let cancel = AtomicBool::new(false);
        let mut interrupted = None;
        let report = py.detach(|| {
            std::thread::scope(|scope| {
                let worker = scope.spawn(|| self.engine.scan_paths(&paths, &opts, &cancel));
                while !worker.is_finished() {
                    std::thread::sleep(Duration::from_millis(50));
                    if let Err(err) = Python::attach(|py| py.check_signals()) {
                        cancel.store(true, Ordering::Relaxed);
                        interrupted = Some(err);
                        break;
                    }
                }
                worker.join().expect("scan thread panicked")
            })
        });
        if let Some(err) = interrupted {
            return Err(err);
        }
        let hits = report.hits.into_iter().map(hit_tuple).collect();
        let files = report
            .files
            .iter()
            .map(|stats| stats_dict(py, stats))
            .collect::<PyResult<_>>()?;
        Ok((hits, files))
    }
}

fn hit_tuple(hit: Hit) -> HitTuple {
    let witness = hit.witness.map(|w| (w.field, w.op, w.pattern, w.value));
    (
        hit.source, hit.line, hit.rule, hit.branch, witness, hit.event,
    )
}

fn stats_dict<'py>(py: Python<'py>, stats: &FileStats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("bytes", stats.bytes)?;
    dict.set_item("events", stats.events)?;
    dict.set_item("candidates", stats.candidates)?;
    dict.set_item("hits", stats.hits)?;
    dict.set_item("malformed", stats.malformed)?;
    dict.set_item("invalid_utf8", stats.invalid_utf8)?;
    dict.set_item("malformed_examples", stats.malformed_examples.clone())?;
    dict.set_item("error", stats.error.clone())?;
    Ok(dict)
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scanner>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
