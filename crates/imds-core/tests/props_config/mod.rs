//! The proptest configuration shared by the property tests (tests/*_props.rs, lucene_regex.rs).

use proptest::test_runner::Config;

/// `PROPTEST_CASES` when set (a long run), else the bounded default of the property.
pub fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
