//! The AVX-512 kernel of the raw-line test: [`super::avx2`]'s pass on a whole 64-byte block
//! at once, with compares that give the bit masks directly. `unsafe` is allowed here for the
//! same two reasons: calling AVX-512 code once the CPU is known to have it (the `Avx512`
//! token proves it), and unaligned vector loads from in-bounds slices.
#![allow(unsafe_code)]

use super::{Fingerprints, Masks, RawTest, ATON_NIBBLES, BLOCK, NUMBER_BUCKETS, PIECE_BUCKETS};
pub(super) use crate::prefilter::cpu::Avx512;
use crate::prefilter::nibbles::avx512 as lookup;
use std::arch::x86_64::*;

super::vector::nibble_kernel! {
    cpu: Avx512,
    features: "avx512f,avx512bw",
    vector: __m512i,
    and: _mm512_and_si512,
}

/// The AVX-512 kernels' `table`, `load` and `masks` for their target features (the VBMI
/// kernel's add `avx512vbmi`; only the lookup differs).
macro_rules! avx512_parts {
    ($features:literal) => {
        #[target_feature(enable = $features)]
        #[inline]
        fn table(t: &[u8; 16]) -> __m512i {
            let mut lanes = [0u8; 64];
            for lane in lanes.chunks_exact_mut(16) {
                lane.copy_from_slice(t);
            }
            load(&lanes)
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load(bytes: &[u8]) -> __m512i {
            let bytes: &[u8; 64] = bytes[..64].try_into().expect("64 bytes");
            // SAFETY: `bytes` is 64 readable bytes; `loadu` has no alignment requirement.
            unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
        }

        /// Every mask of `block`, as `masks_scalar` gives them.
        #[target_feature(enable = $features)]
        #[inline]
        fn masks(block: &[u8; BLOCK], t: &Tables) -> Masks {
            let v = [load(&block[..]), load(&block[1..]), load(&block[2..])];
            let (pieces, numbers) = buckets(&v, t);
            let has = |x: __m512i, bits: u8| _mm512_test_epi8_mask(x, _mm512_set1_epi8(bits as i8));
            let is = |x: __m512i, b: u8| _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(b as i8));
            let backslash = is(v[0], b'\\');
            Masks {
                aton: has(lookup(v[0], t.aton_lo, t.aton_hi), 0xFF),
                marks: is(v[0], b'%') | (backslash & is(v[1], b'u')),
                backslash,
                pieces: has(pieces, 0xFF) | has(numbers, (PIECE_BUCKETS >> 8) as u8),
                numbers: has(numbers, (NUMBER_BUCKETS >> 8) as u8),
            }
        }
    };
}

pub(super) use avx512_parts;

avx512_parts!("avx512f,avx512bw");
