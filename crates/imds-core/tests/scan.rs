//! Scanning files end to end with the seed rule: line numbering, framing, buffers, errors,
//! and the prefilter's soundness against a full parse of every line.

use imds_core::{Engine, RuleIr, ScanOptions, ScanReport};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

const SEED: &str = include_str!("data/seed_ir.json");

fn engine() -> Engine {
    Engine::new(vec![RuleIr::from_json(SEED).unwrap()]).unwrap()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("imds-core-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scan(paths: &[PathBuf], opts: &ScanOptions) -> ScanReport {
    engine().scan_paths(paths, opts, &AtomicBool::new(false))
}

/// (source, line, rule, branch) of each hit.
fn hit_keys(report: &ScanReport) -> Vec<(usize, u64, usize, usize)> {
    report
        .hits
        .iter()
        .map(|h| (h.source, h.line, h.rule, h.branch))
        .collect()
}

const NET_HIT: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"169.254.169.254"}}"#;
const PROC_HIT: &str = r#"{"event":{"category":"process","type":"start"},"process":{"name":"curl","command_line":"curl http://169.254.169.254/latest/meta-data/"}}"#;
const QUIET: &str =
    r#"{"event":{"category":["network"]},"destination":{"ip":"10.0.0.1"},"message":"ok"}"#;

#[test]
fn line_numbers_events_and_blank_lines() {
    let dir = TempDir::new("lines");
    let content = format!("{QUIET}\n\n{NET_HIT}\n   \n{QUIET}\n{PROC_HIT}\n");
    let path = dir.file("a.ndjson", content.as_bytes());
    let report = scan(&[path], &ScanOptions::default());
    assert_eq!(hit_keys(&report), [(0, 3, 0, 0), (0, 6, 0, 1)]);
    let f = &report.files[0];
    assert_eq!(f.events, 4);
    assert_eq!(f.hits, 2);
    assert_eq!(f.malformed, 0);
    assert_eq!(f.bytes, content.len() as u64);
    assert_eq!(f.error, None);
    assert_eq!(report.hits[0].event, NET_HIT);
    let w = report.hits[0].witness.as_ref().unwrap();
    assert_eq!(
        (w.field.as_str(), w.value.as_str()),
        ("destination.ip", "169.254.169.254")
    );
    assert!(!report.cancelled);
}

#[test]
fn crlf_bom_and_no_final_newline() {
    let dir = TempDir::new("crlf");
    let content = format!("\u{FEFF}{NET_HIT}\r\n{QUIET}\r\n\r\n{PROC_HIT}");
    let path = dir.file("a.ndjson", content.as_bytes());
    let report = scan(&[path], &ScanOptions::default());
    assert_eq!(hit_keys(&report), [(0, 1, 0, 0), (0, 4, 0, 1)]);
    assert_eq!(report.hits[0].event, NET_HIT, "no BOM, no CR");
    assert_eq!(report.hits[1].event, PROC_HIT);
    assert_eq!(report.files[0].events, 3);
    assert_eq!(report.files[0].malformed, 0);
}

#[test]
fn bom_line_that_is_not_a_candidate_is_well_framed() {
    let e = engine();
    let data = format!("\u{FEFF}{QUIET}\n{QUIET}\n");
    let report = e.scan_bytes(data.as_bytes(), &ScanOptions::default());
    assert_eq!(report.files[0].events, 2);
    assert_eq!(report.files[0].malformed, 0);
}

#[test]
fn malformed_lines_are_counted_with_line_numbers() {
    let dir = TempDir::new("malformed");
    let lines = [
        QUIET,
        r#"{"event":{"category":["network"]},"destination":{"ip":"#, // truncated, no needle
        NET_HIT,
        "garbage that is not json",
        r#"{"destination":{"ip":"169.254.169.254"}"#, // truncated candidate
        r#"["not", "an", "object"]"#,
        PROC_HIT,
    ];
    let path = dir.file("a.ndjson", (lines.join("\n") + "\n").as_bytes());
    let opts = ScanOptions {
        max_examples: 3,
        ..ScanOptions::default()
    };
    let report = scan(&[path], &opts);
    assert_eq!(hit_keys(&report), [(0, 3, 0, 0), (0, 7, 0, 1)]);
    let f = &report.files[0];
    assert_eq!(f.events, 7);
    assert_eq!(f.malformed, 4);
    let lines: Vec<u64> = f.malformed_examples.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [2, 4, 5], "only max_examples are kept");
    assert_eq!(f.malformed_examples[0].1, "not a JSON object line");
    assert!(
        f.malformed_examples[2].1.contains("JSON"),
        "{:?}",
        f.malformed_examples
    );
}

