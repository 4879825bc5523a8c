//! The matcher's rules, one test each, on small hand-made streams.

use super::*;
use serde_json::{json, Value};

const ANY: &str = r#"{"node":"pred","field":"x","field_type":"keyword","op":"exists","values":[]}"#;

/// A sequence IR: `stages` stages keyed by `keys` (keyword fields), with `extra` members of
/// the sequence object.
fn sequence(stages: usize, keys: &[&str], extra: Value) -> String {
    let expr: Value = serde_json::from_str(ANY).unwrap();
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| json!({"field": k, "field_type": "keyword"}))
        .collect();
    let mut body = json!({
        "timestamp_field": "@timestamp",
        "tiebreaker_field": null,
        "maxspan_ms": null,
        "stages": (0..stages).map(|_| json!({"expr": expr, "keys": keys, "missing": false})).collect::<Vec<_>>(),
        "until": null,
        "pipes": [],
        "size": null,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    json!({"ir_version": 1, "id": "r", "name": "r", "severity": "low", "sequence": body})
        .to_string()
}

/// An event at time `t` (ms) with key `k` in field `k`.
fn ev(t: i64, k: &str) -> String {
    json!({"@timestamp": t, "k": k}).to_string()
}

/// Run the matcher: candidates (stage, time, key), each its own line in input 0 in list
/// order; references are list indices. Results as (refs, keys).
fn run(ir: &str, candidates: &[(usize, i64, &str)]) -> Vec<(Vec<Option<u64>>, Vec<KeyJson>)> {
    run_budget(ir, candidates, 1 << 20)
}

fn run_budget(
    ir: &str,
    candidates: &[(usize, i64, &str)],
    budget: usize,
) -> Vec<(Vec<Option<u64>>, Vec<KeyJson>)> {
    let mut m = SequenceMatcher::new(ir, budget, None).unwrap();
    for (i, (stage, t, k)) in candidates.iter().enumerate() {
        m.add(*stage, 0, i as u64 + 1, &ev(*t, k), i as u64)
            .unwrap();
    }
    m.finish().unwrap().matches
}

fn refs(results: &[(Vec<Option<u64>>, Vec<KeyJson>)]) -> Vec<Vec<u64>> {
    results
        .iter()
        .map(|(r, _)| r.iter().map(|x| x.unwrap()).collect())
        .collect()
}

#[test]
fn two_stages_join_on_their_key() {
    let ir = sequence(2, &["k"], json!({}));
    let got = run(&ir, &[(0, 1, "a"), (0, 2, "b"), (1, 3, "b"), (1, 4, "a")]);
    // By the last event.
    assert_eq!(refs(&got), [[1, 2], [0, 3]]);
    assert_eq!(got[0].1, [KeyJson::Str("b".into())]);
    assert_eq!(got[1].1, [KeyJson::Str("a".into())]);
}

#[test]
fn a_newer_first_stage_replaces_the_pending_one() {
    let ir = sequence(2, &["k"], json!({}));
    let got = run(&ir, &[(0, 1, "a"), (0, 2, "a"), (1, 3, "a"), (1, 4, "a")]);
    assert_eq!(refs(&got), [[1, 2]]);
}

#[test]
fn candidates_are_sorted_by_time_not_input_order() {
    let ir = sequence(2, &["k"], json!({}));
    // The stage-2 event comes first in the input but later in time.
    let got = run(&ir, &[(1, 5, "a"), (0, 1, "a")]);
    assert_eq!(refs(&got), [[1, 0]]);
    // Same time: input order decides (rank, then line).
    let got = run(&ir, &[(1, 5, "a"), (0, 5, "a")]);
    assert!(got.is_empty());
}

#[test]
fn one_event_fills_one_stage_of_a_sequence() {
    // Stages from the last down: an event that is a candidate of both stages does not
    // complete the sequence it starts.
    let ir = sequence(2, &["k"], json!({}));
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    let e = ev(1, "a");
    m.add(0, 0, 1, &e, 0).unwrap();
    m.add(1, 0, 1, &e, 0).unwrap();
    let f = ev(2, "a");
    m.add(0, 0, 2, &f, 1).unwrap();
    m.add(1, 0, 2, &f, 1).unwrap();
    assert_eq!(refs(&m.finish().unwrap().matches), [[0, 1]]);
}

#[test]
fn maxspan_drops_a_sequence_that_runs_too_long() {
    let ir = sequence(3, &["k"], json!({"maxspan_ms": 10}));
    let got = run(
        &ir,
        &[
            (0, 0, "a"),
            (1, 5, "a"),
            (2, 11, "a"),
            (0, 20, "b"),
            (1, 25, "b"),
            (2, 30, "b"),
        ],
    );
    // a: 11 - 0 > 10, dropped; b: exactly 10 is fine.
    assert_eq!(refs(&got), [[3, 4, 5]]);
    // The dropped sequence leaves its state: a later stage-3 event finds nothing.
    let got = run(&ir, &[(0, 0, "a"), (1, 5, "a"), (2, 11, "a"), (2, 12, "a")]);
    assert!(got.is_empty());
}

#[test]
fn until_drops_the_keys_pending_sequences() {
    let mut ir: Value = serde_json::from_str(&sequence(2, &["k"], json!({}))).unwrap();
    ir["sequence"]["until"] = ir["sequence"]["stages"][0].clone();
    ir["sequence"]["until"]
        .as_object_mut()
        .unwrap()
        .remove("missing");
    let ir = ir.to_string();
    let got = run(
        &ir,
        &[
            (0, 1, "a"),
            (0, 1, "b"),
            (2, 2, "a"),
            (1, 3, "a"),
            (1, 3, "b"),
        ],
    );
    assert_eq!(refs(&got), [[1, 4]]);
    // An until candidate that is also a stage candidate applies after it: the sequence it
    // completes stays, the one it starts ends.
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    m.add(0, 0, 1, &ev(1, "a"), 0).unwrap();
    let e = ev(2, "a");
    for stage in [0, 1, 2] {
        m.add(stage, 0, 2, &e, 1).unwrap();
    }
    m.add(1, 0, 3, &ev(3, "a"), 2).unwrap();
    assert_eq!(refs(&m.finish().unwrap().matches), [[0, 1]]);
}

#[test]
fn results_come_by_their_last_event_then_key() {
    let ir = sequence(2, &["k"], json!({}));
    // b completes first though a started first.
    let got = run(&ir, &[(0, 1, "a"), (0, 2, "b"), (1, 3, "b"), (1, 4, "a")]);
    assert_eq!(refs(&got), [[1, 2], [0, 3]]);
    // One event completing two keys: by key.
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    m.add(0, 0, 1, r#"{"@timestamp":1,"k":"z"}"#, 0).unwrap();
    m.add(0, 0, 2, r#"{"@timestamp":2,"k":"b"}"#, 1).unwrap();
    m.add(1, 0, 3, r#"{"@timestamp":3,"k":["z","b"]}"#, 2)
        .unwrap();
    let got = m.finish().unwrap().matches;
    assert_eq!(refs(&got), [[1, 2], [0, 2]]);
    assert_eq!(got[0].1, [KeyJson::Str("b".into())]);
}

#[test]
fn pipes_and_size() {
    let events = [
        (0, 1, "a"),
        (1, 2, "a"),
        (0, 3, "b"),
        (1, 4, "b"),
        (0, 5, "c"),
        (1, 6, "c"),
    ];
    let with = |extra: Value| refs(&run(&sequence(2, &["k"], extra), &events));
    assert_eq!(
        with(json!({"pipes": [{"pipe": "head", "n": 2}]})),
        [[0, 1], [2, 3]]
    );
    assert_eq!(
        with(json!({"pipes": [{"pipe": "tail", "n": 2}]})),
        [[2, 3], [4, 5]]
    );
    assert_eq!(
        with(json!({"pipes": [{"pipe": "tail", "n": 2}, {"pipe": "head", "n": 1}]})),
        [[2, 3]]
    );
    assert_eq!(with(json!({"size": 1})), [[0, 1]]);
    assert_eq!(
        with(json!({"pipes": [{"pipe": "tail", "n": 2}], "size": 1})),
        [[2, 3]]
    );
    assert!(with(json!({"pipes": [{"pipe": "head", "n": 0}]})).is_empty());
}

#[test]
fn optional_keys_join_null_and_required_keys_need_a_value() {
    let ir = sequence(2, &["missing.field"], json!({}));
    assert!(run(&ir, &[(0, 1, "a"), (1, 2, "b")]).is_empty());
    let mut optional: Value = serde_json::from_str(&ir).unwrap();
    for stage in optional["sequence"]["stages"].as_array_mut().unwrap() {
        stage["keys"][0]["optional"] = json!(true);
    }
    let got = run(&optional.to_string(), &[(0, 1, "a"), (1, 2, "b")]);
    assert_eq!(refs(&got), [[0, 1]]);
    assert_eq!(got[0].1, [KeyJson::Null]);
}

#[test]
fn candidates_without_time_are_counted() {
    let ir = sequence(2, &["k"], json!({}));
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    for i in 0..7 {
        m.add(0, 0, i, r#"{"@timestamp":"soon","k":"a"}"#, 100 + i)
            .unwrap();
    }
    m.add(1, 0, 9, "not json", 9).unwrap();
    let r = m.finish().unwrap();
    assert_eq!(r.no_time, 8);
    assert_eq!(r.no_time_refs, [100, 101, 102, 103, 104]);
    assert!(r.matches.is_empty());
}

#[test]
fn a_stage_that_does_not_exist_is_refused() {
    let ir = sequence(2, &["k"], json!({}));
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    assert!(matches!(
        m.add(2, 0, 1, &ev(1, "a"), 0),
        Err(AddError::Stage(2))
    ));
}

#[test]
fn the_position_orders_events_of_the_same_time() {
    let ir = sequence(2, &["k"], json!({}));
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    // Input rank 1 comes after rank 0 whatever the line, and the add order.
    m.add(0, 1, 1, &ev(5, "a"), 0).unwrap();
    m.add(1, 0, 9, &ev(5, "a"), 1).unwrap();
    assert!(m.finish().unwrap().matches.is_empty());
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    m.add(1, 1, 1, &ev(5, "a"), 0).unwrap();
    m.add(0, 0, 9, &ev(5, "a"), 1).unwrap();
    assert_eq!(refs(&m.finish().unwrap().matches), [[1, 0]]);
}

#[test]
fn the_tiebreaker_orders_events_of_the_same_time() {
    let mut ir: Value = serde_json::from_str(&sequence(2, &["k"], json!({}))).unwrap();
    ir["sequence"]["tiebreaker_field"] = json!({"field": "seq", "field_type": "long"});
    let ir = ir.to_string();
    let mut m = SequenceMatcher::new(&ir, 1 << 20, None).unwrap();
    m.add(1, 0, 1, r#"{"@timestamp":5,"k":"a","seq":2}"#, 0)
        .unwrap();
    m.add(0, 0, 2, r#"{"@timestamp":5,"k":"a","seq":1}"#, 1)
        .unwrap();
    // A missing tiebreaker sorts last.
    m.add(1, 0, 3, r#"{"@timestamp":5,"k":"b"}"#, 2).unwrap();
    m.add(0, 0, 4, r#"{"@timestamp":5,"k":"b","seq":-9}"#, 3)
        .unwrap();
    // By the last event: b's last event has no tiebreaker.
    assert_eq!(refs(&m.finish().unwrap().matches), [[1, 0], [3, 2]]);
}

/// A stream of many interleaved keys, stages and times (deterministic).
fn stream(n: usize) -> Vec<(usize, i64, String)> {
    stream_of(n, 3)
}

fn stream_of(n: usize, stages: u64) -> Vec<(usize, i64, String)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (
                (x % stages) as usize,
                ((x >> 8) % 500) as i64,
                format!("k{}", (x >> 20) % 17),
            )
        })
        .collect()
}

#[test]
fn spilling_gives_the_same_result_as_memory() {
    let ir = sequence(3, &["k"], json!({"maxspan_ms": 200}));
    let events = stream(3000);
    let events: Vec<(usize, i64, &str)> = events
        .iter()
        .map(|(s, t, k)| (*s, *t, k.as_str()))
        .collect();
    let memory = run_budget(&ir, &events, 1 << 30);
    assert!(!memory.is_empty());
    let dir = std::env::temp_dir().join(format!("imds-seq-spill-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for budget in [1, 500, 10_000] {
        let mut m = SequenceMatcher::new(&ir, budget, Some(dir.clone())).unwrap();
        for (i, (stage, t, k)) in events.iter().enumerate() {
            m.add(*stage, 0, i as u64 + 1, &ev(*t, k), i as u64)
                .unwrap();
        }
        assert!(m.spilled_runs() > 0);
        assert_eq!(m.finish().unwrap().matches, memory, "budget {budget}");
        // The runs are removed.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn a_cancelled_finish_stops_in_memory_and_on_disk_and_removes_its_runs() {
    use std::sync::atomic::AtomicBool;
    // In memory and in runs on disk, for a sequence and a sample.
    let events = stream(5_000);
    let dir = std::env::temp_dir().join(format!("imds-seq-cancel-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sample = {
        let mut ir: Value = serde_json::from_str(&sequence(2, &["k"], json!({}))).unwrap();
        let mut body = ir["sequence"].take();
        for key in ["maxspan_ms", "until"] {
            body.as_object_mut().unwrap().remove(key);
        }
        body["max_samples_per_key"] = json!(null);
        for stage in body["stages"].as_array_mut().unwrap() {
            stage.as_object_mut().unwrap().remove("missing");
        }
        ir.as_object_mut().unwrap().remove("sequence");
        ir["sample"] = body;
        ir.to_string()
    };
    for ir in [sequence(2, &["k"], json!({})), sample] {
        for budget in [1 << 30, 20_000] {
            let matcher = || {
                let mut m = SequenceMatcher::new(&ir, budget, Some(dir.clone())).unwrap();
                for (i, (stage, t, k)) in events.iter().enumerate() {
                    m.add(stage % 2, 0, i as u64 + 1, &ev(*t, k), i as u64)
                        .unwrap();
                }
                m
            };
            let whole = matcher().finish().unwrap().matches;
            assert!(!whole.is_empty());
            let flag = Arc::new(AtomicBool::new(false));
            let kept = matcher().finish_with(flag.clone()).unwrap().matches;
            assert_eq!(kept, whole, "budget {budget}");
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            let m = matcher();
            assert_eq!(m.spilled_runs() > 0, budget < 1 << 30);
            let err = m.finish_with(flag).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::Interrupted, "budget {budget}");
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        }
    }
    std::fs::remove_dir(&dir).unwrap();
}

/// A sequence whose stages are missing (`true`) or positive, keyed by `k`, with `maxspan`.
fn with_missing(missing: &[bool], maxspan: Option<u64>) -> String {
    let mut ir: Value = serde_json::from_str(&sequence(missing.len(), &["k"], json!({}))).unwrap();
    for (i, m) in missing.iter().enumerate() {
        ir["sequence"]["stages"][i]["missing"] = json!(m);
    }
    ir["sequence"]["maxspan_ms"] = json!(maxspan);
    ir.to_string()
}

fn refs_opt(results: &[(Vec<Option<u64>>, Vec<KeyJson>)]) -> Vec<Vec<Option<u64>>> {
    results.iter().map(|(r, _)| r.clone()).collect()
}

#[test]
fn a_middle_missing_event_strictly_between_rejects() {
    let ir = with_missing(&[false, true, false], Some(100));
    // Missing event at 5 between 1 and 9: rejected; another key without one: a result.
    let got = run(
        &ir,
        &[
            (0, 1, "a"),
            (1, 5, "a"),
            (2, 9, "a"),
            (0, 1, "b"),
            (2, 9, "b"),
        ],
    );
    assert_eq!(refs_opt(&got), [vec![Some(3), None, Some(4)]]);
    // At the same time as a positive event: not between.
    let got = run(&ir, &[(0, 1, "a"), (1, 1, "a"), (1, 9, "a"), (2, 9, "a")]);
    assert_eq!(refs_opt(&got), [vec![Some(0), None, Some(3)]]);
}

#[test]
fn a_leading_missing_event_within_maxspan_rejects() {
    let ir = with_missing(&[true, false, false], Some(10));
    // a: missing at 0, sequence 5..8: 8 - 0 <= 10, rejected. b: missing at 0, sequence
    // 11..12: 12 - 0 > 10, a result. c: no missing event, a result.
    let got = run(
        &ir,
        &[
            (0, 0, "a"),
            (0, 0, "b"),
            (1, 5, "a"),
            (2, 8, "a"),
            (1, 11, "b"),
            (2, 12, "b"),
            (1, 13, "c"),
            (2, 14, "c"),
        ],
    );
    assert_eq!(
        refs_opt(&got),
        [vec![None, Some(4), Some(5)], vec![None, Some(6), Some(7)]]
    );
}

#[test]
fn a_trailing_missing_event_within_maxspan_rejects() {
    let ir = with_missing(&[false, false, true], Some(10));
    // a: missing at 9 after 1..5: 9 - 1 <= 10, rejected. b: missing at 20 after 1..5:
    // 20 - 1 > 10, a result (decided once the stream passes 11). c: none, a result.
    let got = run(
        &ir,
        &[
            (0, 1, "a"),
            (1, 5, "a"),
            (2, 9, "a"),
            (0, 1, "b"),
            (1, 5, "b"),
            (2, 20, "b"),
            (0, 30, "c"),
            (1, 31, "c"),
            (2, 31, "c"),
        ],
    );
    assert_eq!(
        refs_opt(&got),
        [vec![Some(3), Some(4), None], vec![Some(6), Some(7), None]]
    );
}

#[test]
fn leading_and_trailing_missing_events_reject_together_only() {
    let ir = with_missing(&[true, false, false, true], Some(10));
    // a leading event alone does not reject; with a trailing one inside maxspan it does.
    let got = run(&ir, &[(0, 0, "a"), (1, 2, "a"), (2, 3, "a")]);
    assert_eq!(refs_opt(&got), [vec![None, Some(1), Some(2), None]]);
    let got = run(&ir, &[(0, 0, "a"), (1, 2, "a"), (2, 3, "a"), (3, 9, "a")]);
    assert!(got.is_empty());
    let got = run(&ir, &[(0, 0, "a"), (1, 2, "a"), (2, 3, "a"), (3, 11, "a")]);
    assert_eq!(got.len(), 1);
}

/// A sample IR of `stages` stages keyed by `k`.
fn sample(stages: usize, n: Option<u64>) -> String {
    let keys = json!([{"field": "k", "field_type": "keyword"}]);
    let body = json!({
        "timestamp_field": "@timestamp", "tiebreaker_field": null,
        "stages": (0..stages).map(|_| json!({"expr": {}, "keys": keys})).collect::<Vec<_>>(),
        "max_samples_per_key": n, "pipes": [], "size": null,
    });
    json!({"ir_version": 1, "name": "s", "sample": body}).to_string()
}

#[test]
fn samples_take_distinct_events_per_key_in_key_order() {
    // The documentation's shape: keys redhat then win10.
    let events = [
        (0, 1, "win10"),
        (0, 2, "win10"),
        (1, 3, "win10"),
        (0, 4, "win10"),
        (1, 6, "redhat"),
        (0, 7, "redhat"),
    ];
    let got = run(&sample(2, Some(2)), &events);
    assert_eq!(refs(&got), [[5, 4], [0, 2], [1, 2]]);
    assert_eq!(got[0].1, [KeyJson::Str("redhat".into())]);
    let got = run(&sample(2, None), &events);
    assert_eq!(refs(&got), [[5, 4], [0, 2], [1, 2], [3, 2]]);
    // Time plays no part, and an event of both stages is used once per sample.
    let mut m = SequenceMatcher::new(&sample(2, None), 1 << 20, None).unwrap();
    m.add(0, 0, 1, r#"{"k":"a"}"#, 0).unwrap();
    m.add(1, 0, 1, r#"{"k":"a"}"#, 0).unwrap();
    m.add(1, 0, 2, r#"{"@timestamp":"bad","k":"a"}"#, 1)
        .unwrap();
    let r = m.finish().unwrap();
    assert_eq!(refs(&r.matches), [[0, 1]]);
    assert_eq!(r.no_time, 0);
}

#[test]
fn sample_pipes_stop_early_and_tail_keeps_the_last() {
    let events: Vec<(usize, i64, &str)> = (0..40).map(|i| (i % 2, 0, "a")).collect();
    // 20 x 20 candidates, minus shared ones: 400 samples.
    let all = run(&sample(2, None), &events);
    assert_eq!(all.len(), 400);
    let mut ir: Value = serde_json::from_str(&sample(2, None)).unwrap();
    ir["sample"]["pipes"] = json!([{"pipe": "tail", "n": 3}, {"pipe": "head", "n": 2}]);
    let got = run(&ir.to_string(), &events);
    assert_eq!(got, all[397..399]);
    ir["sample"]["pipes"] = json!([{"pipe": "head", "n": 5}]);
    ir["sample"]["size"] = json!(2);
    assert_eq!(run(&ir.to_string(), &events), all[..2]);
}

#[test]
fn spilling_gives_the_same_samples_and_missing_verdicts() {
    let dir = std::env::temp_dir().join(format!("imds-seq-spill-test2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (ir, stages) in [
        (sample(3, Some(3)), 3),
        (with_missing(&[false, true, false], Some(30)), 3),
        (with_missing(&[true, false, false, true], Some(8)), 4),
    ] {
        let events = stream_of(2000, stages);
        let events: Vec<(usize, i64, &str)> = events
            .iter()
            .map(|(s, t, k)| (*s, *t, k.as_str()))
            .collect();
        let memory = run_budget(&ir, &events, 1 << 30);
        assert!(!memory.is_empty());
        let mut m = SequenceMatcher::new(&ir, 100, Some(dir.clone())).unwrap();
        for (i, (stage, t, k)) in events.iter().enumerate() {
            m.add(*stage, 0, i as u64 + 1, &ev(*t, k), i as u64)
                .unwrap();
        }
        assert!(m.spilled_runs() > 0);
        assert_eq!(m.finish().unwrap().matches, memory);
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();
}

/// A random event: a time (or none, or a bad one), key `k` (a value, an array, or none), and
/// sometimes arrays whose product of key tuples is more than a `Prepared` holds.
fn random_event(next: &mut impl FnMut() -> u64) -> String {
    let key = |n: u64| Value::String(["a", "b", "c", "d"][(n % 4) as usize].into());
    let mut event = serde_json::Map::new();
    match next() % 10 {
        0 => {}
        1 => {
            event.insert("@timestamp".into(), json!("not a time"));
        }
        _ => {
            event.insert("@timestamp".into(), json!(next() % 50));
        }
    }
    match next() % 6 {
        0 => {}
        1 => {
            event.insert("k".into(), json!([key(next()), key(next()), key(next())]));
        }
        _ => {
            event.insert("k".into(), key(next()));
        }
    }
    if next().is_multiple_of(8) {
        // 70 values of k (x 2 of j): past PREPARED_TUPLES.
        let many: Vec<Value> = (0..70).map(|i| json!(format!("v{i}"))).collect();
        event.insert("k".into(), Value::Array(many));
        event.insert("j".into(), json!([1, 2]));
    } else if next().is_multiple_of(3) {
        event.insert("j".into(), json!(next() % 3));
    }
    Value::Object(event).to_string()
}

#[test]
fn prepare_then_push_is_add() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut until: Value = serde_json::from_str(&sequence(3, &["k", "j"], json!({}))).unwrap();
    until["sequence"]["until"] = until["sequence"]["stages"][0].clone();
    until["sequence"]["until"]
        .as_object_mut()
        .unwrap()
        .remove("missing");
    until["sequence"]["stages"][0]["keys"][1]["optional"] = json!(true);
    until["sequence"]["stages"][1]["missing"] = json!(true);
    let irs = [
        sequence(2, &["k"], json!({"maxspan_ms": 20})),
        sequence(
            3,
            &["k", "j"],
            json!({"tiebreaker_field": {"field": "j", "field_type": "long"}}),
        ),
        until.to_string(),
        sample(2, Some(3)),
    ];
    for ir in &irs {
        for budget in [1 << 20, 256] {
            let mut added = SequenceMatcher::new(ir, budget, None).unwrap();
            let mut pushed = SequenceMatcher::new(ir, budget, None).unwrap();
            let stages = added.ir().stages.len() + usize::from(added.ir().until.is_some());
            let events: Vec<(usize, String)> = (0..400)
                .map(|_| ((next() % stages as u64) as usize, random_event(&mut next)))
                .collect();
            // Read on another thread, pushed here in order.
            let preparer = pushed.preparer().clone();
            let prepared = std::thread::scope(|s| {
                s.spawn(|| {
                    (events.iter())
                        .map(|(stage, text)| preparer.prepare(*stage, text).unwrap())
                        .collect::<Vec<_>>()
                })
                .join()
                .unwrap()
            });
            assert!(prepared.iter().any(|p| matches!(p.form, Read::Later)));
            assert!(prepared.iter().any(|p| matches!(p.form, Read::Keys { .. })));
            for (i, ((stage, text), p)) in events.iter().zip(prepared).enumerate() {
                let line = i as u64 / 2 + 1;
                added.add(*stage, 0, line, text, line).unwrap();
                pushed.push(p, 0, line, text, line).unwrap();
            }
            assert!(budget > 256 || added.spilled_runs() > 0);
            assert_eq!(added.finish().unwrap(), pushed.finish().unwrap(), "{ir}");
        }
    }
}

#[test]
fn one_parse_for_several_rules_reads_as_each_rules_own() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tied = json!({"tiebreaker_field": {"field": "j", "field_type": "long"}});
    let irs = [
        sequence(2, &["k"], json!({})),
        sequence(3, &["k", "j"], tied),
        sequence(2, &["host.id"], json!({})),
        sample(2, None),
    ];
    let matchers: Vec<SequenceMatcher> = (irs.iter())
        .map(|ir| SequenceMatcher::new(ir, 1 << 20, None).unwrap())
        .collect();
    let parse = StageParse::new(matchers.iter().map(SequenceMatcher::preparer));
    for i in 0..600 {
        let event = random_event(&mut next);
        let text = match i % 6 {
            // An exporter's wrapper, a text that is no object, a host.
            0 => format!(r#"{{"_index": "x", "_source": {event}}}"#),
            1 => "[1, 2]".to_string(),
            2 => event.replacen('{', r#"{"host": {"id": ["h", 1]}, "#, 1),
            _ => event,
        };
        let doc = parse.parse(&text);
        for m in &matchers {
            for stage in 0..m.ir().stages.len() {
                let own = m.preparer().prepare(stage, &text).unwrap();
                assert_eq!(
                    m.preparer().prepare_doc(stage, &doc).unwrap(),
                    own,
                    "{text}"
                );
            }
        }
    }
}

#[test]
fn a_stage_of_the_same_keys_is_read_as_a_copy_of_another() {
    let any: Value = serde_json::from_str(ANY).unwrap();
    let until =
        json!({"until": {"expr": any, "keys": [{"field": "other", "field_type": "keyword"}]}});
    for ir in [
        sequence(3, &["k"], json!({})),
        sample(3, None),
        sequence(3, &["k"], until.clone()),
    ] {
        let p = SequenceMatcher::new(&ir, 1 << 20, None)
            .unwrap()
            .preparer()
            .clone();
        for text in [ev(5, "a"), json!({"k": "a"}).to_string()] {
            let first = p.prepare(0, &text).unwrap();
            for stage in 1..3 {
                let copy = p.restage(&first, stage).unwrap().unwrap();
                assert_eq!(copy, p.prepare(stage, &text).unwrap(), "{ir} {text}");
            }
            assert!(p.restage(&first, 4).is_err());
        }
    }
    // The until stage reads other keys: no copy.
    let p = SequenceMatcher::new(&sequence(2, &["k"], until), 1 << 20, None).unwrap();
    let first = p.preparer().prepare(0, &ev(5, "a")).unwrap();
    assert_eq!(p.preparer().restage(&first, 2).unwrap(), None);
}
