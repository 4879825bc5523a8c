//! Inputs: gzip and zstd found by magic bytes, damaged compressed data, readers, progress,
//! exporter wrappers.

use imds_core::{Engine, Input, RuleIr, ScanOptions, ScanReport};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const SEED: &str = include_str!("data/seed_ir.json");
const NET_HIT: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"169.254.169.254"}}"#;
const PROC_HIT: &str = r#"{"event":{"category":"process","type":"start"},"process":{"name":"curl","command_line":"curl http://169.254.169.254/latest/meta-data/"}}"#;
const QUIET: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"10.0.0.1"},"message":"ok"}"#;

fn engine() -> Engine {
    Engine::new(vec![RuleIr::from_json(SEED).unwrap()]).unwrap()
}

fn corpus(lines: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..lines {
        out.push_str(match i % 97 {
            5 => NET_HIT,
            50 => PROC_HIT,
            70 => "not json",
            _ => QUIET,
        });
        out.push('\n');
    }
    out.into_bytes()
}

fn gzip(data: &[u8], members: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in data.chunks(data.len().div_ceil(members)) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(part).unwrap();
        out.extend(enc.finish().unwrap());
    }
    out
}

fn zstd_frames(data: &[u8], frames: usize) -> Vec<u8> {
    data.chunks(data.len().div_ceil(frames))
        .flat_map(|part| zstd::encode_all(part, 3).unwrap())
        .collect()
}

fn keys(report: &ScanReport) -> Vec<(u64, usize, String)> {
    report
        .hits
        .iter()
        .map(|h| (h.line, h.branch, h.event.clone()))
        .collect()
}

fn scan_reader(data: Vec<u8>, threads: usize) -> ScanReport {
    let opts = ScanOptions {
        threads,
        buffer_size: 4096,
        ..ScanOptions::default()
    };
    engine().scan_reader(&data[..], 0, &opts, &AtomicBool::new(false))
}

#[test]
fn gzip_and_zstd_scan_like_plain() {
    let plain = corpus(5000);
    let expected = scan_reader(plain.clone(), 1);
    assert_eq!(expected.hits.len(), 2 * 52);
    for threads in [1, 2] {
        for (what, data) in [
            ("gzip", gzip(&plain, 1)),
            ("gzip", gzip(&plain, 7)),
            ("zstd", zstd_frames(&plain, 1)),
            ("zstd", zstd_frames(&plain, 5)),
        ] {
            let report = scan_reader(data.clone(), threads);
            assert_eq!(keys(&report), keys(&expected), "{what}, {threads} threads");
            let f = &report.files[0];
            assert_eq!(f.compression, Some(what));
            assert_eq!(f.bytes, plain.len() as u64);
            assert_eq!(f.source_bytes, data.len() as u64);
            assert_eq!(f.malformed, expected.files[0].malformed);
            assert_eq!(f.error, None);
        }
    }
}

#[test]
fn truncated_gzip_keeps_what_was_read() {
    let plain = corpus(20_000);
    let gz = gzip(&plain, 1);
    let cut = gz.len() * 6 / 10;
    let report = scan_reader(gz[..cut].to_vec(), 2);
    let f = &report.files[0];
    let error = f.error_text().unwrap();
    assert!(
        error.contains(&format!("near compressed byte {cut}")),
        "{error}"
    );
    // Every hit of the lines decompressed in full is found.
    let readable = &plain[..f.bytes as usize];
    let complete = readable.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(complete > 5000, "{complete}");
    let all = scan_reader(plain.clone(), 1);
    let expected: Vec<_> = keys(&all)
        .into_iter()
        .filter(|(line, _, _)| *line <= complete)
        .collect();
    let found: Vec<_> = keys(&report)
        .into_iter()
        .filter(|(line, _, _)| *line <= complete)
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn corrupt_zstd_frame_keeps_the_frames_before_it() {
    let plain = corpus(10_000);
    let frames: Vec<Vec<u8>> = plain
        .chunks(plain.len() / 4 + 1)
        .map(|part| zstd::encode_all(part, 3).unwrap())
        .collect();
    let mut data = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let mut frame = frame.clone();
        if i == 2 {
            frame[..4].copy_from_slice(b"XXXX"); // not a frame any more
        }
        data.extend(frame);
    }
    let report = scan_reader(data, 1);
    let f = &report.files[0];
    assert!(
        f.error_text()
            .as_deref()
            .unwrap()
            .starts_with("zstd data damaged"),
        "{:?}",
        f.error
    );
    let before = plain
        .chunks(plain.len() / 4 + 1)
        .take(2)
        .map(|c| c.len())
        .sum::<usize>();
    assert_eq!(f.bytes, before as u64);
    let lines = plain[..before].iter().filter(|&&b| b == b'\n').count() as u64;
    let all = scan_reader(plain.clone(), 1);
    let expected: Vec<_> = keys(&all)
        .into_iter()
        .filter(|(line, _, _)| *line <= lines)
        .collect();
    assert_eq!(keys(&report), expected);
}

