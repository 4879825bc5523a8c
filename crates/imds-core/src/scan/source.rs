//! Where the bytes come from (files, stdin, any reader) and how they are decoded: gzip
//! (multi-member) and zstd (multi-frame) are recognised by their magic bytes, never by the
//! file name; everything else is scanned as plain NDJSON.

use std::io::{self, BufRead, BufReader, Chain, Cursor, ErrorKind, Read, Seek};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// One input of a scan.
pub enum Input {
    /// A file (a large plain file is cut into regions scanned in parallel).
    Path(PathBuf),
    /// The process's standard input.
    Stdin,
    /// Any byte stream (e.g. an object store download driven from Python).
    Reader(Box<dyn Read + Send>),
    /// The lines of a plain file that start inside the byte range `[start, end)`: the partial
    /// line at `start` belongs to the previous range, the line running past `end` is read to
    /// its end. Hit and example line numbers count from the range's first line, and
    /// `FileStats::lines` is the number of lines it owns, so that consecutive ranges give
    /// the whole file's results once each range's line numbers are shifted by the lines of
    /// the ranges before it. Compressed files cannot be read by range.
    Range {
        /// The file.
        path: PathBuf,
        /// The first byte of the range.
        start: u64,
        /// The byte after the range.
        end: u64,
    },
    /// [`Input::Range`] of a seekable stream (e.g. an object store file opened from Python).
    StreamRange {
        /// The stream, positioned anywhere (it is sought to the range).
        reader: Box<dyn ReadSeek + Send>,
        /// The first byte of the range.
        start: u64,
        /// The byte after the range.
        end: u64,
    },
}

/// A byte stream that can also seek ([`Input::StreamRange`]).
pub trait ReadSeek: Read + Seek {}

impl<T: Read + Seek> ReadSeek for T {}

impl From<PathBuf> for Input {
    fn from(path: PathBuf) -> Input {
        Input::Path(path)
    }
}

/// How an input's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    Plain,
    /// gzip (any number of members).
    Gzip,
    /// zstd (any number of frames).
    Zstd,
}

impl Compression {
    /// `None` for plain input.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Compression::Plain => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }

    /// The encoding announced by the first bytes of an input (at least `MAGIC_LEN` of them
    /// unless the input is shorter). `Err` names a compression, or a UTF-16/32 byte-order
    /// mark, that is recognised but not supported (scanning it as text would only report
    /// garbage); [`crate::InputError`] words it.
    pub fn detect(head: &[u8]) -> Result<Compression, &'static str> {
        Ok(match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            // A zstd skippable frame (magic 0x184D2A50..=0x184D2A5F, little-endian).
            [b, 0x2a, 0x4d, 0x18, ..] if b & 0xf0 == 0x50 => Compression::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => return Err("xz"),
            [b'B', b'Z', b'h', ..] => return Err("bzip2"),
            [b'P', b'K', 0x03, 0x04, ..] => return Err("zip"),
            [0x04, 0x22, 0x4d, 0x18, ..] => return Err("lz4"),
            [0xff, 0xfe, 0x00, 0x00, ..] => return Err("UTF-32LE"),
            [0x00, 0x00, 0xfe, 0xff, ..] => return Err("UTF-32BE"),
            [0xff, 0xfe, ..] => return Err("UTF-16LE"),
            [0xfe, 0xff, ..] => return Err("UTF-16BE"),
            _ => Compression::Plain,
        })
    }
}

/// Read up to [`MAGIC_LEN`] bytes, keeping those read before an error.
pub fn read_head_keep<R: Read>(reader: &mut R) -> (Vec<u8>, Option<io::Error>) {
    let mut head = vec![0; MAGIC_LEN];
    let mut len = 0;
    let mut error = None;
    while len < MAGIC_LEN {
        match reader.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    head.truncate(len);
    (head, error)
}

/// A reader that fails once with `error` (if any), then ends.
pub struct Failing(pub Option<io::Error>);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        self.0.take().map_or(Ok(0), Err)
    }
}

/// Bytes needed by [`Compression::detect`].
pub const MAGIC_LEN: usize = 6;

/// Counts the bytes read from a source: for this input (`own`) and for the whole scan
/// (`total`, which a caller may poll to show progress).
pub struct Counted<'a, R> {
    inner: R,
    own: &'a AtomicU64,
    total: &'a AtomicU64,
}

impl<'a, R> Counted<'a, R> {
    pub fn new(inner: R, own: &'a AtomicU64, total: &'a AtomicU64) -> Counted<'a, R> {
        Counted { inner, own, total }
    }
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.own.fetch_add(n as u64, Ordering::Relaxed);
        self.total.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Read up to [`MAGIC_LEN`] bytes (fewer only at the end of the input).