#[test]
fn lines_crossing_buffer_edges_sequential_and_parallel() {
    let dir = TempDir::new("edges");
    let mut content = String::from("\u{FEFF}");
    for i in 0..60 {
        let line = match i % 6 {
            0 => NET_HIT.to_string(),
            1 => format!(r#"{{"padding":"{}","n":{i}}}"#, "x".repeat(i * 7)),
            2 => PROC_HIT.to_string(),
            3 => String::new(),
            4 => format!("broken {i}"),
            _ => QUIET.to_string(),
        };
        content.push_str(&line);
        content.push_str(if i % 2 == 0 { "\n" } else { "\r\n" });
    }
    let path = dir.file("a.ndjson", content.as_bytes());
    let one = |buffer_size, threads| {
        let opts = ScanOptions {
            buffer_size,
            threads,
            max_examples: 4,
            ..ScanOptions::default()
        };
        scan(std::slice::from_ref(&path), &opts)
    };
    let reference = engine().scan_bytes(
        content.as_bytes(),
        &ScanOptions {
            max_examples: 4,
            ..ScanOptions::default()
        },
    );
    assert_eq!(reference.hits.len(), 20);
    assert_eq!(reference.hits[0].line, 1, "BOM line");
    assert_eq!(reference.files[0].malformed, 10);
    for threads in [1, 2, 3] {
        for buffer_size in [1, 2, 3, 7, 16, 64, 100, 333, 1024, 1 << 20] {
            let report = one(buffer_size, threads);
            let what = format!("buffer {buffer_size}, threads {threads}");
            assert_eq!(hit_keys(&report), hit_keys(&reference), "{what}");
            let (a, b) = (&report.files[0], &reference.files[0]);
            assert_eq!(
                (a.events, a.candidates, a.malformed, a.bytes),
                (b.events, b.candidates, b.malformed, b.bytes),
                "{what}"
            );
            assert_eq!(a.malformed_examples, b.malformed_examples, "{what}");
            let events: Vec<&str> = report.hits.iter().map(|h| h.event.as_str()).collect();
            let expected: Vec<&str> = reference.hits.iter().map(|h| h.event.as_str()).collect();
            assert_eq!(events, expected, "{what}");
        }
    }
}

#[test]
fn scan_reader_in_parallel_matches_scan_bytes() {
    let mut content = String::new();
    for i in 0..5000 {
        content.push_str(match i % 7 {
            0 => NET_HIT,
            3 => PROC_HIT,
            5 => "oops",
            _ => QUIET,
        });
        content.push('\n');
    }
    let reference = engine().scan_bytes(content.as_bytes(), &ScanOptions::default());
    for threads in [1, 2, 4] {
        let opts = ScanOptions {
            threads,
            buffer_size: 4096,
            ..ScanOptions::default()
        };
        let report = engine().scan_reader(content.as_bytes(), 0, &opts, &AtomicBool::new(false));
        assert_eq!(hit_keys(&report), hit_keys(&reference), "threads {threads}");
        assert_eq!(
            report.files[0].malformed_examples,
            reference.files[0].malformed_examples
        );
        assert_eq!(report.files[0].events, 5000);
    }
}

#[test]
fn file_errors_do_not_stop_the_scan() {
    let dir = TempDir::new("errors");
    let a = dir.file("a.ndjson", format!("{NET_HIT}\n").as_bytes());
    let b = dir.file("b.ndjson", format!("{QUIET}\n{PROC_HIT}\n").as_bytes());
    let missing = dir.0.join("missing.ndjson");
    let paths = vec![a, missing, dir.0.clone(), b];
    for threads in [1, 2, 0] {
        let opts = ScanOptions {
            threads,
            ..ScanOptions::default()
        };
        let report = scan(&paths, &opts);
        assert_eq!(report.files.len(), 4);
        assert_eq!(hit_keys(&report), [(0, 1, 0, 0), (3, 2, 0, 1)]);
        assert!(report.files[0].error.is_none());
        assert!(report.files[1].error.is_some());
        assert!(report.files[2]
            .error_text()
            .as_deref()
            .unwrap()
            .contains("directory"));
        assert!(report.files[3].error.is_none());
        assert_eq!(report.files[3].events, 2);
    }
}

/// Yields its data, then fails.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.data.len() {
            return Err(std::io::Error::other("device gone"));
        }
        let n = buf.len().min(self.data.len() - self.pos).min(10);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn read_error_midway_keeps_what_was_read() {
    let data = format!("{NET_HIT}\n{QUIET}\n").into_bytes();
    let reader = FailingReader {
        data: data.clone(),
        pos: 0,
    };
    let report = engine().scan_reader(reader, 5, &ScanOptions::default(), &AtomicBool::new(false));
    assert_eq!(hit_keys(&report), [(5, 1, 0, 0)]);
    let f = &report.files[0];
    assert_eq!(f.bytes, data.len() as u64);
    assert_eq!(f.events, 2);
    assert!(f.error_text().as_deref().unwrap().contains("device gone"));
}

