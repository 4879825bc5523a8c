//! Streaming scans: hits handed out in the order the collected scan gives, for many files and
//! regions, any thread count and reorder cap; backpressure; cancellation.

use imds_core::{
    row_projection, ColumnData, Engine, FileStats, Hit, HitForms, HitRows, Input, RecordMeta,
    RuleIr, RuleMeta, ScanEvent, ScanOptions, TimeWindow,
};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SEED: &str = include_str!("data/seed_ir.json");

/// The seed rule twice: a hitting line gives two hits (rules 0 and 1).
fn engine() -> Engine {
    let rule = || RuleIr::from_json(SEED).unwrap();
    Engine::new(vec![rule(), rule()]).unwrap()
}

const NET_HIT: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"169.254.169.254"}}"#;
const QUIET: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"10.0.0.1"},"message":"ok"}"#;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("imds-stream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `lines` lines, every `every`-th a hit (with its number in it, so events differ).
fn content(lines: usize, every: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        if i % every == 0 {
            let line = NET_HIT.replace("\"network\"]", &format!("\"network\"],\"n\":{i}"));
            out.extend_from_slice(line.as_bytes());
        } else if i % 7 == 3 {
            out.extend_from_slice(b"   ");
        } else {
            out.extend_from_slice(QUIET.as_bytes());
        }
        out.push(b'\n');
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

type Key = (usize, u64, usize, usize, String);

fn key(hit: &Hit) -> Key {
    (
        hit.source,
        hit.line,
        hit.rule,
        hit.branch,
        hit.event.clone(),
    )
}

/// What a stream handed out: hits, then (source, stats) per input, and in which order.
#[derive(Default)]
struct Seen {
    hits: Vec<Key>,
    files: Vec<(usize, FileStats)>,
    /// A hit came for an input after its statistics.
    late: bool,
}

fn stream(
    engine: &Engine,
    inputs: Vec<Input>,
    opts: &ScanOptions,
    cap: usize,
    cancel: &AtomicBool,
    progress: &AtomicU64,
    mut each: impl FnMut(&Seen) + Send,
) -> (Seen, bool) {
    let mut seen = Seen::default();
    let mut sink = |event| {
        match event {
            ScanEvent::Hit(hit) => {
                seen.late |= seen.files.iter().any(|(s, _)| *s == hit.source);
                seen.hits.push(key(&hit));
            }
            ScanEvent::File { source, stats } => seen.files.push((source, stats)),
            ScanEvent::Idle => {}
        }
        each(&seen);
    };
    let cancelled = engine.scan_stream(inputs, opts, cancel, progress, cap, &mut sink);
    (seen, cancelled)
}

/// The hits and stats of each input scanned in one piece on this thread, as one list.
fn reference(engine: &Engine, datas: &[Vec<u8>], opts: &ScanOptions) -> (Vec<Key>, Vec<u64>) {
    let mut hits = Vec::new();
    let mut counts = Vec::new();
    for (source, data) in datas.iter().enumerate() {
        let report = engine.scan_bytes(data, opts);
        hits.extend(
            report
                .hits
                .iter()
                .map(|h| Hit {
                    source,
                    ..h.clone()
                })
                .map(|h| key(&h)),
        );
        counts.push(report.files[0].hits);
    }
    (hits, counts)
}

#[test]
fn stream_order_is_the_collected_order_for_any_threads_and_cap() {
    let dir = TempDir::new("order");
    let sizes = [(3000, 3), (40, 5), (0, 1), (2500, 1), (700, 11)];
    let mut datas = Vec::new();
    let mut paths = Vec::new();
    for (k, &(lines, every)) in sizes.iter().enumerate() {
        let data = content(lines, every);
        let path = dir.0.join(format!("f{k}.ndjson"));
        // Two files gzip-compressed: scanned in pieces on the pool, not in regions (or, one
        // of several inputs, by its lane, and on the pool once another lane thread is free).
        let bytes = if k >= 3 { gzip(&data) } else { data.clone() };
        std::fs::write(&path, bytes).unwrap();
        datas.push(data);
        paths.push(path);
    }
    let engine = engine();
    let base = ScanOptions {
        buffer_size: 2048,
        ..ScanOptions::default()
    };
    let (expected, counts) = reference(&engine, &datas, &base);
    assert!(expected.len() > 3000, "{}", expected.len());
    for threads in [1, 2, 3, 8] {
        for cap in [1, 5000, 0] {
            // A few inputs (regions, pieces on the pool) and one at a time.
            for inputs in [paths.clone(), vec![paths[0].clone()]] {
                let opts = ScanOptions {
                    threads,
                    ..base.clone()
                };
                let n = inputs.len();
                let inputs = inputs.into_iter().map(Input::Path).collect();
                let (seen, cancelled) = stream(
                    &engine,
                    inputs,
                    &opts,
                    cap,
                    &AtomicBool::new(false),
                    &AtomicU64::new(0),
                    |_| {},
                );
                assert!(!cancelled);
                let want: Vec<Key> = expected.iter().filter(|h| h.0 < n).cloned().collect();
                assert_eq!(seen.hits, want, "threads {threads}, cap {cap}, {n} inputs");
                assert!(!seen.late, "a hit after its input's statistics");
                let order: Vec<usize> = seen.files.iter().map(|f| f.0).collect();
                assert_eq!(order, (0..n).collect::<Vec<_>>());
                for (source, stats) in &seen.files {
                    assert_eq!(stats.hits, counts[*source]);
                    assert_eq!(stats.error, None);
                    assert_eq!(stats.lines, sizes[*source].0 as u64);
                }
                // The collected scan is the same stream.
                let report = engine.scan_inputs(
                    paths[..n].iter().cloned().map(Input::Path).collect(),
                    &opts,
                    &AtomicBool::new(false),
                    &AtomicU64::new(0),
                );
                let collected: Vec<Key> = report.hits.iter().map(key).collect();
                assert_eq!(collected, want);
            }
        }
    }
}

#[test]
fn a_slow_sink_holds_the_scan_back_and_keeps_the_order() {
    let dir = TempDir::new("slow");
    let data = content(20_000, 1);
    let path = dir.0.join("all.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    let opts = ScanOptions {
        threads: 4,
        buffer_size: 4096,
        ..ScanOptions::default()
    };
    let (expected, _) = reference(&engine, std::slice::from_ref(&data), &opts);
    let progress = AtomicU64::new(0);
    let mut read_while_blocked = 0;
    let (seen, _) = stream(
        &engine,
        vec![Input::Path(path)],
        &opts,
        1,
        &AtomicBool::new(false),
        &progress,
        |seen| {
            if seen.hits.len() == 1 {
                // The head waits here: the other parts may each read about one buffer
                // before their hits pass the cap and they wait for their turn.
                let start = Instant::now();
                let mut last = u64::MAX;
                while start.elapsed() < Duration::from_secs(3) {
                    std::thread::sleep(Duration::from_millis(200));
                    let now = progress.load(Ordering::Relaxed);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                read_while_blocked = progress.load(Ordering::Relaxed);
            } else if seen.hits.len() % 5000 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        },
    );
    assert_eq!(seen.hits, expected);
    // 4 lane threads, one buffer each (a line never spans more than two): far from the
    // file's size, which is what an unbounded reorder would read meanwhile.
    let bound = 4 * 3 * opts.buffer_size as u64;
    assert!(
        read_while_blocked <= bound,
        "read {read_while_blocked} bytes of {} while the sink was blocked (bound {bound})",
        data.len()
    );
}

#[test]
fn lanes_finished_before_their_turn_are_parked_and_their_threads_scan_on() {
    // Few hits: while the head's sink is held up, the other lanes finish their regions and,
    // parked within the cap, go on to the next ones instead of waiting for their turn.
    let dir = TempDir::new("park");
    let data = content(40_000, 2_000);
    let path = dir.0.join("all.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    let opts = ScanOptions {
        threads: 2,
        buffer_size: 4096,
        ..ScanOptions::default()
    };
    let (expected, _) = reference(&engine, std::slice::from_ref(&data), &opts);
    let progress = AtomicU64::new(0);
    let mut read_while_blocked = 0;
    let (seen, _) = stream(
        &engine,
        vec![Input::Path(path)],
        &opts,
        1 << 20,
        &AtomicBool::new(false),
        &progress,
        |seen| {
            if seen.hits.len() == 1 {
                let start = Instant::now();
                let mut last = u64::MAX;
                while start.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(200));
                    let now = progress.load(Ordering::Relaxed);
                    if now == last {
                        break;
                    }
                    last = now;
                }
                read_while_blocked = progress.load(Ordering::Relaxed);
            }
        },
    );
    assert_eq!(seen.hits, expected);
    assert_eq!(seen.files.len(), 1);
    // Without parking: the head's region and one more (a few buffers).
    assert!(
        read_while_blocked > data.len() as u64 / 2,
        "read {read_while_blocked} bytes of {} while the sink was blocked",
        data.len()
    );
}

