//! Time a scan of one file with many rules, on one thread, in memory: the prefilter's
//! candidates, the hits (and a digest of them, to compare runs) and the CPU and wall time; or,
//! with `--per-rule`, the share of lines the rule gate opens each rule on beside the share it
//! matches (for issue 15's measurements and `perf`).
//!
//! ```sh
//! cargo run --release -p imds-core --example many_rules -- \
//!     RULES.jsonl CORPUS.ndjson [RUNS] [--no-prefilter] [--per-rule]
//! ```
//!
//! `RULES.jsonl`: one rule IR (JSON) per line, as the engine receives them (a sequence's
//! stages as rules of their own; `imds_scan.sequences.plan_rules(...).engine_rules`).

use imds_core::{Engine, RuleIr, ScanOptions};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(rules), Some(corpus)) = (args.first(), args.get(1)) else {
        eprintln!(
            "usage: many_rules RULES.jsonl CORPUS.ndjson [RUNS] [--no-prefilter] [--per-rule]"
        );
        std::process::exit(2);
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let prefilter = !args.iter().any(|a| a == "--no-prefilter");
    let per_rule = args.iter().any(|a| a == "--per-rule");
    let text = std::fs::read_to_string(rules).expect("rules file");
    let data = std::fs::read(corpus).expect("corpus");
    let t = Instant::now();
    let irs: Vec<RuleIr> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| RuleIr::from_json(l).expect("rule IR"))
        .collect();
    let n = irs.len();
    if per_rule {
        return open_shares(irs, &data);
    }
    let engine = Engine::new(irs).expect("rules compile");
    let built = t.elapsed();
    let opts = ScanOptions {
        threads: 1,
        prefilter,
        ..ScanOptions::default()
    };
    println!(
        "{n} rules, built in {:.3} s; {}",
        built.as_secs_f64(),
        engine.prefilter().strategy()
    );
    for _ in 0..runs {
        let t = Instant::now();
        let cpu0 = cpu_secs();
        let report = engine.scan_bytes(&data, &opts);
        let cpu = cpu_secs() - cpu0;
        let secs = t.elapsed().as_secs_f64();
        let stats = &report.files[0];
        // A digest of the hits (line, rule, branch), to compare runs.
        let digest = report.hits.iter().fold(0u64, |h, hit| {
            let k = (hit.line << 24) ^ ((hit.rule as u64) << 4) ^ hit.branch as u64;
            (h ^ k).wrapping_mul(0x100_0000_01b3)
        });
        println!(
            "digest {digest:016x}, cpu {cpu:.3} s, wall {:.3} s, {:.0} MB/s: {} events, {} candidates ({:.1}%), {} hits",
            secs,
            data.len() as f64 / secs / 1e6,
            stats.events,
            stats.candidates,
            100.0 * stats.candidates as f64 / stats.events.max(1) as f64,
            stats.hits
        );
    }
}

/// Per rule, the share of lines the prefilter's rule gate opens it on (the rule twice: the
/// gate needs two rules), most open first; then the sum, the evaluations per line.
fn open_shares(irs: Vec<RuleIr>, data: &[u8]) {
    let opts = ScanOptions {
        threads: 1,
        ..ScanOptions::default()
    };
    let mut shares: Vec<(f64, f64, String)> = irs
        .into_iter()
        .map(|ir| {
            let label = format!("{} [{}]", ir.name, ir.id);
            let engine = Engine::new(vec![ir.clone(), ir]).expect("rules compile");
            let report = engine.scan_bytes(data, &opts);
            let stats = &report.files[0];
            let events = stats.events.max(1) as f64;
            let share = stats.candidates as f64 / events;
            (share, stats.hits as f64 / 2.0 / events, label)
        })
        .collect();
    shares.sort_by(|a, b| (b.0 - b.1).total_cmp(&(a.0 - a.1)));
    let total: f64 = shares.iter().map(|s| s.0).sum();
    let hit: f64 = shares.iter().map(|s| s.1).sum();
    println!("evaluations per line (sum of shares): {total:.2}; hits per line {hit:.2}");
    println!("open%  hit%  rule");
    for (share, hits, label) in shares.iter().take(60) {
        println!("{:5.1} {:5.1}  {label}", 100.0 * share, 100.0 * hits);
    }
}

/// This thread's time on a CPU (Linux), so that a loaded machine's waits do not count.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}
