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
    let error = f.error.as_deref().unwrap();
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
        f.error.as_deref().unwrap().starts_with("zstd data damaged"),
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
    assert!(f.error.as_deref().unwrap().contains("xz-compressed"));
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
