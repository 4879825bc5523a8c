//! The AVX2 kernel: 32 starts a step. `unsafe` is allowed here only: to call AVX2 code once
//! the CPU is known to have it (the `Avx2` token proves it), and for unaligned vector loads
//! from in-bounds slices.
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
pub(super) use crate::prefilter::cpu::Avx2;
use crate::prefilter::nibbles::avx2 as lookup;
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