#[test]
fn cancel_stops_the_scan() {
    let dir = TempDir::new("cancel");
    let a = dir.file("a.ndjson", format!("{NET_HIT}\n").as_bytes());
    let report = engine().scan_paths(&[a], &ScanOptions::default(), &AtomicBool::new(true));
    assert!(report.cancelled);
    assert!(report.hits.is_empty());
}

#[test]
fn one_hit_per_matching_rule_sorted() {
    let seed = RuleIr::from_json(SEED).unwrap();
    let mut other = seed.clone();
    other.id = "copy".into();
    let engine = Engine::new(vec![seed, other]).unwrap();
    let data = format!("{QUIET}\n{PROC_HIT}\n{NET_HIT}\n");
    let report = engine.scan_bytes(data.as_bytes(), &ScanOptions::default());
    assert_eq!(
        hit_keys(&report),
        [(0, 2, 0, 1), (0, 2, 1, 1), (0, 3, 0, 0), (0, 3, 1, 0)]
    );
    assert_eq!(report.files[0].hits, 4);
}

/// Rules with the same conditions and allowlist (a sequence's `with runs=N` stages) share
/// one evaluation per line: each still has the hits, witnesses and allowlist counts it has
/// alone, and a copy with another allowlist or branch order is judged on its own.
#[test]
fn rules_with_the_same_conditions_each_have_their_own_hits() {
    let seed = RuleIr::from_json(SEED).unwrap();
    let renamed = |id: &str, ir: &RuleIr| {
        let mut ir = ir.clone();
        ir.id = id.into();
        ir.name = id.into();
        ir.severity = "low".into();
        for (k, b) in ir.branches.iter_mut().enumerate() {
            b.name = format!("{id}-{k}");
        }
        ir
    };
    let mut allowed: serde_json::Value = serde_json::from_str(SEED).unwrap();
    allowed["allowlist"] = serde_json::json!([{"node": "pred", "field": "destination.address",
        "field_type": "keyword", "op": "eq_ci", "values": ["fd00:ec2::254"]}]);
    let allowed = RuleIr::from_json(&allowed.to_string()).unwrap();
    let mut reversed = seed.clone();
    reversed.branches.reverse();
    let rules = vec![
        seed.clone(),
        allowed.clone(),
        renamed("twin", &seed),
        reversed.clone(),
        renamed("allowed-twin", &allowed),
        renamed("twin-2", &seed),
    ];
    let engine = Engine::new(rules.clone()).unwrap();
    let data = mixed_lines().join("\n");
    for prefilter in [true, false] {
        for threads in [1, 2] {
            let opts = ScanOptions {
                prefilter,
                threads,
                buffer_size: 64,
                ..ScanOptions::default()
            };
            let report = engine.scan_bytes(data.as_bytes(), &opts);
            for (k, rule) in rules.iter().enumerate() {
                let alone = Engine::new(vec![rule.clone()]).unwrap();
                let expected = alone.scan_bytes(data.as_bytes(), &opts);
                assert!(!expected.hits.is_empty());
                let hits = |r: &ScanReport, rule: usize| -> Vec<_> {
                    (r.hits.iter())
                        .filter(|h| h.rule == rule)
                        .map(|h| (h.line, h.branch, h.witness.clone(), h.event.clone()))
                        .collect()
                };
                assert_eq!(hits(&report, k), hits(&expected, 0), "rule {k}");
                let allowlisted = |r: &ScanReport, rule: usize| -> Vec<_> {
                    (r.files[0].allowlisted.iter())
                        .filter(|((r, _), _)| *r == rule)
                        .map(|((_, e), n)| (*e, *n))
                        .collect()
                };
                assert_eq!(allowlisted(&report, k), allowlisted(&expected, 0));
            }
            assert_eq!(report.files[0].allowlisted.values().sum::<u64>(), 4);
        }
    }
}

