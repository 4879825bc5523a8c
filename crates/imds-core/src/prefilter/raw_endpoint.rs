//! The raw-line test of the `imds_endpoint` prefilter: a sound test, on the bytes of a JSON
//! line, of whether some string value in it may name a metadata endpoint.
//!
//! One pass classifies the text 64 bytes at a time into bit masks: inet_aton bytes, escapes,
//! backslashes, and where a piece's anchor or an address spelling's first bytes may start
//! (Teddy-style nibble tables). With AVX-512 (with VBMI or without) or AVX2 (`avx512vbmi`,
//! `avx512`, `avx2`, picked at run time) the pass does all of it; otherwise the pieces are
//! searched apart, with aho-corasick over a folded copy of the text.

use super::search::real_escape;
use crate::endpoint::{inet_aton_value, is_token, part_value, ADDRESSES};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512vbmi;
#[cfg(target_arch = "x86_64")]
mod vector;

/// Case-insensitive pieces of which a line holds one whenever a value names an endpoint by a
/// marker, a host name, a wildcard-DNS name or an IPv6 spelling (when the line has no `\u`
/// escape of a token character, no `%XX`, no fullwidth or ideographic dot): a slash-free piece
/// of every marker (`latest` for the `/latest/...` ones, `metadata` for `/metadata/...`,
/// `/computemetadata/...`, `/hetzner/v1/metadata`), every host name, the wildcard-DNS
/// suffixes, `ffff` (the IPv4-mapped group, in any spelling) and `ec2:` (`fd00:ec2::`).
const RAW_PIECES: &[(&[u8], usize, u8)] = &[
    // (piece, offset of its 3-byte anchor: rare in ECS logs, and its bucket in the nibble
    // tables: anchors that share one are chosen so that few other byte triples match it)
    (b"aws_container_credentials_", 12, 0),
    (b"latest", 0, 1),
    (b"metadata", 2, 2),
    (b"opc/v", 2, 3),
    (b"opc\\/v", 2, 3),
    (b"meta_data.json", 3, 0),
    (b"instance-data", 7, 0),
    (b"nip.io", 2, 5),
    (b"sslip.io", 4, 5),
    (b"xip.io", 2, 5),
    (b"ffff", 0, 6),
    (b"ec2:", 1, 4),
    // fullwidth and ideographic dots, UTF-8
    (b"\xE3\x80\x82", 0, 7),
    (b"\xEF\xBC\x8E", 0, 7),
    (b"\xEF\xBD\xA1", 0, 7),
];

const ANCHOR_LEN: usize = 3;
/// No inet_aton spelling of a table address is shorter (`192.192` is 192.0.0.192; a test
/// computes it from the table): shorter runs are never decoded.
const MIN_RUN: usize = 7;
// Buckets 0-7 (the first set of tables) hold the pieces' anchors; 8-15 (the second) the
// first bytes of address spellings, then the anchors of other rules' needles.
/// Octal or hex first part (`0` and an inet_aton byte).
const OCTAL_OR_HEX: u8 = 8;
/// Decimal, several parts: an address's first byte and a dot.
const DECIMAL_PARTS: u8 = 9;
/// Decimal, one part: an address's value.
const DECIMAL_VALUE: u8 = 10;
const NUMBER_BUCKETS: u16 = (1 << OCTAL_OR_HEX) | (1 << DECIMAL_PARTS) | (1 << DECIMAL_VALUE);
/// The buckets of other rules' needles ([`RawTest::holding`]).
const FIRST_HELD: u8 = 11;
const PIECE_BUCKETS: u16 = 0x00FF | (0xFFFF << FIRST_HELD);

/// inet_aton bytes by nibbles (low, high), for the vector kernels: digits, hex letters, `x`,
/// `.`, one bit each (each is a product of a set of low and a set of high nibbles). Tested
/// against `is_aton_byte` through the kernels' masks.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const ATON_NIBBLES: ([u8; 16], [u8; 16]) = (
    [1, 3, 3, 3, 3, 3, 3, 1, 5, 1, 0, 0, 0, 0, 8, 0],
    [0, 0, 8, 1, 2, 4, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0],
);

const HOST: u8 = 1; // [A-Za-z0-9._-]
const DIGIT: u8 = 2; // [0-9]
const ATON: u8 = 4; // [0-9a-fA-FxX.]

const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-' {
            class |= HOST;
        }
        if c.is_ascii_digit() {
            class |= DIGIT;
        }
        if c.is_ascii_hexdigit() || c == b'x' || c == b'X' || c == b'.' {
            class |= ATON;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// Teddy-style fingerprints of 3 bytes in 16 buckets, two sets of 8: bit k of
/// `lo[s][j][b & 15] & hi[s][j][b >> 4]` is set when byte `b` may be byte `j` of a
/// fingerprint in bucket 8s + k. Nibbles are looked up apart, so a bucket also takes some
/// other bytes: every hit is checked again.
#[derive(Debug, Clone, Default)]
struct Fingerprints {
    lo: [[[u8; 16]; ANCHOR_LEN]; 2],
    hi: [[[u8; 16]; ANCHOR_LEN]; 2],
}

impl Fingerprints {
    fn add(&mut self, bucket: u8, j: usize, byte: u8) {
        let (set, bit) = (usize::from(bucket / 8), 1 << (bucket % 8));
        for b in [byte.to_ascii_lowercase(), byte.to_ascii_uppercase()] {
            self.lo[set][j][usize::from(b & 15)] |= bit;
            self.hi[set][j][usize::from(b >> 4)] |= bit;
        }
    }

    fn add_any(&mut self, bucket: u8, j: usize) {
        let (set, bit) = (usize::from(bucket / 8), 1 << (bucket % 8));
        for n in 0..16 {
            self.lo[set][j][n] |= bit;
            self.hi[set][j][n] |= bit;
        }
    }

    /// The buckets whose fingerprint may start at `bytes[0]` (missing bytes match nothing).
    fn at(&self, bytes: &[u8]) -> u16 {
        let set = |s: usize| {
            (0..ANCHOR_LEN).fold(0xFF, |bits, j| {
                bits & bytes.get(j).map_or(0, |&b| {
                    self.lo[s][j][usize::from(b & 15)] & self.hi[s][j][usize::from(b >> 4)]
                })
            })
        };
        u16::from(set(0)) | (u16::from(set(1)) << 8)
    }
}

/// A block: 64 bytes and the 2 after them (a fingerprint's bytes, an escape's `u`).
const BLOCK: usize = 66;

/// What one 64-byte block holds, a bit per byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Masks {
    /// inet_aton bytes: `[0-9a-fA-FxX.]`.
    aton: u64,
    /// `%`, and `\\` before `u`: where a relevant escape may start.
    marks: u64,
    backslash: u64,
    /// A piece's anchor may start here (0 when the pieces are searched apart).
    pieces: u64,
    /// An address's spelling may start here (all set when not computed).
    numbers: u64,
}

