//! imds-core: the scanning engine of imds-scan, in pure Rust (no Python).
//!
//! Data flow: [`source`] bytes (plain, gzip, zstd) → [`prefilter`] (Aho-Corasick over whole
//! buffers) → candidate line →
//! [`event`] (JSON parse + field lookup) → [`eval`] (rule IR) → [`scan::Hit`].

pub mod endpoint;
pub mod error;
pub mod eval;
pub mod event;
pub mod ip;
pub mod ir;
pub mod prefilter;
pub mod scan;
pub mod source;
pub mod wildcard;

pub use error::Error;
pub use eval::{CompiledRule, Match, Verdict, Witness};
pub use ir::RuleIr;
pub use scan::{Engine, FileStats, Hit, ScanOptions, ScanReport};
pub use source::{Compression, Input};
