//! The AVX2 kernel: 32 starts a step. `unsafe` is allowed here only: to call AVX2 code once
//! the CPU is known to have it (the `Avx2` token proves it), and for unaligned vector loads
//! from in-bounds slices.
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
use std::arch::x86_64::*;

/// Starts a step.
const W: usize = 32;

/// Proof that the CPU has AVX2: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    pub(super) fn detect() -> Option<Avx2> {
        is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }

    pub(super) fn find(
        self,
        t: &FoldTeddy,
        hay: &[u8],
        at: usize,
        end: usize,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        // SAFETY: an `Avx2` exists only when the CPU has AVX2.
        unsafe { find(t, hay, at, end, &mut accept) }
    }
}

#[target_feature(enable = "avx2")]
fn find(
    t: &FoldTeddy,
    hay: &[u8],
    at: usize,
    end: usize,
    accept: &mut impl FnMut(usize) -> bool,
) -> Option<usize> {
    let v = Vectors::new(&t.tables);
    // The closure inherits this function's target features.
    t.find_blocks::<W>(hay, at, end, accept, |block| u64::from(starts(&v, block)))
}

/// The tables, each 16-byte table in both 128-bit lanes (`shuffle_epi8` looks up within a
/// lane).
struct Vectors {
    lo: [__m256i; FINGERPRINT],
    hi: [__m256i; FINGERPRINT],
}

impl Vectors {
    #[target_feature(enable = "avx2")]
    fn new(t: &Tables) -> Vectors {
        let both = |table: &[u8; 16]| {
            let mut lanes = [0u8; W];
            lanes[..16].copy_from_slice(table);
            lanes[16..].copy_from_slice(table);
            load(&lanes, 0)
        };
        Vectors {
            lo: t.lo.each_ref().map(both),
            hi: t.hi.each_ref().map(both),
        }
    }
}

#[target_feature(enable = "avx2")]
#[inline]
fn load(bytes: &[u8], at: usize) -> __m256i {
    let bytes: &[u8; W] = bytes[at..at + W].try_into().expect("32 bytes");
    // SAFETY: `bytes` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// Bit k: the fingerprint matches at `block[k..]` (`block`: `W + FINGERPRINT - 1` bytes).
#[target_feature(enable = "avx2")]
#[inline]
fn starts(v: &Vectors, block: &[u8]) -> u32 {
    let nibble = _mm256_set1_epi8(0x0F);
    let mut all = _mm256_set1_epi8(-1);
    for j in 0..FINGERPRINT {
        let x = load(block, j);
        let lo = _mm256_shuffle_epi8(v.lo[j], _mm256_and_si256(x, nibble));
        let hi = _mm256_shuffle_epi8(v.hi[j], _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble));
        all = _mm256_and_si256(all, _mm256_and_si256(lo, hi));
    }
    let none = _mm256_cmpeq_epi8(all, _mm256_setzero_si256());
    !(_mm256_movemask_epi8(none) as u32)
}
