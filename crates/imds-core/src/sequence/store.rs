//! Candidates in bounded memory: compact records (no event text), sorted by ordinal; past the
//! memory budget, sorted runs go to temporary files that are merged at the end.

use super::read::Tie;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

/// One (event, stage) candidate.
/// 64 bytes: about 4 million candidates per 256 MiB of budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Milliseconds since the epoch.
    pub time: i64,
    /// The tiebreaker.
    pub tie: Tie,
    /// The input's rank.
    pub rank: u32,
    /// The line in the input.
    pub line: u64,
    /// Where the event's stages sort: the until stage first, then the stages from the last
    /// down ([`Rec::order_of`]).
    pub order: u32,
    /// The interned join key tuple.
    pub key: u32,
    /// The caller's handle.
    pub reference: u64,
}

impl Rec {
    /// The sort place of `stage` among `stages` stages in a sequence: the stages from the
    /// last down, then the until stage (`stages`).
    pub fn order_of(stage: usize, stages: usize) -> u32 {
        if stage == stages {
            stages as u32
        } else {
            (stages - 1 - stage) as u32
        }
    }

    /// The stage of a sort place ([`Rec::order_of`]).
    pub fn stage(&self, stages: usize) -> usize {
        let order = self.order as usize;
        if order == stages {
            stages
        } else {
            stages - 1 - order
        }
    }

    /// Same event (same ordinal).
    pub fn same_event(&self, other: &Rec) -> bool {
        self.time == other.time
            && self.tie == other.tie
            && self.rank == other.rank
            && self.line == other.line
    }

    /// Same event, stage and key (the same candidate added twice).
    pub fn same_candidate(&self, other: &Rec) -> bool {
        self.same_event(other) && self.order == other.order && self.key == other.key
    }

    /// Bytes it holds in memory.
    fn size(&self) -> usize {
        std::mem::size_of::<Rec>()
            + match &self.tie {
                Tie::Bytes(b) => b.len(),
                _ => 0,
            }
    }

    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.time.to_le_bytes())?;
        match &self.tie {
            Tie::Num(high, low) => {
                out.write_all(&[0])?;
                out.write_all(&high.to_le_bytes())?;
                out.write_all(&low.to_le_bytes())?;
            }
            Tie::Bytes(b) => {
                out.write_all(&[1])?;
                out.write_all(&(b.len() as u32).to_le_bytes())?;
                out.write_all(b)?;
            }
            Tie::Missing => out.write_all(&[2])?,
        }
        out.write_all(&self.rank.to_le_bytes())?;
        out.write_all(&self.line.to_le_bytes())?;
        out.write_all(&self.order.to_le_bytes())?;
        out.write_all(&self.key.to_le_bytes())?;
        out.write_all(&self.reference.to_le_bytes())
    }

    /// The next record of a run, `None` at its end.
    fn read(input: &mut impl Read) -> io::Result<Option<Rec>> {
        let mut time = [0; 8];
        match input.read_exact(&mut time) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            other => other?,
        }
        fn take<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
            let mut buf = [0; N];
            input.read_exact(&mut buf)?;
            Ok(buf)
        }
        let tie = match take::<1>(input)?[0] {
            0 => Tie::Num(
                u64::from_le_bytes(take(input)?),
                u64::from_le_bytes(take(input)?),
            ),
            1 => {
                let len = u32::from_le_bytes(take(input)?) as usize;
                let mut bytes = vec![0; len];
                input.read_exact(&mut bytes)?;
                Tie::Bytes(bytes.into())
            }
            _ => Tie::Missing,
        };
        Ok(Some(Rec {
            time: i64::from_le_bytes(time),
            tie,
            rank: u32::from_le_bytes(take(input)?),
            line: u64::from_le_bytes(take(input)?),
            order: u32::from_le_bytes(take(input)?),
            key: u32::from_le_bytes(take(input)?),
            reference: u64::from_le_bytes(take(input)?),
        }))
    }
}

impl Ord for Rec {
    /// By ordinal (time, tiebreaker, rank, line), then stage place, key, reference.
    fn cmp(&self, other: &Rec) -> Ordering {
        let fields = |r: &Rec| (r.time, r.rank, r.line, r.order, r.key, r.reference);
        let (a, b) = (fields(self), fields(other));
        a.0.cmp(&b.0)
            .then_with(|| self.tie.cmp(&other.tie))
            .then_with(|| (a.1, a.2, a.3, a.4, a.5).cmp(&(b.1, b.2, b.3, b.4, b.5)))
    }
}

