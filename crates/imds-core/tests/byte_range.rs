//! Byte-range inputs: consecutive ranges of a plain file, their line numbers shifted by the
//! lines the ranges before them own, give exactly the whole file's results.

use imds_core::{Engine, FileStats, Input, InputErrorKind, RuleIr, ScanOptions, ScanReport};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};

const SEED: &str = include_str!("data/seed_ir.json");
const NET_HIT: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"169.254.169.254"}}"#;
const PROC_HIT: &str = r#"{"event":{"category":"process","type":"start"},"process":{"name":"curl","command_line":"curl http://169.254.169.254/latest/meta-data/"}}"#;
const QUIET: &str = r#"{"event":{"category":["network"]},"destination":{"ip":"10.0.0.1"}}"#;

/// The seed rule, compiled once (compiling it is the slow part of a small scan).
fn engine() -> &'static Engine {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(vec![RuleIr::from_json(SEED).unwrap()]).unwrap())
}

/// A small file with what line framing must get right: a BOM, blank and CRLF lines,
/// malformed lines, a line starting with gzip magic bytes, and no final `\n`.
fn content() -> Vec<u8> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    let lines: [&[u8]; 9] = [
        NET_HIT.as_bytes(),
        b"",
        QUIET.as_bytes(),
        b"oops",
        PROC_HIT.as_bytes(),
        b"  ",
        b"\x1f\x8b\x08 not json",
        QUIET.as_bytes(),
        NET_HIT.as_bytes(),
    ];
    for line in lines {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(PROC_HIT.as_bytes());
    out
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("imds-core-{name}-{}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn options(threads: usize) -> ScanOptions {
    ScanOptions {
        threads,
        buffer_size: 64,
        max_examples: 100,
        ..ScanOptions::default()
    }
}

fn scan(inputs: Vec<Input>, opts: &ScanOptions) -> ScanReport {
    engine().scan_inputs(inputs, opts, &AtomicBool::new(false), &AtomicU64::new(0))
}

fn range(path: &Path, start: u64, end: u64) -> Input {
    Input::Range {
        path: path.to_path_buf(),
        start,
        end,
    }
}

/// Everything a scan reports, comparable (hits as line, branch, witness value, event).
type Summary = (Vec<(u64, usize, Option<String>, String)>, FileStats);

/// The ranges' reports merged as a client would: line numbers shifted, counts summed.
fn merged(report: &ScanReport) -> Summary {
    let mut hits = Vec::new();
    let mut total = FileStats::default();
    let mut shift = 0;
    for (index, part) in report.files.iter().enumerate() {
        assert!(part.error.is_none(), "{:?}", part.error);
        hits.extend(report.hits.iter().filter(|h| h.source == index).map(|h| {
            let value = h.witness.as_ref().map(|w| w.value.clone());
            (h.line + shift, h.branch, value, h.event.clone())
        }));
        total.bytes += part.bytes;
        total.source_bytes += part.source_bytes;
        total.events += part.events;
        total.candidates += part.candidates;
        total.hits += part.hits;
        total.malformed += part.malformed;
        total.invalid_utf8 += part.invalid_utf8;
        total.long_lines += part.long_lines;
        let examples = part.malformed_examples.iter();
        total
            .malformed_examples
            .extend(examples.map(|(line, why)| (line + shift, why.clone())));
        shift += part.lines;
    }
    total.lines = shift;
    (hits, total)
}

fn whole(path: &Path, opts: &ScanOptions) -> Summary {
    let report = scan(vec![Input::Path(path.to_path_buf())], opts);
    let mut summary = merged(&report);
    summary.1.compression = report.files[0].compression;
    summary
}

fn assert_same(got: &Summary, want: &Summary, what: &str) {
    assert_eq!(got.0, want.0, "hits, {what}");
    let (a, b) = (&got.1, &want.1);
    assert_eq!(
        (a.bytes, a.source_bytes, a.events, a.candidates, a.hits),
        (b.bytes, b.source_bytes, b.events, b.candidates, b.hits),
        "{what}"
    );
    assert_eq!(
        (a.malformed, a.invalid_utf8, a.long_lines, a.lines),
        (b.malformed, b.invalid_utf8, b.long_lines, b.lines),
        "{what}"
    );
    assert_eq!(a.malformed_examples, b.malformed_examples, "{what}");
}

#[test]
fn two_ranges_at_every_split_point_equal_the_whole_file() {
    let data = content();
    let file = TempFile::new("range-two", &data);
    let len = data.len() as u64;
    for threads in [1, 2] {
        let opts = options(threads);
        let want = whole(&file.0, &opts);
        assert_eq!(want.0.len(), 4, "the file has four hits");
        assert_eq!(want.1.lines, 10);
        for split in 0..=len {
            let report = scan(
                vec![range(&file.0, 0, split), range(&file.0, split, len)],
                &opts,
            );
            assert_same(&merged(&report), &want, &format!("split {split}"));
        }
    }
}

#[test]
fn three_ranges_and_ranges_past_the_end_equal_the_whole_file() {
    let data = content();
    let file = TempFile::new("range-three", &data);
    let len = data.len() as u64;
    let opts = options(1);
    let want = whole(&file.0, &opts);
    for a in (0..=len).step_by(7) {
        for b in (a..=len + 2).step_by(11) {
            let inputs = vec![
                range(&file.0, 0, a),
                range(&file.0, a, b),
                range(&file.0, b, len + 10),
            ];
            let what = format!("splits {a}, {b}");
            assert_same(&merged(&scan(inputs, &opts)), &want, &what);
        }
    }
}

#[test]
fn a_range_owns_the_lines_that_start_in_it() {
    let data = format!("{QUIET}\n{NET_HIT}\n{QUIET}\n");
    let file = TempFile::new("range-own", data.as_bytes());
    let second = QUIET.len() as u64 + 1;
    // From inside the first line to just past the second line's start: the second line only,
    // read to its end, numbered 1.
    let report = scan(vec![range(&file.0, 1, second + 1)], &options(1));
    let f = &report.files[0];
    assert_eq!(
        (f.lines, f.events, f.bytes),
        (1, 1, NET_HIT.len() as u64 + 1)
    );
    assert_eq!(report.hits.len(), 1);
    assert_eq!(report.hits[0].line, 1);
    // A range inside one line owns nothing.
    let report = scan(vec![range(&file.0, 2, second - 1)], &options(1));
    assert_eq!((report.files[0].lines, report.files[0].bytes), (0, 0));
    assert!(report.hits.is_empty());
}

#[test]
fn a_range_of_a_compressed_or_missing_file_is_an_error() {
    let gz = TempFile::new("range.gz", b"\x1f\x8b\x08\0\0\0\0\0");
    let report = scan(vec![range(&gz.0, 0, 8)], &options(1));
    let error = report.files[0].error.as_ref().unwrap();
    assert_eq!(error.kind, InputErrorKind::CompressedRange);
    assert_eq!(error.format, Some("gzip"));
    let missing = std::env::temp_dir().join("imds-core-range-missing.ndjson");
    let report = scan(vec![range(&missing, 0, 8)], &options(1));
    let error = report.files[0].error.as_ref().unwrap();
    assert_eq!(error.kind, InputErrorKind::NotFound);
}

#[test]
fn ranges_of_a_seekable_stream_equal_the_whole_file() {
    let data = content();
    let file = TempFile::new("range-stream", &data);
    let len = data.len() as u64;
    let opts = options(1);
    let want = whole(&file.0, &opts);
    let stream = |start, end| Input::StreamRange {
        reader: Box::new(std::io::Cursor::new(data.clone())),
        start,
        end,
    };
    for split in 0..=len {
        let report = scan(vec![stream(0, split), stream(split, len)], &opts);
        assert_same(&merged(&report), &want, &format!("split {split}"));
    }
    let report = scan(
        vec![Input::StreamRange {
            reader: Box::new(std::io::Cursor::new(b"\x28\xb5\x2f\xfd\0\0".to_vec())),
            start: 0,
            end: 6,
        }],
        &opts,
    );
    let error = report.files[0].error.as_ref().unwrap();
    assert_eq!(error.kind, InputErrorKind::CompressedRange);
}