/// How the blocks are classified: chosen once, from what the CPU has.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    /// One AVX-512 (F, BW) pass does everything, 64 bytes at a time.
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
    /// The same with VBMI's lookups, which need no masking.
    #[cfg(target_arch = "x86_64")]
    Avx512Vbmi(avx512vbmi::Avx512Vbmi),
    /// One AVX2 pass does everything, 32 bytes at a time.
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    /// Pieces through aho-corasick; masks with SSE2 (x86-64) or a byte loop.
    Split,
}

/// A searcher for [`RawTest::may_match`], built once.
#[derive(Debug, Clone)]
pub struct RawTest {
    /// Each piece's anchor, lower case, searched in folded text (split kernel).
    anchors: aho_corasick::AhoCorasick,
    /// Per anchor pattern: the pieces (index into `pieces`) it stands for.
    pieces_of: Vec<Vec<usize>>,
    /// `RAW_PIECES`, then the pieces held for other needles ([`RawTest::holding`]).
    pieces: Vec<Piece>,
    fingerprints: Fingerprints,
    /// Per bucket: the pieces whose anchor is in it.
    bucket_pieces: [Vec<usize>; 16],
    /// The IPv4 addresses of `ADDRESSES`.
    targets: Vec<u32>,
    kernel: Kernel,
}

/// A piece the test looks for (ASCII case-insensitively): its text, where its 3-byte anchor
/// is in it, and the anchor's bucket.
#[derive(Debug, Clone)]
struct Piece {
    text: Vec<u8>,
    offset: usize,
    bucket: u8,
}

impl Default for RawTest {
    fn default() -> Self {
        RawTest::new()
    }
}

impl RawTest {
    pub fn new() -> RawTest {
        RawTest::with_pieces(Vec::new())
    }

    /// The test, made to pass also every line holding one of `needles` (ASCII
    /// case-insensitively, in any JSON spelling), so that they need no search of their own;
    /// `None` when some needle has no piece the test can hold for it, or when more than 5
    /// need one (a bucket each). A needle that holds one
    /// of the test's pieces needs nothing more. Otherwise the test holds its longest run of
    /// token characters (3 or more; no `/`, which a JSON encoder may write `\/`): the run
    /// appears in the line as it is, or one of its characters is a `\u` escape, and a `\u`
    /// escape of a token character passes the test.
    pub fn holding(needles: &[&str], rarity: impl Fn(&[u8]) -> f64) -> Option<RawTest> {
        // One bucket each: more would share buckets, and each shared one takes many more byte
        // triples than its anchors.
        const MAX_HELD: usize = (16 - FIRST_HELD) as usize;
        let mut extra = Vec::new();
        for needle in needles {
            let folded = needle.to_ascii_lowercase();
            let held = RAW_PIECES.iter().any(|(piece, _, _)| {
                let piece = piece.to_ascii_lowercase();
                folded.as_bytes().windows(piece.len()).any(|w| w == piece)
            });
            if held {
                continue;
            }
            let run = folded
                .split(|c: char| !is_token(c))
                .max_by_key(|run| run.len())
                .filter(|run| run.len() >= ANCHOR_LEN)?;
            let offset = (0..=run.len() - ANCHOR_LEN)
                .min_by(|&a, &b| {
                    let (x, y) = (
                        &run.as_bytes()[a..][..ANCHOR_LEN],
                        &run.as_bytes()[b..][..ANCHOR_LEN],
                    );
                    rarity(x).total_cmp(&rarity(y))
                })
                .unwrap_or(0);
            extra.push((run.as_bytes().to_vec(), offset));
        }
        (extra.len() <= MAX_HELD).then(|| RawTest::with_pieces(extra))
    }

    /// Whether the test holds other needles than its own pieces.
    #[cfg(test)]
    fn holds_needles(&self) -> bool {
        self.pieces.len() > RAW_PIECES.len()
    }

