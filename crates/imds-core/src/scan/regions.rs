//! Regions: a large plain file cut at line starts into regions read in parallel with
//! positional reads, and byte-range inputs (the lines that start in a range of a file).

use super::lines::LineScanner;
use super::source::{self, Compression, Counted};
use super::ScanReport;
use super::{failed, open_file, Engine, Stream};
use crate::error::{InputError, InputErrorKind};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering;

impl Engine {
    /// Scan the lines of a plain file that start in `[start, end)` ([`super::Input::Range`]).
    pub(super) fn scan_range(
        &self,
        path: &Path,
        start: u64,
        end: u64,
        scan: &Stream<'_>,
    ) -> ScanReport {
        match open_file(path, scan.cancel) {
            Ok(file) => self.scan_range_of(file, start, end, scan),
            Err(e) => failed(e),
        }
    }

    /// Scan the lines of a seekable stream that start in `[start, end)`: read from `start -
    /// 1` to the first line start, then on to `end` and to the end of the line running past
    /// it ([`super::Input::Range`]).
    pub(super) fn scan_range_of<R: Read + Seek + Send>(
        &self,
        mut reader: R,
        start: u64,
        end: u64,
        scan: &Stream<'_>,
    ) -> ScanReport {
        let (first, pending) = if start == 0 {
            // The first bytes decide the encoding, as for the whole input.
            let head = match source::read_head(&mut reader) {
                Ok(head) => head,
                Err(e) => return failed(InputError::read(0, None, &e)),
            };
            match Compression::detect(&head) {
                Ok(Compression::Plain) => {}
                Ok(compression) => {
                    return failed(InputError {
                        format: compression.name(),
                        ..InputError::new(InputErrorKind::CompressedRange)
                    })
                }
                Err(kind) => return failed(InputError::unsupported(kind, None)),
            }
            (0, head)
        } else {
            match first_line_start(&mut reader, start) {
                Ok(found) => found,
                Err(e) => return failed(InputError::read(start, None, &e)),
            }
        };
        let reader = Owned {
            reader,
            pending,
            pos: first,
            end,
            last: b'\n',
            done: first >= end,
        };
        let reader = Counted::new(reader, scan.own, scan.progress);
        let (mut lines, mut cancelled, mut error) = self.stream_lines(reader, scan, first == 0);
        if error.as_ref().is_some_and(source::is_cancelled) {
            (cancelled, error) = (true, None);
        }
        let stats = &mut lines.stats;
        stats.source_bytes = scan.own.load(Ordering::Relaxed);
        let (bytes, line) = (stats.bytes, lines.line_no);
        stats.error = match error {
            Some(e) => Some(InputError::read(first + bytes, Some(line), &e)),
            None if cancelled => Some(InputError::interrupted(first + bytes, line)),
            None => None,
        };
        lines.finish(cancelled)
    }

    /// The lines of a plain file in `[start, end)`, `start` a line start: a region of
    /// [`plan_regions`], read with positional reads. Returns the scanner (line numbers from
    /// the region's first line) and whether `cancel` stopped it; a read error is recorded at
    /// its offset in the file.
    #[cfg(unix)]
    pub(super) fn scan_region<'a>(
        &'a self,
        file: &File,
        start: u64,
        end: u64,
        scan: &Stream<'a>,
    ) -> (LineScanner<'a>, bool) {
        let reader = Region {
            file,
            pos: start,
            end,
        };
        let reader = Counted::new(reader, scan.own, scan.progress);
        let (mut part, cancelled, error) = self.stream_lines(reader, scan, start == 0);
        if let Some(e) = error {
            let at = start + part.stats.bytes;
            part.stats.error = Some(InputError::read(at, None, &e));
        }
        (part, cancelled)
    }
}

