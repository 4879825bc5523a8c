//! IP address parsing exactly as docs/ir.md specifies (hand-written so the Python reference
//! engine can mirror it rule for rule).

/// Parse an IPv4 or IPv6 address into 16 bytes (IPv4 as IPv4-mapped). `None` if invalid.
pub fn parse_ip(_s: &str) -> Option<[u8; 16]> {
    todo!("helper A")
}
