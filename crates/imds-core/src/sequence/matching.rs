//! The matching rules (spec/sequences.md, "Sequence matching", "Missing events", "Sample
//! matching"), over the candidate records in order, and the pipes.

use super::read::{KeyValue, Tie};
use super::store::{Rec, Store};
use super::{compare_tuples, Pipe, SeqIr, NO_TIME, NO_TIME_EXAMPLES};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::sync::Arc;

/// A result: each stage's reference (`None`: missing), and the join key's number.
pub type Found = (Vec<Option<u64>>, u32);

/// The pipes and `size`, applied to results as they come (in output order): a `head` before
/// any `tail`, or `size` without a `tail`, stops the stream; a `tail` keeps only its last
/// results, and what follows it applies to those.
#[derive(Debug)]
pub struct Output {
    /// At most this many results pass (the heads before the first tail).
    cap: usize,
    /// The first tail's count, when there is one.
    tail: Option<usize>,
    /// The pipes after the first tail.
    rest: Vec<Pipe>,
    size: Option<usize>,
    seen: usize,
    kept: VecDeque<Found>,
}

fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Output {
    /// The output of a rule with these pipes and size.
    pub fn new(pipes: &[Pipe], size: Option<u64>) -> Output {
        let first_tail = pipes.iter().position(|p| matches!(p, Pipe::Tail(_)));
        let heads = &pipes[..first_tail.unwrap_or(pipes.len())];
        let mut cap = heads
            .iter()
            .map(|p| match p {
                Pipe::Head(n) | Pipe::Tail(n) => count(*n),
            })
            .min()
            .unwrap_or(usize::MAX);
        let size = size.map(count);
        let (tail, rest) = match first_tail {
            Some(at) => {
                let Pipe::Tail(n) = pipes[at] else {
                    unreachable!("a tail")
                };
                (Some(count(n)), pipes[at + 1..].to_vec())
            }
            None => {
                cap = cap.min(size.unwrap_or(usize::MAX));
                (None, Vec::new())
            }
        };
        Output {
            cap,
            tail,
            rest,
            size,
            seen: 0,
            kept: VecDeque::new(),
        }
    }

    /// Whether more results can still change the output.
    pub fn wants_more(&self) -> bool {
        self.seen < self.cap
    }

    /// The next result in output order.
    pub fn push(&mut self, found: Found) {
        if !self.wants_more() {
            return;
        }
        self.seen += 1;
        self.kept.push_back(found);
        if let Some(n) = self.tail {
            if self.kept.len() > n {
                self.kept.pop_front();
            }
        }
    }

    /// The results.
    pub fn finish(self) -> Vec<Found> {
        let mut results: Vec<Found> = self.kept.into();
        if self.tail.is_none() {
            return results;
        }
        for pipe in &self.rest {
            match *pipe {
                Pipe::Head(n) => results.truncate(count(n)),
                Pipe::Tail(n) => {
                    results.drain(..results.len().saturating_sub(count(n)));
                }
            }
        }
        if let Some(size) = self.size {
            results.truncate(size);
        }
        results
    }
}

/// The two latest distinct times seen (in time order), to find the latest time strictly
/// before the current one.
#[derive(Debug, Default, Clone, Copy)]
struct Recent {
    latest: Option<i64>,
    before: Option<i64>,
}

impl Recent {
    fn push(&mut self, time: i64) {
        if self.latest != Some(time) {
            self.before = self.latest;
            self.latest = Some(time);
        }
    }

    /// The latest time `< t` (every time `< t` has been seen).
    fn below(&self, t: i64) -> Option<i64> {
        match self.latest {
            Some(latest) if latest < t => Some(latest),
            _ => self.before.filter(|b| *b < t),
        }
    }
}

/// A pending sequence.
#[derive(Debug)]
struct Pending {
    first_time: i64,
    /// The time of its latest positive event.
    last_time: i64,
    /// The latest leading missing-stage time before its first event (`L`).
    leading: Option<i64>,
    /// A middle missing stage has an event between two of its events.
    rejected: bool,
    /// The references of its positive events so far.
    refs: Vec<u64>,
}

/// What a key's missing-stage candidates left (rules with missing stages only).
#[derive(Debug, Default)]
struct MissingState {
    leading: Recent,
    /// Per stage (only middle missing stages are used).
    middle: Vec<Recent>,
    /// Results waiting for a trailing missing-stage event (indices into the results).
    awaiting: Vec<usize>,
}

