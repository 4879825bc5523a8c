//! The AVX-512 kernel of the raw-line test: [`super::avx2`]'s pass on a whole 64-byte block
//! at once, with compares that give the bit masks directly. `unsafe` is allowed here for the
//! same two reasons: calling AVX-512 code once the CPU is known to have it (the `Avx512`
//! token proves it), and unaligned vector loads from in-bounds slices.
#![allow(unsafe_code)]

use super::{Fingerprints, Masks, RawTest, ATON_NIBBLES, BLOCK, NUMBER_BUCKETS, PIECE_BUCKETS};
use std::arch::x86_64::*;

/// Proof that the CPU has AVX-512 F and BW: only [`Avx512::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512(());

impl Avx512 {
    pub(super) fn detect() -> Option<Avx512> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"))
            .then_some(Avx512(()))
    }
}

/// [`RawTest::first`] with this kernel.
pub(super) fn first(
    _cpu: Avx512,
    test: &RawTest,
    hay: &[u8],
    at: usize,
    end: usize,
) -> Option<usize> {
    // SAFETY: an `Avx512` exists only when the CPU has AVX-512 F and BW.
    unsafe { first_avx512(test, hay, at, end) }
}

/// The masks of one block, for tests against the byte loop.
#[cfg(test)]
pub(super) fn block_masks(_cpu: Avx512, block: &[u8; BLOCK], fingerprints: &Fingerprints) -> Masks {
    // SAFETY: as in `first`.
    unsafe { masks(block, &Tables::new(fingerprints)) }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn first_avx512(test: &RawTest, hay: &[u8], at: usize, end: usize) -> Option<usize> {
    let tables = Tables::new(&test.fingerprints);
    // The closure inherits this function's target features.
    test.first_in_blocks(hay, at, end, |block, _| masks(block, &tables))
}

/// The nibble tables as vectors (one 16-byte table in each 128-bit lane: `shuffle_epi8`
/// looks up within a lane), built once per search.
struct Tables {
    lo: [[__m512i; 3]; 2],
    hi: [[__m512i; 3]; 2],
    aton_lo: __m512i,
    aton_hi: __m512i,
}

impl Tables {
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(fingerprints: &Fingerprints) -> Tables {
        let (aton_lo, aton_hi) = ATON_NIBBLES;
        Tables {
            lo: fingerprints
                .lo
                .each_ref()
                .map(|set| set.each_ref().map(|t| table(t))),
            hi: fingerprints
                .hi
                .each_ref()
                .map(|set| set.each_ref().map(|t| table(t))),
            aton_lo: table(&aton_lo),
            aton_hi: table(&aton_hi),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn table(t: &[u8; 16]) -> __m512i {
    let mut lanes = [0u8; 64];
    for lane in lanes.chunks_exact_mut(16) {
        lane.copy_from_slice(t);
    }
    load(&lanes)
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn load(bytes: &[u8]) -> __m512i {
    let bytes: &[u8; 64] = bytes[..64].try_into().expect("64 bytes");
    // SAFETY: `bytes` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
}

/// Byte-wise `lo[b & 15] & hi[b >> 4]`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn lookup(v: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
    let nibble = _mm512_set1_epi8(0x0F);
    let low = _mm512_and_si512(v, nibble);
    let high = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
    _mm512_and_si512(_mm512_shuffle_epi8(lo, low), _mm512_shuffle_epi8(hi, high))
}

/// Every mask of `block`, as `masks_scalar` gives them.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn masks(block: &[u8; BLOCK], t: &Tables) -> Masks {
    let v = [load(&block[..]), load(&block[1..]), load(&block[2..])];
    let set = |s: usize| {
        _mm512_and_si512(
            _mm512_and_si512(
                lookup(v[0], t.lo[s][0], t.hi[s][0]),
                lookup(v[1], t.lo[s][1], t.hi[s][1]),
            ),
            lookup(v[2], t.lo[s][2], t.hi[s][2]),
        )
    };
    let (pieces, numbers) = (set(0), set(1));
    let has = |x: __m512i, bits: u8| _mm512_test_epi8_mask(x, _mm512_set1_epi8(bits as i8));
    let is = |x: __m512i, b: u8| _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b as i8));
    let backslash = is(v[0], b'\\');
    Masks {
        aton: has(lookup(v[0], t.aton_lo, t.aton_hi), 0xFF),
        marks: is(v[0], b'%') | (backslash & is(v[1], b'u')),
        backslash,
        pieces: has(pieces, 0xFF) | has(numbers, (PIECE_BUCKETS >> 8) as u8),
        numbers: has(numbers, (NUMBER_BUCKETS >> 8) as u8),
    }
}
