//! Teddy over ASCII-folded patterns: the first four bytes of each pattern, looked up as
//! nibbles in per-position tables of bucket bits, at 32 (AVX2) or 64 (AVX-512; with VBMI,
//! lookups that need no masking) positions a step. A letter sets its bucket bit under both
//! its high nibbles (`a` 0x61, `A` 0x41: the low nibble is the same), so one pattern stands
//! for all its case spellings. aho-corasick's Teddy takes exact-case patterns: the seed's 12
//! anchors became 62 spellings, more than its 32-pattern Slim searcher takes, and its Fat
//! searcher steps 16 bytes at a time.
//!
//! A fingerprint match only says where a pattern may start; the caller verifies it.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512vbmi;
#[cfg(target_arch = "x86_64")]
mod vector;

/// Buckets: one bit of a table entry each.
const BUCKETS: usize = 8;
/// Pattern bytes the fingerprint tests: with three, the seed's anchors let through twenty
/// times as many false starts over the benchmark corpus (one every 200 bytes) and their
/// checks cost more than the search.
pub(super) const FINGERPRINT: usize = 4;
/// Most patterns taken: two a bucket, so a bucket's cross-combinations stay rare.
pub(super) const MAX_PATTERNS: usize = 16;

/// The nibble tables: `lo[j][b & 15] & hi[j][b >> 4]` holds the buckets whose patterns may
/// have byte `b` at offset `j`. Offsets past the shortest pattern match any byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tables {
    pub(super) lo: [[u8; 16]; FINGERPRINT],
    pub(super) hi: [[u8; 16]; FINGERPRINT],
}

impl Tables {
    /// Bit k: the fingerprint matches at `hay[k..]` (`hay` holds `n + FINGERPRINT - 1`
    /// bytes): the reference the vector kernels are tested against.
    #[cfg(test)]
    fn starts(&self, hay: &[u8], n: usize) -> u64 {
        (0..n).fold(0u64, |acc, k| {
            let all = (0..FINGERPRINT).fold(0xFFu8, |m, j| {
                let b = hay[k + j];
                m & self.lo[j][usize::from(b & 15)] & self.hi[j][usize::from(b >> 4)]
            });
            acc | (u64::from(all != 0) << k)
        })
    }
}

/// Which vector kernel runs (checked once, when the searcher is built).
#[derive(Debug, Clone, Copy)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    #[cfg(target_arch = "x86_64")]
    Avx512(avx512::Avx512),
    #[cfg(target_arch = "x86_64")]
    Avx512Vbmi(avx512vbmi::Avx512Vbmi),
}

/// The searcher: patterns are folded (lowercase) bytes.
#[derive(Debug, Clone)]
pub(super) struct FoldTeddy {
    tables: Tables,
    /// The fingerprint's length: the shortest pattern's, at most [`FINGERPRINT`].
    len: usize,
    kernel: Kernel,
}

impl FoldTeddy {
    /// Whether this CPU runs the searcher (x86-64 with AVX2).
    pub(super) fn available() -> bool {
        Self::kernel().is_some()
    }