pub fn read_head<R: Read>(reader: &mut R) -> io::Result<Vec<u8>> {
    let mut head = vec![0; MAGIC_LEN];
    let mut len = 0;
    while len < MAGIC_LEN {
        match reader.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted || is_idle(&e) => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(len);
    Ok(head)
}

/// The input with its first bytes put back in front.
pub type Rejoined<R> = Chain<Cursor<Vec<u8>>, R>;

/// Put `head` (read by [`read_head`]) back in front of the rest of the input.
pub fn rejoin<R: Read>(head: Vec<u8>, rest: R) -> Rejoined<R> {
    Cursor::new(head).chain(rest)
}

/// Standard input, read by a helper thread so that a scan waiting for input can still be
/// cancelled: a read returns [`cancelled`] within 50 ms of `cancel` being set, even when no
/// data comes (the helper thread stays blocked until the process exits). A read that waited
/// 50 ms for data in vain returns [`idle`], so that the lines read so far of a live stream
/// (`tail -f … | imds-scan -`) are scanned and their hits handed on without waiting for a
/// buffer's worth. At most two blocks of 1 MiB wait in the channel.
pub struct CancellableStdin<'a> {
    blocks: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    block: Vec<u8>,
    pos: usize,
    done: bool,
    cancel: &'a std::sync::atomic::AtomicBool,
}

impl<'a> CancellableStdin<'a> {
    pub fn new(cancel: &'a std::sync::atomic::AtomicBool) -> CancellableStdin<'a> {
        let (send, blocks) = std::sync::mpsc::sync_channel(2);
        std::thread::spawn(move || {
            let mut stdin = io::stdin();
            loop {
                let mut block = vec![0; 1 << 20];
                let sent = match stdin.read(&mut block) {
                    Ok(0) => break,
                    Ok(n) => {
                        block.truncate(n);
                        send.send(Ok(block))
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = send.send(Err(e));
                        break;
                    }
                };
                if sent.is_err() {
                    break; // the scan is over
                }
            }
        });
        CancellableStdin {
            blocks,
            block: Vec::new(),
            pos: 0,
            done: false,
            cancel,
        }
    }
}

impl Read for CancellableStdin<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::sync::mpsc::RecvTimeoutError;
        while self.pos == self.block.len() && !self.done {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(cancelled());
            }
            match self
                .blocks
                .recv_timeout(std::time::Duration::from_millis(50))
            {
                Ok(Ok(block)) => {
                    self.block = block;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(RecvTimeoutError::Timeout) => return Err(idle()),
                Err(RecvTimeoutError::Disconnected) => self.done = true,
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Why a read gave no data without the input failing: the scan was cancelled, or a live
/// stream has none yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    Cancelled,
    Idle,
}

impl std::fmt::Display for Pause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pause::Cancelled => "the scan was interrupted",
            Pause::Idle => "no input yet",
        })
    }
}

impl std::error::Error for Pause {}

fn is_pause(e: &io::Error, pause: Pause) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<Pause>())
        .is_some_and(|p| *p == pause)
}

/// The error of a read stopped because the scan was cancelled.
pub fn cancelled() -> io::Error {
    io::Error::other(Pause::Cancelled)
}

/// Whether a read error is [`cancelled`].
pub fn is_cancelled(e: &io::Error) -> bool {
    is_pause(e, Pause::Cancelled)
}

/// A read found no data yet: the input is open and may give more (try again).
pub fn idle() -> io::Error {
    io::Error::new(ErrorKind::WouldBlock, Pause::Idle)
}

/// Whether a read error is [`idle`].
pub fn is_idle(e: &io::Error) -> bool {
    is_pause(e, Pause::Idle)
}

/// A reader whose [`idle`] reads are tried again: for the readers (decoders) that would take
/// it for a failure.
pub struct WaitIdle<R>(pub R);

impl<R: Read> Read for WaitIdle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if is_idle(&e) => {}
                other => return other,
            }
        }
    }
}

/// Compressed input is read in pieces of this size: large enough for few calls, small enough
/// that the byte offset reported with a decoding error is close to the damage.
pub const COMPRESSED_READ: usize = 256 << 10;

/// Decoded bytes are asked for in reads of at most this size: a decoder that meets damaged
/// data fails the whole read, and what that read had decoded before the damage is lost.
pub const DECODED_READ: usize = 64 << 10;

/// A decoder read in pieces of at most [`DECODED_READ`] bytes.
pub struct Capped<R>(R);

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(DECODED_READ);
        self.0.read(&mut buf[..n])
    }
}