    fn with_pieces(extra: Vec<(Vec<u8>, usize)>) -> RawTest {
        let mut pieces: Vec<Piece> = RAW_PIECES
            .iter()
            .map(|(text, offset, bucket)| Piece {
                text: text.to_vec(),
                offset: *offset,
                bucket: *bucket,
            })
            .collect();
        debug_assert!(extra.len() <= usize::from(16 - FIRST_HELD));
        for (k, (text, offset)) in extra.into_iter().enumerate() {
            let bucket = FIRST_HELD + k as u8;
            pieces.push(Piece {
                text,
                offset,
                bucket,
            });
        }
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pieces_of: Vec<Vec<usize>> = Vec::new();
        let mut fingerprints = Fingerprints::default();
        let mut bucket_pieces: [Vec<usize>; 16] = Default::default();
        for (index, piece) in pieces.iter().enumerate() {
            let anchor = piece.text[piece.offset..piece.offset + ANCHOR_LEN].to_ascii_lowercase();
            for (j, &b) in anchor.iter().enumerate() {
                fingerprints.add(piece.bucket, j, b);
            }
            bucket_pieces[usize::from(piece.bucket)].push(index);
            match patterns.iter().position(|p| *p == anchor) {
                Some(i) => pieces_of[i].push(index),
                None => {
                    patterns.push(anchor);
                    pieces_of.push(vec![index]);
                }
            }
        }
        let targets: Vec<u32> = ipv4_targets().map(u32::from).collect();
        // A spelling's first part is octal or hex (`0`, then an inet_aton byte), or decimal
        // without a leading zero: the first byte and a dot, or the whole value (one part).
        fingerprints.add(OCTAL_OR_HEX, 0, b'0');
        for b in 0..=255u8 {
            if is_aton_byte(b) {
                fingerprints.add(OCTAL_OR_HEX, 1, b);
            }
        }
        fingerprints.add_any(OCTAL_OR_HEX, 2);
        for &t in &targets {
            for (bucket, text) in [
                (DECIMAL_PARTS, format!("{}.", t >> 24)),
                (DECIMAL_VALUE, t.to_string()),
            ] {
                for j in 0..ANCHOR_LEN {
                    match text.as_bytes().get(j) {
                        Some(&b) => fingerprints.add(bucket, j, b),
                        None => fingerprints.add_any(bucket, j),
                    }
                }
            }
        }
        // Leftmost-first: aho-corasick uses its packed (Teddy) searcher only then. Anchors
        // have one length, so no two match at one position, and restarting one byte after
        // each match still sees every anchor.
        let anchors = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .expect("valid patterns");
        RawTest {
            anchors,
            pieces_of,
            pieces,
            fingerprints,
            bucket_pieces,
            targets,
            kernel: Kernel::detect(),
        }
    }

    /// The test of one line (no `\n`).
    #[cfg(test)]
    pub fn may_match(&self, line: &[u8]) -> bool {
        self.first(line, 0, line.len()).is_some()
    }

