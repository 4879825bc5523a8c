//! One needle, ASCII case-insensitively: a vector test of two of its bytes (the rarest) at
//! every position, 16 positions at a time, then the whole needle where both match.
//!
//! Teddy, given the case spellings of a word (`process`: 16 of its anchor `proc`), fills its
//! buckets and verifies most positions of a line: on a broad rule it was a quarter of the
//! engine's instructions. Folding is a bit (`| 0x20`) for letters, so two compares decide a
//! position whatever its case: a letter always folds to itself, and a byte that folds to one
//! by chance is only a candidate more, which the needle check rejects.

use super::cost::byte_freq;

/// The search for one needle (folded), at most `MAX_LEN` bytes.
#[derive(Debug, Clone)]
pub(super) struct FoldedPair {
    needle: Vec<u8>,
    /// Offsets of the two bytes tested (`first <= second`), their folded values and fold
    /// masks (0x20 for a letter, else 0).
    first: usize,
    second: usize,
    bytes: [u8; 2],
    masks: [u8; 2],
}

impl FoldedPair {
    /// `None` for an empty needle.
    pub(super) fn new(needle: &[u8]) -> Option<FoldedPair> {
        if needle.is_empty() {
            return None;
        }
        let needle = needle.to_ascii_lowercase();
        // The two rarest positions (by folded byte frequency); the same one for a 1-byte
        // needle.
        let mut order: Vec<usize> = (0..needle.len()).collect();
        order.sort_by(|&a, &b| byte_freq(needle[a]).total_cmp(&byte_freq(needle[b])));
        let (a, b) = (order[0], *order.get(1).unwrap_or(&order[0]));
        let (first, second) = (a.min(b), a.max(b));
        let mask = |c: u8| if c.is_ascii_alphabetic() { 0x20 } else { 0 };
        Some(FoldedPair {
            first,
            second,
            bytes: [needle[first], needle[second]],
            masks: [mask(needle[first]), mask(needle[second])],
            needle,
        })
    }

    /// The needle (folded).
    pub(super) fn needle(&self) -> &[u8] {
        &self.needle
    }

    /// The start of the first occurrence of the needle, in any ASCII case, in
    /// `hay[at..stop]`.
    pub(super) fn find(&self, hay: &[u8], at: usize, stop: usize) -> Option<usize> {
        let n = self.needle.len();
        let stop = stop.min(hay.len());
        if at >= stop || stop - at < n {
            return None;
        }
        let last = stop - n; // the last start the needle fits at
        let s = at;
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = avx2::Avx2::detect() {
            if stop - s >= self.second + 32 {
                return avx2::find_from(cpu, self, hay, s, stop, last);
            }
        }
        (s..=last).find(|&c| hay[c..c + n].eq_ignore_ascii_case(&self.needle))
    }