    fn kernel() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(cpu) = avx512vbmi::Avx512Vbmi::detect() {
                return Some(Kernel::Avx512Vbmi(cpu));
            }
            if let Some(cpu) = avx512::Avx512::detect() {
                return Some(Kernel::Avx512(cpu));
            }
            if let Some(cpu) = avx2::Avx2::detect() {
                return Some(Kernel::Avx2(cpu));
            }
        }
        None
    }

    /// `None` without a vector kernel, with no pattern or an empty one, or more than
    /// [`MAX_PATTERNS`].
    pub(super) fn new(patterns: &[Vec<u8>]) -> Option<FoldTeddy> {
        let kernel = Self::kernel()?;
        Self::with_kernel(patterns, kernel)
    }

    /// The vector kernel, for the search's description ([`super::Prefilter::strategy`]).
    pub(super) fn kernel_name(&self) -> &'static str {
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => "AVX2",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(_) => "AVX-512",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vbmi(_) => "AVX-512 VBMI",
        }
    }

    fn with_kernel(patterns: &[Vec<u8>], kernel: Kernel) -> Option<FoldTeddy> {
        if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
            return None;
        }
        let len = patterns.iter().map(Vec::len).min()?.min(FINGERPRINT);
        if len == 0 {
            return None;
        }
        Some(FoldTeddy {
            tables: tables(patterns, len),
            len,
            kernel,
        })
    }

    /// The first start `p` in `hay[at..end]` of a pattern's fingerprint (whole within
    /// `hay[..end]`) that `accept` takes.
    pub(super) fn find(
        &self,
        hay: &[u8],
        at: usize,
        end: usize,
        accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let end = end.min(hay.len());
        if at + self.len > end {
            return None;
        }
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(cpu) => avx2::find(cpu, self, hay, at, end, accept),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(cpu) => avx512::find(cpu, self, hay, at, end, accept),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vbmi(cpu) => avx512vbmi::find(cpu, self, hay, at, end, accept),
        }
    }

    /// Of the starts `base + k` (bit k of `starts`) whose fingerprint ends by `end`, the
    /// first that `accept` takes.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn first_accepted(
        &self,
        base: usize,
        mut starts: u64,
        end: usize,
        accept: &mut impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let last = end - self.len; // the last start whose fingerprint fits
        while starts != 0 {
            let p = base + starts.trailing_zeros() as usize;
            if p > last {
                return None;
            }
            if accept(p) {
                return Some(p);
            }
            starts &= starts - 1;
        }
        None
    }

    /// The walk of a kernel over `hay[at..end]` in blocks of `W` starts; `starts` gives a
    /// block's mask from its `W + FINGERPRINT - 1` bytes. The last block, whose loads would
    /// pass `end`, is copied into a zeroed one first (its starts past the end are cut).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn find_blocks<const W: usize>(
        &self,
        hay: &[u8],
        at: usize,
        end: usize,
        accept: &mut impl FnMut(usize) -> bool,
        starts: impl Fn(&[u8]) -> u64,
    ) -> Option<usize> {
        const SPAN: usize = 128;
        let span = W + FINGERPRINT - 1;
        debug_assert!(span <= SPAN);
        let mut base = at;
        loop {
            // The walk to the next block with a start calls nothing, so the tables stay in
            // registers (around `accept`'s call they were reloaded from the stack every block:
            // the vector registers do not survive a call).
            let mut s = 0;
            while base + span <= end {
                s = starts(&hay[base..base + span]);
                if s != 0 {
                    break;
                }
                base += W;
            }
            if s == 0 {
                break;
            }
            if let Some(p) = self.first_accepted(base, s, end, accept) {
                return Some(p);
            }
            base += W;
        }
        if base + self.len > end {
            return None;
        }
        let mut block = [0u8; SPAN];
        block[..end - base].copy_from_slice(&hay[base..end]);
        self.first_accepted(base, starts(&block[..span]), end, accept)
    }
}