#[test]
fn cancel_mid_stream_stops_with_whole_hits_in_order() {
    let dir = TempDir::new("cancel");
    let mut paths = Vec::new();
    let mut datas = Vec::new();
    for k in 0..4 {
        let data = content(30_000, 2);
        let path = dir.0.join(format!("c{k}.ndjson"));
        std::fs::write(&path, &data).unwrap();
        paths.push(path);
        datas.push(data);
    }
    let engine = engine();
    // Four inputs on three threads: a lane each; two: each cut into regions, and the head
    // region stops part-way while the next one is running (its hits then have no place).
    // (The latter raced: four times, so that a regression shows.)
    for (threads, n) in [(1, 4), (3, 4), (3, 2), (3, 2), (3, 2), (3, 2)] {
        let opts = ScanOptions {
            threads,
            buffer_size: 4096,
            ..ScanOptions::default()
        };
        let (expected, _) = reference(&engine, &datas[..n], &opts);
        let cancel = AtomicBool::new(false);
        let (seen, cancelled) = stream(
            &engine,
            paths[..n].iter().cloned().map(Input::Path).collect(),
            &opts,
            64 << 10,
            &cancel,
            &AtomicU64::new(0),
            |seen| {
                if seen.hits.len() == 100 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
        );
        assert!(cancelled);
        assert!(seen.hits.len() >= 100);
        assert!(seen.hits.len() < expected.len() / 2, "{}", seen.hits.len());
        // In order, each one a hit of the full scan.
        let mut rest = expected.iter();
        for hit in &seen.hits {
            assert!(rest.any(|h| h == hit), "{hit:?} out of order or unknown");
        }
        // Every input has statistics; those not finished say so; counts agree with the
        // hits handed out.
        assert_eq!(seen.files.len(), n);
        assert!(seen.files.iter().any(|(_, s)| s.error.is_some()));
        for (source, stats) in &seen.files {
            let got = seen.hits.iter().filter(|h| h.0 == *source).count() as u64;
            assert_eq!(stats.hits, got, "input {source}");
        }
    }
}

/// Cancelled in the middle of a file cut into regions: the head region stops part-way while
/// the regions after it have hits already (parked, or stopped too). Their lines cannot be
/// placed (the head's lines after the stop are not counted): only the file's first part is
/// handed out, each hit at its own line, and its statistics end where that part ends.
#[test]
fn a_cancelled_region_drops_the_regions_after_it() {
    let dir = TempDir::new("cancel-regions");
    let data = content(40_000, 3);
    let path = dir.0.join("big.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    for round in 0..3 {
        let opts = ScanOptions {
            threads: 3,
            buffer_size: 4096,
            ..ScanOptions::default()
        };
        let cancel = AtomicBool::new(false);
        let (seen, cancelled) = stream(
            &engine,
            vec![Input::Path(path.clone())],
            &opts,
            16 << 20,
            &cancel,
            &AtomicU64::new(0),
            |seen| {
                if seen.hits.len() == 2 {
                    // The head stops at its next chunk; meanwhile the other threads scan
                    // and park the regions after it.
                    cancel.store(true, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            },
        );
        assert!(cancelled, "round {round}");
        // Each hit's event carries its line's index.
        for (_, line, _, _, event) in &seen.hits {
            let n: u64 = event
                .split("\"n\":")
                .nth(1)
                .and_then(|rest| rest.split('}').next())
                .and_then(|n| n.parse().ok())
                .unwrap();
            assert_eq!(*line, n + 1, "round {round}: {event}");
        }
        let (_, stats) = &seen.files[0];
        let error = stats
            .error
            .as_ref()
            .expect("the file says it was cut short");
        // The lines and bytes counted are the file's first lines, whole.
        let head = data
            .split(|&b| b == b'\n')
            .take(stats.lines as usize)
            .map(|l| l.len() as u64 + 1)
            .sum::<u64>();
        assert_eq!(stats.bytes, head, "round {round}: {error:?}");
        assert!(stats.lines < 40_000, "round {round}");
        assert_eq!(stats.hits, seen.hits.len() as u64, "round {round}");
    }
}

/// The hits of a scan made with [`HitForms`] (records, rows, the hit kept), in order.
fn formed(engine: &Engine, path: &std::path::Path, threads: usize, forms: &HitForms) -> Vec<Hit> {
    let opts = ScanOptions {
        threads,
        buffer_size: 2048,
        ..ScanOptions::default()
    };
    let mut hits = Vec::new();
    let mut sink = |event| {
        if let ScanEvent::Hit(hit) = event {
            hits.push(hit);
        }
    };
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    let inputs = vec![Input::Path(path.to_path_buf())];
    engine.scan_stream_with(inputs, &opts, &cancel, &progress, 1, Some(forms), &mut sink);
    hits
}

fn names(engine: &Engine) -> RecordMeta {
    let rules = engine.rules().iter().enumerate().map(|(k, rule)| RuleMeta {
        name: format!("rule \"{k}\""),
        id: format!("id-{k}"),
        severity: "high".into(),
        branches: rule.ir.branches.iter().map(|b| b.name.clone()).collect(),
    });
    RecordMeta {
        sources: vec!["in \u{1}.ndjson".into()],
        rules: rules.collect(),
    }
}

#[test]
fn records_and_rows_made_where_hits_are_found_are_the_hits_own() {
    // Made in the scan's threads, put together by the consumer with the line number known
    // only then: byte for byte what the whole hit gives, in regions and on several threads.
    let dir = TempDir::new("forms");
    let mut data = content(3000, 3);
    data.extend_from_slice(b"{\"_index\": \"i\", \"_source\": ");
    data.extend_from_slice(NET_HIT.as_bytes());
    data.extend_from_slice(b"}\n");
    // Not UTF-8: the event is its lossy text.
    let (head, tail) = NET_HIT.split_at(NET_HIT.len() - 1);
    data.extend_from_slice(head.as_bytes());
    data.extend_from_slice(b",\"x\":\"\xc3(\xff\"");
    data.extend_from_slice(tail.as_bytes());
    let path = dir.0.join("f.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    let meta = names(&engine);
    let window = TimeWindow::default();
    let forms = HitForms::new(&engine, Some(meta.clone()), true, true, true, window).unwrap();
    for threads in [1, 2, 3] {
        let hits = formed(&engine, &path, threads, &forms);
        assert_eq!(hits.len(), 2 * 1002, "threads {threads}");
        let (mut made, mut whole) = (Vec::new(), Vec::new());
        let (mut made_rows, mut whole_rows) = (HitRows::new(), HitRows::new());
        for hit in &hits {
            forms.write_record(hit, &mut made).unwrap();
            meta.write(hit, &mut whole).unwrap();
            forms.push_row(hit, &mut made_rows).unwrap();
            whole_rows.push(hit, &meta, &row_projection()).unwrap();
        }
        assert_eq!(String::from_utf8(made), String::from_utf8(whole));
        for (a, b) in made_rows.columns().iter().zip(whole_rows.columns()) {
            match (a.2, b.2) {
                (ColumnData::Text(x), ColumnData::Text(y)) => {
                    assert_eq!(
                        (&x.offsets, &x.data, &x.valid),
                        (&y.offsets, &y.data, &y.valid)
                    );
                }
                (ColumnData::Int(x), ColumnData::Int(y)) => {
                    assert_eq!((&x.values, &x.valid), (&y.values, &y.valid), "{}", a.0);
                }
                _ => panic!("{}: types differ", a.0),
            }
        }
    }
}

#[test]
fn the_time_window_marks_the_hits_outside() {
    let dir = TempDir::new("window");
    let stamps = [
        "\"2024-05-01T10:00:00Z\"",
        "1714557600000", // 2024-05-01T10:00:00Z as epoch milliseconds
        "\"2024-05-01T09:59:59.999999999Z\"",
        "\"2024-05-01T11:00:00+01:00\"",
        "[\"2024-05-02\", \"2024-05-01T10:00:00Z\"]",
        "\"not a date\"",
    ];
    let mut data = Vec::new();
    for stamp in stamps {
        let line = NET_HIT.replacen('{', &format!("{{\"@timestamp\":{stamp},"), 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    data.extend_from_slice(NET_HIT.as_bytes()); // no @timestamp
    let path = dir.0.join("w.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    let since = 1_714_557_600_000_000; // 2024-05-01T10:00:00Z
    let window = TimeWindow {
        since: Some(since),
        until: Some(since + 1),
    };
    let forms = HitForms::new(&engine, Some(names(&engine)), true, false, false, window).unwrap();
    let hits = formed(&engine, &path, 1, &forms);
    let inside: Vec<(u64, bool)> = hits
        .iter()
        .map(|h| (h.line, !h.extra.as_ref().unwrap().outside))
        .collect();
    let want = [true, true, false, true, false, false, false];
    let want: Vec<(u64, bool)> = (1..=7)
        .flat_map(|line| [(line, want[line as usize - 1]); 2])
        .collect();
    assert_eq!(inside, want);
    // Not kept: no event text is copied for them.
    assert!(hits
        .iter()
        .all(|h| h.event.is_empty() && h.witness.is_none()));
    assert!(TimeWindow::default().contains(None));
    // Whole hits alone need no forms.
    let plain = HitForms::new(&engine, None, false, false, true, TimeWindow::default());
    assert!(plain.unwrap().is_plain() && !forms.is_plain());
}

#[test]
fn stage_hits_are_read_for_their_matcher_where_they_are_found() {
    use imds_core::sequence::SequenceMatcher;
    let dir = TempDir::new("stages");
    let mut data = Vec::new();
    for i in 0..600 {
        let line = NET_HIT.replacen(
            '{',
            &format!(
                "{{\"@timestamp\":{},\"destination.port\":[{i},{}],",
                i * 1000,
                i % 3
            ),
            1,
        );
        data.extend_from_slice(if i % 5 == 0 { QUIET } else { &line }.as_bytes());
        data.push(b'\n');
    }
    let path = dir.0.join("s.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    let any = r#"{"node":"pred","field":"x","field_type":"keyword","op":"exists","values":[]}"#;
    let stage = format!(
        r#"{{"expr":{any},"keys":[{{"field":"destination.port","field_type":"long"}}],"missing":false}}"#
    );
    let ir = format!(
        r#"{{"ir_version":1,"id":"q","name":"q","severity":"low","sequence":{{
            "timestamp_field":"@timestamp","tiebreaker_field":null,"maxspan_ms":null,
            "stages":[{stage},{stage}],"until":null,"pipes":[],"size":null}}}}"#
    );
    let matcher = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    let preparer = matcher.preparer().clone();
    let forms = HitForms::new(&engine, None, false, false, false, TimeWindow::default())
        .unwrap()
        .with_stages(vec![None, Some((preparer.clone(), vec![1]))])
        .unwrap();
    assert!(!forms.is_plain());
    for threads in [1, 2] {
        let mut hits = formed(&engine, &path, threads, &forms);
        assert_eq!(hits.len(), 2 * 480);
        for hit in &mut hits {
            let extra = hit.extra.as_mut().unwrap();
            if hit.rule == 0 {
                // Not kept (no `full`), nothing read.
                assert!(hit.event.is_empty() && extra.take_stages().is_empty());
            } else {
                // Its text kept for the spill file, its reading the matcher's own.
                let read = extra.take_stages();
                assert_eq!(read, [preparer.prepare(1, &hit.event).unwrap()]);
                assert!(hit.event.contains("destination.port") && hit.witness.is_none());
            }
        }
    }
    // Both rules stage rules: a line's second stage hit has no text (its first has it).
    let both = HitForms::new(&engine, None, false, false, true, TimeWindow::default())
        .unwrap()
        .with_stages(vec![
            Some((preparer.clone(), vec![0])),
            Some((preparer.clone(), vec![1])),
        ])
        .unwrap();
    let mut hits = formed(&engine, &path, 2, &both);
    assert_eq!(hits.len(), 2 * 480);
    for pair in hits.chunks_mut(2) {
        let text = pair[0].event.clone();
        assert!(text.contains("destination.port") && pair[1].event.is_empty());
        assert_eq!(
            (pair[0].line, pair[0].rule, pair[1].rule),
            (pair[1].line, 0, 1)
        );
        for hit in pair {
            let read = hit.extra.as_mut().unwrap().take_stages();
            assert_eq!(read, [preparer.prepare(hit.rule, &text).unwrap()]);
        }
    }
    // One stage rule for several stages (`with runs=N`): read once per stage, in order, as
    // each stage's own reading reads it; the same with stages of other join keys.
    let other_keys = ir.replacen("destination.port", "@timestamp", 1);
    for ir in [&ir, &other_keys] {
        let preparer = SequenceMatcher::new(ir, 1 << 20, None)
            .unwrap()
            .preparer()
            .clone();
        let runs = HitForms::new(&engine, None, false, false, true, TimeWindow::default())
            .unwrap()
            .with_stages(vec![None, Some((preparer.clone(), vec![0, 1]))])
            .unwrap();
        let mut hits = formed(&engine, &path, 2, &runs);
        assert_eq!(hits.len(), 2 * 480);
        for hit in hits.iter_mut().filter(|h| h.rule == 1) {
            let read = hit.extra.as_mut().unwrap().take_stages();
            let own: Vec<_> = (0..2)
                .map(|s| preparer.prepare(s, &hit.event).unwrap())
                .collect();
            assert_eq!(read, own);
            assert_ne!(read[0], read[1]); // (their places differ)
        }
        // A stage the rule lacks: nothing read, the text kept for the matcher to refuse.
        let bad = HitForms::new(&engine, None, false, false, true, TimeWindow::default())
            .unwrap()
            .with_stages(vec![None, Some((preparer.clone(), vec![0, 5]))])
            .unwrap();
        for hit in formed(&engine, &path, 1, &bad)
            .iter_mut()
            .filter(|h| h.rule == 1)
        {
            assert!(hit.extra.as_mut().unwrap().take_stages().is_empty());
            assert!(hit.event.contains("destination.port"));
        }
    }
    let two = HitForms::new(&engine, None, false, false, true, TimeWindow::default()).unwrap();
    assert!(two.with_stages(vec![None]).is_err());
}

/// What a [`Live`] stream and the scan's sink saw, in order.
type Log = std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>;

/// A live stream: its parts, each followed by a read that finds no data yet
/// ([`imds_core::source::idle`]), then such reads until `seen` is set or `patience` of them
/// were given, then its end (told to `log`).
struct Live {
    parts: std::collections::VecDeque<Vec<u8>>,
    /// The last read gave data: the next one finds none.
    gave: bool,
    seen: std::sync::Arc<AtomicBool>,
    patience: usize,
    log: Log,
}

impl Live {
    fn new(parts: &[&str], seen: &std::sync::Arc<AtomicBool>, log: &Log) -> Live {
        Live {
            parts: parts.iter().map(|p| p.as_bytes().to_vec()).collect(),
            gave: false,
            seen: seen.clone(),
            patience: 5000,
            log: log.clone(),
        }
    }
}

impl std::io::Read for Live {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.gave {
            if let Some(part) = self.parts.front_mut() {
                let n = buf.len().min(part.len());
                buf[..n].copy_from_slice(&part[..n]);
                part.drain(..n);
                if part.is_empty() {
                    self.parts.pop_front();
                    self.gave = true;
                }
                return Ok(n);
            }
        }
        self.gave = false;
        if self.parts.is_empty() && (self.patience == 0 || self.seen.load(Ordering::SeqCst)) {
            self.log.lock().unwrap().push("end");
            return Ok(0);
        }
        self.patience = self.patience.saturating_sub(1);
        std::thread::sleep(Duration::from_millis(1));
        Err(imds_core::source::idle())
    }
}

#[test]
fn a_live_streams_hits_are_handed_on_before_more_comes() {
    // Lines fewer than a buffer, then a stream that waits: the hits must not wait for the
    // buffer to fill or the stream to end, on one thread or several.
    let engine = engine();
    let text = format!("{QUIET}\n{NET_HIT}\n{QUIET}");
    for threads in [1, 2] {
        let opts = ScanOptions {
            threads,
            ..ScanOptions::default()
        };
        let (seen, log) = (std::sync::Arc::new(AtomicBool::new(false)), Log::default());
        let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
        let mut sink = |event| {
            let what = match event {
                ScanEvent::Hit(_) => "hit",
                ScanEvent::File { .. } => "file",
                ScanEvent::Idle => "idle",
            };
            if what == "hit" {
                seen.store(true, Ordering::SeqCst);
            }
            log.lock().unwrap().push(what);
        };
        let input = Input::Reader(Box::new(Live::new(&[&text], &seen, &log)));
        engine.scan_stream(vec![input], &opts, &cancel, &progress, 1 << 20, &mut sink);
        let log = log.lock().unwrap().clone();
        // Two hits (the seed rule twice), the wait told, then the end (and the last line).
        assert_eq!(
            log,
            ["hit", "hit", "idle", "end", "file"],
            "{threads} thread(s)"
        );
    }
    // Without waits, no idle is told.
    let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
    let mut events = Vec::new();
    let mut sink = |event| events.push(matches!(event, ScanEvent::Idle));
    let input = Input::Reader(Box::new(std::io::Cursor::new(text.into_bytes())));
    let opts = ScanOptions::default();
    engine.scan_stream(vec![input], &opts, &cancel, &progress, 1 << 20, &mut sink);
    assert_eq!(events, [false, false, false]);
}

#[test]
fn waits_inside_lines_change_nothing() {
    // Waits cut lines, a long line read past and a small buffer's growth: the hits and
    // counts are those of the same text read at once.
    let engine = engine();
    let long = format!("{{\"message\": \"{}\"}}", "x".repeat(300));
    let text = format!("{QUIET}\n{NET_HIT}\n{long}\n{NET_HIT}\n{QUIET}");
    let cuts = [5, 90, 120, 180, 260, 330, 400, text.len() - 3];
    let mut parts = Vec::new();
    let mut at = 0;
    for cut in cuts {
        parts.push(&text[at..cut]);
        at = cut;
    }
    parts.push(&text[at..]);
    for threads in [1, 2] {
        let opts = ScanOptions {
            threads,
            buffer_size: 64,
            max_line_bytes: 200,
            ..ScanOptions::default()
        };
        let scan = |input: Input| {
            let (cancel, progress) = (AtomicBool::new(false), AtomicU64::new(0));
            let (mut hits, mut files) = (Vec::new(), Vec::new());
            let mut sink = |event| match event {
                ScanEvent::Hit(hit) => hits.push(key(&hit)),
                ScanEvent::File { stats, .. } => files.push(stats),
                ScanEvent::Idle => {}
            };
            engine.scan_stream(vec![input], &opts, &cancel, &progress, 1 << 20, &mut sink);
            let stats: Vec<_> = (files.iter())
                .map(|s| (s.events, s.hits, s.malformed, s.long_lines, s.bytes))
                .collect();
            (hits, stats)
        };
        // (It ends after its last part.)
        let (seen, log) = (std::sync::Arc::new(AtomicBool::new(true)), Log::default());
        let live = scan(Input::Reader(Box::new(Live::new(&parts, &seen, &log))));
        let whole = scan(Input::Reader(Box::new(std::io::Cursor::new(
            text.clone().into_bytes(),
        ))));
        assert_eq!(live, whole, "{threads} thread(s)");
        assert_eq!(live.1[0].3, 1, "the long line");
        assert_eq!(live.0.len(), 4);
    }
}

#[test]
fn a_stage_hits_reading_from_the_scans_parse_is_that_of_its_text() {
    // The scan's parse of a candidate line serves its stage readers (their fields added to
    // its projection): what they read must be what reading the hit's text alone gives, for
    // plain lines, exporters' wrappers (one inside another too), odd timestamps and keys,
    // with and without a time window.
    use imds_core::sequence::SequenceMatcher;
    let dir = TempDir::new("stage-parse");
    let mut data = Vec::new();
    for i in 0..300 {
        let stamp = match i % 4 {
            0 => format!("{}", i * 1000),
            1 => format!("\"2024-05-01T10:00:{:02}Z\"", i % 60),
            2 => "[1,2]".to_string(),
            _ => "\"not a date\"".to_string(),
        };
        let line = NET_HIT.replacen(
            '{',
            &format!(
                r#"{{"@timestamp":{stamp},"host":{{"id":["h{}",{}]}},"user.id":{i}.50,"#,
                i % 3,
                i % 2
            ),
            1,
        );
        let line = match i % 3 {
            0 => line,
            1 => format!(r#"{{"_index":"logs","_id":"{i}","_source":{line}}}"#),
            _ => format!(
                r#"{{"_index":"a","_source":{{"_index":"b","_source":{line},"host":{{"id":"outer"}},"user.id":7,"@timestamp":5,"event":{{"category":["network"]}},"destination":{{"ip":"169.254.169.254"}}}}}}"#
            ),
        };
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
    }
    let path = dir.0.join("s.ndjson");
    std::fs::write(&path, &data).unwrap();
    let engine = engine();
    let any = r#"{"node":"pred","field":"x","field_type":"keyword","op":"exists","values":[]}"#;
    let keys =
        r#"[{"field":"host.id","field_type":"keyword"},{"field":"user.id","field_type":"double"}]"#;
    let stage = format!(r#"{{"expr":{any},"keys":{keys},"missing":false}}"#);
    let ir = format!(
        r#"{{"ir_version":1,"id":"q","name":"q","severity":"low","sequence":{{
            "timestamp_field":"@timestamp","tiebreaker_field":"user.id","maxspan_ms":null,
            "stages":[{stage},{stage}],"until":null,"pipes":[],"size":null}}}}"#
    );
    let matcher = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    let preparer = matcher.preparer().clone();
    let window = TimeWindow {
        since: Some(i64::MIN + 1),
        until: None,
    };
    for window in [TimeWindow::default(), window] {
        let forms = HitForms::new(&engine, None, false, false, false, window)
            .unwrap()
            .with_stages(vec![None, Some((preparer.clone(), vec![1]))])
            .unwrap();
        let mut hits = formed(&engine, &path, 2, &forms);
        let stage_hits: Vec<&mut Hit> = hits.iter_mut().filter(|h| h.rule == 1).collect();
        assert!(!stage_hits.is_empty());
        let (mut read, mut nested) = (0, 0);
        for hit in stage_hits {
            let extra = hit.extra.as_mut().unwrap();
            if extra.outside {
                continue; // not read
            }
            let got = extra.take_stages();
            assert!(got.len() <= 1);
            let got = got.into_iter().next();
            assert_eq!(got, preparer.prepare(1, &hit.event).ok(), "{}", hit.event);
            // The event the rule matched, not the `_source` inside it.
            if hit.event.contains(r#""outer""#) {
                nested += 1;
                assert!(format!("{got:?}").contains("outer"), "{got:?}");
            }
            read += usize::from(got.is_some());
        }
        assert!(read >= 100 && nested >= 50, "{read} {nested}");
    }
}
