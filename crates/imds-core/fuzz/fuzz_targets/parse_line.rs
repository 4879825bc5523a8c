//! The event builder against the model shared with tests/fuzz_props.rs
//! (`builder_verdict`): serde_json without its recursion limit, lone surrogate escapes read
//! as U+FFFD, at most 1000 levels deep; and the projected parse against the full one
//! (`projection_verdict`) for a fixed field set: nested paths, prefixes of one another, a
//! wrapper's members.
#![no_main]

use imds_core_fuzz::{builder_verdict, projection_verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(difference) = builder_verdict(bytes) {
        panic!("{difference}");
    }
    const FIELDS: &[&str] = &["a", "a.b", "process.name", "event", "_source.a", "_index"];
    if let Err(difference) = projection_verdict(bytes, FIELDS) {
        panic!("{difference}");
    }
});
