use std::fmt;

/// Errors that stop a rule from compiling or a scan from starting (per-file read errors are
/// recorded in [`crate::FileStats`] instead, so the rest of the scan goes on).
#[derive(Debug)]
pub enum Error {
    Rule(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rule(msg) => write!(f, "rule error: {msg}"),
        }
    }
}

impl std::error::Error for Error {}