    /// The first place in the whole lines `hay[at..end]` (`at` starts a line) where a piece,
    /// an escape or an inet_aton run passes the test: its line is a candidate. `None` when no
    /// value there can name an endpoint.
    pub fn first(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(cpu) => avx512::first(cpu, self, hay, at, end),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vbmi(cpu) => avx512vbmi::first(cpu, self, hay, at, end),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(cpu) => avx2::first(cpu, self, hay, at, end),
            Kernel::Split => self.first_split(hay, at, end),
        }
    }

    /// [`RawTest::first`] with the pieces searched apart.
    fn first_split(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        let piece = self.first_piece(hay, at, end);
        self.first_in_blocks(hay, at, piece.unwrap_or(end), masks_split)
            .or(piece)
    }

    /// Where the first of the pieces (ASCII case-insensitively) is found in `hay[at..end]`.
    /// The text is folded to lower case a slice at a time (slices overlap by an anchor less
    /// a byte), so that Teddy looks for one spelling of each anchor, not all of their cases.
    fn first_piece(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        const SLICE: usize = 32 << 10;
        thread_local! {
            static FOLDED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let hay = &hay[..end];
        FOLDED.with_borrow_mut(|folded| {
            let mut lo = at;
            while lo < end {
                let hi = (lo + SLICE).min(end);
                folded.clear();
                folded.extend(hay[lo..hi].iter().map(u8::to_ascii_lowercase));
                let mut from = 0;
                while let Some(m) = self
                    .anchors
                    .find(aho_corasick::Input::new(&folded[..]).span(from..folded.len()))
                {
                    let p = lo + m.start();
                    if self.pieces_of[m.pattern().as_usize()]
                        .iter()
                        .any(|&index| self.piece_at(hay, p, index))
                    {
                        return Some(p);
                    }
                    from = m.start() + 1;
                }
                if hi == end {
                    break;
                }
                lo = hi - (ANCHOR_LEN - 1);
            }
            None
        })
    }

    /// The block pass of [`RawTest::first`] over `hay[at..end]`, with `kernel` classifying
    /// each block. Inside a JSON string a value's characters appear as themselves except
    /// escapes (`\X`, skipped: they stand for non-token characters, `\/` aside, whose `/`
    /// only matters to markers); so the inet_aton hosts of a value are maximal runs of
    /// `[A-Za-z0-9._-]` of the line, checked here the same way. Equal, line by line, to the
    /// plain byte-by-byte reading kept in the tests (`runs_reference`), but only runs that
    /// may hold a spelling are looked at: at least `MIN_RUN` inet_aton bytes, starting with a
    /// spelling's first bytes or just after an escape.
    #[inline(always)]
    fn first_in_blocks<K: Fn(&[u8; BLOCK], &Fingerprints) -> Masks>(
        &self,
        hay: &[u8],
        at: usize,
        end: usize,
        kernel: K,
    ) -> Option<usize> {
        let classify = |from: usize| -> Masks {
            if let Some(bytes) = hay[..end].get(from..from + BLOCK) {
                return kernel(bytes.try_into().expect("a block"), &self.fingerprints);
            }
            if from >= end {
                return Masks::default();
            }
            let mut block = [0u8; BLOCK]; // NUL is none of the classes
            block[..end - from].copy_from_slice(&hay[from..end]);
            kernel(&block, &self.fingerprints)
        };
        // What to check in the block at `base`, given its masks, the next block's and the
        // block before's last inet_aton bit and backslashes.
        let candidates =
            |current: &Masks, next: &Masks, aton_before: u64, backslash_before: u64| {
                let run_starts = current.aton & !((current.aton << 1) | aton_before);
                // A backslash in the 6 bytes before: an escape may end inside the run.
                let after_escape = if current.backslash | backslash_before != 0 {
                    let b = (u128::from(current.backslash) << 64) | u128::from(backslash_before);
                    let mut spread = b << 1;
                    spread |= spread << 1;
                    spread |= spread << 2;
                    spread |= spread << 2;
                    (spread >> 64) as u64
                } else {
                    0
                };
                // Bit i: hay[base + i ..][..MIN_RUN] are all inet_aton bytes.
                let both = u128::from(current.aton) | (u128::from(next.aton) << 64);
                let window = runs_at_least(both, MIN_RUN) as u64;
                let runs = run_starts & (current.numbers | after_escape) & window;
                (current.marks | current.pieces | runs != 0).then_some(runs)
            };
        let mut base = at;
        let mut current = classify(base);
        // Of the block before: its last inet_aton bit, and its backslashes.
        let (mut aton_before, mut backslash_before) = (0u64, 0u64);
        while base < end {
            // While the next block is whole, the walk to a block with something to check
            // calls nothing (no tail copy, no check), so a kernel's tables stay in registers
            // (a call clobbers the vector registers: they were reloaded at every block).
            let mut next = Masks::default();
            let mut runs = None;
            while let Some(bytes) = hay[..end].get(base + 64..base + 64 + BLOCK) {
                next = kernel(bytes.try_into().expect("a block"), &self.fingerprints);
                runs = candidates(&current, &next, aton_before, backslash_before);
                if runs.is_some() {
                    break;
                }
                aton_before = current.aton >> 63;
                backslash_before = current.backslash;
                base += 64;
                current = next;
            }
            if runs.is_none() {
                // The next block is not whole (the last ones): classified from a copy.
                next = classify(base + 64);
                runs = candidates(&current, &next, aton_before, backslash_before);
            }
            if let Some(run_candidates) = runs {
                if let Some(p) =
                    self.first_in_block(hay, base, at, end, &current, &next, run_candidates)
                {
                    return Some(p);
                }
            }
            aton_before = current.aton >> 63;
            backslash_before = current.backslash;
            base += 64;
            current = next;
        }
        None
    }

    /// The first escape, piece or run in the block at `base` that passes; `runs`: the starts
    /// of runs long enough to hold a spelling, that may hold one.
    #[allow(clippy::too_many_arguments)]
    fn first_in_block(
        &self,
        hay: &[u8],
        base: usize,
        at: usize,
        end: usize,
        current: &Masks,
        next: &Masks,
        runs: u64,
    ) -> Option<usize> {
        let mut found = None;
        let mut marks = current.marks;
        while marks != 0 {
            let p = base + marks.trailing_zeros() as usize;
            if escape_at(hay, p, at, end) {
                found = Some(p);
                break;
            }
            marks &= marks - 1;
        }
        let mut pieces = current.pieces & below(found, base);
        while pieces != 0 {
            let p = base + pieces.trailing_zeros() as usize;
            if self.piece_starts(hay, p, end) {
                found = Some(p);
                break;
            }
            pieces &= pieces - 1;
        }
        let both = u128::from(current.aton) | (u128::from(next.aton) << 64);
        let mut starts = runs & below(found, base);
        while starts != 0 {
            let offset = starts.trailing_zeros() as usize;
            let q = base + offset;
            let mut run_end = q + (both >> offset).trailing_ones() as usize;
            if offset + (run_end - q) == 128 {
                while run_end < end && is_aton_byte(hay[run_end]) {
                    run_end += 1;
                }
            }
            if self.aton_run_at(hay, q, run_end, at, end) {
                return Some(q);
            }
            starts &= starts - 1;
        }
        found
    }

    /// Whether piece `index` has its anchor at `p` (ASCII case-insensitively).
    fn piece_at(&self, hay: &[u8], p: usize, index: usize) -> bool {
        let piece = &self.pieces[index];
        p.checked_sub(piece.offset).is_some_and(|start| {
            hay.get(start..start + piece.text.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(&piece.text))
        })
    }

    /// Whether a piece whose anchor is in a bucket matching at `p` is at `p` in `hay[..end]`.
    fn piece_starts(&self, hay: &[u8], p: usize, end: usize) -> bool {
        let hay = &hay[..end];
        let buckets = self.fingerprints.at(&hay[p..]) & PIECE_BUCKETS;
        (0..16).filter(|k| buckets >> k & 1 != 0).any(|k| {
            self.bucket_pieces[k]
                .iter()
                .any(|&index| self.piece_at(hay, p, index))
        })
    }

    /// Whether the host run holding the inet_aton bytes `hay[q..run_end]` (a maximal run of
    /// them in `hay[lo..hi]`) is one that inet_aton reads as an address. Usually decided
    /// from the bytes on either side, without walking the run again.
    fn aton_run_at(&self, hay: &[u8], q: usize, run_end: usize, lo: usize, hi: usize) -> bool {
        let is_host = |b: u8| BYTE_CLASS[b as usize] & HOST != 0;
        if run_end < hi && is_host(hay[run_end]) {
            return false; // a host byte that is no inet_aton byte follows: not all of them
        }
        let (start, stop) = if q > lo && is_host(hay[q - 1]) {
            host_run(hay, q, lo, hi) // e.g. `\u00e9` before it: walk it
        } else if q > lo && hay[q - 1] == b'\\' && real_escape(hay, q - 1) {
            (q + 1, run_end) // `\b`, `\f`: the escaped letter is no part of it
        } else {
            (q, run_end)
        };
        start < stop && aton_run_names_address(&hay[start..stop], &self.targets)
    }
}