/// A result, and whether it stands.
#[derive(Debug)]
struct Completed {
    /// The number of its last event in ordinal order.
    last: u64,
    key: u32,
    first_time: i64,
    t_last: i64,
    leading: Option<i64>,
    refs: Vec<u64>,
    state: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Rejected,
    /// Waiting for the earliest trailing missing-stage time after its last event.
    Awaiting,
}

/// Where a stage stands among the positive ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The n-th positive stage.
    Positive(usize),
    Leading,
    Middle,
    Trailing,
}

/// How a completed sequence is judged (spec/sequences.md, "Missing events").
struct Rules {
    has_leading: bool,
    has_trailing: bool,
    maxspan_ms: Option<u64>,
}

impl Rules {
    /// `span > maxspan` (false without a maxspan).
    fn exceeds(&self, span: i64) -> bool {
        self.maxspan_ms
            .is_some_and(|m| i128::from(span) > i128::from(m))
    }

    /// A completed sequence (of key number and last event number `at`): a result now,
    /// rejected, or waiting for a trailing event.
    fn complete(
        &self,
        seq: Pending,
        at: (u32, u64),
        awaiting: &mut Vec<usize>,
        done: &mut Vec<Completed>,
        deadlines: &mut BinaryHeap<Reverse<(i64, usize)>>,
    ) {
        let verdict = match seq.leading {
            _ if seq.rejected => Verdict::Rejected,
            None if self.has_leading => Verdict::Accepted,
            _ if self.has_trailing => Verdict::Awaiting,
            Some(l) if self.has_leading && !self.exceeds(seq.last_time - l) => Verdict::Rejected,
            _ => Verdict::Accepted,
        };
        if verdict == Verdict::Rejected {
            return;
        }
        let index = done.len();
        if verdict == Verdict::Awaiting {
            awaiting.push(index);
            if let Some(span) = self.maxspan_ms {
                let span = i64::try_from(span).unwrap_or(i64::MAX);
                deadlines.push(Reverse((seq.first_time.saturating_add(span), index)));
            }
        }
        done.push(Completed {
            last: at.1,
            key: at.0,
            first_time: seq.first_time,
            t_last: seq.last_time,
            leading: seq.leading,
            refs: seq.refs,
            state: verdict,
        });
    }
}