/// The tables of `patterns` (folded), each in one of [`BUCKETS`] buckets: in sorted order,
/// cut into runs, so patterns sharing first bytes share a bucket. (Merging buckets greedily by
/// the cost model's byte frequencies let through a quarter more false starts over the
/// benchmark corpus.)
fn tables(patterns: &[Vec<u8>], len: usize) -> Tables {
    let mut sorted: Vec<&Vec<u8>> = patterns.iter().collect();
    sorted.sort();
    let n = sorted.len();
    let mut t = Tables {
        lo: [[0; 16]; FINGERPRINT],
        hi: [[0; 16]; FINGERPRINT],
    };
    for (i, p) in sorted.iter().enumerate() {
        let bit = 1u8 << (i * BUCKETS / n);
        for (j, &b) in p[..len].iter().enumerate() {
            let b = b.to_ascii_lowercase();
            t.lo[j][usize::from(b & 15)] |= bit;
            t.hi[j][usize::from(b >> 4)] |= bit;
            if b.is_ascii_lowercase() {
                t.hi[j][usize::from(b.to_ascii_uppercase() >> 4)] |= bit;
            }
        }
    }
    for j in len..FINGERPRINT {
        t.lo[j] = [0xFF; 16];
        t.hi[j] = [0xFF; 16];
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU has.
    fn kernels() -> Vec<Kernel> {
        let mut ks = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            ks.extend(avx2::Avx2::detect().map(Kernel::Avx2));
            ks.extend(avx512::Avx512::detect().map(Kernel::Avx512));
            ks.extend(avx512vbmi::Avx512Vbmi::detect().map(Kernel::Avx512Vbmi));
        }
        ks
    }

    fn pats(ps: &[&str]) -> Vec<Vec<u8>> {
        ps.iter().map(|p| p.as_bytes().to_vec()).collect()
    }

    /// Every start of a pattern in `hay[at..end]`, ASCII case-insensitively (the fold
    /// Teddy may find more; it must find these).
    fn occurrences(patterns: &[Vec<u8>], hay: &[u8], at: usize, end: usize) -> Vec<usize> {
        (at..end)
            .filter(|&p| {
                patterns.iter().any(|pat| {
                    hay[p..end].len() >= pat.len()
                        && hay[p..p + pat.len()].eq_ignore_ascii_case(pat)
                })
            })
            .collect()
    }

    /// All fingerprint starts in `hay[at..end]`, by the scalar tables.
    fn fingerprints(t: &FoldTeddy, hay: &[u8], at: usize, end: usize) -> Vec<usize> {
        (at..=end.saturating_sub(t.len))
            .filter(|&p| p + t.len <= end)
            .filter(|&p| {
                let mut w = [0u8; FINGERPRINT];
                let n = (end - p).min(FINGERPRINT);
                w[..n].copy_from_slice(&hay[p..p + n]);
                t.tables.starts(&w, 1) == 1
            })
            .collect()
    }

    /// Each start `find` gives, walking on from the one after it, accepting all.
    fn found(t: &FoldTeddy, hay: &[u8], at: usize, end: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut at = at;
        while let Some(p) = t.find(hay, at, end, |_| true) {
            out.push(p);
            at = p + 1;
        }
        out
    }

    #[test]
    fn letters_match_in_either_case_and_other_bytes_exactly() {
        let t = tables(&pats(&["abcd"]), 4);
        assert_eq!(t.starts(b"abcd", 1), 1);
        assert_eq!(t.starts(b"ABCD", 1), 1);
        assert_eq!(t.starts(b"aBcD", 1), 1);
        assert_eq!(t.starts(b"abdd", 1), 0);
        let t = tables(&pats(&["1.23"]), 4);
        assert_eq!(t.starts(b"1.23", 1), 1);
        // `.` is 0x2E and `\x0E` shares its low nibble: not a letter, one high nibble only.
        assert_eq!(t.starts(b"1\x0e23", 1), 0);
        assert_eq!(t.starts(b"1n23", 1), 0);
        // A shorter fingerprint: the positions past it let any byte through.
        let t = tables(&pats(&["ab"]), 2);
        assert_eq!(t.starts(b"AB\x00\xff", 1), 1);
    }

    #[test]
    fn every_kernel_gives_the_scalar_fingerprints() {
        let patterns = pats(&[
            "169.254",
            "metadata",
            "/latest",
            "\\/latest",
            "fd00:ec2",
            "\\u00",
            "169",
            "abc",
            "xyz",
            "q\\/r",
            "caf\u{e9}",
        ]);
        let mut hay = Vec::new();
        // A text with the patterns in both cases, near-misses, and edges of blocks.
        let mut x: u32 = 7;
        for i in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let pick = (x >> 16) as usize;
            if pick.is_multiple_of(7) {
                let p = &patterns[pick % patterns.len()];
                let p: Vec<u8> = if i % 2 == 0 {
                    p.to_ascii_uppercase()
                } else {
                    p.clone()
                };
                hay.extend_from_slice(&p);
            } else {
                // With bytes above 0x7F: `shuffle_epi8` and `permutexvar_epi8` treat an
                // index's top bits differently, and the kernels must still agree.
                hay.push(b"abcdefx169.2:\\u0/lMETA \xc3\xa9\x80\xff\xe9"[pick % 28]);
            }
        }
        for kernel in kernels() {
            let t = FoldTeddy::with_kernel(&patterns, kernel).expect("searcher");
            for (at, end) in [
                (0, hay.len()),
                (1, hay.len() - 1),
                (33, 97),
                (5, 7),
                (64, 64 + 130),
            ] {
                let want = fingerprints(&t, &hay, at, end);
                assert_eq!(found(&t, &hay, at, end), want, "{kernel:?} {at}..{end}");
                let occ = occurrences(&patterns, &hay, at, end);
                assert!(
                    occ.iter().all(|p| want.contains(p)),
                    "{kernel:?}: an occurrence missed"
                );
                assert!(!occ.is_empty() || end - at < 10);
            }
        }
    }

    #[test]
    fn starts_near_the_end_and_rejected_candidates() {
        for kernel in kernels() {
            let t = FoldTeddy::with_kernel(&pats(&["abc"]), kernel).expect("searcher");
            for n in 0..200 {
                let mut hay = vec![b'.'; n];
                hay.extend_from_slice(b"ABC");
                let end = hay.len();
                assert_eq!(t.find(&hay, 0, end, |_| true), Some(n));
                // The fingerprint must fit before `end`.
                assert_eq!(t.find(&hay, 0, end - 1, |_| true), None);
                // Rejected: the search goes on past it.
                hay.extend_from_slice(b"..abc");
                let end = hay.len();
                assert_eq!(t.find(&hay, 0, end, |p| p != n), Some(n + 5));
                assert_eq!(t.find(&hay, n + 1, end, |_| true), Some(n + 5));
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_take() {
        for kernel in kernels() {
            assert!(FoldTeddy::with_kernel(&[], kernel).is_none());
            assert!(FoldTeddy::with_kernel(&pats(&["abc", ""]), kernel).is_none());
            let many: Vec<Vec<u8>> = (0..=MAX_PATTERNS)
                .map(|i| format!("p{i:02}").into_bytes())
                .collect();
            assert!(FoldTeddy::with_kernel(&many, kernel).is_none());
            assert!(FoldTeddy::with_kernel(&many[..MAX_PATTERNS], kernel).is_some());
            // A short pattern shortens the fingerprint.
            let t = FoldTeddy::with_kernel(&pats(&["\\u", "abcd"]), kernel).expect("searcher");
            assert_eq!(t.len, 2);
            assert_eq!(t.find(b"xx\\u", 0, 4, |_| true), Some(2));
        }
    }
}