impl Kernel {
    fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx512vbmi::Avx512Vbmi::detect() {
            return Kernel::Avx512Vbmi(cpu);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx512::Avx512::detect() {
            return Kernel::Avx512(cpu);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx2::Avx2::detect() {
            return Kernel::Avx2(cpu);
        }
        Kernel::Split
    }
}

/// The bits of a block (from `base`) before `found`, all when `None`.
fn below(found: Option<usize>, base: usize) -> u64 {
    found.map_or(u64::MAX, |p| low_bits(p - base))
}

/// Bit i: bits i..i + n of `m` are all set (n ≥ 1), in log2(n) + 1 shifts.
fn runs_at_least(m: u128, n: usize) -> u128 {
    let (mut window, mut len) = (m, 1);
    while len * 2 <= n {
        window &= window >> len;
        len *= 2;
    }
    if len < n {
        window &= window >> (n - len);
    }
    window
}

/// The `n` (≤ 64 or more) low bits set.
fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

fn is_aton_byte(b: u8) -> bool {
    BYTE_CLASS[b as usize] & ATON != 0
}

/// Every mask of a block, a byte at a time: what the vector kernels must equal.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn masks_scalar(block: &[u8; BLOCK], fingerprints: &Fingerprints) -> Masks {
    let mut m = Masks::default();
    for i in 0..64 {
        let (b, next) = (block[i], block[i + 1]);
        let buckets = fingerprints.at(&block[i..]);
        m.aton |= u64::from(is_aton_byte(b)) << i;
        m.marks |= u64::from(b == b'%' || (b == b'\\' && next == b'u')) << i;
        m.backslash |= u64::from(b == b'\\') << i;
        m.pieces |= u64::from(buckets & PIECE_BUCKETS != 0) << i;
        m.numbers |= u64::from(buckets & NUMBER_BUCKETS != 0) << i;
    }
    m
}

/// The masks of the split kernel: no piece bits (they are searched apart), and every run may
/// hold a spelling.
fn masks_split(block: &[u8; BLOCK], fingerprints: &Fingerprints) -> Masks {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    let m = masks_sse2(block);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    let m = masks_scalar(block, fingerprints);
    let _ = fingerprints;
    Masks {
        pieces: 0,
        numbers: u64::MAX,
        ..m
    }
}

/// SSE2 (x86-64's baseline), 16 bytes at a time: `aton`, `marks` and `backslash`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn masks_sse2(block: &[u8; BLOCK]) -> Masks {
    use safe_arch::*;
    let splat = |b: u8| set_splat_i8_m128i(b as i8);
    // x ≤ max, unsigned, byte-wise.
    let at_most = |x: m128i, max: u8| cmp_eq_mask_i8_m128i(min_u8_m128i(x, splat(max)), x);
    let mut m = Masks::default();
    for k in 0..4 {
        let at = 16 * k;
        let v = load_unaligned_m128i(block[at..at + 16].try_into().expect("16 bytes"));
        let next = load_unaligned_m128i(block[at + 1..at + 17].try_into().expect("16 bytes"));
        let lower = bitor_m128i(v, splat(0x20));
        let digit = at_most(sub_i8_m128i(v, splat(b'0')), 9);
        let hex = at_most(sub_i8_m128i(lower, splat(b'a')), 5);
        let x_or_dot = bitor_m128i(
            cmp_eq_mask_i8_m128i(lower, splat(b'x')),
            cmp_eq_mask_i8_m128i(v, splat(b'.')),
        );
        let a = bitor_m128i(bitor_m128i(digit, hex), x_or_dot);
        let backslash = cmp_eq_mask_i8_m128i(v, splat(b'\\'));
        let backslash_u = bitand_m128i(backslash, cmp_eq_mask_i8_m128i(next, splat(b'u')));
        let marks = bitor_m128i(cmp_eq_mask_i8_m128i(v, splat(b'%')), backslash_u);
        m.aton |= u64::from(move_mask_i8_m128i(a) as u16) << at;
        m.marks |= u64::from(move_mask_i8_m128i(marks) as u16) << at;
        m.backslash |= u64::from(move_mask_i8_m128i(backslash) as u16) << at;
    }
    m
}
/// Whether the `%` or `\\` at `p` starts a `%XX` or `\u` escape that a value could use to
/// spell a token, a marker or a percent-escape (such a line is a candidate). `lo` starts a
/// line; a backslash escapes the next byte when an odd run of backslashes ends at it, as
/// in a JSON string (`\\%` is no percent-escape, `\\\\u` no `\u` escape).
fn escape_at(hay: &[u8], p: usize, lo: usize, end: usize) -> bool {
    let hay = &hay[..end];
    if hay[p] == b'%' {
        p + 2 < end
            && hay[p + 1].is_ascii_hexdigit()
            && hay[p + 2].is_ascii_hexdigit()
            && !(p > lo && hay[p - 1] == b'\\' && real_escape(hay, p - 1))
    } else {
        hay.get(p + 1) == Some(&b'u')
            && real_escape(hay, p)
            && escape_may_spell(hay.get(p + 2..p + 6))
    }
}

/// The run of host bytes around `q` in `hay[lo..hi]` as the byte-by-byte reading sees it:
/// an escape (`\X`, `\uXXXX`) just before it is not part of it.
fn host_run(hay: &[u8], q: usize, lo: usize, hi: usize) -> (usize, usize) {
    let is_host = |b: u8| BYTE_CLASS[b as usize] & HOST != 0;
    let mut start = q;
    while start > lo && is_host(hay[start - 1]) {
        start -= 1;
    }
    let mut end = q;
    while end < hi && is_host(hay[end]) {
        end += 1;
    }
    // The `\` of an escape is no host byte, so only an escape right before can reach in.
    if start > lo && hay[start - 1] == b'\\' && real_escape(hay, start - 1) {
        start += if hay[start] == b'u' { 5 } else { 1 };
    }
    (start.min(end), end)
}

