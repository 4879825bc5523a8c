//! Proofs that the CPU has a vector extension, made only by run-time detection: the kernels
//! compiled for one (`raw_endpoint`, `fold_teddy`, `pair`) take its token, so calling them
//! is sound.

/// Proof that the CPU has AVX2: only [`Avx2::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx2(());

impl Avx2 {
    #[inline]
    pub(super) fn detect() -> Option<Avx2> {
        is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }
}

/// Proof that the CPU has AVX-512 F and BW: only [`Avx512::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512(());

impl Avx512 {
    #[inline]
    pub(super) fn detect() -> Option<Avx512> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"))
            .then_some(Avx512(()))
    }
}

/// Proof that the CPU has AVX-512 F, BW and VBMI (Ice Lake, Zen 4 and later): only
/// [`Avx512Vbmi::detect`] makes one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Avx512Vbmi(());

impl Avx512Vbmi {
    #[inline]
    pub(super) fn detect() -> Option<Avx512Vbmi> {
        (Avx512::detect().is_some() && is_x86_feature_detected!("avx512vbmi"))
            .then_some(Avx512Vbmi(()))
    }
}
