//! What the vector kernels share, written once over the vector width: the nibble tables, the
//! fingerprint buckets of each byte position, and the entry points. Each kernel keeps its own
//! loads, table lookup and way of turning vectors into bit masks (AVX2: `movemask` per
//! 32-byte half; AVX-512: mask compares over the whole block).

/// Define `Tables`, `buckets`, `first` and `block_masks` for one kernel: its CPU token type,
/// target features, vector type and intrinsics. The kernel module provides `table(&[u8; 16])
/// -> vector`, `lookup(v, lo, hi) -> vector` (byte-wise `lo[b & 15] & hi[b >> 4]`:
/// `prefilter/nibbles.rs`) and `masks(&[u8; BLOCK], &Tables) -> Masks`.
macro_rules! nibble_kernel {
    (
        cpu: $cpu:ident,
        features: $features:literal,
        vector: $v:ty,
        and: $and:ident $(,)?
    ) => {
        /// [`RawTest::first`] with this kernel.
        pub(super) fn first(
            _cpu: $cpu,
            test: &RawTest,
            hay: &[u8],
            at: usize,
            end: usize,
        ) -> Option<usize> {
            // SAFETY: the CPU token exists only when the CPU has the kernel's features.
            unsafe { first_with(test, hay, at, end) }
        }

        /// The masks of one block, for tests against the byte loop.
        #[cfg(test)]
        pub(super) fn block_masks(
            _cpu: $cpu,
            block: &[u8; BLOCK],
            fingerprints: &Fingerprints,
        ) -> Masks {
            // SAFETY: as in `first`.
            unsafe { masks(block, &Tables::new(fingerprints)) }
        }

        #[target_feature(enable = $features)]
        fn first_with(test: &RawTest, hay: &[u8], at: usize, end: usize) -> Option<usize> {
            let tables = Tables::new(&test.fingerprints);
            // The closure inherits this function's target features.
            test.first_in_blocks(hay, at, end, |block, _| masks(block, &tables))
        }

        /// The nibble tables as vectors (one 16-byte table in each 128-bit lane:
        /// `shuffle_epi8` looks up within a lane), built once per search.
        struct Tables {
            lo: [[$v; 3]; 2],
            hi: [[$v; 3]; 2],
            aton_lo: $v,
            aton_hi: $v,
        }

        impl Tables {
            #[target_feature(enable = $features)]
            fn new(fingerprints: &Fingerprints) -> Tables {
                let (aton_lo, aton_hi) = ATON_NIBBLES;
                Tables {
                    lo: fingerprints
                        .lo
                        .each_ref()
                        .map(|set| set.each_ref().map(|t| table(t))),
                    hi: fingerprints
                        .hi
                        .each_ref()
                        .map(|set| set.each_ref().map(|t| table(t))),
                    aton_lo: table(&aton_lo),
                    aton_hi: table(&aton_hi),
                }
            }
        }

        /// (piece buckets, number buckets) of the 3 bytes starting at each position, given
        /// the vectors loaded at offsets 0, 1 and 2.
        #[target_feature(enable = $features)]
        #[inline]
        fn buckets(v: &[$v; 3], t: &Tables) -> ($v, $v) {
            let set = |s: usize| {
                $and(
                    $and(
                        lookup(v[0], t.lo[s][0], t.hi[s][0]),
                        lookup(v[1], t.lo[s][1], t.hi[s][1]),
                    ),
                    lookup(v[2], t.lo[s][2], t.hi[s][2]),
                )
            };
            (set(0), set(1))
        }
    };
}

pub(super) use nibble_kernel;
