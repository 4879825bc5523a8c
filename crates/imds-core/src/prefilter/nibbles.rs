//! The nibble-table lookup of the Teddy-style kernels (`fold_teddy`, `raw_endpoint`), once
//! per instruction set: byte-wise `lo[b & 15] & hi[b >> 4]`, each 16-entry table repeated in
//! every 16 bytes of its vector.

use std::arch::x86_64::*;

/// With AVX2. `shuffle_epi8` gives 0 for an index with its top bit set: the nibbles are
/// masked.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn avx2(v: __m256i, lo: __m256i, hi: __m256i) -> __m256i {
    let nibble = _mm256_set1_epi8(0x0F);
    let low = _mm256_and_si256(v, nibble);
    let high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
    _mm256_and_si256(_mm256_shuffle_epi8(lo, low), _mm256_shuffle_epi8(hi, high))
}

/// With AVX-512 (F, BW): as [`avx2`], 64 bytes at a time.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) fn avx512(v: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
    let nibble = _mm512_set1_epi8(0x0F);
    let low = _mm512_and_si512(v, nibble);
    let high = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
    _mm512_and_si512(_mm512_shuffle_epi8(lo, low), _mm512_shuffle_epi8(hi, high))
}

/// With AVX-512 VBMI: `permutexvar_epi8` (`vpermb`) reads six bits of each index byte and
/// has no top-bit rule, so neither nibble needs masking: the low one is the byte itself, the
/// high one `v >> 4` in 16-bit lanes (bits 4-5, the next byte's, land in a copy of the
/// table). Two thirds of [`avx512`]'s instructions.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
pub(super) fn avx512vbmi(v: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
    _mm512_and_si512(
        _mm512_permutexvar_epi8(v, lo),
        _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), hi),
    )
}
