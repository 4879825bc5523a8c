//! Shared by the targets: the model the engine is compared with (the same file as
//! tests/fuzz_props.rs uses) and the rules.

#[path = "../../tests/fuzz_model/mod.rs"]
mod model;
pub use model::*;

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
