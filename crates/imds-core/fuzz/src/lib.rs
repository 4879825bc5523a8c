//! What the fuzz targets share.

/// Inputs of known bugs tracked separately, left out of the comparisons (not of the
/// no-panic check): a lone surrogate escape, nesting close to the 127-level limit.
pub fn known_bug(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let surrogate = lower.match_indices("\\ud").any(|(i, _)| {
        lower[i + 3..]
            .chars()
            .next()
            .is_some_and(|c| matches!(c, '8'..='9' | 'a'..='f'))
    });
    let (mut depth, mut deepest) = (0usize, 0);
    for b in text.bytes() {
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        deepest = deepest.max(depth);
    }
    surrogate || deepest >= 120
}

/// A hit, as the comparisons see it.
pub type Key = (u64, usize, usize, Option<(String, String, String, String)>, String);

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
