//! The AVX-512 VBMI kernel of the raw-line test: [`super::avx512`]'s pass with its lookups
//! made by `permutexvar_epi8` (`vpermb`), which reads six bits of each index byte and has no
//! top-bit rule: with each 16-entry table four times over 64 bytes, neither nibble needs
//! masking (the high one is `v >> 4` in 16-bit lanes; bits 4-5, the next byte's, land in a
//! copy). `unsafe` is allowed here for the same two reasons as in [`super::avx512`].
#![allow(unsafe_code)]

use super::{Fingerprints, Masks, RawTest, ATON_NIBBLES, BLOCK, NUMBER_BUCKETS, PIECE_BUCKETS};
pub(super) use crate::prefilter::cpu::Avx512Vbmi;
use std::arch::x86_64::*;

super::vector::nibble_kernel! {
    cpu: Avx512Vbmi,
    features: "avx512f,avx512bw,avx512vbmi",
    vector: __m512i,
    and: _mm512_and_si512,
}

super::avx512::avx512_parts!("avx512f,avx512bw,avx512vbmi");

/// Byte-wise `lo[b & 15] & hi[b >> 4]`, the tables' 16 entries four times over.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn lookup(v: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
    _mm512_and_si512(
        _mm512_permutexvar_epi8(v, lo),
        _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), hi),
    )
}
