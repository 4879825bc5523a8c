//! What the fuzz targets share.

/// Inputs of known bugs tracked separately, left out of the comparisons (not of the
/// no-panic check): a lone surrogate escape, nesting close to the 127-level limit.
pub fn known_bug(text: &str) -> bool {
    lone_surrogate(text) || nesting(text) >= 120
}

/// Whether a JSON string in `text` holds a `\uD800`-`\uDFFF` escape that is not half of a
/// pair (a high one followed by a low one).
fn lone_surrogate(text: &str) -> bool {
    let bytes = text.as_bytes();
    let unit = |i: usize| {
        let hex = bytes.get(i + 2..i + 6)?;
        (bytes[i + 1] == b'u')
            .then(|| u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .flatten()
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match unit(i) {
            Some(0xD800..=0xDBFF) => match unit(i + 6).filter(|_| bytes.get(i + 6) == Some(&b'\\'))
            {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => return true,
            },
            Some(0xDC00..=0xDFFF) => return true,
            Some(_) => i += 6,
            None => i += 2,
        }
    }
    false
}

/// The deepest nesting of brackets and braces (strings not told apart: an overestimate).
fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    deepest
}

/// A hit, as the comparisons see it.
pub type Key = (
    u64,
    usize,
    usize,
    Option<(String, String, String, String)>,
    String,
);

pub fn keys(report: &imds_core::ScanReport) -> Vec<Key> {
    report
        .hits
        .iter()
        .map(|h| {
            let w = h.witness.as_ref().map(|w| {
                let op = w.op.to_string();
                (w.field.clone(), op, w.pattern.clone(), w.value.clone())
            });
            (h.line, h.rule, h.branch, w, h.event.clone())
        })
        .collect()
}

/// The bundled rule and the hardened pack.
pub fn rules() -> Vec<imds_core::RuleIr> {
    let seed = include_str!("../../tests/data/seed_ir.json");
    let pack: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../tests/data/hardened_ir.json")).unwrap();
    let mut rules = vec![imds_core::RuleIr::from_json(seed).unwrap()];
    for rule in pack {
        rules.push(imds_core::RuleIr::from_json(&rule.to_string()).unwrap());
    }
    rules
}