#[test]
fn unsupported_compression_is_an_error_not_garbage() {
    let report = scan_reader(b"\xfd7zXZ\0\0\0\x04\xe6\xd6\xb4F".to_vec(), 1);
    let f = &report.files[0];
    assert!(f.error_text().as_deref().unwrap().contains("xz-compressed"));
    assert_eq!((f.events, f.malformed), (0, 0));
}

#[test]
fn readers_progress_and_files_together() {
    let plain = corpus(3000);
    let gz = gzip(&plain, 2);
    let dir = std::env::temp_dir().join(format!("imds-core-inputs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("no-extension");
    std::fs::write(&path, &gz).unwrap();
    let progress = AtomicU64::new(0);
    let inputs = vec![
        Input::Path(path.clone()),
        Input::Reader(Box::new(std::io::Cursor::new(plain.clone()))),
    ];
    let opts = ScanOptions {
        threads: 2,
        ..ScanOptions::default()
    };
    let report = engine().scan_inputs(inputs, &opts, &AtomicBool::new(false), &progress);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        progress.load(Ordering::Relaxed),
        (gz.len() + plain.len()) as u64
    );
    assert_eq!(report.files[0].compression, Some("gzip"));
    assert_eq!(report.files[1].compression, None);
    assert_eq!(report.files[0].hits, report.files[1].hits);
    assert_eq!(report.hits.len() as u64, 2 * report.files[1].hits);
}

#[test]
fn exporter_wrappers_are_evaluated_on_their_source() {
    let data = format!(
        "{{\"_index\":\"logs\",\"_id\":\"1\",\"_source\":{NET_HIT}}}\n\
         {{\"_index\":\"logs\",\"_id\":\"2\",\"_score\":1.0,\"_source\":{QUIET}}}\n\
         {{\"_index\":\"logs\",\"_type\":\"_doc\",\"_id\":\"3\",\"_source\":{PROC_HIT},\"sort\":[7]}}\n"
    );
    let report = scan_reader(data.into_bytes(), 1);
    let hits: Vec<(u64, &str)> = report
        .hits
        .iter()
        .map(|h| (h.line, h.event.as_str()))
        .collect();
    assert_eq!(hits, [(1, NET_HIT), (3, PROC_HIT)]);
}

fn scan_capped(data: &[u8], threads: usize, buffer_size: usize, cap: usize) -> ScanReport {
    let opts = ScanOptions {
        threads,
        buffer_size,
        max_line_bytes: cap,
        ..ScanOptions::default()
    };
    engine().scan_reader(data, 0, &opts, &AtomicBool::new(false))
}

#[test]
fn lines_longer_than_the_cap_are_counted_not_evaluated() {
    // A hit padded to `len` bytes (without its `\n`).
    let padded = |len: usize| {
        let head = &PROC_HIT[..PROC_HIT.len() - 1];
        let pad = len - head.len() - ",\"m\":\"\"}".len();
        format!("{head},\"m\":\"{}\"}}", "x".repeat(pad))
    };
    let cap = 1000;
    let mut data = String::new();
    let mut expected_hits = Vec::new();
    let mut expected_long = Vec::new();
    // Around the cap, and far past any buffer, with and without a final `\n`.
    let lengths = [cap, cap + 1, 5000, cap - 1, 100_000, 3 * cap, cap];
    for (i, &len) in lengths.iter().enumerate() {
        let line_no = 2 * i as u64 + 2;
        data.push_str(NET_HIT);
        data.push('\n');
        expected_hits.push(2 * i as u64 + 1);
        data.push_str(&padded(len));
        data.push('\n');
        if len > cap {
            expected_long.push((line_no, len));
        } else {
            expected_hits.push(line_no);
        }
    }
    data.push_str(&padded(7000)); // the last line, without `\n`
    expected_long.push((lengths.len() as u64 * 2 + 1, 7000));
    for threads in [1, 2] {
        for buffer in [64, 700, 4096, 1 << 20] {
            let report = scan_capped(data.as_bytes(), threads, buffer, cap);
            let f = &report.files[0];
            let what = format!("{threads} threads, buffer {buffer}");
            let hits: Vec<u64> = report.hits.iter().map(|h| h.line).collect();
            assert_eq!(hits, expected_hits, "{what}");
            assert_eq!(f.long_lines, expected_long.len() as u64, "{what}");
            assert_eq!(f.malformed, f.long_lines, "{what}");
            assert_eq!(f.events, 2 * lengths.len() as u64 + 1, "{what}");
            assert_eq!(f.bytes, data.len() as u64, "{what}");
            let examples: Vec<(u64, String)> = expected_long
                .iter()
                .take(5)
                .map(|&(line, len)| {
                    let why = format!(
                        "line of {len} bytes is longer than max-line-bytes ({cap}): not evaluated"
                    );
                    (line, why)
                })
                .collect();
            assert_eq!(f.malformed_examples, examples, "{what}");
        }
    }
    // In memory, the same.
    let opts = ScanOptions {
        max_line_bytes: cap,
        ..ScanOptions::default()
    };
    let report = engine().scan_bytes(data.as_bytes(), &opts);
    assert_eq!(report.files[0].long_lines, expected_long.len() as u64);
    let hits: Vec<u64> = report.hits.iter().map(|h| h.line).collect();
    assert_eq!(hits, expected_hits);
}

/// An endless stream of one byte, counting what was read.
struct Endless {
    byte: u8,
    read: std::sync::Arc<AtomicU64>,
    limit: u64,
}

impl std::io::Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.limit - self.read.load(Ordering::Relaxed);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        buf[..n].fill(self.byte);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn an_endless_line_is_read_past_in_bounded_memory_and_can_be_cancelled() {
    // 300 MiB of zeros (no `\n`): read past with buffers of at most the cap.
    let limit = 300 << 20;
    let reader = Endless {
        byte: 0,
        read: Default::default(),
        limit,
    };
    let report = scan_capped_reader(reader, 1 << 20, &AtomicBool::new(false));
    let f = &report.files[0];
    assert_eq!((f.long_lines, f.events, f.bytes), (1, 1, limit));
    assert!(f.malformed_examples[0]
        .1
        .starts_with("line of 314572800 bytes"));
    // Cancelled while reading it: stops soon, not at the end of the line.
    let read = std::sync::Arc::new(AtomicU64::new(0));
    let cancel = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            while read.load(Ordering::Relaxed) < 8 << 20 {
                std::thread::yield_now();
            }
            cancel.store(true, Ordering::Relaxed);
        });
        let reader = Endless {
            byte: b'x',
            read: read.clone(),
            limit: u64::MAX,
        };
        scan_capped_reader(reader, 1 << 20, &cancel)
    });
    assert!(report.cancelled);
    assert!(report.files[0]
        .error_text()
        .as_deref()
        .unwrap()
        .starts_with("interrupted"));
}

