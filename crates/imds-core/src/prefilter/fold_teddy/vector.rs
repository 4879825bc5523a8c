//! What the vector kernels share, written once over the vector width: the tables as vectors,
//! the loads, the walk over a block's starts and the entry points. Each kernel keeps its own
//! table lookup (`lookup`) and way of turning a vector into a bit mask (`nonzero`).

/// Define `find` (the entry point, given the CPU token), `Vectors`, `load` and `starts` for
/// one kernel: its token type, target features, width, vector type and intrinsics. The
/// kernel module provides `lookup(x, lo, hi) -> vector` (each byte of `x` looked up in the
/// nibble tables `lo` and `hi`, ANDed: [`Tables`]; `prefilter/nibbles.rs`) and
/// `nonzero(vector) -> u64` (bit k: byte k is not zero).
macro_rules! fold_kernel {
    (
        cpu: $cpu:ident,
        features: $features:literal,
        width: $w:literal,
        vector: $v:ty,
        loadu: $loadu:ident,
        and: $and:ident,
        set1_epi8: $set1:ident $(,)?
    ) => {
        /// Starts a step.
        const W: usize = $w;

        /// [`FoldTeddy::find`] with this kernel.
        pub(super) fn find(
            _cpu: $cpu,
            t: &FoldTeddy,
            hay: &[u8],
            at: usize,
            end: usize,
            mut accept: impl FnMut(usize) -> bool,
        ) -> Option<usize> {
            // SAFETY: the CPU token exists only when the CPU has the kernel's features.
            unsafe { find_with(t, hay, at, end, &mut accept) }
        }

        #[target_feature(enable = $features)]
        fn find_with(
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

        /// The tables, each 16-byte table in every 128-bit lane (`shuffle_epi8` looks up
        /// within a lane; AVX-512 VBMI's `permutexvar_epi8` in 64 bytes, its 16 entries four
        /// times).
        struct Vectors {
            lo: [$v; FINGERPRINT],
            hi: [$v; FINGERPRINT],
        }

        impl Vectors {
            #[target_feature(enable = $features)]
            fn new(t: &Tables) -> Vectors {
                let lanes = |table: &[u8; 16]| {
                    let mut lanes = [0u8; W];
                    for lane in lanes.chunks_exact_mut(16) {
                        lane.copy_from_slice(table);
                    }
                    load(&lanes, 0)
                };
                Vectors {
                    lo: t.lo.each_ref().map(lanes),
                    hi: t.hi.each_ref().map(lanes),
                }
            }
        }

        #[target_feature(enable = $features)]
        #[inline]
        fn load(bytes: &[u8], at: usize) -> $v {
            let bytes: &[u8; W] = bytes[at..at + W].try_into().expect("a vector's bytes");
            // SAFETY: `bytes` is W readable bytes; `loadu` has no alignment requirement.
            unsafe { $loadu(bytes.as_ptr().cast()) }
        }

        /// Bit k: the fingerprint matches at `block[k..]` (`block`: `W + FINGERPRINT - 1`
        /// bytes).
        #[target_feature(enable = $features)]
        #[inline]
        fn starts(v: &Vectors, block: &[u8]) -> u64 {
            let mut all = $set1(-1);
            for j in 0..FINGERPRINT {
                all = $and(all, lookup(load(block, j), v.lo[j], v.hi[j]));
            }
            nonzero(all)
        }
    };
}

pub(super) use fold_kernel;
