//! Errors: [`Error`] stops a rule from compiling; [`InputError`] records why one input could
//! not be read (fully), with its kind, byte offset and line as fields. Their `Display` is the
//! one-line text shown to users.

use std::fmt;

/// Errors that stop a rule from compiling or a scan from starting (per-file read errors are
/// recorded in [`crate::FileStats`] instead, so the rest of the scan goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The rule (IR document) is invalid.
    Rule(RuleError),
}

impl Error {
    /// An error of the rule as a whole (not of one branch).
    pub fn rule(message: impl Into<String>) -> Error {
        Error::Rule(RuleError {
            branch: None,
            field: None,
            message: message.into(),
        })
    }

    /// An error of one branch (and one field of it, when `field` is given).
    pub fn in_branch(branch: &str, field: Option<&str>, message: impl Into<String>) -> Error {
        Error::Rule(RuleError {
            branch: Some(branch.to_string()),
            field: field.map(str::to_string),
            message: message.into(),
        })
    }
}

/// Why a rule does not compile, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The name of the branch at fault, when one is.
    pub branch: Option<String>,
    /// The field of the predicate at fault, when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rule(e) => write!(f, "rule error: {e}"),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.branch, &self.field) {
            (Some(branch), Some(field)) => {
                write!(f, "branch {branch:?}, field {field:?}: {}", self.message)
            }
            (Some(branch), None) => write!(f, "branch {branch:?} {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

/// What kind of problem stopped the reading of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file may not be opened.
    PermissionDenied,
    /// The path is a directory.
    IsDirectory,
    /// The file could not be opened for another reason.
    Open,
    /// Reading failed (an I/O error of the source).
    Read,
    /// A format recognised by its first bytes but not supported (xz, bzip2, zip, lz4,
    /// UTF-16/32 text), possibly inside gzip or zstd data.
    Unsupported,
    /// Compressed data holding compressed data again (`.gz.gz`).
    NestedCompression,
    /// A byte range of a compressed input (only plain files are scanned by range).
    CompressedRange,
    /// The decoder could not be set up.
    Decoder,
    /// Compressed data damaged or cut short (a truncated gzip member, a bad zstd frame).
    Damaged,
    /// The scan was interrupted before this input was read (fully).
    Interrupted,
}

impl InputErrorKind {
    /// A stable snake_case name (`"not_found"`, `"damaged"`, ...), as the binding reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            InputErrorKind::NotFound => "not_found",
            InputErrorKind::PermissionDenied => "permission_denied",
            InputErrorKind::IsDirectory => "is_directory",
            InputErrorKind::Open => "open",
            InputErrorKind::Read => "read",
            InputErrorKind::Unsupported => "unsupported",
            InputErrorKind::NestedCompression => "nested_compression",
            InputErrorKind::CompressedRange => "compressed_range",
            InputErrorKind::Decoder => "decoder",
            InputErrorKind::Damaged => "damaged",
            InputErrorKind::Interrupted => "interrupted",
        }
    }
}

/// Why an input could not be read (fully). Stats and hits cover what was read before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// What went wrong.
    pub kind: InputErrorKind,
    /// Where reading stopped, in bytes from the start of the input (decompressed bytes,
    /// except for [`InputErrorKind::Damaged`]: the compressed byte near the damage; for a
    /// byte-range input, from the start of the file). `None` when nothing was read.
    pub offset: Option<u64>,
    /// Lines read before the error (the number of the last one), when known.
    pub line: Option<u64>,
    /// The compression of the input the error concerns (`"gzip"`, `"zstd"`), if any.
    pub compression: Option<&'static str>,
    /// [`InputErrorKind::Unsupported`], [`InputErrorKind::NestedCompression`] and
    /// [`InputErrorKind::CompressedRange`]: the format refused (`"xz"`, `"UTF-16LE"`,
    /// `"gzip"`...).
    pub format: Option<&'static str>,
    /// [`InputErrorKind::Damaged`]: the decompressed bytes scanned before the damage.
    pub decoded: Option<u64>,
    /// The underlying I/O or decoder error, as text.
    pub cause: Option<String>,
}

impl InputError {
    /// An error of `kind` with no other detail.
    pub fn new(kind: InputErrorKind) -> InputError {
        InputError {
            kind,
            offset: None,
            line: None,
            compression: None,
            format: None,
            decoded: None,
            cause: None,
        }
    }