/// A host run inet_aton reads as one of the addresses (`targets`): such a run has a digit
/// and nothing but digits, hex letters, `x` and dots.
fn aton_run_names_address(run: &[u8], targets: &[u32]) -> bool {
    let mut end = run.len();
    while end > 0 && run[end - 1] == b'.' {
        end -= 1;
    }
    let text = &run[..end];
    // Most runs are other dotted addresses and versions: their first part, the address's
    // first byte when there are two parts or more, already tells.
    if let Some(dot) = memchr::memchr(b'.', text) {
        let first = part_value(&text[..dot]);
        if !first.is_some_and(|v| targets.iter().any(|&t| u64::from(t >> 24) == v)) {
            return false;
        }
    }
    end > 0 && inet_aton_value(text).is_some_and(|(v, _)| targets.contains(&v))
}

/// Whether `\u` and these 4 bytes may stand for a character that a token, a marker or a
/// percent-escape could use (or are not a valid escape: then the parser decides).
fn escape_may_spell(hex: Option<&[u8]>) -> bool {
    let code = hex
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    match code.and_then(char::from_u32) {
        Some(c) if is_token(c) || c == '/' || c == '%' => true,
        Some('\u{3002}' | '\u{FF61}' | '\u{FF0E}') => true,
        Some(_) => false,
        None => code.is_none(), // not 4 hex digits; a surrogate half is skipped
    }
}

fn ipv4_targets() -> impl Iterator<Item = std::net::Ipv4Addr> {
    ADDRESSES.iter().filter_map(|(text, _)| text.parse().ok())
}

