//! The event builder against the model shared with tests/fuzz_props.rs
//! (`builder_verdict`): serde_json without its recursion limit, lone surrogate escapes read
//! as U+FFFD, at most 1000 levels deep.
#![no_main]

use imds_core_fuzz::builder_verdict;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(difference) = builder_verdict(bytes) {
        panic!("{difference}");
    }
});
