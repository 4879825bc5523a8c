//! Sequence and sample matching over stage candidates (spec/sequences.md, "Matchers").
//!
//! The scan engine finds each stage's candidates; this module gets (stage, rank, line, event
//! text, ref) for each, reads the time, tiebreaker and join keys from the text, keeps a
//! compact record per candidate (spilled to sorted runs past a memory budget), and at the end
//! replays the records in ordinal order through the matching rules.

mod ir;
mod matching;
mod read;
mod spill;
mod store;

pub use ir::{KeyRef, Kind, Pipe, SeqIr, Stage};
pub use read::{KeyJson, KeyValue, Typed};
pub use spill::{Spill, COMPRESS_FROM};

use crate::event::{ParsedLine, Projection};
use read::{Doc, Reader};
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
    /// stage), and the join key values as Elasticsearch returns them.
    pub matches: Vec<(Vec<Option<u64>>, Vec<KeyJson>)>,
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
    preparer: Preparer,
    keys: Interner,
    store: Store,
}

/// What a candidate is read into before it goes into its matcher: the rule's reader, shared
/// (cheap to clone, `Send` and `Sync`), so that candidates are read on any thread
/// ([`Preparer::prepare`]) and only pushed ([`SequenceMatcher::push`]) in order.
#[derive(Debug, Clone)]
pub struct Preparer {
    reader: Arc<Reader>,
    kind: Kind,
    stages: usize,
    until: bool,
}

/// Key tuples a [`Prepared`] holds at most; a candidate with more (a hostile line's arrays
/// make a huge product) is read again when pushed, its tuples made one at a time.
const PREPARED_TUPLES: usize = 64;

/// A candidate as its matcher reads it ([`Preparer::prepare`]): its stage, time, tiebreaker
/// and join key tuples.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    stage: usize,
    form: Read,
}

#[derive(Debug, Clone, PartialEq)]
enum Read {
    /// A sequence candidate without a time.
    NoTime,
    /// Its time, tiebreaker and place, and each key tuple.
    Keys {
        time: i64,
        tie: read::Tie,
        order: u32,
        tuples: Vec<Vec<KeyValue>>,
    },
    /// Too many key tuples: read when pushed.
    Later,
}

impl Prepared {
    /// Whether [`SequenceMatcher::push`] reads the candidate's text (it has more key tuples
    /// than a `Prepared` holds).
    pub fn needs_text(&self) -> bool {
        matches!(self.form, Read::Later)
    }

    /// About what it takes in memory.
    pub fn bytes(&self) -> usize {
        let keys = match &self.form {
            Read::Keys { tuples, .. } => tuples
                .iter()
                .map(|t| std::mem::size_of::<Vec<KeyValue>>() + t.len() * 48)
                .sum(),
            _ => 0,
        };
        std::mem::size_of::<Prepared>() + keys
    }
}

/// One parse of a candidate's text for several rules' [`Preparer`]s ([`StageParse::parse`]).
pub struct StageDoc<'t>(Doc<'t>);

/// What the candidates of several rules are parsed into once, for all their [`Preparer`]s:
/// a projection of all the fields they read.
#[derive(Debug)]
pub struct StageParse {
    projection: Projection,
}

impl StageParse {
    /// The parse for `preparers` (for others, [`Preparer::prepare_doc`] reads wrong).
    pub fn new<'p>(preparers: impl IntoIterator<Item = &'p Preparer>) -> StageParse {
        let mut fields: Vec<&str> = Vec::new();
        for preparer in preparers {
            fields.extend(preparer.reader.fields());
        }
        StageParse {
            projection: Projection::new(fields),
        }
    }

    /// A candidate's text parsed for them.
    pub fn parse<'t>(&self, text: &'t str) -> StageDoc<'t> {
        StageDoc(Doc::parse(text, &self.projection))
    }

    /// A candidate line's parse by the scan, as [`StageParse::parse`] of its event text
    /// gives it, when made with a projection holding [`Preparer::fields`] of them.
    pub fn of<'t>(parsed: &'t ParsedLine<'t>) -> StageDoc<'t> {
        StageDoc(Doc::of(parsed))
    }
}

impl Preparer {
    /// Read a candidate of `stage` (their number: the until stage) whose event text is
    /// `event`; an error when the rule has no such stage.
    pub fn prepare(&self, stage: usize, event: &str) -> Result<Prepared, AddError> {
        self.check(stage)?;
        self.read(stage, &self.reader.parse(event))
    }

    /// [`Preparer::prepare`] of a text parsed already by a [`StageParse`] made with this
    /// preparer (one parse for the several rules a line is a candidate of).
    pub fn prepare_doc(&self, stage: usize, doc: &StageDoc<'_>) -> Result<Prepared, AddError> {
        self.check(stage)?;
        self.read(stage, &doc.0)
    }

