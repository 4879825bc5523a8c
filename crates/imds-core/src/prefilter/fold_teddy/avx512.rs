//! The AVX-512 kernel: 64 starts a step, the compare giving the bit mask directly. `unsafe`
//! is allowed here for the same two reasons as in [`super::avx2`].
#![allow(unsafe_code)]

use super::{FoldTeddy, Tables, FINGERPRINT};
use std::arch::x86_64::*;

/// Starts a step.
const W: usize = 64;

/// Proof that the CPU has AVX-512 F and BW: only [`Avx512::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512(());

impl Avx512 {
    pub(super) fn detect() -> Option<Avx512> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"))
            .then_some(Avx512(()))
    }

    pub(super) fn find(
        self,
        t: &FoldTeddy,
        hay: &[u8],
        at: usize,
        end: usize,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        // SAFETY: an `Avx512` exists only when the CPU has AVX-512 F and BW.
        unsafe { find(t, hay, at, end, &mut accept) }
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn find(
    t: &FoldTeddy,
    hay: &[u8],
    at: usize,
    end: usize,
    accept: &mut impl FnMut(usize) -> bool,
) -> Option<usize> {
    let v = Vectors::new(&t.tables);
    // The closure inherits this function's target features.
    t.find_blocks::<W>(hay, at, end, accept, |block| starts(&v, block))
}

/// The tables, each 16-byte table in all four 128-bit lanes.
struct Vectors {
    lo: [__m512i; FINGERPRINT],
    hi: [__m512i; FINGERPRINT],
}

impl Vectors {
    #[target_feature(enable = "avx512f,avx512bw")]
    fn new(t: &Tables) -> Vectors {
        let all = |table: &[u8; 16]| {
            let mut lanes = [0u8; W];
            for lane in lanes.chunks_exact_mut(16) {
                lane.copy_from_slice(table);
            }
            load(&lanes, 0)
        };
        Vectors {
            lo: t.lo.each_ref().map(all),
            hi: t.hi.each_ref().map(all),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn load(bytes: &[u8], at: usize) -> __m512i {
    let bytes: &[u8; W] = bytes[at..at + W].try_into().expect("64 bytes");
    // SAFETY: `bytes` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
}

/// Bit k: the fingerprint matches at `block[k..]` (`block`: `W + FINGERPRINT - 1` bytes).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn starts(v: &Vectors, block: &[u8]) -> u64 {
    let nibble = _mm512_set1_epi8(0x0F);
    let mut all = _mm512_set1_epi8(-1);
    for j in 0..FINGERPRINT {
        let x = load(block, j);
        let lo = _mm512_shuffle_epi8(v.lo[j], _mm512_and_si512(x, nibble));
        let hi = _mm512_shuffle_epi8(v.hi[j], _mm512_and_si512(_mm512_srli_epi16(x, 4), nibble));
        all = _mm512_and_si512(all, _mm512_and_si512(lo, hi));
    }
    _mm512_test_epi8_mask(all, all)
}
