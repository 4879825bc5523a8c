//! Regions: a large plain file cut at line starts into regions read in parallel with
//! positional reads, and byte-range inputs (the lines that start in a range of a file).

use super::source::{self, Compression, Counted};
use super::ScanReport;
use super::{failed, open_file, Engine, Stream};
use crate::error::{InputError, InputErrorKind};
use rayon::prelude::*;
use std::fs::File;
use std::io::{self, Read};
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
        let file = match open_file(path) {
            Ok(file) => file,
            Err(e) => return failed(e),
        };
        let len = match file.metadata() {
            Ok(meta) => meta.len(),
            Err(e) => return failed(InputError::read(start, None, &e)),
        };
        if start == 0 {
            // The file's first bytes decide its encoding, as for the whole file.
            let mut head = vec![0; source::MAGIC_LEN.min(len as usize)];
            if let Err(e) = read_exact_at(&file, &mut head, 0) {
                return failed(InputError::read(0, None, &e));
            }
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
        }
        let first = match start {
            0 => 0,
            _ => match first_line_start(&file, start, len) {
                Ok(first) => first,
                Err(e) => return failed(InputError::read(start, None, &e)),
            },
        };
        let reader = Owned {
            file: &file,
            pos: first,
            end: end.min(len).max(first),
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

    /// A regular file large enough is cut into regions that start at line starts, each read
    /// by its own thread with positional reads: no single reader to wait for, and each
    /// thread scans bytes it has just read. `None` when the file is not suitable.
    #[cfg(unix)]
    pub(super) fn scan_regions(&self, file: &File, scan: &Stream<'_>) -> Option<ScanReport> {
        let meta = file.metadata().ok()?;
        let len = meta.len();
        let size = scan.opts.buffer_size.max(1) as u64;
        // Two regions per worker even out uneven regions and busy cores.
        let count = (2 * scan.workers as u64).min(len / size);
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
        let one = Stream {
            workers: 1,
            ..*scan
        };
        let parts: Vec<_> = starts
            .par_iter()
            .zip(ends)
            .with_max_len(1)
            .map(|(&start, end)| {
                let reader = Region {
                    file,
                    pos: start,
                    end,
                };
                let reader = Counted::new(reader, scan.own, scan.progress);
                let (mut part, cancelled, error) = self.stream_lines(reader, &one, start == 0);
                // Byte offsets in the whole file, for the first region that failed.
                if let Some(e) = error {
                    let at = start + part.stats.bytes;
                    part.stats.error = Some(InputError::read(at, None, &e));
                }
                (part, cancelled)
            })
            .collect();
        let mut parts = parts.into_iter();
        let (mut total, mut cancelled) = parts.next()?;
        for (part, part_cancelled) in parts {
            total.absorb(part);
            cancelled |= part_cancelled;
        }
        total.stats.source_bytes = total.stats.bytes;
        if cancelled && total.stats.error.is_none() {
            total.stats.error = Some(InputError::interrupted(total.stats.bytes, total.line_no));
        }
        Some(total.finish(cancelled))
    }
}

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
/// at or after `at - 1` (`len` when there is none).
fn first_line_start(file: &File, at: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = at - 1;
    while pos < len {
        let n = match read_at(file, &mut buf, pos) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Ok(len)
}

/// One positional read (the file's cursor is not used, so threads may share the file).
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_at(buf, pos)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        file.seek_read(buf, pos)
    }
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, pos) {
            Ok(0) => break,
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The bytes a byte range owns: from its first line start up to `end`, then on to the end
/// of the line that runs past `end`.
struct Owned<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    /// The last byte read (`\n` before the first read).
    last: u8,
    done: bool,
}

impl Read for Owned<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.pos < self.end {
            let want = (self.end - self.pos).min(buf.len() as u64) as usize;
            let n = read_at(self.file, &mut buf[..want], self.pos)?;
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
        let n = read_at(self.file, buf, self.pos)?;
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