/// Sequence matching; gives (candidates without a time, the refs of the first of them).
pub fn sequences(
    ir: &SeqIr,
    store: Store,
    keys: &[Arc<[KeyValue]>],
    out: &mut Output,
) -> io::Result<(u64, Vec<u64>)> {
    let stages = ir.stages.len();
    let positive: Vec<usize> = (0..stages).filter(|s| !ir.stages[*s].missing).collect();
    let (Some(&first), Some(&last)) = (positive.first(), positive.last()) else {
        // No positive stage: nothing to match (only count events without a time).
        let mut no_time = (0, Vec::new());
        let mut previous: Option<Rec> = None;
        store.drain_sorted(|rec| {
            count_no_time(&rec, previous.as_ref(), &mut no_time);
            previous = Some(rec);
        })?;
        return Ok(no_time);
    };
    let roles: Vec<Role> = (0..stages)
        .map(|s| match positive.iter().position(|p| *p == s) {
            Some(n) => Role::Positive(n),
            None if s < first => Role::Leading,
            None if s > last => Role::Trailing,
            None => Role::Middle,
        })
        .collect();
    let has_missing = positive.len() < stages;
    let has_leading = ir.stages[0].missing;
    let has_trailing = ir.stages[stages - 1].missing;
    let has_middle = roles.contains(&Role::Middle);
    let new_missing = || MissingState {
        middle: if has_middle {
            vec![Recent::default(); stages]
        } else {
            Vec::new()
        },
        ..MissingState::default()
    };

    // The pending sequences: one per (key, positive stage but the last); keys are many, so
    // only what is pending is kept.
    let mut pending: HashMap<(u32, usize), Pending> = HashMap::new();
    let mut missing: HashMap<u32, MissingState> = HashMap::new();
    // Held for keys without missing-stage state (rules without missing stages).
    let mut no_awaiting: Vec<usize> = Vec::new();
    let mut done: Vec<Completed> = Vec::new();
    // Results awaiting a trailing event, by the time after which none can reject them.
    let mut deadlines: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut no_time = (0u64, Vec::new());
    let mut event = 0u64;
    let mut previous: Option<Rec> = None;

    let rules = Rules {
        has_leading,
        has_trailing,
        maxspan_ms: ir.maxspan_ms,
    };

    store.drain_sorted(|rec| {
        if rec.time == NO_TIME {
            count_no_time(&rec, previous.as_ref(), &mut no_time);
            previous = Some(rec);
            return;
        }
        if previous.as_ref().is_some_and(|p| p.same_candidate(&rec)) {
            return; // the same candidate added again: its first (lowest) ref counts
        }
        if !previous.as_ref().is_some_and(|p| p.same_event(&rec)) {
            event += 1;
            // Past its deadline, no trailing event can reject a waiting result.
            while let Some(Reverse((deadline, index))) = deadlines.peek().copied() {
                if deadline >= rec.time {
                    break;
                }
                deadlines.pop();
                if done[index].state == Verdict::Awaiting {
                    done[index].state = Verdict::Accepted;
                }
            }
        }
        let now = rec.time;
        let stage = rec.stage(stages);
        let key = rec.key;
        if stage == stages {
            // until: every pending sequence of the key ends.
            for n in 0..positive.len() {
                pending.remove(&(key, n));
            }
            previous = Some(rec);
            return;
        }
        let role = roles[stage];
        let state = if has_missing {
            Some(missing.entry(key).or_insert_with(new_missing))
        } else {
            None
        };
        match (role, state) {
            (Role::Leading, Some(state)) => state.leading.push(now),
            (Role::Middle, Some(state)) => state.middle[stage].push(now),
            (Role::Trailing, Some(state)) => {
                // The earliest trailing time after each waiting result's last event.
                let awaiting = std::mem::take(&mut state.awaiting);
                for index in awaiting {
                    let result = &mut done[index];
                    if result.state != Verdict::Awaiting {
                        continue;
                    }
                    if result.t_last >= now {
                        state.awaiting.push(index);
                        continue;
                    }
                    let span = match result.leading {
                        Some(l) => now - l,
                        None => now - result.first_time,
                    };
                    result.state = if rules.exceeds(span) {
                        Verdict::Accepted
                    } else {
                        Verdict::Rejected
                    };
                }
            }
            (Role::Positive(0), mut state) => {
                let mut refs = Vec::with_capacity(positive.len());
                refs.push(rec.reference);
                let seq = Pending {
                    first_time: now,
                    last_time: now,
                    leading: state.as_ref().and_then(|s| s.leading.below(now)),
                    rejected: false,
                    refs,
                };
                if positive.len() == 1 {
                    let awaiting = state.as_mut().map_or(&mut no_awaiting, |s| &mut s.awaiting);
                    rules.complete(seq, (key, event), awaiting, &mut done, &mut deadlines);
                } else {
                    pending.insert((key, 0), seq);
                }
            }
            (Role::Positive(n), mut state) => {
                if let Some(mut seq) = pending.remove(&(key, n - 1)) {
                    let too_late = ir
                        .maxspan_ms
                        .is_some_and(|span| now.abs_diff(seq.first_time) > span);
                    if !too_late {
                        // Middle missing stages between the previous positive stage and this
                        // one: none may have an event strictly between the two.
                        if let Some(state) = &state {
                            let from = positive[n - 1];
                            seq.rejected |= (from + 1..stage).any(|m| {
                                state.middle[m]
                                    .below(now)
                                    .is_some_and(|t| t > seq.last_time)
                            });
                        }
                        seq.last_time = now;
                        seq.refs.push(rec.reference);
                        if n == positive.len() - 1 {
                            let awaiting =
                                state.as_mut().map_or(&mut no_awaiting, |s| &mut s.awaiting);
                            rules.complete(seq, (key, event), awaiting, &mut done, &mut deadlines);
                        } else {
                            pending.insert((key, n), seq);
                        }
                    }
                }
            }
            (_, None) => unreachable!("missing stages have a missing state"),
        }
        previous = Some(rec);
    })?;

    let mut results: Vec<Completed> = done
        .into_iter()
        .filter(|c| c.state != Verdict::Rejected)
        .collect();
    // By the last event's ordinal, then the key tuple.
    results.sort_by(|a, b| {
        a.last
            .cmp(&b.last)
            .then_with(|| compare_tuples(&keys[a.key as usize], &keys[b.key as usize]))
    });
    for result in results {
        if !out.wants_more() {
            break;
        }
        // Each stage's reference, None at missing stages.
        let mut refs = vec![None; stages];
        for (stage, reference) in positive.iter().zip(result.refs) {
            refs[*stage] = Some(reference);
        }
        out.push((refs, result.key));
    }
    Ok(no_time)
}

