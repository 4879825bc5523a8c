//! The event builder: never panics; a line is an event exactly when serde_json reads it as
//! an object, and the document is serde_json's (numbers as their text).
#![no_main]

use imds_core::event;
use imds_core_fuzz::known_bug;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn numbers_as_text(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_text).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_text(v)))
                .collect(),
        ),
        v => v,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let parsed = event::parse_line(bytes);
    let text = String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(bytes));
    if known_bug(&text) {
        return;
    }
    let blank = text.bytes().all(|b| b" \t\r\n".contains(&b));
    let serde = serde_json::from_str::<Value>(&text)
        .ok()
        .filter(Value::is_object);
    match (&parsed, &serde) {
        (Ok(None), _) => assert!(blank),
        (Ok(Some(line)), Some(_)) => {
            assert_eq!(line.invalid_utf8, std::str::from_utf8(bytes).is_err())
        }
        (Err(_), None) => assert!(!blank),
        _ => panic!("parse_line and serde_json disagree on {text:?}"),
    }
    if let (Ok(doc), Some(serde)) = (event::parse_document(&text), serde) {
        assert_eq!(doc, numbers_as_text(serde));
    }
});
