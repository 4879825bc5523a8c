//! The AVX2 kernel of the raw-line test: every mask of a block in one pass, 32 bytes at a
//! time. `unsafe` is allowed here only: to call AVX2 code once the CPU is known to have it
//! (the `Avx2` token proves it), and for unaligned vector loads from in-bounds slices.
#![allow(unsafe_code)]

use super::{Fingerprints, Masks, RawTest, ATON_NIBBLES, BLOCK, NUMBER_BUCKETS, PIECE_BUCKETS};
pub(super) use crate::prefilter::cpu::Avx2;
use crate::prefilter::nibbles::avx2 as lookup;
use std::arch::x86_64::*;

super::vector::nibble_kernel! {
    cpu: Avx2,
    features: "avx2",
    vector: __m256i,
    and: _mm256_and_si256,
}

#[target_feature(enable = "avx2")]
#[inline]
fn load(block: &[u8; BLOCK], at: usize) -> __m256i {
    let bytes: &[u8; 32] = block[at..at + 32].try_into().expect("32 bytes");
    // SAFETY: `bytes` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// A 16-byte table in both 128-bit lanes (`shuffle_epi8` looks up within a lane).
#[target_feature(enable = "avx2")]
#[inline]
fn table(t: &[u8; 16]) -> __m256i {
    let mut both = [0u8; BLOCK];
    both[..16].copy_from_slice(t);
    both[16..32].copy_from_slice(t);
    load(&both, 0)
}

/// Bit i: byte i of `v` has a bit of `bits`.
#[target_feature(enable = "avx2")]
#[inline]
fn any_bits(v: __m256i, bits: u8) -> u32 {
    let v = if bits == 0xFF {
        v
    } else {
        _mm256_and_si256(v, _mm256_set1_epi8(bits as i8))
    };
    // Saturating: any non-zero byte reaches 0x80, the bit `movemask` takes.
    _mm256_movemask_epi8(_mm256_adds_epu8(v, _mm256_set1_epi8(0x7F))) as u32
}

/// Every mask of `block`, as `masks_scalar` gives them.
#[target_feature(enable = "avx2")]
#[inline]
fn masks(block: &[u8; BLOCK], t: &Tables) -> Masks {
    let mut m = Masks::default();
    for half in [0, 32] {
        let v: [__m256i; 3] = [
            load(block, half),
            load(block, half + 1),
            load(block, half + 2),
        ];
        let (pieces, numbers) = buckets(&v, t);
        let backslash = _mm256_cmpeq_epi8(v[0], _mm256_set1_epi8(b'\\' as i8));
        let marks = _mm256_or_si256(
            _mm256_cmpeq_epi8(v[0], _mm256_set1_epi8(b'%' as i8)),
            _mm256_and_si256(
                backslash,
                _mm256_cmpeq_epi8(v[1], _mm256_set1_epi8(b'u' as i8)),
            ),
        );
        let bits = |x: u32| u64::from(x) << half;
        m.aton |= bits(any_bits(lookup(v[0], t.aton_lo, t.aton_hi), 0xFF));
        m.marks |= bits(_mm256_movemask_epi8(marks) as u32);
        m.backslash |= bits(_mm256_movemask_epi8(backslash) as u32);
        m.pieces |= bits(any_bits(pieces, 0xFF) | any_bits(numbers, (PIECE_BUCKETS >> 8) as u8));
        m.numbers |= bits(any_bits(numbers, (NUMBER_BUCKETS >> 8) as u8));
    }
    m
}
