//! Reads the row cells of every line of a file (`RowCells::of_text`, as a hit's row is made),
//! `RUNS` times: for instruction counts of the rows path (`valgrind --tool=callgrind`).
//! usage: row_cells EVENTS.ndjson [RUNS]

use imds_core::{row_projection, RowCells};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: row_cells EVENTS.ndjson [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(1);
    let text = std::fs::read_to_string(path).expect("events file");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let projection = row_projection();
    for _ in 0..runs {
        let t = Instant::now();
        let bytes: usize = lines
            .iter()
            .map(|l| RowCells::of_text(l, None, &projection).bytes())
            .sum();
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} lines, {bytes} bytes of cells, {:.3} s ({:.0} MB/s)",
            lines.len(),
            secs,
            text.len() as f64 / secs / 1e6
        );
    }
}
