//! The AVX-512 VBMI kernel: the AVX-512 kernel with its lookups made by `permutexvar_epi8`
//! (`vpermb`), which reads six bits of each index byte and has no top-bit rule: with each
//! table's 16 entries four times over its 64, neither nibble needs masking (the high one is
//! `x >> 4` in 16-bit lanes, whose bits 4-5 are the next byte's and land in a copy). The
//! same starts as the other kernels in two thirds of the vector instructions. `unsafe` is
//! allowed here for the same two reasons as in [`super::avx2`].
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
pub(super) use crate::prefilter::cpu::Avx512Vbmi;
use std::arch::x86_64::*;

super::vector::fold_kernel! {
    cpu: Avx512Vbmi,
    features: "avx512f,avx512bw,avx512vbmi",
    width: 64,
    vector: __m512i,
    loadu: _mm512_loadu_si512,
    and: _mm512_and_si512,
    set1_epi8: _mm512_set1_epi8,
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn nonzero(v: __m512i) -> u64 {
    _mm512_test_epi8_mask(v, v)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn lookup(lo: __m512i, hi: __m512i, x: __m512i) -> __m512i {
    let l = _mm512_permutexvar_epi8(x, lo);
    let h = _mm512_permutexvar_epi8(_mm512_srli_epi16(x, 4), hi);
    _mm512_and_si512(l, h)
}