    /// A candidate of another stage read already as `prepared`: the same time and key
    /// tuples at `stage`'s place, with no second reading (a sequence's `with runs=N` makes N
    /// stages of one condition, whose stage rules run as one). None when the two stages read
    /// different join keys (then [`Preparer::prepare`] the text); an error when the rule has
    /// no such stage.
    pub fn restage(&self, prepared: &Prepared, stage: usize) -> Result<Option<Prepared>, AddError> {
        self.check(stage)?;
        if !self.reader.same_keys(prepared.stage, stage) {
            return Ok(None);
        }
        let form = match &prepared.form {
            Read::Keys {
                time, tie, tuples, ..
            } => Read::Keys {
                time: *time,
                tie: tie.clone(),
                order: self.order(stage),
                tuples: tuples.clone(),
            },
            other => other.clone(),
        };
        Ok(Some(Prepared { stage, form }))
    }

    /// The fields its reading reads.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.reader.fields()
    }

    fn check(&self, stage: usize) -> Result<(), AddError> {
        if stage > self.stages || (stage == self.stages && !self.until) {
            return Err(AddError::Stage(stage));
        }
        Ok(())
    }

    /// A candidate's (time, tiebreaker, order) in the records; None: a sequence candidate
    /// without a time.
    fn ordinal(&self, stage: usize, doc: &Doc<'_>) -> Option<(i64, read::Tie, u32)> {
        match self.kind {
            // Samples do not use time; the stage sorts first (see matching::samples).
            Kind::Sample => Some((0, read::Tie::Missing, self.order(stage))),
            Kind::Sequence => {
                let when = self.reader.when(doc)?;
                Some((when.time, when.tie, self.order(stage)))
            }
        }
    }

    /// A stage's sort place among a candidate's records of one time.
    fn order(&self, stage: usize) -> u32 {
        match self.kind {
            Kind::Sample => stage as u32,
            Kind::Sequence => Rec::order_of(stage, self.stages),
        }
    }

    fn read(&self, stage: usize, doc: &Doc<'_>) -> Result<Prepared, AddError> {
        let Some((time, tie, order)) = self.ordinal(stage, doc) else {
            return Ok(Prepared {
                stage,
                form: Read::NoTime,
            });
        };
        let tuples: Vec<Vec<KeyValue>> = self
            .reader
            .key_tuples(stage, doc)
            .take(PREPARED_TUPLES + 1)
            .collect();
        let form = if tuples.len() > PREPARED_TUPLES {
            Read::Later
        } else {
            Read::Keys {
                time,
                tie,
                order,
                tuples,
            }
        };
        Ok(Prepared { stage, form })
    }
}

