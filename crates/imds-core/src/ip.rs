//! IP address parsing exactly as spec/ir.md specifies (hand-written so the Python reference
//! engine, `python/imds_scan/reference/ip.py`, can mirror it rule for rule).

/// Parse an IPv4 or IPv6 address into 16 bytes (IPv4 as IPv4-mapped). `None` if invalid.
///
/// IPv4 is tried first; anything else must contain a `:` to be IPv6. Everything from the first
/// `%` on (the scope) is cut before parsing IPv6; the scope's content is not checked.
pub fn parse_ip(s: &str) -> Option<[u8; 16]> {
    if let Some(v4) = parse_ipv4(s) {
        return Some(ipv4_mapped(v4));
    }
    if !s.contains(':') {
        return None;
    }
    let addr = match s.find('%') {
        Some(i) => &s[..i],
        None => s,
    };
    parse_ipv6(addr)
}

/// `::ffff:a.b.c.d`: how IPv4 addresses are stored, so both families compare as 16 bytes.
pub fn ipv4_mapped(v4: [u8; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    out[12..].copy_from_slice(&v4);
    out
}

/// Exactly four decimal parts of 1–3 ASCII digits, no leading zero (`0` itself is fine), ≤ 255.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 4 {
            return None;
        }
        let digits = part.as_bytes();
        if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Leading zeros are rejected: some parsers read them as octal.
        if digits.len() > 1 && digits[0] == b'0' {
            return None;
        }
        let value = digits
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
        out[n] = u8::try_from(value).ok()?;
        n += 1;
    }
    (n == 4).then_some(out)
}

/// IPv6 without scope: 1–4 hex digit groups, at most one `::` (one or more zero groups), an
/// optional final dotted IPv4 for the last two groups, 8 groups in all.
fn parse_ipv6(s: &str) -> Option<[u8; 16]> {
    let mut groups = [0u16; 8];
    match s.find("::") {
        Some(i) => {
            let (head, tail) = (&s[..i], &s[i + 2..]);
            // A second `::`, or an IPv4 part before the `::` (it must be last), is invalid.
            if tail.contains("::") || head.contains('.') {
                return None;
            }
            let n_head = parse_groups(head, &mut groups)?;
            let mut tail_groups = [0u16; 8];
            let n_tail = parse_groups(tail, &mut tail_groups)?;
            // `::` stands for at least one zero group.
            if n_head + n_tail > 7 {
                return None;
            }
            groups[8 - n_tail..].copy_from_slice(&tail_groups[..n_tail]);
        }
        None => {
            if parse_groups(s, &mut groups)? != 8 {
                return None;
            }
        }
    }
    let mut out = [0u8; 16];
    for (chunk, group) in out.chunks_exact_mut(2).zip(groups) {
        chunk.copy_from_slice(&group.to_be_bytes());
    }
    Some(out)
}

/// A CIDR block (EQL `cidrMatch`): the network's 16 bytes (IPv4 as IPv4-mapped, host bits
/// cleared) and the prefix length over those 128 bits (an IPv4 `/n` is `96 + n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: [u8; 16],
    pub len: u8,
}

impl Cidr {
    /// Whether `ip` is inside the block: its first `len` bits equal the network's.
    pub fn contains(&self, ip: &[u8; 16]) -> bool {
        let full = usize::from(self.len / 8);
        if self.network[..full] != ip[..full] {
            return false;
        }
        let rem = self.len % 8;
        rem == 0 || (self.network[full] ^ ip[full]) & (0xffu8 << (8 - rem)) == 0
    }
}

/// Parse a CIDR block as spec/ir.md specifies: an address (IPv4, or IPv6 without a `%scope`)
/// optionally followed by `/` and a prefix length of 1–3 ASCII digits without a leading zero,
/// at most 32 (IPv4) or 128 (IPv6). No length means the whole address. Host bits past the
/// prefix are allowed and ignored.
pub fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr_text, len_text) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let (mut network, max) = if let Some(v4) = parse_ipv4(addr_text) {
        (ipv4_mapped(v4), 32u8)
    } else if addr_text.contains(':') && !addr_text.contains('%') {
        (parse_ipv6(addr_text)?, 128u8)
    } else {
        return None;
    };
    let len = match len_text {
        None => max,
        Some(l) => {
            let digits = l.as_bytes();
            if digits.is_empty()
                || digits.len() > 3
                || !digits.iter().all(u8::is_ascii_digit)
                || (digits.len() > 1 && digits[0] == b'0')
            {
                return None;
            }
            let value = digits
                .iter()
                .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
            u8::try_from(value).ok().filter(|&v| v <= max)?
        }
    };
    let len = len + (128 - max);
    for (i, byte) in network.iter_mut().enumerate() {
        let bit = 8 * i as u32;
        if bit >= u32::from(len) {
            *byte = 0;
        } else if bit + 8 > u32::from(len) {
            *byte &= 0xffu8 << (bit + 8 - u32::from(len));
        }
    }
    Some(Cidr { network, len })
}

