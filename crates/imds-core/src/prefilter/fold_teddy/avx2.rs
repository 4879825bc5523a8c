//! The AVX2 kernel: 32 starts a step. `unsafe` is allowed here only: to call AVX2 code once
//! the CPU is known to have it (the `Avx2` token proves it), and for unaligned vector loads
//! from in-bounds slices.
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
pub(super) use crate::prefilter::cpu::Avx2;
use std::arch::x86_64::*;

super::vector::fold_kernel! {
    cpu: Avx2,
    features: "avx2",
    width: 32,
    vector: __m256i,
    loadu: _mm256_loadu_si256,
    and: _mm256_and_si256,
    set1_epi8: _mm256_set1_epi8,
}

#[target_feature(enable = "avx2")]
#[inline]
fn nonzero(v: __m256i) -> u64 {
    let zero = _mm256_cmpeq_epi8(v, _mm256_setzero_si256());
    u64::from(!(_mm256_movemask_epi8(zero) as u32))
}

#[target_feature(enable = "avx2")]
#[inline]
fn lookup(lo: __m256i, hi: __m256i, x: __m256i) -> __m256i {
    // `shuffle_epi8` gives 0 for an index with its top bit set: keep the nibble only.
    let nibble = _mm256_set1_epi8(0x0F);
    let l = _mm256_shuffle_epi8(lo, _mm256_and_si256(x, nibble));
    let h = _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble));
    _mm256_and_si256(l, h)
}
