//! Sequence and sample matching over stage candidates (spec/sequences.md, "Matchers").
//!
//! The scan engine finds each stage's candidates; this module gets (stage, rank, line, event
//! text, ref) for each, reads the time, tiebreaker and join keys from the text, keeps a
//! compact record per candidate (spilled to sorted runs past a memory budget), and at the end
//! replays the records in ordinal order through the matching rules.

mod ir;
mod matching;
mod read;
mod store;

pub use ir::{Kind, Pipe, SeqIr, Stage};
pub use read::KeyValue;

use read::Reader;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use store::{Rec, Store};

/// How many candidates without a time are remembered by reference.
pub const NO_TIME_EXAMPLES: usize = 5;

/// The matcher's results (spec/sequences.md, "Matchers").
#[derive(Debug, Clone, PartialEq)]
pub struct MatchResult {
    /// Per result, in output order: each stage's event reference (`None`: a missing-event
    /// stage), and the join key values.
    pub matches: Vec<(Vec<Option<u64>>, Vec<KeyValue>)>,
    /// Candidates without a parsable time.
    pub no_time: u64,
    /// The first [`NO_TIME_EXAMPLES`] of them.
    pub no_time_refs: Vec<u64>,
}

/// Distinct join key tuples, by number (compared exactly; the hash only finds the bucket).
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Arc<[KeyValue]>, u32>,
    tuples: Vec<Arc<[KeyValue]>>,
}

impl Interner {
    fn id(&mut self, keys: Vec<KeyValue>) -> u32 {
        if let Some(&id) = self.ids.get(&keys[..]) {
            return id;
        }
        let id = u32::try_from(self.tuples.len()).expect("fewer than 2^32 distinct join keys");
        let tuple: Arc<[KeyValue]> = keys.into();
        self.tuples.push(tuple.clone());
        self.ids.insert(tuple, id);
        id
    }
}

/// A sequence or sample rule's matcher.
#[derive(Debug)]
pub struct SequenceMatcher {
    ir: SeqIr,
    reader: Reader,
    keys: Interner,
    store: Store,
    no_time: u64,
    no_time_refs: Vec<u64>,
}

impl SequenceMatcher {
    /// A matcher of the rule `ir_json` (a sequence or sample IR document) that keeps about
    /// `memory_budget` bytes of candidate records in memory and spills sorted runs to
    /// `spill_dir` (default: the system's temporary directory) past it.
    pub fn new(
        ir_json: &str,
        memory_budget: usize,
        spill_dir: Option<PathBuf>,
    ) -> Result<SequenceMatcher, crate::Error> {
        let ir = SeqIr::from_json(ir_json)?;
        let stage_keys: Vec<&[crate::ir::FieldRef]> = ir
            .stages
            .iter()
            .chain(&ir.until)
            .map(|s| &s.keys[..])
            .collect();
        let reader = Reader::new(&ir.timestamp_field, ir.tiebreaker.as_ref(), &stage_keys);
        Ok(SequenceMatcher {
            reader,
            keys: Interner::default(),
            store: Store::new(memory_budget, spill_dir.unwrap_or_else(std::env::temp_dir)),
            no_time: 0,
            no_time_refs: Vec::new(),
            ir,
        })
    }

    /// The rule.
    pub fn ir(&self) -> &SeqIr {
        &self.ir
    }

    /// Sorted runs written to disk so far.
    pub fn spilled_runs(&self) -> usize {
        self.store.spilled_runs()
    }

    /// Add a candidate of `stage` (an index in the stages; their number means the until
    /// stage) at (input `rank`, `line`), whose event text is `event`; `reference` is the
    /// caller's handle, given back in results. An error when the stage does not exist, or
    /// when a spill to disk fails.
    pub fn add(
        &mut self,
        stage: usize,
        rank: u32,
        line: u64,
        event: &str,
        reference: u64,
    ) -> Result<(), AddError> {
        let stages = self.ir.stages.len();
        if stage > stages || (stage == stages && self.ir.until.is_none()) {
            return Err(AddError::Stage(stage));
        }
        let Some(read) = self.reader.read(stage, event) else {
            self.no_time += 1;
            if self.no_time_refs.len() < NO_TIME_EXAMPLES {
                self.no_time_refs.push(reference);
            }
            return Ok(());
        };
        let key = self.keys.id(read.keys);
        self.store
            .push(Rec {
                time: read.time,
                tie: read.tie,
                rank,
                line,
                order: Rec::order_of(stage, stages),
                key,
                reference,
            })
            .map_err(AddError::Io)
    }

    /// Match what was added; results in output order.
    pub fn finish(self) -> io::Result<MatchResult> {
        let SequenceMatcher {
            ir,
            keys,
            store,
            no_time,
            no_time_refs,
            ..
        } = self;
        let found = match ir.kind {
            Kind::Sequence => matching::sequences(&ir, store)?,
            Kind::Sample => matching::samples(&ir, store, &keys.tuples)?,
        };
        let mut results: Vec<(Vec<Option<u64>>, Vec<KeyValue>)> = found
            .into_iter()
            .map(|(refs, key)| (refs, keys.tuples[key as usize].to_vec()))
            .collect();
        for pipe in &ir.pipes {
            match *pipe {
                Pipe::Head(n) => results.truncate(usize::try_from(n).unwrap_or(usize::MAX)),
                Pipe::Tail(n) => {
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    results.drain(..results.len().saturating_sub(n));
                }
            }
        }
        if let Some(size) = ir.size {
            results.truncate(usize::try_from(size).unwrap_or(usize::MAX));
        }
        Ok(MatchResult {
            matches: results,
            no_time,
            no_time_refs,
        })
    }
}

/// Why a candidate was not added.
#[derive(Debug)]
pub enum AddError {
    /// No such stage.
    Stage(usize),
    /// Spilling to disk failed.
    Io(io::Error),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Stage(stage) => write!(f, "no stage {stage} in this rule"),
            AddError::Io(e) => write!(f, "cannot spill sequence candidates: {e}"),
        }
    }
}

impl std::error::Error for AddError {}

#[cfg(test)]
mod tests;