/// A regular file large enough is cut into regions that start at line starts, each read by
/// a thread of its own with positional reads: no single reader to wait for, and each thread
/// scans bytes it has just read. At least two regions per worker (they even out uneven
/// regions and busy cores), and none longer than [`REGION_BUFFERS`] buffers, so that a part
/// of a streaming scan waiting for its turn waits for a short one. `None` when the file is
/// not suitable.
#[cfg(unix)]
pub(super) fn plan_regions(
    file: &File,
    buffer_size: usize,
    workers: usize,
) -> Option<Vec<(u64, u64)>> {
    let meta = file.metadata().ok()?;
    let len = meta.len();
    let size = buffer_size.max(1) as u64;
    let count = (2 * workers as u64)
        .max(len / (REGION_BUFFERS * size))
        .min(len / size);
    if !meta.is_file() || count < 2 {
        return None;
    }
    let mut starts = vec![0];
    for k in 1..count {
        let start = line_start_at_or_after(file, len * k / count, len)?;
        if start > *starts.last()? && start < len {
            starts.push(start);
        }
    }
    let ends: Vec<u64> = starts.iter().skip(1).copied().chain([len]).collect();
    Some(starts.into_iter().zip(ends).collect())
}

/// The longest region, in read buffers. Short, so that with many hits a region's hits fit
/// in a streaming scan's reorder cap (4 MiB from the Python layer: ~1.5 KB a hit with its
/// record or row, ~2,000 hits in 8 MiB of the benchmark corpus): the lane scanning ahead of
/// the head parks its region instead of waiting for its turn in the middle of it.
#[cfg(unix)]
const REGION_BUFFERS: u64 = 2;

/// Where the first line starting at or after `at` starts (`len` if none): just after the
/// first `\n` at or after `at - 1`.
#[cfg(unix)]
fn line_start_at_or_after(file: &File, at: u64, len: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    if at == 0 {
        return Some(0);
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = at - 1;
    while pos < len {
        let n = file.read_at(&mut buf, pos).ok()?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Some(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Some(len)
}

/// A byte range of a file, read with positional reads (so threads can share the file).
#[cfg(unix)]
struct Region<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

#[cfg(unix)]
impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Where the first line starting at or after `at` (> 0) starts: just after the first `\n`
/// at or after `at - 1` (where the input ends when there is none), and the bytes read after
/// it.
fn first_line_start<R: Read + Seek>(reader: &mut R, at: u64) -> io::Result<(u64, Vec<u8>)> {
    let mut pos = reader.seek(SeekFrom::Start(at - 1))?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok((pos, Vec::new()));
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok((pos + i as u64 + 1, buf[i + 1..n].to_vec()));
        }
        pos += n as u64;
    }
}

/// The bytes a byte range owns: from its first line start up to `end`, then on to the end
/// of the line that runs past `end`.
struct Owned<R> {
    reader: R,
    /// Bytes already read from `reader` that come first.
    pending: Vec<u8>,
    pos: u64,
    end: u64,
    /// The last byte given (`\n` before the first read).
    last: u8,
    done: bool,
}

impl<R: Read> Owned<R> {
    /// The next bytes of the input, pending ones first.
    fn fetch(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            return self.reader.read(buf);
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

impl<R: Read> Read for Owned<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.pos < self.end {
            let want = (self.end - self.pos).min(buf.len() as u64) as usize;
            let n = self.fetch(&mut buf[..want])?;
            if n == 0 {
                self.done = true;
            } else {
                self.pos += n as u64;
                self.last = buf[n - 1];
            }
            return Ok(n);
        }
        if self.last == b'\n' {
            self.done = true;
            return Ok(0);
        }
        // The line running past `end` is this range's: read on to its `\n`.
        let n = self.fetch(buf)?;
        let n = match memchr::memchr(b'\n', &buf[..n]) {
            Some(i) => {
                self.done = true;
                i + 1
            }
            None if n == 0 => {
                self.done = true;
                0
            }
            None => n,
        };
        self.pos += n as u64;
        if n > 0 {
            self.last = buf[n - 1];
        }
        Ok(n)
    }
}
