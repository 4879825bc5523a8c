//! Python bindings of imds-core: the private module `imds_scan._engine`.
//!
//! The scan runs on a worker thread with the GIL released; this thread wakes every 50 ms to
//! let Python deliver signals (and to report progress), so Ctrl-C cancels the scan within a
//! buffer's time, and the scan returns what it found so far, marked interrupted.

use imds_core::{Engine, FileStats, Hit, Input, RuleIr, ScanOptions, StatValue};
use pyo3::exceptions::{PyKeyboardInterrupt, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::borrow::Cow;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

type WitnessTuple = (String, &'static str, String, String);
type HitTuple = (usize, u64, usize, usize, Option<WitnessTuple>, String);
type ScanTuple<'py> = (Vec<HitTuple>, Vec<Bound<'py, PyDict>>, bool);

/// How often the progress callback is called, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

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
        self.engine.needles()
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
        if text.to_cow()? == "-" {
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
            StatValue::Allowlisted(counts) => dict.set_item(name, counts.clone())?,
        }
    }
    Ok(dict)
}

#[pymodule]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scanner>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("STATS_FIELDS", PyTuple::new(m.py(), FileStats::FIELDS)?)?;
    Ok(())
}
