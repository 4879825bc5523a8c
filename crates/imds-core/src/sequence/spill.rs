//! The spill file of sequence candidates: each candidate's (input rank, line, text), found
//! again by its offset (the `ref` the matchers keep), so results can print their events.
//!
//! A candidate's offset is where it starts among all candidates' bytes (header and text, one
//! after another), whatever the file holds. The file holds them as they are up to
//! `compress_from` bytes, then in zstd blocks: with Elastic's rule set nine lines in ten are
//! candidates, so a terabyte scan would need about a terabyte of temporary space; compressed,
//! about a seventh. Small scans keep the plain file (no compression CPU).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

/// A candidate's header: input rank (u32), line (u64), text length (u64), little endian;
/// then the text (the layout of `imds_scan.sequences._Spill`).
const HEADER: usize = 4 + 8 + 8;

/// Candidates' bytes gathered before they are written (plain), or compressed as one block.
const WRITE_SIZE: usize = 1 << 20;

/// Compressed block size: a result's event read back costs one block's decompression (about
/// 0.1 ms for 256 KiB), and the ratio hardly drops below it (1 MiB blocks of the benchmark
/// corpus: 6.9× at level 1).
const BLOCK_SIZE: usize = 256 << 10;

/// Candidates' bytes kept plain before the rest is compressed.
pub const COMPRESS_FROM: u64 = 1 << 30;

/// zstd level of the blocks: 1, the fastest of the positive levels (about 600 MB/s here).
const LEVEL: i32 = 1;

/// Bytes [`Spill::get`] reads at once from the plain part.
const FIRST_READ: usize = 4096;

/// Offsets of plain candidates read in one go by [`Spill::get_many`] when this close together.
const STRETCH: u64 = 256 << 10;

/// A compressed block: the candidates' bytes from `start` (an offset), stored at `at` in the
/// file in `len` bytes.
#[derive(Debug, Clone, Copy)]
struct Block {
    start: u64,
    at: u64,
    len: usize,
}

/// The candidates' spill file (see the module's documentation).
#[derive(Debug)]
pub struct Spill {
    file: Option<File>,
    /// All candidates' bytes (the next offset).
    end: u64,
    /// The offset where `pending` starts: what is before it is in the file.
    written: u64,
    pending: Vec<u8>,
    /// (rank, line, offset) of the candidate put last: a line's hits share its text.
    last: Option<(u32, u64, u64)>,
    compress_from: u64,
    /// The plain part's end (offsets and file bytes alike), once blocks follow it.
    plain_end: Option<u64>,
    /// The file's size.
    file_end: u64,
    blocks: Vec<Block>,
    /// The block read last, decompressed: results read candidates spilled near one another.
    cached: Option<(usize, Vec<u8>)>,
}

fn closed() -> io::Error {
    io::Error::other("the candidates' spill file is closed")
}

impl Spill {
    /// A spill over `file` (empty, open to read and write) whose candidates past `bytes`
    /// are compressed ([`COMPRESS_FROM`] by default in the binding).
    pub fn compressing_from(file: File, bytes: u64) -> Spill {
        Spill {
            file: Some(file),
            end: 0,
            written: 0,
            pending: Vec::new(),
            last: None,
            compress_from: bytes,
            plain_end: None,
            file_end: 0,
            blocks: Vec::new(),
            cached: None,
        }
    }

    /// Whether the file is still open (not [`Spill::close`]d).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Close the file; every call after fails.
    pub fn close(&mut self) {
        self.file = None;
        self.pending = Vec::new();
        self.cached = None;
    }

    /// The candidates' bytes, and the file's (what is written of them so far).
    pub fn sizes(&self) -> (u64, u64) {
        (self.end, self.file_end)
    }