/// Parse `:`-separated groups (the last may be a dotted IPv4, giving two groups) into `out`;
/// the number written. The empty string is zero groups. `None` if invalid or more than fit.
fn parse_groups(text: &str, out: &mut [u16; 8]) -> Option<usize> {
    if text.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    let mut parts = text.split(':').peekable();
    while let Some(part) = parts.next() {
        let is_last = parts.peek().is_none();
        if is_last && part.contains('.') {
            let v4 = parse_ipv4(part)?;
            if n + 2 > out.len() {
                return None;
            }
            out[n] = u16::from_be_bytes([v4[0], v4[1]]);
            out[n + 1] = u16::from_be_bytes([v4[2], v4[3]]);
            n += 2;
        } else {
            let digits = part.as_bytes();
            if digits.is_empty()
                || digits.len() > 4
                || !digits.iter().all(u8::is_ascii_hexdigit)
                || n == out.len()
            {
                return None;
            }
            // All ASCII hex digits, so this cannot fail.
            out[n] = u16::from_str_radix(part, 16).ok()?;
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        ipv4_mapped([a, b, c, d])
    }

    fn v6(groups: [u16; 8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, g) in groups.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
        }
        out
    }

    const IMDS: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 169, 254, 169, 254];

    #[test]
    fn ipv4_valid() {
        assert_eq!(parse_ip("169.254.169.254"), Some(IMDS));
        assert_eq!(parse_ip("0.0.0.0"), Some(v4(0, 0, 0, 0)));
        assert_eq!(parse_ip("255.255.255.255"), Some(v4(255, 255, 255, 255)));
        assert_eq!(parse_ip("10.0.100.1"), Some(v4(10, 0, 100, 1)));
    }

    #[test]
    fn ipv4_invalid() {
        for s in [
            "",
            "169.254.169.054", // leading zero
            "169.254.169.00",
            "01.2.3.4",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.",
            ".1.2.3",
            "1..2.3",
            "1.2.3.1000",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1.2.3.+4",
            "1.2.3.-4",
            "1.2.3.4%eth0",  // scopes are IPv6 only
            "1.2.3.\u{664}", // Arabic-Indic digit: ASCII only
            "169.254.169.254/32",
            "0x7f.0.0.1",
            "2130706433",
        ] {
            assert_eq!(parse_ip(s), None, "{s:?}");
        }
    }

    #[test]
    fn ipv4_mapped_spellings_equal_ipv4() {
        for s in [
            "::ffff:169.254.169.254",
            "::FFFF:a9fe:a9fe",
            "::ffff:A9FE:A9FE",
            "0:0:0:0:0:ffff:a9fe:a9fe",
            "0000:0000:0000:0000:0000:FFFF:169.254.169.254",
            "0::ffff:a9fe:a9fe",
            "::0:ffff:a9fe:a9fe",
        ] {
            assert_eq!(parse_ip(s), Some(IMDS), "{s:?}");
        }
    }

    #[test]
    fn other_ipv6_embeddings_are_not_ipv4() {
        // IPv4-compatible and NAT64 are valid addresses, just different ones.
        let compat = parse_ip("::169.254.169.254").unwrap();
        assert_eq!(compat, v6([0, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe]));
        assert_ne!(compat, IMDS);
        let nat64 = parse_ip("64:ff9b::a9fe:a9fe").unwrap();
        assert_eq!(nat64, v6([0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe]));
        assert_ne!(nat64, IMDS);
    }

    #[test]
    fn ipv6_spellings() {
        let want = v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254]);
        for s in [
            "fd00:ec2::254",
            "FD00:EC2:0:0:0:0:0:254",
            "fd00:0ec2:0000:0000:0000:0000:0000:0254",
            "fd00:ec2:0::254",
            "fd00:ec2::0:0:254",
            "fd00:ec2:0:0:0:0::254", // `::` for exactly one group
            "fd00:ec2::254%eth0",
            "fd00:ec2::254%",   // empty scope: cut like any other
            "fd00:ec2::254%%x", // the scope's content is not checked
        ] {
            assert_eq!(parse_ip(s), Some(want), "{s:?}");
        }
        assert_eq!(parse_ip("::"), Some([0; 16]));
        assert_eq!(parse_ip("::1"), Some(v6([0, 0, 0, 0, 0, 0, 0, 1])));
        assert_eq!(parse_ip("1::"), Some(v6([1, 0, 0, 0, 0, 0, 0, 0])));
        assert_eq!(
            parse_ip("1:2:3:4:5:6:7::"),
            Some(v6([1, 2, 3, 4, 5, 6, 7, 0]))
        );
        assert_eq!(
            parse_ip("::2:3:4:5:6:7:8"),
            Some(v6([0, 2, 3, 4, 5, 6, 7, 8]))
        );
        assert_eq!(
            parse_ip("fe80::1%eth0"),
            Some(v6([0xfe80, 0, 0, 0, 0, 0, 0, 1]))
        );
        assert_eq!(
            parse_ip("1:2:3:4:5:6:1.2.3.4"),
            Some(v6([1, 2, 3, 4, 5, 6, 0x0102, 0x0304]))
        );
        assert_eq!(
            parse_ip("1::1.2.3.4"),
            Some(v6([1, 0, 0, 0, 0, 0, 0x0102, 0x0304]))
        );
        assert_eq!(
            parse_ip("::ffff:1.2.3.4%en0"),
            Some(v4(1, 2, 3, 4)),
            "scope cut before the dotted tail is parsed"
        );
    }

    #[test]
    fn ipv6_invalid() {
        for s in [
            ":",
            ":::",
            "1:::2",
            "::1::",
            "1::2::3",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            // `::` must stand for at least one group.
            "1:2:3:4:5:6:7:8::",
            "::1:2:3:4:5:6:7:8",
            "1:2:3:4::5:6:7:8",
            // Nine groups counting the IPv4 tail.
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1:2:3:4:5:6:1.2.3.4",
            "12345::1",
            "fd00:ec2::00254",
            "1:2:3:4:5:6:7:",
            ":1:2:3:4:5:6:7",
            ":1::",
            "g::1",
            "::ffff:169.254.169.054",
            "::ffff:169.254.169",
            "::1.2.3.4:5",
            "1.2.3.4::",
            "1.2.3.4::5",
            "%eth0",
            "%eth0:",
            "[::1]",
            " ::1",
            "::1 ",
            "::1\n",
            "fd00:ec2::254/64",
            "::+1",
            "::\u{661}",
            "fd00:ec2::254 %eth0",
        ] {
            assert_eq!(parse_ip(s), None, "{s:?}");
        }
        // The scope is cut first, so `::` with a scope is the all-zero address.
        assert_eq!(parse_ip("::%eth0"), Some([0; 16]));
    }

    #[test]
    fn cidr_blocks() {
        let c = parse_cidr("169.254.0.0/16").unwrap();
        assert_eq!(c.len, 112);
        assert!(c.contains(&IMDS));
        assert!(c.contains(&parse_ip("::ffff:a9fe:1").unwrap()));
        assert!(!c.contains(&parse_ip("169.255.0.1").unwrap()));
        assert!(!c.contains(&parse_ip("::a9fe:a9fe").unwrap()));
        // Host bits are cleared; no length is the whole address.
        assert_eq!(parse_cidr("10.1.2.3/8"), parse_cidr("10.0.0.0/8"));
        assert_eq!(parse_cidr("10.1.2.3").unwrap().len, 128);
        assert_eq!(parse_cidr("fd00:ec2::254").unwrap().len, 128);
        let odd = parse_cidr("10.0.0.0/9").unwrap();
        assert!(odd.contains(&parse_ip("10.127.255.255").unwrap()));
        assert!(!odd.contains(&parse_ip("10.128.0.0").unwrap()));
        let v6c = parse_cidr("FD00:EC2::/32").unwrap();
        assert!(v6c.contains(&parse_ip("fd00:ec2::254").unwrap()));
        assert!(v6c.contains(&parse_ip("fd00:ec2:ffff::1%eth0").unwrap()));
        assert!(!v6c.contains(&parse_ip("fd00:ec3::254").unwrap()));
        let all = parse_cidr("::/0").unwrap();
        assert!(all.contains(&IMDS) && all.contains(&[0xff; 16]));
        let all4 = parse_cidr("0.0.0.0/0").unwrap();
        assert!(all4.contains(&IMDS));
        assert!(!all4.contains(&parse_ip("::1").unwrap()));
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0 /8",
            "::/129",
            "fe80::1%eth0/64",
            "10.0.0.01/8",
            "example.com/8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn equality_is_by_bytes() {
        assert_eq!(
            parse_ip("FD00:EC2:0:0:0:0:0:254"),
            parse_ip("fd00:ec2::254")
        );
        assert_ne!(parse_ip("fd00:ec2::254"), parse_ip("fd00:ec2::255"));
        assert_eq!(parse_ip("::ffff:10.0.0.1"), parse_ip("10.0.0.1"));
    }
}