/// The time of a record of a candidate without a time (no date reads as it: years 1 to
/// 9999): these sort first, by position.
const NO_TIME: i64 = i64::MIN;

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
        let stage_keys: Vec<&[KeyRef]> = ir
            .stages
            .iter()
            .chain(&ir.until)
            .map(|s| &s.keys[..])
            .collect();
        let reader = Reader::new(&ir.timestamp_field, ir.tiebreaker.as_ref(), &stage_keys);
        Ok(SequenceMatcher {
            preparer: Preparer {
                reader: Arc::new(reader),
                kind: ir.kind,
                stages: ir.stages.len(),
                until: ir.until.is_some(),
            },
            keys: Interner::default(),
            store: Store::new(memory_budget, spill_dir.unwrap_or_else(std::env::temp_dir)),
            ir,
        })
    }

    /// Check a sequence or sample rule's whole IR document (its stages' conditions too)
    /// against spec/ir.schema.json, in the Python checker's order and words.
    pub fn check_ir(ir_json: &str) -> Result<(), crate::Error> {
        SeqIr::check(ir_json).map(|_| ())
    }

    /// The rule.
    pub fn ir(&self) -> &SeqIr {
        &self.ir
    }

    /// Sorted runs written to disk so far.
    pub fn spilled_runs(&self) -> usize {
        self.store.spilled_runs()
    }

    /// The rule's reader of candidates, for other threads.
    pub fn preparer(&self) -> &Preparer {
        &self.preparer
    }

    /// Add a candidate of `stage` (an index in the stages; their number means the until
    /// stage) at (input `rank`, `line`), whose event text is `event`; `reference` is the
    /// caller's handle, given back in results. An error when the stage does not exist, or
    /// when a spill to disk fails. The same as [`Preparer::prepare`] then
    /// [`SequenceMatcher::push`].
    pub fn add(
        &mut self,
        stage: usize,
        rank: u32,
        line: u64,
        event: &str,
        reference: u64,
    ) -> Result<(), AddError> {
        let prepared = self.preparer.prepare(stage, event)?;
        self.push(prepared, rank, line, event, reference)
    }

    /// Add a candidate read by this rule's [`Preparer`] (`event`: its text, read again only
    /// when it has more key tuples than a `Prepared` holds); see [`SequenceMatcher::add`].
    pub fn push(
        &mut self,
        prepared: Prepared,
        rank: u32,
        line: u64,
        event: &str,
        reference: u64,
    ) -> Result<(), AddError> {
        let Prepared { stage, form } = prepared;
        let stages = self.ir.stages.len();
        if stage > stages || (stage == stages && self.ir.until.is_none()) {
            return Err(AddError::Stage(stage));
        }
        let (time, tie, order, tuples) = match form {
            Read::NoTime => {
                // Counted once per event, by position; the lowest stage's ref.
                let rec = Rec {
                    time: NO_TIME,
                    tie: read::Tie::Missing,
                    rank,
                    line,
                    order: stage as u32,
                    key: 0,
                    reference,
                };
                return self.store.push(rec).map_err(AddError::Io);
            }
            Read::Keys {
                time,
                tie,
                order,
                tuples,
            } => (time, tie, order, tuples),
            Read::Later => return self.push_each(stage, rank, line, event, reference),
        };
        self.push_keyed((time, tie, order), (rank, line, reference), tuples)
    }

    /// One record per key tuple, of the candidate's `(time, tie, order)` and
    /// `(rank, line, reference)`, with the tuple's number as its key.
    fn push_keyed(
        &mut self,
        (time, tie, order): (i64, read::Tie, u32),
        (rank, line, reference): (u32, u64, u64),
        tuples: impl IntoIterator<Item = Vec<KeyValue>>,
    ) -> Result<(), AddError> {
        for keys in tuples {
            let key = self.keys.id(keys);
            let rec = Rec {
                time,
                tie: tie.clone(),
                rank,
                line,
                order,
                key,
                reference,
            };
            self.store.push(rec).map_err(AddError::Io)?;
        }
        Ok(())
    }

    /// [`SequenceMatcher::push`] of a candidate with many key tuples: read again, its tuples
    /// made and stored one at a time.
    fn push_each(
        &mut self,
        stage: usize,
        rank: u32,
        line: u64,
        event: &str,
        reference: u64,
    ) -> Result<(), AddError> {
        let preparer = &self.preparer;
        let doc = preparer.reader.parse(event);
        // (The Preparer found a time in the same text: None is not reached.)
        let Some(ordinal) = preparer.ordinal(stage, &doc) else {
            let form = Read::NoTime;
            return self.push(Prepared { stage, form }, rank, line, event, reference);
        };
        let tuples = preparer.reader.key_tuples(stage, &doc);
        self.push_keyed(ordinal, (rank, line, reference), tuples)
    }

    /// Match what was added; results in output order.
    pub fn finish(self) -> io::Result<MatchResult> {
        let SequenceMatcher {
            ir, keys, store, ..
        } = self;
        Self::finish_store(ir, keys, store)
    }

    /// [`SequenceMatcher::finish`], given up (an error of kind `Interrupted`) soon after
    /// `cancel` is set.
    pub fn finish_with(
        self,
        cancel: Arc<std::sync::atomic::AtomicBool>,
    ) -> io::Result<MatchResult> {
        let SequenceMatcher {
            ir,
            keys,
            mut store,
            ..
        } = self;
        store.cancel_on(cancel);
        Self::finish_store(ir, keys, store)
    }

    fn finish_store(ir: SeqIr, keys: Interner, store: Store) -> io::Result<MatchResult> {
        let sample = ir.kind == Kind::Sample;
        let mut out = matching::Output::new(&ir.pipes, ir.size);
        let no_time = match ir.kind {
            Kind::Sequence => matching::sequences(&ir, store, &keys.tuples, &mut out)?,
            Kind::Sample => {
                // Keys in ascending order: their ranks.
                let mut ids: Vec<u32> = (0..keys.tuples.len() as u32).collect();
                ids.sort_by(|a, b| {
                    compare_tuples(&keys.tuples[*a as usize], &keys.tuples[*b as usize])
                });
                let mut ranks = vec![0; ids.len()];
                for (rank, id) in ids.iter().enumerate() {
                    ranks[*id as usize] = rank as u32;
                }
                matching::samples(&ir, store, &ranks, &mut out)?;
                (0, Vec::new())
            }
        };
        let matches = out
            .finish()
            .into_iter()
            .map(|(refs, key)| {
                let values = keys.tuples[key as usize]
                    .iter()
                    .map(|v| v.output(sample))
                    .collect();
                (refs, values)
            })
            .collect();
        Ok(MatchResult {
            matches,
            no_time: no_time.0,
            no_time_refs: no_time.1,
        })
    }
}

/// Key tuples position by position, each in its type's order, null first.
pub(crate) fn compare_tuples(a: &[KeyValue], b: &[KeyValue]) -> std::cmp::Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.cmp_key(y))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
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