    /// Write what is pending: as it is until `compress_from`, then as blocks.
    fn flush(&mut self) -> io::Result<()> {
        let file = self.file.as_mut().ok_or_else(closed)?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.plain_end.is_none() {
            file.seek(SeekFrom::Start(self.file_end))
                .and_then(|_| file.write_all(&self.pending))?;
            self.file_end += self.pending.len() as u64;
            if self.end >= self.compress_from {
                self.plain_end = Some(self.end);
            }
        } else {
            // Whole candidates per block (as put ends them), so none spans two. The blocks
            // count once all are written: after a failed write the next flush writes them
            // all again.
            let mut blocks = Vec::new();
            let mut file_end = self.file_end;
            let mut at = 0;
            while at < self.pending.len() {
                let mut stop = at;
                while stop < self.pending.len() && stop - at < BLOCK_SIZE {
                    stop += record_size(&self.pending[stop..])?;
                }
                let packed = zstd::bulk::compress(&self.pending[at..stop], LEVEL)?;
                file.seek(SeekFrom::Start(file_end))
                    .and_then(|_| file.write_all(&packed))?;
                blocks.push(Block {
                    start: self.written + at as u64,
                    at: file_end,
                    len: packed.len(),
                });
                file_end += packed.len() as u64;
                at = stop;
            }
            self.blocks.extend(blocks);
            self.file_end = file_end;
        }
        self.pending.clear();
        self.written = self.end;
        Ok(())
    }

    /// Spill a candidate and give its offset; the hits of one line (the last one spilled)
    /// share one copy.
    pub fn put(&mut self, rank: u32, line: u64, text: &str) -> io::Result<u64> {
        if self.file.is_none() {
            return Err(closed());
        }
        if let Some((r, l, offset)) = self.last {
            if (r, l) == (rank, line) {
                return Ok(offset);
            }
        }
        let offset = self.end;
        self.pending.extend_from_slice(&rank.to_le_bytes());
        self.pending.extend_from_slice(&line.to_le_bytes());
        self.pending
            .extend_from_slice(&(text.len() as u64).to_le_bytes());
        self.pending.extend_from_slice(text.as_bytes());
        self.end += (HEADER + text.len()) as u64;
        self.last = Some((rank, line, offset));
        // The plain part ends on a write: the compressed part starts with the next one.
        let plain_ends = self.plain_end.is_none() && self.end >= self.compress_from;
        if self.pending.len() >= WRITE_SIZE || plain_ends {
            self.flush()?;
        }
        Ok(offset)
    }

    /// The candidate at `offset`: (input rank, line, text).
    pub fn get(&mut self, offset: u64) -> io::Result<(u32, u64, Vec<u8>)> {
        if self.file.is_none() {
            return Err(closed());
        }
        if offset >= self.written {
            // Not written yet: read where it waits.
            let at = usize::try_from(offset - self.written).map_err(|_| out_of_range())?;
            return record(self.pending.get(at..).ok_or_else(out_of_range)?);
        }
        match self.plain_end {
            Some(end) if offset >= end => {
                let (start, bytes) = self.block_of(offset)?;
                let at = usize::try_from(offset - start).map_err(|_| out_of_range())?;
                record(bytes.get(at..).ok_or_else(out_of_range)?)
            }
            _ => self.get_plain(offset),
        }
    }

