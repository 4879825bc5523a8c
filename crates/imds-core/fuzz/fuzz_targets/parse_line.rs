//! The event builder: never panics; a line is an event exactly when serde_json (without its
//! recursion limit) reads it as an object at most 1000 levels deep, lone surrogate escapes
//! read as U+FFFD; the document is serde_json's (numbers as their text).
#![no_main]

use imds_core::event;
use imds_core_fuzz::MAX_NESTING;
use imds_core_fuzz::{json_depth, lone_surrogates_as_fffd, numbers_as_text, serde_object};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let parsed = event::parse_line(bytes);
    let text = String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(bytes));
    let blank = text.bytes().all(|b| b" \t\r\n".contains(&b));
    let model = lone_surrogates_as_fffd(&text);
    let expected = serde_object(&model);
    let too_deep = expected.is_some() && json_depth(&model) > MAX_NESTING;
    match (&parsed, &expected) {
        (Ok(None), _) => assert!(blank),
        (Ok(Some(line)), Some(_)) if !too_deep => {
            assert_eq!(line.invalid_utf8, std::str::from_utf8(bytes).is_err())
        }
        (Err(e), Some(_)) if too_deep => assert!(e.reason.starts_with("nested deeper than")),
        (Err(_), None) => assert!(!blank),
        _ => panic!("parse_line and the model disagree on {text:?}"),
    }
    if let (Ok(doc), Some(serde)) = (event::parse_document(&text), expected) {
        assert_eq!(doc, numbers_as_text(serde));
    }
});