    /// The first start `block + k` (bit k of `hits`, at most `last`) where the needle is.
    #[inline(always)]
    fn verify(&self, hay: &[u8], block: usize, mut hits: u64, last: usize) -> Option<usize> {
        let n = self.needle.len();
        while hits != 0 {
            let c = block + hits.trailing_zeros() as usize;
            if c > last {
                return None;
            }
            if hay[c..c + n].eq_ignore_ascii_case(&self.needle) {
                return Some(c);
            }
            hits &= hits - 1;
        }
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 test of 32 starts. `unsafe` is allowed here only: to call AVX2 code once the
    //! CPU is known to have it (the `Avx2` token proves it), and for unaligned loads from
    //! in-bounds slices.
    #![allow(unsafe_code)]

    use super::FoldedPair;
    pub(super) use crate::prefilter::cpu::Avx2;
    use std::arch::x86_64::*;

    /// [`FoldedPair::find`] from `s` (with `s + p.second + 32 <= stop`).
    #[inline]
    pub(super) fn find_from(
        _cpu: Avx2,
        p: &FoldedPair,
        hay: &[u8],
        s: usize,
        stop: usize,
        last: usize,
    ) -> Option<usize> {
        // SAFETY: an `Avx2` exists only when the CPU has AVX2.
        unsafe { find(p, hay, s, stop, last) }
    }

    /// 32 starts at a time, while both tested bytes' loads stay in `hay[..stop]`; then one
    /// more block ending at `stop`, its starts already tested masked off.
    #[target_feature(enable = "avx2")]
    fn find(p: &FoldedPair, hay: &[u8], mut s: usize, stop: usize, last: usize) -> Option<usize> {
        let span = p.second + 32;
        loop {
            match blocks(p, hay, s, stop) {
                Ok((block, hits)) => {
                    if let Some(c) = p.verify(hay, block, u64::from(hits), last) {
                        return Some(c);
                    }
                    s = block + 32;
                }
                Err(end) => {
                    s = end;
                    break;
                }
            }
        }
        if s > last {
            return None;
        }
        let b = stop - span;
        let seen = (s - b) as u32;
        let hits = pairs(p, hay, b) >> seen << seen;
        p.verify(hay, b, u64::from(hits), last)
    }

    /// The first block from `s` (a step of 32) with a start where both tested bytes match,
    /// and its starts that do; where it stopped once the next block's loads would pass
    /// `stop`. The vectors stay in registers: the needle checks are outside.
    #[target_feature(enable = "avx2")]
    fn blocks(
        p: &FoldedPair,
        hay: &[u8],
        mut s: usize,
        stop: usize,
    ) -> Result<(usize, u32), usize> {
        let stop = stop.min(hay.len());
        let (first, second) = (p.first, p.second);
        let (b1, b2) = (
            _mm256_set1_epi8(p.bytes[0] as i8),
            _mm256_set1_epi8(p.bytes[1] as i8),
        );
        let (m1, m2) = (
            _mm256_set1_epi8(p.masks[0] as i8),
            _mm256_set1_epi8(p.masks[1] as i8),
        );
        let ptr = hay.as_ptr();
        while s + second + 32 <= stop {
            // SAFETY: `first <= second` and `s + second + 32 <= stop <= hay.len()`: both loads
            // read inside `hay`; `loadu` has no alignment requirement.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_si256(ptr.add(s + first).cast()),
                    _mm256_loadu_si256(ptr.add(s + second).cast()),
                )
            };
            let x = _mm256_cmpeq_epi8(_mm256_or_si256(x, m1), b1);
            let y = _mm256_cmpeq_epi8(_mm256_or_si256(y, m2), b2);
            let hits = _mm256_movemask_epi8(_mm256_and_si256(x, y)) as u32;
            if hits != 0 {
                return Ok((s, hits));
            }
            s += 32;
        }
        Err(s)
    }

    /// The starts `s + k` (bit k) where both tested bytes match (needs
    /// `s + p.second + 32 <= hay.len()`).
    #[target_feature(enable = "avx2")]
    fn pairs(p: &FoldedPair, hay: &[u8], s: usize) -> u32 {
        let load = |at: usize| -> __m256i {
            let bytes: &[u8; 32] = hay[at..at + 32].try_into().expect("32 bytes");
            // SAFETY: `bytes` is 32 readable bytes; `loadu` has no alignment requirement.
            unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
        };
        let x = _mm256_cmpeq_epi8(
            _mm256_or_si256(load(s + p.first), _mm256_set1_epi8(p.masks[0] as i8)),
            _mm256_set1_epi8(p.bytes[0] as i8),
        );
        let y = _mm256_cmpeq_epi8(
            _mm256_or_si256(load(s + p.second), _mm256_set1_epi8(p.masks[1] as i8)),
            _mm256_set1_epi8(p.bytes[1] as i8),
        );
        _mm256_movemask_epi8(_mm256_and_si256(x, y)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::FoldedPair;
    use proptest::prelude::*;

    fn naive(hay: &[u8], needle: &[u8], at: usize, stop: usize) -> Option<usize> {
        let stop = stop.min(hay.len());
        if at >= stop || stop - at < needle.len() {
            return None;
        }
        (at..=stop - needle.len()).find(|&c| hay[c..c + needle.len()].eq_ignore_ascii_case(needle))
    }

    #[test]
    fn finds_every_case_spelling_and_nothing_else() {
        let p = FoldedPair::new(b"Process").expect("a needle");
        assert_eq!(p.needle(), b"process");
        let long = format!("{}PrOcEsS{}", "x".repeat(40), "y".repeat(40));
        assert_eq!(p.find(long.as_bytes(), 0, long.len()), Some(40));
        // A byte that folds onto a letter (`P` | 0x20 is `p`, but `0` | 0x20 is `0`) is no
        // match: `@` | 0x20 is the backtick.
        let near = format!(
            "{}procesz pr0cess @rocess{}",
            "x".repeat(30),
            "y".repeat(30)
        );
        assert_eq!(p.find(near.as_bytes(), 0, near.len()), None);
        // The range bounds the search on both sides.
        let two = format!("process{}process", "-".repeat(30));
        assert_eq!(p.find(two.as_bytes(), 1, two.len()), Some(37));
        assert_eq!(p.find(two.as_bytes(), 1, two.len() - 1), None);
    }

    #[test]
    fn non_letters_match_exactly() {
        let p = FoldedPair::new(b"\"start\"").expect("a needle");
        // `"` | 0x20 is `"` too, but `\x02` | 0x20 is `"`: a fold mask only for letters.
        let hay = format!(
            "{}\x02START\x02 \"StArT\"{}",
            "z".repeat(20),
            "z".repeat(20)
        );
        assert_eq!(p.find(hay.as_bytes(), 0, hay.len()), Some(28));
    }

    proptest! {
        // Small alphabets so that needles occur; every start offset of the vector loop, over
        // several blocks and the last, overlapping one.
        #[test]
        fn same_as_a_naive_search(
            hay in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'A'), Just(b'b'),
                Just(b'"'), Just(b'\x01'), Just(b'@'), Just(0xC3u8)], 0..200),
            needle in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'B'), Just(b'"'),
                Just(b'`'), Just(0xC3u8)], 1..6),
            at in 0usize..210,
            cut in 0usize..20,
        ) {
            let p = FoldedPair::new(&needle).expect("a needle");
            let stop = hay.len().saturating_sub(cut);
            prop_assert_eq!(p.find(&hay, at, stop), naive(&hay, &needle, at, stop));
        }
    }
}