fn scan_capped_reader<R: std::io::Read + Send + 'static>(
    reader: R,
    cap: usize,
    cancel: &AtomicBool,
) -> ScanReport {
    let opts = ScanOptions {
        threads: 1,
        buffer_size: 64 << 10,
        max_line_bytes: cap,
        ..ScanOptions::default()
    };
    engine().scan_inputs(
        vec![Input::Reader(Box::new(reader))],
        &opts,
        cancel,
        &AtomicU64::new(0),
    )
}

#[test]
fn byte_order_marks_and_nested_compression() {
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(NET_HIT.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16be: Vec<u8> = [0xfe, 0xff]
        .into_iter()
        .chain(NET_HIT.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let line = format!("{NET_HIT}\n").into_bytes();
    for (what, data, error) in [
        (
            "UTF-16LE",
            utf16.clone(),
            "UTF-16LE text (byte-order mark) is not supported",
        ),
        (
            "UTF-16BE",
            utf16be,
            "UTF-16BE text (byte-order mark) is not supported",
        ),
        (
            "UTF-32LE",
            b"\xff\xfe\0\0{\0\0\0".to_vec(),
            "UTF-32LE text (byte-order mark) is not supported",
        ),
        (
            ".gz.gz",
            gzip(&gzip(&line, 1), 1),
            "gzip data that holds gzip-compressed data (compressed twice?) is not supported",
        ),
        (
            "zstd in gzip",
            gzip(&zstd_frames(&line, 1), 1),
            "gzip data that holds zstd-compressed data",
        ),
        (
            "UTF-16 in zstd",
            zstd_frames(&utf16, 1),
            "decompressed zstd data: UTF-16LE text (byte-order mark) is not supported",
        ),
    ] {
        let report = scan_reader(data, 1);
        let f = &report.files[0];
        assert!(
            f.error_text().as_deref().unwrap_or("").starts_with(error),
            "{what}: {:?}",
            f.error
        );
        assert_eq!((f.events, report.hits.len()), (0, 0), "{what}");
    }
    // A UTF-8 BOM is skipped, in plain and compressed input.
    let bom = [&b"\xef\xbb\xbf"[..], &line].concat();
    for data in [bom.clone(), gzip(&bom, 1)] {
        let report = scan_reader(data, 1);
        assert_eq!((report.hits.len(), report.files[0].malformed), (1, 0));
        assert_eq!(report.files[0].error, None);
    }
}

#[test]
fn lone_surrogates_and_deep_nesting_keep_the_event() {
    // A lone surrogate escape: kept, as U+FFFD (Elasticsearch indexes such documents).
    let surrogate = PROC_HIT.replace("meta-data/", "meta-data/\\ud800");
    // 999 arrays inside the event: 1000 levels, Elasticsearch's limit; one more is malformed.
    let deep = |arrays: usize| {
        format!(
            "{},\"deep\":{}{}}}",
            &NET_HIT[..NET_HIT.len() - 1],
            "[".repeat(arrays),
            "]".repeat(arrays)
        )
    };
    let data = format!("{surrogate}\n{}\n{}\n", deep(999), deep(1000));
    for threads in [1, 2] {
        let report = scan_reader(data.clone().into_bytes(), threads);
        let hits: Vec<u64> = report.hits.iter().map(|h| h.line).collect();
        assert_eq!(hits, [1, 2]);
        let value = &report.hits[0].witness.as_ref().unwrap().value;
        assert!(value.ends_with("meta-data/\u{FFFD}"), "{value}");
        assert_eq!(report.hits[0].event, surrogate);
        let f = &report.files[0];
        assert_eq!(f.malformed_examples.len(), 1);
        assert_eq!(f.malformed_examples[0].0, 3);
        assert!(f.malformed_examples[0]
            .1
            .starts_with("nested deeper than 1000 levels"));
    }
}

/// A FIFO named as an input waits for a writer in its open; Ctrl-C must still stop the scan
/// there, and a writer that comes is read.
#[cfg(unix)]
#[test]
fn a_fifo_without_a_writer_can_be_cancelled_and_one_with_a_writer_is_read() {
    let dir = std::env::temp_dir().join(format!("imds-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("pipe.ndjson");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo here: skipped");
        return;
    }
    let engine = std::sync::Arc::new(engine());
    for threads in [1, 2] {
        let opts = ScanOptions {
            threads,
            ..ScanOptions::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let cancel = std::sync::Arc::new(AtomicBool::new(false));
        let (e, p, c) = (engine.clone(), fifo.clone(), cancel.clone());
        std::thread::spawn(move || {
            let _ = tx.send(e.scan_paths(&[p], &opts, &c));
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        cancel.store(true, Ordering::Relaxed);
        let report = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the scan stops on cancel while the FIFO has no writer");
        let error = report.files[0].error_text().unwrap_or_default();
        assert!(error.starts_with("interrupted"), "{error}");
    }
    // With a writer, a FIFO is read whole (another one: the cancelled scans' opens still
    // wait on the first, and would take its writer).
    let fifo = dir.join("written.ndjson");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let (p, data) = (fifo.clone(), corpus(500));
    let writer = std::thread::spawn(move || std::fs::write(p, data));
    let (tx, rx) = std::sync::mpsc::channel();
    let e = engine.clone();
    std::thread::spawn(move || {
        let _ = tx.send(e.scan_paths(&[fifo], &ScanOptions::default(), &AtomicBool::new(false)));
    });
    let report = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a FIFO with a writer is read to its end");
    writer.join().unwrap().unwrap();
    assert_eq!(report.files[0].error_text(), None);
    let whole = engine.scan_bytes(&corpus(500), &ScanOptions::default());
    assert_eq!(report.hits.len(), whole.hits.len());
    assert!(!whole.hits.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