impl PartialOrd for Rec {
    fn partial_cmp(&self, other: &Rec) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Runs kept before they are merged into one (bounds the files open at the end and the
/// merge's buffers: 64 KiB each).
const MAX_RUNS: usize = 64;

/// A temporary file, removed when dropped.
#[derive(Debug)]
struct SpillFile {
    path: PathBuf,
}

impl SpillFile {
    fn create(dir: &Path) -> io::Result<(SpillFile, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = dir.join(format!(
                "imds-scan-seq-{}-{n}-{nanos:x}.run",
                std::process::id()
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => return Ok((SpillFile { path }, file)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The candidates: a buffer in memory and sorted runs on disk.
#[derive(Debug)]
pub struct Store {
    buffer: Vec<Rec>,
    bytes: usize,
    budget: usize,
    dir: PathBuf,
    runs: Vec<SpillFile>,
    /// Set: the records stop coming out ([`Store::drain_sorted`] fails as interrupted).
    cancel: Option<Arc<AtomicBool>>,
}

/// Records between two looks at a store's cancel flag.
const CANCEL_EVERY: u32 = 1 << 16;

impl Store {
    /// A store that keeps about `budget` bytes of records in memory and spills the rest to
    /// `dir`.
    pub fn new(budget: usize, dir: PathBuf) -> Store {
        Store {
            buffer: Vec::new(),
            bytes: 0,
            budget,
            dir,
            runs: Vec::new(),
            cancel: None,
        }
    }

    /// An empty store with the same budget, spill directory and cancel flag.
    pub fn like(&self) -> Store {
        Store {
            cancel: self.cancel.clone(),
            ..Store::new(self.budget, self.dir.clone())
        }
    }

    /// Stop [`Store::drain_sorted`] (an error of kind `Interrupted`) once `cancel` is set.
    pub fn cancel_on(&mut self, cancel: Arc<AtomicBool>) {
        self.cancel = Some(cancel);
    }

    /// Runs written so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    /// Add a record (spilling the buffer first when it is full).
    pub fn push(&mut self, rec: Rec) -> io::Result<()> {
        let size = rec.size();
        if self.bytes + size > self.budget && !self.buffer.is_empty() {
            self.spill()?;
        }
        self.bytes += size;
        if self.buffer.len() == self.buffer.capacity() {
            // Grow as a Vec does, but not past the budget (doubling would overshoot it by
            // up to 2x).
            let room = (self.budget.saturating_sub(self.bytes) / std::mem::size_of::<Rec>()).max(1);
            let grow = self.buffer.capacity().max(64).min(room);
            self.buffer.reserve_exact(grow);
        }
        self.buffer.push(rec);
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let (spill, file) = SpillFile::create(&self.dir)?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        for rec in self.buffer.drain(..) {
            rec.write(&mut out)?;
        }
        out.flush()?;
        self.bytes = 0;
        self.buffer.shrink_to(0);
        self.runs.push(spill);
        if self.runs.len() >= MAX_RUNS {
            self.compact()?;
        }
        Ok(())
    }

    /// Merge every run into one.
    fn compact(&mut self) -> io::Result<()> {
        let runs = std::mem::take(&mut self.runs);
        let (spill, file) = SpillFile::create(&self.dir)?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        merge(&runs, std::iter::empty(), |rec| rec.write(&mut out))?;
        out.flush()?;
        self.runs.push(spill);
        Ok(())
    }

    /// Every record, in order, to `f`.
    pub fn drain_sorted(mut self, mut f: impl FnMut(Rec)) -> io::Result<()> {
        self.buffer.sort_unstable();
        let buffer = std::mem::take(&mut self.buffer);
        // Past a terabyte's candidates this takes minutes: Ctrl-C must not wait for it.
        let cancel = self.cancel.clone();
        let mut count = 0u32;
        merge(&self.runs, buffer.into_iter(), |rec| {
            // At the first record, then every CANCEL_EVERY.
            if count == 0
                && cancel
                    .as_ref()
                    .is_some_and(|c| c.load(AtomicOrdering::Relaxed))
            {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            count = (count + 1) % CANCEL_EVERY;
            f(rec);
            Ok(())
        })
    }
}

/// The records of sorted runs and of a sorted iterator, in order, to `f`, until it fails.
fn merge(
    runs: &[SpillFile],
    mut memory: impl Iterator<Item = Rec>,
    mut f: impl FnMut(Rec) -> io::Result<()>,
) -> io::Result<()> {
    if runs.is_empty() {
        return memory.try_for_each(f);
    }
    let mut readers = runs
        .iter()
        .map(|run| Ok(BufReader::with_capacity(1 << 16, File::open(&run.path)?)))
        .collect::<io::Result<Vec<_>>>()?;
    // The head of every run, and of the iterator (source `readers.len()`).
    let mut heads = BinaryHeap::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        if let Some(rec) = Rec::read(reader)? {
            heads.push(Reverse((rec, i)));
        }
    }
    if let Some(rec) = memory.next() {
        heads.push(Reverse((rec, readers.len())));
    }
    while let Some(Reverse((rec, i))) = heads.pop() {
        let next = match readers.get_mut(i) {
            Some(reader) => Rec::read(reader)?,
            None => memory.next(),
        };
        if let Some(next) = next {
            heads.push(Reverse((next, i)));
        }
        f(rec)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_small() {
        assert_eq!(std::mem::size_of::<Rec>(), 64);
    }

    #[test]
    fn records_read_back_as_written() {
        let recs = [
            Rec {
                time: -5,
                tie: Tie::num(u128::MAX - 3),
                rank: 7,
                line: u64::MAX,
                order: 2,
                key: 9,
                reference: 11,
            },
            Rec {
                time: i64::MIN,
                tie: Tie::Bytes("é\u{0}x".as_bytes().into()),
                rank: 0,
                line: 1,
                order: 0,
                key: 0,
                reference: 0,
            },
            Rec {
                time: 3,
                tie: Tie::Missing,
                rank: 1,
                line: 2,
                order: 3,
                key: 4,
                reference: 5,
            },
        ];
        let mut bytes = Vec::new();
        for rec in &recs {
            rec.write(&mut bytes).unwrap();
        }
        let mut input = &bytes[..];
        for rec in &recs {
            assert_eq!(Rec::read(&mut input).unwrap().as_ref(), Some(rec));
        }
        assert_eq!(Rec::read(&mut input).unwrap(), None);
    }
}
