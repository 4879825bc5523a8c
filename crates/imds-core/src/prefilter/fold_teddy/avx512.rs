//! The AVX-512 kernel: 64 starts a step, the test giving the bit mask directly. `unsafe` is
//! allowed here for the same two reasons as in [`super::avx2`].
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
pub(super) use crate::prefilter::cpu::Avx512;
use crate::prefilter::nibbles::avx512 as lookup;
use std::arch::x86_64::*;

super::vector::fold_kernel! {
    cpu: Avx512,
    features: "avx512f,avx512bw",
    width: 64,
    vector: __m512i,
    loadu: _mm512_loadu_si512,
    and: _mm512_and_si512,
    set1_epi8: _mm512_set1_epi8,
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn nonzero(v: __m512i) -> u64 {
    _mm512_test_epi8_mask(v, v)
}
