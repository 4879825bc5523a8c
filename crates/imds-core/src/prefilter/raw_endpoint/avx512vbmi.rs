//! The AVX-512 VBMI kernel of the raw-line test: [`super::avx512`]'s pass with VBMI's
//! lookups, which need no masking ([`crate::prefilter::nibbles::avx512vbmi`]). `unsafe` is
//! allowed here for the same two reasons as in [`super::avx512`].
#![allow(unsafe_code)]

use super::{Fingerprints, Masks, RawTest, ATON_NIBBLES, BLOCK, NUMBER_BUCKETS, PIECE_BUCKETS};
pub(super) use crate::prefilter::cpu::Avx512Vbmi;
use crate::prefilter::nibbles::avx512vbmi as lookup;
use std::arch::x86_64::*;

super::vector::nibble_kernel! {
    cpu: Avx512Vbmi,
    features: "avx512f,avx512bw,avx512vbmi",
    vector: __m512i,
    and: _mm512_and_si512,
}

super::avx512::avx512_parts!("avx512f,avx512bw,avx512vbmi");