    /// The error of opening a file.
    pub fn open(e: &std::io::Error) -> InputError {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => InputErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => InputErrorKind::PermissionDenied,
            _ => InputErrorKind::Open,
        };
        InputError::new(kind).cause(e)
    }

    /// A read error at byte `offset` (after `line` lines, when known).
    pub fn read(offset: u64, line: Option<u64>, e: &std::io::Error) -> InputError {
        InputError {
            offset: Some(offset),
            line,
            ..InputError::new(InputErrorKind::Read).cause(e)
        }
    }

    /// A format refused by its first bytes (inside `compression` data, if given).
    pub fn unsupported(format: &'static str, compression: Option<&'static str>) -> InputError {
        InputError {
            format: Some(format),
            compression,
            ..InputError::new(InputErrorKind::Unsupported)
        }
    }

    /// The scan stopped after `offset` bytes and `line` lines.
    pub fn interrupted(offset: u64, line: u64) -> InputError {
        InputError {
            offset: Some(offset),
            line: Some(line),
            ..InputError::new(InputErrorKind::Interrupted)
        }
    }

    fn cause(mut self, e: &dyn fmt::Display) -> InputError {
        self.cause = Some(e.to_string());
        self
    }

    /// With the underlying error's text.
    pub fn with_cause(self, e: &dyn fmt::Display) -> InputError {
        self.cause(e)
    }
}

/// Why an input refused by its first bytes is not scanned.
fn refusal(f: &mut fmt::Formatter<'_>, format: &str) -> fmt::Result {
    if format.starts_with("UTF-") {
        write!(
            f,
            "{format} text (byte-order mark) is not supported: not scanned (convert it to \
             UTF-8, e.g. iconv -f {format} -t UTF-8)"
        )
    } else {
        write!(
            f,
            "{format}-compressed input is not supported (gzip and zstd are): not scanned"
        )
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = self.cause.as_deref().unwrap_or("unknown error");
        let outer = self.compression.unwrap_or("compressed");
        let format = self.format.unwrap_or("unknown");
        let (offset, line) = (self.offset.unwrap_or(0), self.line.unwrap_or(0));
        match self.kind {
            InputErrorKind::NotFound | InputErrorKind::PermissionDenied | InputErrorKind::Open => {
                f.write_str(cause)
            }
            InputErrorKind::IsDirectory => f.write_str("is a directory"),
            InputErrorKind::Read => match self.line {
                Some(line) => write!(f, "read error at byte {offset} (line {line}): {cause}"),
                None => write!(f, "read error at byte {offset}: {cause}"),
            },
            InputErrorKind::Unsupported => {
                if let Some(outer) = self.compression {
                    write!(f, "decompressed {outer} data: ")?;
                }
                refusal(f, format)
            }
            InputErrorKind::NestedCompression => write!(
                f,
                "{outer} data that holds {format}-compressed data (compressed twice?) is not \
                 supported: not scanned"
            ),
            InputErrorKind::CompressedRange => write!(
                f,
                "{format}-compressed input cannot be scanned by byte range (scan it whole): \
                 not scanned"
            ),
            InputErrorKind::Decoder => write!(f, "{outer} decoder: {cause}"),
            InputErrorKind::Damaged => write!(
                f,
                "{outer} data damaged or cut short near compressed byte {offset} ({cause}); the \
                 {} bytes ({line} lines) decompressed before it were scanned",
                self.decoded.unwrap_or(0)
            ),
            InputErrorKind::Interrupted => match self.offset {
                Some(_) => write!(f, "interrupted: scanned up to byte {offset} (line {line})"),
                None => f.write_str("not read: the scan was interrupted"),
            },
        }
    }
}

impl std::error::Error for InputError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_render_the_established_texts() {
        let io = std::io::Error::other("boom");
        let cases: Vec<(InputError, &str)> = vec![
            (
                InputError::read(10, Some(2), &io),
                "read error at byte 10 (line 2): boom",
            ),
            (InputError::read(0, None, &io), "read error at byte 0: boom"),
            (
                InputError::unsupported("xz", None),
                "xz-compressed input is not supported (gzip and zstd are): not scanned",
            ),
            (
                InputError::unsupported("UTF-16LE", Some("gzip")),
                "decompressed gzip data: UTF-16LE text (byte-order mark) is not supported: not \
                 scanned (convert it to UTF-8, e.g. iconv -f UTF-16LE -t UTF-8)",
            ),
            (
                InputError::interrupted(5, 1),
                "interrupted: scanned up to byte 5 (line 1)",
            ),
            (
                InputError::new(InputErrorKind::Interrupted),
                "not read: the scan was interrupted",
            ),
            (
                InputError {
                    offset: Some(100),
                    line: Some(3),
                    compression: Some("gzip"),
                    decoded: Some(40),
                    ..InputError::new(InputErrorKind::Damaged).with_cause(&io)
                },
                "gzip data damaged or cut short near compressed byte 100 (boom); the 40 bytes \
                 (3 lines) decompressed before it were scanned",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(InputError::open(&missing).kind, InputErrorKind::NotFound);
    }

    #[test]
    fn rule_errors_name_branch_and_field() {
        let e = Error::in_branch("net", Some("destination.ip"), "bad");
        assert_eq!(
            e.to_string(),
            r#"rule error: branch "net", field "destination.ip": bad"#
        );
        let Error::Rule(inner) = &e;
        assert_eq!(inner.branch.as_deref(), Some("net"));
        assert_eq!(inner.field.as_deref(), Some("destination.ip"));
        assert_eq!(Error::rule("x").to_string(), "rule error: x");
    }
}
