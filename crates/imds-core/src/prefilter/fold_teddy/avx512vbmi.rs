//! The AVX-512 VBMI kernel: the AVX-512 kernel with VBMI's lookups, which need no masking
//! ([`crate::prefilter::nibbles::avx512vbmi`]): the same starts in two thirds of the vector
//! instructions. `unsafe` is allowed here for the same two reasons as in [`super::avx2`].
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
pub(super) use crate::prefilter::cpu::Avx512Vbmi;
use crate::prefilter::nibbles::avx512vbmi as lookup;
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