/// A gzip decoder that reads every member of a multi-member file (as `gzip -d` does).
pub fn gzip<R: Read>(input: R) -> Capped<GzMembers<R>> {
    let input = BufReader::with_capacity(COMPRESSED_READ, input);
    Capped(GzMembers {
        member: Some(flate2::bufread::GzDecoder::new(input)),
    })
}

/// Gzip members one after another. Zero bytes after a member are padding (tape and block
/// devices leave it), skipped as Python's `gzip` module and `gzip -d` skip them: the
/// reference engine reads such a file whole.
pub struct GzMembers<R: Read> {
    /// The member being decoded; `None` at the end.
    member: Option<flate2::bufread::GzDecoder<BufReader<R>>>,
}

impl<R: Read> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while let Some(member) = self.member.as_mut() {
            let n = member.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The member ended: the next one starts at the first byte that is not padding.
            let Some(member) = self.member.take() else {
                break;
            };
            let mut input = member.into_inner();
            loop {
                let rest = input.fill_buf()?;
                let zeros = rest.iter().take_while(|&&b| b == 0).count();
                if rest.is_empty() {
                    return Ok(0);
                }
                if zeros == 0 {
                    break;
                }
                input.consume(zeros);
            }
            self.member = Some(flate2::bufread::GzDecoder::new(input));
        }
        Ok(0)
    }
}

/// A zstd decoder that reads every frame (skippable frames are skipped).
pub fn zstd<R: Read>(
    input: R,
) -> io::Result<Capped<zstd::stream::read::Decoder<'static, BufReader<R>>>> {
    zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(COMPRESSED_READ, input))
        .map(Capped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn magic_bytes() {
        assert_eq!(
            Compression::detect(b"\x1f\x8b\x08\0"),
            Ok(Compression::Gzip)
        );
        assert_eq!(
            Compression::detect(b"\x28\xb5\x2f\xfd\0\0"),
            Ok(Compression::Zstd)
        );
        assert_eq!(
            Compression::detect(b"\x5e\x2a\x4d\x18\0\0"),
            Ok(Compression::Zstd)
        );
        assert_eq!(Compression::detect(b"{\"a\":1}"), Ok(Compression::Plain));
        assert_eq!(Compression::detect(b""), Ok(Compression::Plain));
        assert_eq!(Compression::detect(b"\x1f"), Ok(Compression::Plain));
        assert_eq!(Compression::detect(b"\xfd7zXZ\0"), Err("xz"));
        assert_eq!(Compression::detect(b"BZh91AY"), Err("bzip2"));
    }

    #[test]
    fn multi_member_gzip_and_multi_frame_zstd() {
        let mut gz = Vec::new();
        for part in [&b"one\n"[..], b"two\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            gz.extend(enc.finish().unwrap());
        }
        let mut out = String::new();
        gzip(&gz[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "one\ntwo\n");

        let mut zs = zstd::encode_all(&b"one\n"[..], 3).unwrap();
        zs.extend(zstd::encode_all(&b"two\n"[..], 3).unwrap());
        let mut out = String::new();
        zstd(&zs[..]).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "one\ntwo\n");
    }

    #[test]
    fn zero_padding_after_a_gzip_member_is_skipped_and_other_bytes_are_not() {
        let member = |text: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(text).unwrap();
            enc.finish().unwrap()
        };
        let decode = |data: &[u8]| {
            let mut out = Vec::new();
            gzip(data).read_to_end(&mut out).map(|_| out)
        };
        // Padding between members and at the end; more than one buffer of it.
        let mut gz = member(b"one\n");
        gz.extend(vec![0; 100]);
        gz.extend(member(b"two\n"));
        gz.extend(vec![0; COMPRESSED_READ + 3]);
        assert_eq!(decode(&gz).unwrap(), b"one\ntwo\n");
        // Anything else after a member is no member: an error, after what came before.
        let mut bad = member(b"one\n");
        bad.extend(b"\0\0not a gzip member");
        let mut out = Vec::new();
        let mut reader = gzip(&bad[..]);
        let mut buf = [0u8; 64];
        let err = loop {
            match reader.read(&mut buf) {
                Ok(0) => panic!("junk after a member was read as the end"),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(out, b"one\n");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }

    #[test]
    fn counting_and_rejoining() {
        let (own, total) = (AtomicU64::new(0), AtomicU64::new(5));
        let mut reader = Counted::new(&b"abcdefghij"[..], &own, &total);
        let head = read_head(&mut reader).unwrap();
        assert_eq!(head, b"abcdef");
        let mut all = String::new();
        rejoin(head, reader).read_to_string(&mut all).unwrap();
        assert_eq!(all, "abcdefghij");
        assert_eq!(own.load(Ordering::Relaxed), 10);
        assert_eq!(total.load(Ordering::Relaxed), 15);
    }
}