/// The length of the shortest inet_aton spelling of any IPv4 address in `ADDRESSES`: each
/// part as short as decimal, octal (`0` first) or hex (`0x` first) can write it.
#[cfg(test)]
fn shortest_aton_spelling() -> usize {
    fn digits(mut v: u64, radix: u64) -> usize {
        let mut n = 1;
        while v >= radix {
            v /= radix;
            n += 1;
        }
        n
    }
    let part = |v: u64| {
        let octal = if v == 0 { 2 } else { 1 + digits(v, 8) };
        digits(v, 10).min(octal).min(2 + digits(v, 16))
    };
    ipv4_targets()
        .flat_map(|ip| {
            let b = ip.octets().map(u64::from);
            (1..=4).map(move |parts| {
                let last = b[parts - 1..].iter().fold(0, |acc, &x| acc * 256 + x);
                let head: usize = b[..parts - 1].iter().map(|&x| part(x)).sum();
                head + part(last) + (parts - 1)
            })
        })
        .min()
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{address_class, inet_aton, inet_aton_bytes};

    /// The test as a plain reading of one line, which every kernel must equal: a piece
    /// anywhere, or an escape or an inet_aton run as `runs_reference` reads them.
    fn reference(line: &[u8]) -> bool {
        RAW_PIECES.iter().any(|(piece, _, _)| {
            line.windows(piece.len())
                .any(|w| w.eq_ignore_ascii_case(piece))
        }) || runs_reference(line)
    }

    /// Escapes and inet_aton runs, byte by byte.
    fn runs_reference(line: &[u8]) -> bool {
        let n = line.len();
        let mut i = 0;
        while i < n {
            let b = line[i];
            let class = BYTE_CLASS[b as usize];
            if class & HOST == 0 {
                if b == b'\\' {
                    if line.get(i + 1) == Some(&b'u') {
                        // `\uXXXX` of a character that a token, a marker or a percent-escape
                        // could use: give up (the line is a candidate).
                        let code = line
                            .get(i + 2..i + 6)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok());
                        match code.and_then(char::from_u32) {
                            Some(c) if is_token(c) || c == '/' || c == '%' => return true,
                            Some('\u{3002}' | '\u{FF61}' | '\u{FF0E}') => return true,
                            Some(_) => {}
                            None if code.is_none() => return true, // not 4 hex digits
                            None => {}                             // a surrogate half
                        }
                        i += 6;
                    } else {
                        i += 2; // a short escape: the next byte is not part of a run
                    }
                    continue;
                }
                if b == b'%'
                    && i + 2 < n
                    && line[i + 1].is_ascii_hexdigit()
                    && line[i + 2].is_ascii_hexdigit()
                {
                    return true;
                }
                i += 1;
                continue;
            }
            // A maximal run of host bytes: decoded when inet_aton could read it (a digit, and
            // nothing but digits, hex letters, `x` and dots).
            let start = i;
            let mut all = ATON | DIGIT;
            let mut any = 0;
            while i < n {
                let c = BYTE_CLASS[line[i] as usize];
                if c & HOST == 0 {
                    break;
                }
                all &= c;
                any |= c;
                i += 1;
            }
            if all & ATON != 0 && any & DIGIT != 0 {
                let mut end = i;
                while end > start && line[end - 1] == b'.' {
                    end -= 1;
                }
                if end > start
                    && inet_aton_bytes(&line[start..end], 0)
                        .is_some_and(|a| address_class(&a).is_some())
                {
                    return true;
                }
            }
        }
        false
    }

    /// Lines rich in what the raw test looks at: runs, escapes, percent-escapes, spellings.
    fn random_line(state: &mut u64) -> Vec<u8> {
        const PIECES: &[&str] = &[
            "latest",
            "LaTeSt",
            "lat",
            "METADATA",
            "opc\\/v",
            "opc/V",
            "ffff",
            "fff",
            "sslip.io",
            "ec2:",
            "\u{FF0E}",
            "\u{FF61}",
            "meta_data.json",
            "instance-Data",
        ];
        const PARTS: &[&str] = &[
            "169.254.169.254",
            "0xa9fea9fe",
            "0XA9.0xFE.0251.254",
            "2852039166",
            "192.192",
            "169.254.43518",
            "0251.0376.0251.0376.",
            "169.254.169.253",
            "10.0.3.17",
            "1",
            "0",
            "00",
            "0x",
            "x",
            ".",
            "..",
            "a",
            "F",
            "g",
            "-",
            "_",
            ":",
            "/",
            " ",
            "\"",
            "\\",
            "\\\\",
            "\\n",
            "\\u",
            "\\u002e",
            "\\u0030",
            "\\u00e9",
            "\\uD800",
            "\\u3002",
            "\\u12",
            "%",
            "%2e",
            "%zz",
            "%4",
            "é",
            "\u{3002}",
            "192.0.0.192",
            "100.100.100.200",
            "3221225664",
            "0xc00000C0",
            "0300.0.0300",
            "168.63.129.16",
            "169.254.170.2",
            "1684300.200",
            "192.168.1.10",
            "16999999999",
        ];
        let mut next = || {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        };
        let len = (next() % 40) as usize;
        // A quarter of the lines may hold pieces (which pass them whatever else they hold).
        let with_pieces = next().is_multiple_of(4);
        let mut line = Vec::new();
        for _ in 0..len {
            let r = next();
            let part = if with_pieces && r.is_multiple_of(8) {
                PIECES[(r >> 8) as usize % PIECES.len()]
            } else {
                PARTS[(r >> 8) as usize % PARTS.len()]
            };
            line.extend_from_slice(part.as_bytes());
        }
        line
    }

    /// The test with each kernel this CPU has.
    fn every_kernel() -> Vec<RawTest> {
        let split = RawTest {
            kernel: Kernel::Split,
            ..RawTest::new()
        };
        let mut tests = vec![split];
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx2::Avx2::detect() {
            tests.push(RawTest {
                kernel: Kernel::Avx2(cpu),
                ..RawTest::new()
            });
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx512::Avx512::detect() {
            tests.push(RawTest {
                kernel: Kernel::Avx512(cpu),
                ..RawTest::new()
            });
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx512vbmi::Avx512Vbmi::detect() {
            tests.push(RawTest {
                kernel: Kernel::Avx512Vbmi(cpu),
                ..RawTest::new()
            });
        }
        tests
    }

    #[test]
    fn every_kernel_equals_the_plain_reading() {
        for test in every_kernel() {
            let mut state = 0x2545_F491_4F6C_DD1D;
            let mut passed = 0;
            for _ in 0..200_000 {
                let line = random_line(&mut state);
                let expected = reference(&line);
                assert_eq!(
                    test.may_match(&line),
                    expected,
                    "{:?}: {}",
                    test.kernel,
                    String::from_utf8_lossy(&line)
                );
                passed += usize::from(expected);
            }
            // Both outcomes are exercised.
            assert!(passed > 20_000 && passed < 180_000, "{passed}");
        }
    }

    #[test]
    fn region_search_finds_the_first_passing_line() {
        for test in every_kernel() {
            let mut state = 0x9E37_79B9_7F4A_7C15;
            for _ in 0..20_000 {
                let lines: Vec<Vec<u8>> = (0..4).map(|_| random_line(&mut state)).collect();
                let hay = lines.join(&b'\n');
                let first_line = lines.iter().position(|l| reference(l));
                let found = test.first(&hay, 0, hay.len());
                let line_of = |p: usize| hay[..p].iter().filter(|&&b| b == b'\n').count();
                assert_eq!(
                    found.map(line_of),
                    first_line,
                    "{:?}: {}",
                    test.kernel,
                    String::from_utf8_lossy(&hay)
                );
            }
        }
    }

    #[test]
    fn runs_at_least_marks_run_starts() {
        let mut state = 0xDEAD_BEEF_u64;
        for _ in 0..2_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let m = (u128::from(state) << 64) | u128::from(state.rotate_left(29) | state);
            for n in 1..=12 {
                let naive = (1..n).fold(m, |w, k| w & (m >> k));
                assert_eq!(runs_at_least(m, n), naive, "{m:x} {n}");
            }
        }
    }

    #[test]
    fn vector_masks_equal_the_byte_loop() {
        let test = RawTest::new();
        let mut state = 0x1234_5678_9ABC_DEF1_u64;
        let alphabet =
            b"0123456789abcdefxXABCDEFgGuU.%\\-_:/\"\n\0\x80\xff\xe3\xef\xbdlatLATtadr_cp.ic2";
        for _ in 0..20_000 {
            let mut block = [0u8; BLOCK];
            for b in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = if state.is_multiple_of(4) {
                    (state >> 8) as u8 // any byte
                } else {
                    alphabet[(state >> 8) as usize % alphabet.len()]
                };
            }
            let slow = masks_scalar(&block, &test.fingerprints);
            let split = masks_split(&block, &test.fingerprints);
            assert_eq!(
                (split.aton, split.marks, split.backslash),
                (slow.aton, slow.marks, slow.backslash),
                "{block:?}"
            );
            #[cfg(target_arch = "x86_64")]
            if let Some(cpu) = avx2::Avx2::detect() {
                let fast = avx2::block_masks(cpu, &block, &test.fingerprints);
                assert_eq!(fast, slow, "{block:?}");
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(cpu) = avx512::Avx512::detect() {
                let fast = avx512::block_masks(cpu, &block, &test.fingerprints);
                assert_eq!(fast, slow, "{block:?}");
            }
            #[cfg(target_arch = "x86_64")]
            if let Some(cpu) = avx512vbmi::Avx512Vbmi::detect() {
                let fast = avx512vbmi::block_masks(cpu, &block, &test.fingerprints);
                assert_eq!(fast, slow, "{block:?}");
            }
        }
    }

    /// inet_aton spellings of `value`: 1-4 parts, each decimal, octal or hex (either case),
    /// some with leading zeros.
    fn spellings_of(value: u32) -> Vec<String> {
        let mut out = Vec::new();
        for parts in 1..=4usize {
            let bytes = value.to_be_bytes();
            let mut values: Vec<u64> = bytes[..parts - 1].iter().map(|&b| u64::from(b)).collect();
            values.push(
                bytes[parts - 1..]
                    .iter()
                    .fold(0, |a, &b| a * 256 + u64::from(b)),
            );
            for style in 0..6usize.pow(parts as u32) {
                let text: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| match style / 6usize.pow(k as u32) % 6 {
                        0 => v.to_string(),
                        1 => format!("0{v:o}"),
                        2 => format!("000{v:o}"),
                        3 => format!("0x{v:x}"),
                        4 => format!("0X{v:X}"),
                        _ => format!("0x00{v:X}"),
                    })
                    .collect();
                out.push(text.join("."));
            }
        }
        out
    }

    #[test]
    fn every_spelling_starts_with_a_number_fingerprint() {
        let test = RawTest::new();
        let mut checked = 0;
        for &t in &test.targets {
            for s in spellings_of(t) {
                assert_eq!(inet_aton_value(s.as_bytes()).map(|v| v.0), Some(t), "{s}");
                let buckets = test.fingerprints.at(s.as_bytes());
                assert!(buckets & NUMBER_BUCKETS != 0, "{s}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
        // And a usual address or number mostly does not.
        for s in ["10.0.3.17", "172.16.0.1", "4096", "87.250.1.1"] {
            assert_eq!(
                test.fingerprints.at(s.as_bytes()) & NUMBER_BUCKETS,
                0,
                "{s}"
            );
        }
    }

    #[test]
    fn every_anchor_is_in_its_bucket() {
        let test = RawTest::new();
        for (piece, offset, bucket) in RAW_PIECES {
            for anchor in [piece.to_ascii_lowercase(), piece.to_ascii_uppercase()] {
                let buckets = test.fingerprints.at(&anchor[*offset..]);
                assert!(buckets >> bucket & 1 != 0, "{piece:?}");
                assert!(PIECE_BUCKETS >> bucket & 1 != 0, "{piece:?}");
                assert!(*bucket < 8, "{piece:?}");
            }
        }
    }

    #[test]
    fn no_address_has_a_shorter_spelling_than_min_run() {
        // 192.0.0.192 as `192.192`: two parts, the last holding 0.0.192.
        assert_eq!(shortest_aton_spelling(), MIN_RUN);
        assert_eq!(inet_aton("192.192", 0), inet_aton("192.0.0.192", 0));
        for test in every_kernel() {
            assert!(test.may_match(br#"{"a":"x 192.192 y"}"#));
        }
    }

    #[test]
    fn raw_test_passes_every_spelling() {
        for test in every_kernel() {
            for v in [
                "2852039166",
                "0xA9FEA9FE",
                "0251.00376.000251.0000376",
                "[::ffff:a9fe:a9fe]",
                "[FD00:EC2::254]",
                "169%2e254%2e169%2e254",
                "169\u{3002}254\u{3002}169\u{3002}254",
                "169-254-169-254.sslip.io",
                "/LATEST/api/token",
                "\\u00e9169.254.169.254",
                "\\n0xa9fea9fe",
            ] {
                let line = format!("{{\"a\":\"x {v}\"}}");
                assert!(test.may_match(line.as_bytes()), "{:?} {v}", test.kernel);
            }
            assert!(!test.may_match(br#"{"a":"169.254.169.253","b":12}"#));
        }
    }

    #[test]
    fn holding_other_needles() {
        let rarity = |w: &[u8]| w.iter().map(|&b| f64::from(b)).product::<f64>();
        // Needles holding one of the test's pieces need nothing more.
        let test = RawTest::holding(&["latest/meta-data", "fd00:ec2::254"], rarity).unwrap();
        assert!(!test.holds_needles());
        // Others are held by their longest run of token characters, in any case.
        let test = RawTest::holding(&["iam/security-credentials", "a9fe:a9fe"], rarity).unwrap();
        assert!(test.holds_needles());
        for line in [
            r#"{"a":"GET /IAM/Security-Credentials/x"}"#,
            r#"{"a":"::ffff:A9FE:a9fe"}"#,
            r#"{"a":"security\u002dcredentials"}"#,
        ] {
            assert!(test.may_match(line.as_bytes()), "{line}");
        }
        for line in [r#"{"a":"security credentials"}"#, r#"{"a":"iam/role"}"#] {
            assert!(!test.may_match(line.as_bytes()), "{line}");
        }
        // No run of 3 token characters, or too many needles to hold: the search stays.
        assert!(RawTest::holding(&["a/b/c"], rarity).is_none());
        let many: Vec<String> = (0..6).map(|i| format!("needle{i}x")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(RawTest::holding(&many, rarity).is_none());
        assert!(RawTest::holding(&many[..5], rarity).is_some());
    }
}

#[cfg(test)]
mod table_tests {
    use super::RAW_PIECES;
    use crate::endpoint::{ADDRESSES, BARE_METADATA_HOST, HOSTS, MARKERS, WILDCARD_DNS};

    /// `RAW_PIECES` is derived by hand from spec/endpoints.toml: every marker, host name,
    /// wildcard-DNS suffix and IPv6 address there must hold one of them, or the raw-line test
    /// would pass over a line that names it (IPv4 addresses go through the inet_aton runs).
    #[test]
    fn every_marker_and_host_holds_a_piece() {
        let names = (MARKERS.iter().chain(HOSTS).map(|(text, _)| *text))
            .chain([BARE_METADATA_HOST])
            .chain(WILDCARD_DNS.iter().copied())
            .chain(
                ADDRESSES
                    .iter()
                    .map(|(a, _)| *a)
                    .filter(|a| a.contains(':')),
            );
        let mut checked = 0;
        for name in names {
            let folded = name.to_ascii_lowercase();
            let held = RAW_PIECES.iter().any(|(piece, _, _)| {
                let piece = String::from_utf8_lossy(piece).to_ascii_lowercase();
                folded.contains(&piece)
            });
            assert!(held, "{name:?} holds none of the raw-line test's pieces");
            checked += 1;
        }
        assert!(checked > 25, "{checked}");
    }
}
