//! Streaming files through the prefilter and the rules, in parallel.

use crate::eval::{CompiledRule, Witness};
use crate::ir::RuleIr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Worker threads; 0 = all cores.
    pub threads: usize,
    /// Read buffer size in bytes.
    pub buffer_size: usize,
    /// false = evaluate every line (used to test that the prefilter is sound).
    pub prefilter: bool,
    /// How many malformed lines per file are kept as examples (all are counted).
    pub max_examples: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: 0,
            buffer_size: 4 << 20,
            prefilter: true,
            max_examples: 5,
        }
    }
}

/// One alerting event.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index into the paths given to [`Engine::scan_paths`].
    pub source: usize,
    /// 1-based line number.
    pub line: u64,
    /// Index into the engine's rules.
    pub rule: usize,
    /// Index of the rule's matching branch.
    pub branch: usize,
    pub witness: Option<Witness>,
    /// The event's line (without line ending).
    pub event: String,
}

/// What happened to one input.
#[derive(Debug, Clone, Default)]
pub struct FileStats {
    pub bytes: u64,
    /// Non-blank lines.
    pub events: u64,
    /// Lines the prefilter passed to the JSON parser.
    pub candidates: u64,
    pub hits: u64,
    pub malformed: u64,
    pub invalid_utf8: u64,
    /// (1-based line, reason) for the first `max_examples` malformed lines.
    pub malformed_examples: Vec<(u64, String)>,
    /// Set when the input could not be read (fully): the reason. Stats cover what was read.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// One per input path, in the order given.
    pub files: Vec<FileStats>,
    /// Sorted by (source, line, rule).
    pub hits: Vec<Hit>,
    /// True when the scan stopped early because `cancel` was set.
    pub cancelled: bool,
}

pub struct Engine {
    pub rules: Vec<CompiledRule>,
}

impl Engine {
    pub fn new(rules: Vec<RuleIr>) -> Result<Engine, crate::Error> {
        let rules = rules
            .into_iter()
            .map(CompiledRule::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine { rules })
    }

    /// Scan the inputs; a missing or unreadable file is recorded in its `FileStats::error`.
    /// Checks `cancel` at least once per buffer.
    pub fn scan_paths(
        &self,
        _paths: &[PathBuf],
        _opts: &ScanOptions,
        _cancel: &AtomicBool,
    ) -> ScanReport {
        todo!("helper B")
    }
}