/// Lines that hit, nearly hit, or hide the rule's literals behind escapes, case and other
/// address spellings.
fn mixed_lines() -> Vec<String> {
    let net = |dest: &str, extra: &str| {
        format!(r#"{{"event":{{"category":["network"]}},"destination":{dest}{extra}}}"#)
    };
    let proc = |cmd: &str, extra: &str| {
        format!(
            r#"{{"event":{{"category":["process"],"type":["start"]}},"process":{{"command_line":"{cmd}"{extra}}}}}"#
        )
    };
    vec![
        net(r#"{"ip":"169.254.169.254"}"#, ""),
        net(r#"{"ip":"::FFFF:A9FE:A9FE"}"#, ""),
        net(r#"{"ip":"0:0:0:0:0:ffff:169.254.169.254"}"#, ""),
        net(r#"{"ip":"\u0031\u0036\u0039.254.169.254"}"#, ""),
        net(r#"{"ip":"::169.254.169.254"}"#, ""),
        net(r#"{"ip":"169.254.169.054"}"#, ""),
        net(r#"{"ip":["10.0.0.1","::ffff:a9fe:a9fe"]}"#, ""),
        net(r#"{"ip":"169.254.169.254"}"#, r#","process":{"name":"CLOUD-INIT"}"#),
        net(r#"{"address":"fd00:ec2::254"}"#, ""),
        net(r#"{"address":"FD00:EC2::254"}"#, ""),
        net(r#"{"address":"fd00:ec2:\u003a254"}"#, ""),
        net(r#"{"ip":"10.1.2.3"}"#, r#","url":{"domain":"metadata.google.internal"}"#),
        net(r#"{"ip":"10.1.2.3"}"#, r#","url":{"domain":"Metadata.Google.Internal"}"#),
        net(r#"{"ip":"10.1.2.3"}"#, r#","url.domain":"metadata\u002egoogle.internal""#),
        proc(r"curl http:\/\/169.254.169.254\/latest\/meta-data\/", ""),
        proc("curl http://x/LATEST/META-DATA/", ""),
        proc(r"aws \u0069am/security-credentials", ""),
        proc(r"wget x/compute\u004detadata/v1", ""),
        proc(r"C:\\Windows\\u0069am/security", ""),
        proc(r"echo \u003cmetadata\u003e \u0026 instance", ""),
        proc("curl imds.azure.com", r#","name":"waagent""#),
        proc("curl x/metadata/instance?api-version=2021", ""),
        r#"{"event":{"category":"process","type":"start"},"process":{"args":["curl","http://169.254.169.254/"]}}"#.to_string(),
        r#"{"event":{"category":"process","type":"start"},"process.args":["curl","http://169.254.169.25"]}"#.to_string(),
        r#"{"event":{"category":"process","type":"Start"},"process":{"command_line":"latest/dynamic"}}"#.to_string(),
        r#"{"event":{"category":"process","type":"start"},"process":{"command_line":"latest/dyna"#.to_string(),
        "not json at all".to_string(),
        String::new(),
        format!("{{\"x\":\"{}\"}}", "padding ".repeat(50)),
    ]
}

#[test]
fn prefilter_on_and_off_give_the_same_hits() {
    let dir = TempDir::new("onoff");
    let content = mixed_lines().join("\n");
    let path = dir.file("mixed.ndjson", content.as_bytes());
    let on = scan(std::slice::from_ref(&path), &ScanOptions::default());
    let off = scan(
        &[path],
        &ScanOptions {
            prefilter: false,
            ..ScanOptions::default()
        },
    );
    assert_eq!(hit_keys(&on), hit_keys(&off));
    let hit_lines: Vec<u64> = on.hits.iter().map(|h| h.line).collect();
    assert_eq!(
        hit_lines,
        [1, 2, 3, 4, 7, 9, 11, 12, 14, 15, 16, 17, 18, 22, 23]
    );
    let (a, b) = (&on.files[0], &off.files[0]);
    assert_eq!(a.events, b.events);
    assert_eq!(b.candidates, b.events, "prefilter off parses every event");
    assert!(
        a.candidates < b.candidates,
        "{} vs {}",
        a.candidates,
        b.candidates
    );
    // Both report the truncated and the garbage line.
    assert_eq!((a.malformed, b.malformed), (2, 2));
}

#[test]
fn scan_bytes_matches_scan_paths() {
    let dir = TempDir::new("bytes");
    let content = mixed_lines().join("\r\n");
    let path = dir.file("mixed.ndjson", content.as_bytes());
    let from_file = scan(&[path], &ScanOptions::default());
    let from_bytes = engine().scan_bytes(content.as_bytes(), &ScanOptions::default());
    assert_eq!(hit_keys(&from_file), hit_keys(&from_bytes));
    assert_eq!(from_file.files[0].events, from_bytes.files[0].events);
    assert_eq!(
        from_file.files[0].candidates,
        from_bytes.files[0].candidates
    );
}

#[test]
fn hits_across_search_windows_in_a_large_buffer() {
    // Well past the scanner's look-ahead window (256 KiB), with hits near and across it.
    let mut content = String::new();
    let mut expected = Vec::new();
    for i in 1..=20_000u64 {
        if i % 1_999 == 0 || i == 2_700 || i == 2_701 {
            content.push_str(if i % 2 == 0 { NET_HIT } else { PROC_HIT });
            expected.push(i);
        } else {
            content.push_str(QUIET);
        }
        content.push('\n');
    }
    assert!(content.len() > 1 << 20);
    let e = engine();
    let on = e.scan_bytes(content.as_bytes(), &ScanOptions::default());
    let off = e.scan_bytes(
        content.as_bytes(),
        &ScanOptions {
            prefilter: false,
            ..ScanOptions::default()
        },
    );
    let lines: Vec<u64> = on.hits.iter().map(|h| h.line).collect();
    assert_eq!(lines, expected);
    assert_eq!(hit_keys(&on), hit_keys(&off));
    assert_eq!(on.files[0].candidates, expected.len() as u64);
}

#[test]
fn allowlist_counts_add_up_across_regions_and_threads() {
    // The seed rule with two entries: curl (first), then any process.name "curl" or "wget"
    // (second, so it only counts wget).
    let mut ir: serde_json::Value = serde_json::from_str(SEED).unwrap();
    let entry = |values: &[&str]| {
        serde_json::json!({"node": "pred", "field": "process.name", "field_type": "keyword",
                           "op": "eq_ci", "values": values})
    };
    ir["allowlist"] = serde_json::json!([entry(&["curl"]), entry(&["curl", "wget"])]);
    let engine = Engine::new(vec![RuleIr::from_json(&ir.to_string()).unwrap()]).unwrap();
    let dir = TempDir::new("allow");
    let mut content = String::new();
    for i in 0..90 {
        content.push_str(match i % 3 {
            0 => PROC_HIT, // process.name curl: entry 0
            1 => r#"{"event":{"category":"network"},"destination":{"ip":"169.254.169.254"},"process":{"name":"WGET"}}"#,
            _ => NET_HIT, // no process.name: a hit
        });
        content.push('\n');
    }
    let path = dir.file("a.ndjson", content.as_bytes());
    for threads in [1, 2, 3] {
        for buffer_size in [7, 100, 1 << 20] {
            let opts = ScanOptions {
                buffer_size,
                threads,
                ..ScanOptions::default()
            };
            let report =
                engine.scan_paths(std::slice::from_ref(&path), &opts, &AtomicBool::new(false));
            let stats = &report.files[0];
            assert_eq!(report.hits.len(), 30);
            assert_eq!(
                stats
                    .allowlisted
                    .iter()
                    .map(|(&k, &v)| (k, v))
                    .collect::<Vec<_>>(),
                vec![((0, 0), 30), ((0, 1), 30)],
                "buffer {buffer_size}, threads {threads}"
            );
        }
    }
}

/// A candidate line's parse builds only the fields the rules read (a projection): the fields
/// of every rule's branches and allowlist, and `destination.port` for port-scoped endpoint
/// classes, which no predicate names. Each is read here by one rule only.
#[test]
fn the_parse_keeps_every_field_any_rule_reads() {
    let pred = |field: &str, op: &str, values: &[&str]| {
        format!(
            r#"{{"node":"pred","field":"{field}","field_type":"keyword","op":"{op}","values":{}}}"#,
            serde_json::to_string(values).unwrap()
        )
    };
    let rule = |name: &str, branch: String, allowlist: &[String]| {
        RuleIr::from_json(&format!(
            r#"{{"ir_version":1,"name":"{name}","branches":[{{"name":"b","expr":{branch}}}],"allowlist":[{}]}}"#,
            allowlist.join(",")
        ))
        .unwrap()
    };
    let engine = Engine::new(vec![
        rule(
            "allow",
            pred("process.name", "eq", &["curl"]),
            &[pred("user.name", "eq", &["svc"])],
        ),
        rule(
            "wire",
            pred("url.full", "imds_endpoint", &["azure-wireserver"]),
            &[],
        ),
    ])
    .unwrap();
    let data = [
        r#"{"user":{"name":"svc"},"process":{"name":"curl"}}"#,
        r#"{"user.name":"bob","process":{"name":"curl"}}"#,
        r#"{"url":{"full":"http://168.63.129.16/machine"},"destination":{"port":80}}"#,
        r#"{"url":{"full":"http://168.63.129.16/machine"},"destination":{"port":53}}"#,
    ]
    .join("\n");
    let report = engine.scan_bytes(data.as_bytes(), &ScanOptions::default());
    let hits: Vec<(u64, usize)> = report.hits.iter().map(|h| (h.line, h.rule)).collect();
    assert_eq!(hits, [(2, 0), (3, 1)]);
    let allowlisted: u64 = report.files[0].allowlisted.values().sum();
    assert_eq!(allowlisted, 1);
}

/// An `expr` node gives the prefilter no literal (spec/ir.md, Expressions): a rule with an
/// expression branch and a literal branch is parsed on every line, and finds both branches'
/// hits with the prefilter on and off; an expression under an anchored `and` keeps the anchor.
#[test]
fn expression_branches_are_found_with_and_without_the_prefilter() {
    let long_name = r#"{"node":"expr","text":"length(process.name) > 3","expr":{"fn":"gt","args":[{"fn":"length","args":[{"field":"process.name","field_type":"keyword"}]},{"lit":3}]}}"#;
    let ls = r#"{"node":"pred","field":"process.name","field_type":"keyword","op":"eq","values":["ls"]}"#;
    let curl = r#"{"node":"pred","field":"process.args","field_type":"keyword","op":"contains","values":["metadata"]}"#;
    let rule = |id: &str, branches: &[&str]| {
        let branches: Vec<String> = (branches.iter().enumerate())
            .map(|(i, b)| format!(r#"{{"name":"b{i}","expr":{b}}}"#))
            .collect();
        RuleIr::from_json(&format!(
            r#"{{"ir_version":1,"id":"{id}","name":"{id}","branches":[{}]}}"#,
            branches.join(",")
        ))
        .unwrap()
    };
    let either = rule("either", &[long_name, ls]);
    let anchored = rule(
        "anchored",
        &[&format!(r#"{{"node":"and","args":[{curl},{long_name}]}}"#)],
    );
    assert!(!imds_core::Prefilter::new(std::slice::from_ref(&either)).is_active());
    assert!(imds_core::Prefilter::new(std::slice::from_ref(&anchored)).is_active());
    let engine = Engine::new(vec![either, anchored]).unwrap();
    let dir = TempDir::new("expr-prefilter");
    let lines = [
        r#"{"process":{"name":"curl"}}"#,
        r#"{"process":{"name":"ls"}}"#,
        r#"{"process":{"name":"sh"}}"#,
        r#"{"process":{"name":"wget","args":["http://x/metadata"]}}"#,
        r#"{"process":{"name":"sh","args":["http://x/metadata"]}}"#,
    ];
    let path = dir.file("a.ndjson", (lines.join("\n") + "\n").as_bytes());
    for prefilter in [true, false] {
        let opts = ScanOptions {
            prefilter,
            ..ScanOptions::default()
        };
        let report = engine.scan_paths(std::slice::from_ref(&path), &opts, &AtomicBool::new(false));
        let got: Vec<(u64, usize, usize)> = (report.hits.iter())
            .map(|h| (h.line, h.rule, h.branch))
            .collect();
        assert_eq!(
            got,
            [(1, 0, 0), (2, 0, 1), (4, 0, 0), (4, 1, 0)],
            "prefilter {prefilter}"
        );
        let w = report.hits[0].witness.as_ref().unwrap();
        assert_eq!(
            (w.field.as_str(), w.op, w.pattern.as_str(), w.value.as_str()),
            ("process.name", "expr", "length(process.name) > 3", "curl")
        );
    }
}

/// Rules enough for `Engine::from_json` and `Engine::needles_each` to spread their work over
/// threads: the seed rule under many ids, and rules of a literal each.
fn many_rule_texts() -> Vec<String> {
    let mut texts: Vec<String> = (0..12)
        .map(|i| SEED.replace("\"imds-default\"", &format!("\"seed-{i}\"")))
        .collect();
    for word in ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"] {
        texts.push(format!(
            r#"{{"ir_version": 1, "id": "{word}", "name": "{word}", "severity": "low",
            "branches": [{{"name": "b", "expr": {{"node": "pred", "field": "message",
            "field_type": "keyword", "op": "eq", "values": ["{word} here"]}}}}]}}"#
        ));
    }
    texts
}

#[test]
fn engine_from_json_is_the_engine_of_the_rules_in_order() {
    let texts = many_rule_texts();
    let irs: Vec<RuleIr> = texts
        .iter()
        .map(|t| RuleIr::from_json(t).unwrap())
        .collect();
    let data = concat!(
        r#"{"event": {"category": "network"}, "destination": {"ip": "169.254.169.254"}}"#,
        "\n",
        r#"{"message": "delta here"}"#,
        "\n",
        r#"{"message": "foxtrot here"}"#,
        "\n"
    );
    let hits = |e: &Engine| {
        let report = e.scan_bytes(data.as_bytes(), &ScanOptions::default());
        report
            .hits
            .iter()
            .map(|h| (h.line, h.rule, h.branch))
            .collect::<Vec<_>>()
    };
    let parsed = Engine::from_json(&texts).unwrap();
    let expected = hits(&Engine::new(irs).unwrap());
    assert_eq!(hits(&parsed), expected);
    assert!(expected.iter().any(|h| h.1 == 15) && expected.iter().any(|h| h.1 == 17));
    // A faulty rule: the first one's error, wherever the others were parsed.
    let mut bad = texts.clone();
    bad[14] = "{".into();
    bad[3] = r#"{"ir_version": 1}"#.into();
    let first = RuleIr::from_json(&bad[3]).unwrap_err().to_string();
    let error = Engine::from_json(&bad).err().map(|e| e.to_string());
    assert_eq!(error.as_deref(), Some(first.as_str()));
    assert_eq!(Engine::needles_each(&bad).unwrap_err().to_string(), first);
}

#[test]
fn needles_each_is_each_rule_alone() {
    let texts = many_rule_texts();
    let alone: Vec<Option<Vec<String>>> = texts
        .iter()
        .map(|t| {
            Engine::new(vec![RuleIr::from_json(t).unwrap()])
                .unwrap()
                .needles()
        })
        .collect();
    assert_eq!(Engine::needles_each(&texts).unwrap(), alone);
    assert_eq!(alone[12], Some(vec!["alpha here".to_string()]));
}

fn eq_rule(id: &str, preds: &[(&str, &str)]) -> RuleIr {
    let args: Vec<String> = preds
        .iter()
        .map(|(field, value)| {
            format!(
                r#"{{"node":"pred","field":"{field}","field_type":"keyword","op":"eq","values":["{value}"]}}"#
            )
        })
        .collect();
    let ir = format!(
        r#"{{"ir_version":1,"id":"{id}","name":"{id}","severity":"low","branches":[{{"name":"b","expr":{{"node":"and","args":[{}]}}}}]}}"#,
        args.join(",")
    );
    RuleIr::from_json(&ir).unwrap()
}

#[test]
fn open_lines_counts_the_lines_the_rule_gate_opens_each_rule_on() {
    let common = eq_rule(
        "common",
        &[("process.name", "bash"), ("process.args", "zzrare")],
    );
    let other = eq_rule("other", &[("user.name", "alice")]);
    let mut data = String::new();
    for i in 0..40 {
        // "bash" on every line, "zzrare" on every 8th, "alice" on every 5th; a blank line.
        let args = if i % 8 == 0 { "ZZRARE" } else { "-c" };
        let user = if i % 5 == 0 { "alice" } else { "bob" };
        data += &format!(
            r#"{{"process":{{"name":"bash","args":"{args}"}},"user":{{"name":"{user}"}}}}"#
        );
        data += if i == 7 { "\n \n" } else { "\n" };
    }
    // The plain count: a rule is open where the line holds a literal of each of its clauses.
    let holds = |w: &str| {
        data.lines()
            .filter(|l| l.to_ascii_lowercase().contains(w))
            .count() as u64
    };
    let both = data
        .lines()
        .filter(|l| l.contains("bash") && l.contains("ZZRARE"))
        .count() as u64;
    let engine = Engine::new(vec![common.clone(), other.clone()]).unwrap();
    assert_eq!(
        engine.open_lines(data.as_bytes()),
        vec![both, holds("alice")]
    );
    assert_eq!((both, holds("alice")), (5, 8));
    // One rule: no gate; the candidate lines, as a scan counts them.
    for rule in [common, other] {
        let alone = Engine::new(vec![rule]).unwrap();
        let opts = ScanOptions::default();
        let candidates = alone.scan_bytes(data.as_bytes(), &opts).files[0].candidates;
        assert_eq!(alone.open_lines(data.as_bytes()), vec![candidates]);
    }
}

/// A rule open on a line both through a branch's needles and through a branch without any
/// (open on every line) is judged once: one hit, as with the prefilter off.
#[test]
fn a_rule_open_twice_on_a_line_hits_once() {
    let rule = |id: &str, needle: &str| {
        RuleIr::from_json(&format!(
            r#"{{"ir_version":1,"id":"{id}","name":"{id}","branches":[
                {{"name":"needle","expr":{{"node":"pred","field":"process.name","field_type":"keyword","op":"eq","values":["{needle}"]}}}},
                {{"name":"any","expr":{{"node":"not","arg":{{"node":"pred","field":"process.name","field_type":"keyword","op":"eq","values":["zz-none"]}}}}}}]}}"#
        ))
        .unwrap()
    };
    let engine = Engine::new(vec![rule("a", "sshd"), rule("b", "bash")]).unwrap();
    let data = "{\"process\":{\"name\":\"sshd\"}}\n{\"process\":{\"name\":\"cron\"}}\n";
    for prefilter in [true, false] {
        let opts = ScanOptions {
            prefilter,
            ..ScanOptions::default()
        };
        let report = engine.scan_bytes(data.as_bytes(), &opts);
        assert_eq!(
            hit_keys(&report),
            [(0, 1, 0, 0), (0, 1, 1, 1), (0, 2, 0, 1), (0, 2, 1, 1)],
            "prefilter {prefilter}"
        );
    }
}
