//! The prefilter (and, with several rules, the rule gate) skips only lines that cannot
//! match: the same hits with and without it, for the bundled rule and the hardened pack;
//! and streaming in small buffers scans like the bytes in memory.
#![no_main]

use imds_core::{Engine, ScanOptions};
use imds_core_fuzz::{keys, rules};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

static ENGINE: OnceLock<Engine> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let engine = ENGINE.get_or_init(|| Engine::new(rules()).unwrap());
    let Some((&size, data)) = data.split_first() else {
        return;
    };
    let on = ScanOptions {
        threads: 1,
        buffer_size: usize::from(size) + 1,
        ..ScanOptions::default()
    };
    let off = ScanOptions {
        prefilter: false,
        ..on.clone()
    };
    let fast = engine.scan_bytes(data, &on);
    let streamed = engine.scan_reader(data, 0, &on, &AtomicBool::new(false));
    assert_eq!(keys(&streamed), keys(&fast));
    let full = engine.scan_bytes(data, &off);
    assert_eq!(keys(&fast), keys(&full));
    assert_eq!(fast.files[0].events, full.files[0].events);
});