    /// A candidate of the plain part.
    fn get_plain(&mut self, offset: u64) -> io::Result<(u32, u64, Vec<u8>)> {
        let file = self.file.as_mut().ok_or_else(closed)?;
        // One read for the header and most events' text (a result reads one per event).
        let mut buf = vec![0u8; FIRST_READ];
        let got = read_at(file, &mut buf, offset)?;
        let (rank, line, total) = header(&buf[..got])?;
        if total > got {
            buf.resize(total, 0);
            if read_at(file, &mut buf[got..], offset + got as u64)? < total - got {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        buf.truncate(total);
        buf.drain(..HEADER);
        Ok((rank, line, buf))
    }

    /// The compressed block holding `offset`, decompressed: its first offset and its bytes.
    fn block_of(&mut self, offset: u64) -> io::Result<(u64, &[u8])> {
        let k = self
            .blocks
            .partition_point(|b| b.start <= offset)
            .checked_sub(1)
            .ok_or_else(out_of_range)?;
        if self.cached.as_ref().map(|(c, _)| *c) != Some(k) {
            let block = self.blocks[k];
            let size =
                (self.blocks.get(k + 1).map_or(self.written, |b| b.start) - block.start) as usize;
            let file = self.file.as_mut().ok_or_else(closed)?;
            let mut packed = vec![0u8; block.len];
            if read_at(file, &mut packed, block.at)? < block.len {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let bytes = zstd::bulk::decompress(&packed, size)?;
            if bytes.len() != size {
                return Err(io::Error::other(
                    "a spilled block's size is not what was written",
                ));
            }
            self.cached = Some((k, bytes));
        }
        let start = self.blocks[k].start;
        let (_, bytes) = self.cached.as_ref().ok_or_else(out_of_range)?;
        Ok((start, bytes))
    }

    /// [`Spill::get`] of each of `offsets`, in their order: the plain part read in stretches
    /// (the candidates of a chunk of results were spilled near one another, and a read per
    /// candidate cost more than making their records), the blocks each decompressed once.
    pub fn get_many(&mut self, offsets: &[u64]) -> io::Result<Vec<(u32, u64, Vec<u8>)>> {
        if self.file.is_none() {
            return Err(closed());
        }
        let plain_end = self.plain_end.unwrap_or(self.written).min(self.written);
        let mut order: Vec<usize> = (0..offsets.len()).collect();
        order.sort_unstable_by_key(|&i| offsets[i]);
        let mut found: Vec<Option<(u32, u64, Vec<u8>)>> = vec![None; offsets.len()];
        let mut buf = Vec::new();
        let mut k = 0;
        while k < order.len() {
            let start = offsets[order[k]];
            if start >= plain_end {
                found[order[k]] = Some(self.get(start)?);
                k += 1;
                continue;
            }
            let mut j = k;
            while j + 1 < order.len()
                && offsets[order[j + 1]] < plain_end
                && offsets[order[j + 1]] - start < STRETCH
            {
                j += 1;
            }
            let size = usize::try_from(offsets[order[j]] - start).unwrap_or(usize::MAX);
            buf.resize(size.saturating_add(FIRST_READ), 0);
            let file = self.file.as_mut().ok_or_else(closed)?;
            let got = read_at(file, &mut buf, start)?;
            for &i in &order[k..=j] {
                let at = usize::try_from(offsets[i] - start).unwrap_or(usize::MAX);
                let here = buf.get(at..got).unwrap_or_default();
                found[i] = Some(match header(here) {
                    Ok((rank, line, total)) if total <= here.len() => {
                        (rank, line, here[HEADER..total].to_vec())
                    }
                    // A long text (or the end of the file): read alone.
                    _ => self.get_plain(offsets[i])?,
                });
            }
            k = j + 1;
        }
        Ok(found.into_iter().flatten().collect())
    }
}

fn out_of_range() -> io::Error {
    io::Error::other("no spilled candidate at this offset")
}

/// A candidate's input rank, line and size with its header, from its first bytes.
fn header(bytes: &[u8]) -> io::Result<(u32, u64, usize)> {
    if bytes.len() < HEADER {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let rank = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let line = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
    let size = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let total = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_add(HEADER))
        .ok_or_else(|| io::Error::other("a spilled candidate's size is out of range"))?;
    Ok((rank, line, total))
}

/// The size of the candidate at the start of `bytes`, header included.
fn record_size(bytes: &[u8]) -> io::Result<usize> {
    let (_, _, total) = header(bytes)?;
    if total > bytes.len() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(total)
}

/// The candidate at the start of `bytes`.
fn record(bytes: &[u8]) -> io::Result<(u32, u64, Vec<u8>)> {
    let (rank, line, total) = header(bytes)?;
    let text = bytes
        .get(HEADER..total)
        .ok_or(io::ErrorKind::UnexpectedEof)?;
    Ok((rank, line, text.to_vec()))
}

/// Read `buf.len()` bytes of `file` from `offset`, fewer at its end: how many.
fn read_at(file: &mut File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = {
            use std::os::unix::fs::FileExt;
            file.read_at(&mut buf[done..], offset + done as u64)
        };
        #[cfg(not(unix))]
        let n = {
            use std::io::Read;
            file.seek(SeekFrom::Start(offset + done as u64))
                .and_then(|_| file.read(&mut buf[done..]))
        };
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spill(compress_from: u64) -> Spill {
        let file = tempfile_in_target();
        Spill::compressing_from(file, compress_from)
    }

    /// An unlinked temporary file.
    fn tempfile_in_target() -> File {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "imds-spill-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("temporary file");
        let _ = std::fs::remove_file(&path);
        file
    }

    /// Log-like texts of varied sizes (one far larger than a block).
    fn text(k: u64) -> String {
        let size = match k % 97 {
            0 => 600_000,
            n => (n * 37) as usize,
        };
        let body: String = (0..size)
            .map(|i| char::from(b'a' + ((i as u64 * 7 + k) % 26) as u8))
            .collect();
        format!(r#"{{"n":{k},"process":{{"args":["{body}"]}},"é":"ü"}}"#)
    }

    /// Put `count` candidates (each line's second hit too), then read them all back, one by
    /// one in a scrambled order and all at once.
    fn round_trip(compress_from: u64, count: u64) -> Spill {
        let mut s = spill(compress_from);
        let mut refs = Vec::new();
        for k in 0..count {
            let offset = s.put((k % 3) as u32, k, &text(k)).unwrap();
            // Another rule's hit on the same line: the same copy.
            assert_eq!(s.put((k % 3) as u32, k, &text(k)).unwrap(), offset);
            refs.push(offset);
            if k % 50 == 7 {
                // Read while candidates still come (some wait unwritten).
                let back = s.get(refs[(k / 2) as usize]).unwrap();
                assert_eq!(back.1, k / 2);
            }
        }
        let mut order: Vec<u64> = (0..count).collect();
        order.sort_by_key(|&k| (k * 7919) % count);
        for &k in &order {
            let (rank, line, bytes) = s.get(refs[k as usize]).unwrap();
            assert_eq!((rank, line), ((k % 3) as u32, k));
            assert_eq!(String::from_utf8(bytes).unwrap(), text(k));
        }
        let wanted: Vec<u64> = order.iter().map(|&k| refs[k as usize]).collect();
        let many = s.get_many(&wanted).unwrap();
        for (&k, (rank, line, bytes)) in order.iter().zip(many) {
            assert_eq!((rank, line), ((k % 3) as u32, k));
            assert_eq!(bytes, text(k).into_bytes());
        }
        s
    }

    #[test]
    fn plain_candidates_come_back_as_they_went() {
        let s = round_trip(u64::MAX, 400);
        let (bytes, file) = s.sizes();
        assert!(s.blocks.is_empty() && s.plain_end.is_none());
        assert!(file <= bytes && file > bytes.saturating_sub(WRITE_SIZE as u64));
    }

    #[test]
    fn compressed_candidates_come_back_as_they_went() {
        // Plain for the first 100 KB, then blocks (one of a text larger than a block).
        let s = round_trip(100_000, 400);
        assert!(s.blocks.len() > 2, "{:?}", s.blocks.len());
        assert!(s.plain_end.is_some_and(|end| end >= 100_000));
        let (bytes, file) = s.sizes();
        assert!(file * 4 < bytes, "{file} bytes in the file for {bytes}");
    }

    #[test]
    fn a_spill_compressed_from_the_start_holds_blocks_only() {
        let mut s = spill(0);
        let a = s.put(0, 1, "first").unwrap();
        let b = s.put(0, 2, &"x".repeat(3 * WRITE_SIZE)).unwrap();
        let c = s.put(1, 3, "third").unwrap();
        assert_eq!(s.plain_end, Some(a + HEADER as u64 + 5));
        assert_eq!(s.get(c).unwrap(), (1, 3, b"third".to_vec()));
        assert_eq!(s.get(a).unwrap(), (0, 1, b"first".to_vec()));
        assert_eq!(s.get(b).unwrap().2.len(), 3 * WRITE_SIZE);
        assert!(s.get(c + 1).is_err(), "no candidate starts there");
    }

    #[test]
    fn a_failed_block_write_is_written_again_whole() {
        let mut s = spill(0);
        let a = s.put(0, 1, "first").unwrap();
        // Blocks cannot be written for a while (a full disk): the write fails, and nothing
        // of it counts.
        let good = s.file.replace(File::open("/dev/null").unwrap());
        let big = "y".repeat(WRITE_SIZE + 10);
        assert!(s.put(0, 2, &big).is_err());
        assert!(s.blocks.is_empty());
        let file_end = s.sizes().1;
        s.file = good;
        let c = s.put(0, 3, "third").unwrap();
        s.flush().unwrap();
        assert!(s.sizes().1 > file_end);
        assert_eq!(s.get(a).unwrap().2, b"first");
        let b = a + (HEADER + 5) as u64;
        assert_eq!(s.get(b).unwrap().2, big.as_bytes());
        assert_eq!(s.get(c).unwrap(), (0, 3, b"third".to_vec()));
        assert_eq!(s.get_many(&[c, b, a]).unwrap()[1].2.len(), big.len());
    }

    #[test]
    fn a_closed_spill_refuses_everything() {
        let mut s = spill(0);
        let a = s.put(0, 1, "first").unwrap();
        s.close();
        assert!(!s.is_open());
        assert!(s.put(0, 2, "second").is_err());
        assert!(s.get(a).is_err());
        assert!(s.get_many(&[a]).is_err());
    }
}