/// Count a candidate without a time once per event (records come by position, the lowest
/// stage first).
fn count_no_time(rec: &Rec, previous: Option<&Rec>, no_time: &mut (u64, Vec<u64>)) {
    if rec.time != NO_TIME {
        return;
    }
    let same = previous.is_some_and(|p| p.time == NO_TIME && p.same_event(rec));
    if !same {
        no_time.0 += 1;
        if no_time.1.len() < NO_TIME_EXAMPLES {
            no_time.1.push(rec.reference);
        }
    }
}

/// Sample matching: `ranks` gives each key's place in ascending key order.
pub fn samples(ir: &SeqIr, store: Store, ranks: &[u32], out: &mut Output) -> io::Result<()> {
    let stages = ir.stages.len();
    // Sorted again: by key (in key order), stage, position.
    let mut by_key = store.like();
    let mut result = Ok(());
    store.drain_sorted(|rec| {
        if result.is_ok() {
            result = by_key.push(Rec {
                time: i64::from(ranks[rec.key as usize]),
                tie: Tie::num(u128::from(rec.order)),
                order: 0,
                ..rec
            });
        }
    })?;
    result?;
    // Each stage's list is cut to S + N - 1 events when N is set.
    let cut = ir
        .max_samples_per_key
        .map_or(usize::MAX, |n| count(n).saturating_add(stages - 1));
    let mut columns: Vec<Vec<(u32, u64, u64)>> = vec![Vec::new(); stages];
    let mut current: Option<u32> = None;
    let mut previous: Option<Rec> = None;
    let emit = |key: u32, columns: &mut Vec<Vec<(u32, u64, u64)>>, out: &mut Output| {
        if columns.iter().all(|c| !c.is_empty()) {
            distinct_tuples(columns, ir.max_samples_per_key.map(count), key, out);
        }
        columns.iter_mut().for_each(Vec::clear);
    };
    by_key.drain_sorted(|rec| {
        if !out.wants_more() {
            return;
        }
        if previous.as_ref().is_some_and(|p| p.same_candidate(&rec)) {
            return;
        }
        if current != Some(rec.key) {
            if let Some(key) = current {
                emit(key, &mut columns, out);
            }
            current = Some(rec.key);
        }
        let Tie::Num(_, stage) = rec.tie else {
            unreachable!("the stage is the tie")
        };
        let column = &mut columns[stage as usize];
        if column.len() < cut {
            column.push((rec.rank, rec.line, rec.reference));
        }
        previous = Some(rec);
    })?;
    if let Some(key) = current {
        if out.wants_more() {
            emit(key, &mut columns, out);
        }
    }
    Ok(())
}

/// The samples of one key: one entry per column, no event twice, in lexicographic order of
/// the indexes (the first column's choice first), at most `limit`.
fn distinct_tuples(
    columns: &[Vec<(u32, u64, u64)>],
    limit: Option<usize>,
    key: u32,
    out: &mut Output,
) {
    let depth = columns.len();
    // The index chosen in each column; a depth-first walk without recursion.
    let mut chosen: Vec<usize> = Vec::with_capacity(depth);
    let mut next = 0usize;
    let mut made = 0usize;
    loop {
        if !out.wants_more() || limit.is_some_and(|n| made >= n) {
            return;
        }
        let level = chosen.len();
        if level == depth {
            let refs = chosen
                .iter()
                .enumerate()
                .map(|(c, i)| Some(columns[c][*i].2))
                .collect();
            out.push((refs, key));
            made += 1;
            // Backtrack: the last column's next entry.
            next = chosen.pop().map_or(usize::MAX, |i| i + 1);
            continue;
        }
        let column = &columns[level];
        let used = |entry: &(u32, u64, u64)| {
            chosen
                .iter()
                .enumerate()
                .any(|(c, i)| (columns[c][*i].0, columns[c][*i].1) == (entry.0, entry.1))
        };
        match (next..column.len()).find(|i| !used(&column[*i])) {
            Some(i) => {
                chosen.push(i);
                next = 0;
            }
            None => match chosen.pop() {
                Some(i) => next = i + 1,
                None => return,
            },
        }
    }
}
