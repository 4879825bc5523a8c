//! criterion benchmarks of the engine's three stages, on an in-memory buffer:
//!
//! - `prefilter`: `Prefilter::find` over the whole buffer, counting candidate lines (MB/s);
//! - `parse_eval`: `event::parse_line` + `CompiledRule::evaluate` on each candidate line
//!   (lines/s and MB/s of candidate bytes), and the parse projected on the rule's fields as
//!   the engine does it (`parse_line_projected`);
//! - `scan_bytes`: `Engine::scan_bytes` end to end, with and without the prefilter (MB/s).
//!
//! ```sh
//! cargo bench -p imds-core --bench engine
//! IMDS_BENCH_CORPUS=bench/data/ecs-1G-s7.ndjson IMDS_BENCH_MB=256 cargo bench -p imds-core
//! ```
//!
//! The buffer is the first `IMDS_BENCH_MB` MiB (default 64) of `IMDS_BENCH_CORPUS`, else of
//! the smallest generated corpus `bench/data/ecs-*.ndjson`, else the committed sample
//! (`bench/sample/ecs-sample.ndjson`, repeated; it has far more hits than a real log) — cut at
//! a line end. The seed rule's IR comes from `tests/data/seed_ir.json`, or from the file
//! `IMDS_BENCH_IR` names (one rule's IR as JSON, e.g. a broad rule with many candidates).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use imds_core::Prefilter;
use imds_core::{
    parse_line, parse_line_projected, CompiledRule, Engine, Projection, RuleIr, ScanOptions,
};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SEED: &str = include_str!("../tests/data/seed_ir.json");

fn seed_ir() -> RuleIr {
    match std::env::var_os("IMDS_BENCH_IR") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", Path::new(&path).display()));
            RuleIr::from_json(&text).expect("IMDS_BENCH_IR parses")
        }
        None => RuleIr::from_json(SEED).expect("seed IR parses"),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The corpus file to read and whether it is the small committed sample.
fn corpus_path() -> (PathBuf, bool) {
    if let Some(p) = std::env::var_os("IMDS_BENCH_CORPUS") {
        return (PathBuf::from(p), false);
    }
    let data = repo_root().join("bench/data");
    let mut generated: Vec<(u64, PathBuf)> = std::fs::read_dir(&data)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("ecs-") && name.ends_with(".ndjson")
        })
        .filter_map(|p| Some((p.metadata().ok()?.len(), p)))
        .collect();
    generated.sort();
    match generated.into_iter().next() {
        Some((_, p)) => (p, false),
        None => (repo_root().join("bench/sample/ecs-sample.ndjson"), true),
    }
}

/// Up to `limit` bytes of whole lines.
fn load_corpus() -> Vec<u8> {
    let limit = std::env::var("IMDS_BENCH_MB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(64)
        << 20;
    let (path, sample) = corpus_path();
    let mut data = Vec::with_capacity(limit);
    {
        use std::io::Read;
        let file = std::fs::File::open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        file.take(limit as u64)
            .read_to_end(&mut data)
            .expect("read corpus");
    }
    if sample {
        let one = data.clone();
        while data.len() + one.len() <= limit {
            data.extend_from_slice(&one);
        }
    }
    let cut = memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1);
    data.truncate(cut);
    eprintln!(
        "imds-core bench corpus: {} ({:.1} MiB{})",
        path.display(),
        data.len() as f64 / (1 << 20) as f64,
        if sample { ", sample repeated" } else { "" }
    );
    data
}

/// Byte ranges of the lines the prefilter passes.
fn candidate_lines(pf: &Prefilter, buf: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(hit) = pf.find(buf, at, buf.len()) {
        let start = memchr::memrchr(b'\n', &buf[..hit]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &buf[hit..]).map_or(buf.len(), |i| hit + i);
        out.push((start, end));
        if end >= buf.len() {
            break;
        }
        at = end + 1;
    }
    out
}

fn benches(c: &mut Criterion) {
    let buf = load_corpus();
    let ir = seed_ir();
    let prefilter = Prefilter::new(std::slice::from_ref(&ir));
    let rule = CompiledRule::new(ir.clone()).expect("seed rule compiles");
    let engine = Engine::new(vec![ir]).expect("engine builds");
    let cands = candidate_lines(&prefilter, &buf);
    let lines = bytecount_lines(&buf);
    eprintln!(
        "prefilter: {} ({} needles); {} of {} lines are candidates ({:.3}%)",
        prefilter.strategy(),
        prefilter.needles().len(),
        cands.len(),
        lines,
        100.0 * cands.len() as f64 / lines.max(1) as f64
    );

    let mut g = c.benchmark_group("prefilter");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("find_candidate_lines", |b| {
        b.iter(|| candidate_lines(&prefilter, black_box(&buf)).len())
    });
    g.bench_function("memchr_newlines_baseline", |b| {
        b.iter(|| bytecount_lines(black_box(&buf)))
    });
    g.finish();

    if !cands.is_empty() {
        let cand_bytes: usize = cands.iter().map(|(s, e)| e - s).sum();
        let mut g = c.benchmark_group("parse_eval");
        g.sample_size(20).measurement_time(Duration::from_secs(5));
        g.throughput(Throughput::Elements(cands.len() as u64));
        g.bench_function(BenchmarkId::new("candidate_lines", cands.len()), |b| {
            b.iter(|| {
                let mut hits = 0usize;
                for &(s, e) in &cands {
                    if let Ok(Some(p)) = parse_line(black_box(&buf[s..e])) {
                        hits += usize::from(rule.evaluate(&p.doc).is_some());
                    }
                }
                hits
            })
        });
        g.throughput(Throughput::Bytes(cand_bytes as u64));
        g.bench_function(BenchmarkId::new("parse_only_bytes", cand_bytes), |b| {
            b.iter(|| {
                cands
                    .iter()
                    .filter(|&&(s, e)| matches!(parse_line(black_box(&buf[s..e])), Ok(Some(_))))
                    .count()
            })
        });
        let projection = Projection::new(rule.fields());
        g.bench_function(BenchmarkId::new("parse_projected_bytes", cand_bytes), |b| {
            b.iter(|| {
                cands
                    .iter()
                    .filter(|&&(s, e)| {
                        matches!(
                            parse_line_projected(black_box(&buf[s..e]), &projection),
                            Ok(Some(_))
                        )
                    })
                    .count()
            })
        });
        g.finish();
    }

    let mut g = c.benchmark_group("scan_bytes");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let opts = ScanOptions {
        threads: 1,
        ..ScanOptions::default()
    };
    g.bench_function("prefilter", |b| {
        b.iter(|| engine.scan_bytes(black_box(&buf), &opts).hits.len())
    });
    let no_pf = ScanOptions {
        prefilter: false,
        ..opts.clone()
    };
    g.bench_function("no_prefilter_every_line_parsed", |b| {
        b.iter(|| engine.scan_bytes(black_box(&buf), &no_pf).hits.len())
    });
    g.finish();
}

fn bytecount_lines(buf: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', buf).count()
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
