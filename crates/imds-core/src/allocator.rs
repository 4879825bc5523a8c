//! [`Split`]: a global allocator that gives small blocks to mimalloc and the others to the
//! system allocator (feature `mimalloc`; the binding crate installs it).
//!
//! A scan with Elastic's whole rule set makes millions of small short-lived blocks (stage
//! hits, their key tuples, parsed field values), many freed on another thread than the one
//! that made them; glibc's malloc spent about a fifth of that scan's CPU on them, mimalloc
//! much less. A hit's record and event text (1–2 KB, made in a worker and freed by the thread
//! that hands the hits on) go to mimalloc too: with many hits, glibc's `malloc` and `free` of
//! them were 5% of the samples, and its giving their pages back and faulting them in again
//! system time besides. Blocks of 4 KiB and more (read buffers, batches) stay with the
//! system allocator: with every block in mimalloc, the many-hits cases peaked 30–40 MB higher
//! and spent more system time (mimalloc keeps the pages of blocks freed by another thread for
//! a while, and faults new ones in meanwhile); with the line at 4 KiB they peak 4–8 MB
//! higher than with it at 256 bytes.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of this size and more go to the system allocator.
pub const LARGE: usize = 4096;

/// The allocator: `#[global_allocator] static A: Split = Split;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Split;

#[inline]
fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is freed or resized by the allocator that made it: which one is decided
// by the block's size, which `GlobalAlloc`'s callers give back unchanged with the block.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Split {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract (a layout of non-zero size), passed on.
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was made by this allocator with `layout`: by the side its size names.
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                mimalloc::MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let was = large(layout.size());
        if was == large(new_size) {
            // SAFETY: the block stays on the side that made it.
            return unsafe {
                if was {
                    System.realloc(ptr, layout, new_size)
                } else {
                    mimalloc::MiMalloc.realloc(ptr, layout, new_size)
                }
            };
        }
        // Across the line: a block from the other side, the old one freed by its own.
        // SAFETY: the caller guarantees that `new_size` rounded up to `layout.align()` does
        // not overflow; `ptr` holds `layout.size()` bytes, the new block `new_size`.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> impl Iterator<Item = u8> {
        (0..n).map(|i| (i * 31 + 7) as u8)
    }

    /// A block of `size` bytes at `align`, filled with the pattern, checked and freed.
    fn round_trip(size: usize, align: usize) {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a non-zero size; the block is written within its size, then freed once.
        unsafe {
            let p = Split.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "size {size}, align {align}");
            for (i, b) in pattern(size).enumerate() {
                p.add(i).write(b);
            }
            assert!(pattern(size).enumerate().all(|(i, b)| p.add(i).read() == b));
            Split.dealloc(p, layout);
        }
    }

    #[test]
    fn blocks_on_both_sides_keep_their_bytes_and_alignment() {
        for size in [1, 24, 4095, LARGE - 1, LARGE, LARGE + 1, 4 << 20] {
            for align in [1, 8, 64, 4096] {
                round_trip(size, align);
            }
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_on_both_sides() {
        for size in [16, LARGE - 8, LARGE, 1 << 20] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: read within the block's size, freed once with its layout.
            unsafe {
                let p = Split.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert!((0..size).all(|i| p.add(i).read() == 0), "size {size}");
                Split.dealloc(p, layout);
            }
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_within_and_across_the_line() {
        // (from, to): within each side, and across the line both ways.
        let steps = [
            (10, LARGE / 2),
            (LARGE / 2, LARGE + 100),
            (LARGE + 100, 3 << 20),
            (3 << 20, LARGE - 1),
            (LARGE - 1, 10),
            (10, LARGE),
            (LARGE, LARGE - 1),
        ];
        for align in [8, 256] {
            let (first, _) = steps[0];
            let mut layout = Layout::from_size_align(first, align).unwrap();
            // SAFETY: each step resizes the live block with its current layout; bytes are
            // read and written within the sizes; the last block is freed once.
            unsafe {
                let mut p = Split.alloc(layout);
                // The bytes every step so far kept.
                let mut kept = first;
                for (i, b) in pattern(first).enumerate() {
                    p.add(i).write(b);
                }
                for (from, to) in steps {
                    assert_eq!(layout.size(), from);
                    p = Split.realloc(p, layout, to);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "{from} -> {to}");
                    kept = kept.min(to);
                    assert!(
                        pattern(kept).enumerate().all(|(i, b)| p.add(i).read() == b),
                        "{from} -> {to}, align {align}"
                    );
                    layout = Layout::from_size_align(to, align).unwrap();
                }
                Split.dealloc(p, layout);
            }
        }
    }
}
