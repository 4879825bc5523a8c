//! The `imds_endpoint` decoder (docs/ir.md, "Metadata endpoints"), mirrored by
//! python/imds_scan/endpoint.py: which metadata endpoints a string value names, in any spelling
//! a resolver or an HTTP client accepts, and the text that named each one.

use crate::ip::{ipv4_mapped, parse_ip};

const ADDRESSES: &[(&str, &str)] = &[
    ("169.254.169.254", "imds-link-local"),
    ("fd00:ec2::254", "aws-imds-ipv6"),
    ("169.254.170.2", "ecs-credentials"),
    ("169.254.170.23", "eks-pod-identity"),
    ("fd00:ec2::23", "eks-pod-identity"),
    ("168.63.129.16", "azure-wireserver"),
    ("192.0.0.192", "oracle-imds"),
    ("100.100.100.200", "alibaba-imds"),
    ("169.254.42.42", "scaleway-imds"),
];

const HOSTS: &[(&str, &str)] = &[
    ("instance-data", "aws-instance-data"),
    ("instance-data.ec2.internal", "aws-instance-data"),
    ("metadata.google.internal", "gcp-metadata-host"),
    ("metadata.goog", "gcp-metadata-host"),
    ("metadata.tencentyun.com", "tencent-metadata-host"),
];
const BARE_METADATA_HOST: &str = "metadata";
const GOOGLE_HEADER: &str = "metadata-flavor";
const WILDCARD_DNS: &[&str] = &[".nip.io", ".sslip.io", ".xip.io"];

const MARKERS: &[(&str, &str)] = &[
    (
        "/latest/meta-data/iam/security-credentials",
        "aws-credentials",
    ),
    ("/latest/meta-data/identity-credentials", "aws-credentials"),
    ("aws_container_credentials_relative_uri", "ecs-credentials"),
    ("aws_container_credentials_full_uri", "ecs-credentials"),
    ("/metadata/identity/oauth2/token", "azure-mi-token"),
    (
        "/computemetadata/v1/instance/service-accounts",
        "gcp-credentials",
    ),
    ("/latest/api/token", "aws-imds-token"),
    ("/latest/meta-data", "aws-metadata"),
    ("/latest/user-data", "aws-metadata"),
    ("/latest/dynamic/instance-identity", "aws-metadata"),
    ("/computemetadata/v1beta1", "gcp-metadata-v1beta1"),
    ("/computemetadata/v1", "gcp-metadata"),
    ("/metadata/instance", "azure-metadata"),
    ("/opc/v1/", "oracle-metadata"),
    ("/opc/v2/", "oracle-metadata"),
    ("/metadata/v1/", "digitalocean-metadata"),
    ("/metadata/v1.json", "digitalocean-metadata"),
    ("/openstack/latest", "openstack-metadata"),
    ("meta_data.json", "openstack-metadata"),
    ("/hetzner/v1/metadata", "hetzner-metadata"),
];

/// Whether `name` is an endpoint class the decoder reports.
pub fn is_class(name: &str) -> bool {
    name == "gcp-metadata-host"
        || name == "imds-wildcard-dns"
        || ADDRESSES.iter().any(|(_, c)| *c == name)
        || HOSTS.iter().any(|(_, c)| *c == name)
        || MARKERS.iter().any(|(_, c)| *c == name)
}

fn address_class(address: &[u8; 16]) -> Option<&'static str> {
    static TABLE: std::sync::OnceLock<Vec<([u8; 16], &'static str)>> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| {
            ADDRESSES
                .iter()
                .filter_map(|(text, c)| parse_ip(text).map(|a| (a, *c)))
                .collect()
        })
        .iter()
        .find(|(a, _)| a == address)
        .map(|(_, c)| *c)
}

fn is_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '[' | ']')
}

/// Decoded value: characters with their byte spans in the original.
struct Normalised {
    chars: Vec<char>,
    starts: Vec<usize>,
    ends: Vec<usize>,
}

fn normalise(value: &str) -> Normalised {
    let bytes = value.as_bytes();
    let mut out = Normalised {
        chars: Vec::with_capacity(value.len()),
        starts: Vec::with_capacity(value.len()),
        ends: Vec::with_capacity(value.len()),
    };
    let mut iter = value.char_indices().peekable();
    while let Some((i, ch)) = iter.next() {
        if ch == '%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("0");
            let code = u8::from_str_radix(hex, 16).unwrap_or(0);
            if (0x21..=0x7E).contains(&code) {
                out.chars.push(code as char);
                out.starts.push(i);
                out.ends.push(i + 3);
                iter.next();
                iter.next();
                continue;
            }
        }
        let c = match ch {
            '\u{3002}' | '\u{FF61}' | '\u{FF0E}' => '.',
            c => c,
        };
        out.chars.push(c);
        out.starts.push(i);
        out.ends.push(i + ch.len_utf8());
    }
    out
}

/// One inet_aton part: 0x hex, 0 octal, else decimal; `None` if not a number or too long.
fn number(part: &[u8]) -> Option<u64> {
    let (digits, radix) = if part.len() >= 2 && part[0] == b'0' && (part[1] | 0x20) == b'x' {
        (&part[2..], 16)
    } else if part.first() == Some(&b'0') {
        (part, 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    let mut significant = 0;
    for &b in digits {
        let d = (b as char).to_digit(radix)?;
        if value > 0 || d > 0 {
            significant += 1;
        }
        if significant > 12 {
            return None; // far beyond 2**32 in every base
        }
        value = value * u64::from(radix) + u64::from(d);
    }
    Some(value)
}

/// glibc inet_aton (1-4 parts, the last filling the remaining bytes; decimal, octal with a
/// leading 0, hex with 0x), IPv4-mapped. `parts_wanted` > 0: exactly that many parts.
pub fn inet_aton(text: &str, parts_wanted: usize) -> Option<[u8; 16]> {
    inet_aton_bytes(text.as_bytes(), parts_wanted)
}

fn inet_aton_bytes(text: &[u8], parts_wanted: usize) -> Option<[u8; 16]> {
    let mut numbers = [0u64; 4];
    let mut count = 0;
    for part in text.split(|&b| b == b'.') {
        if count == 4 {
            return None;
        }
        numbers[count] = number(part)?;
        count += 1;
    }
    if parts_wanted > 0 && count != parts_wanted {
        return None;
    }
    let (head, last) = (&numbers[..count - 1], numbers[count - 1]);
    if head.iter().any(|&v| v > 255) || last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut value = last;
    for (i, v) in head.iter().enumerate() {
        value |= v << (8 * (3 - i));
    }
    Some(ipv4_mapped((value as u32).to_be_bytes()))
}

fn host_class(host: &str, folded_value: &str) -> Option<&'static str> {
    if let Some(address) = inet_aton(host, 0) {
        return address_class(&address);
    }
    let folded = host.to_ascii_lowercase();
    if let Some((_, c)) = HOSTS.iter().find(|(name, _)| *name == folded) {
        return Some(c);
    }
    if folded == BARE_METADATA_HOST && folded_value.contains(GOOGLE_HEADER) {
        return Some("gcp-metadata-host");
    }
    for suffix in WILDCARD_DNS {
        if let Some(prefix) = folded.strip_suffix(suffix) {
            let labels: Vec<&str> = prefix.split('.').collect();
            let mut candidates = Vec::new();
            if labels.len() >= 4 {
                candidates.push(labels[labels.len() - 4..].join("."));
            }
            let dashed: Vec<&str> = labels[labels.len() - 1].split('-').collect();
            if dashed.len() >= 4 {
                candidates.push(dashed[dashed.len() - 4..].join("."));
            }
            for candidate in candidates {
                if let Some(address) = inet_aton(&candidate, 4) {
                    if address_class(&address).is_some() {
                        return Some("imds-wildcard-dns");
                    }
                }
            }
            return None;
        }
    }
    None
}

/// (start, end, class) inside the token (char offsets).
fn token_findings(token: &[char], folded_value: &str) -> Vec<(usize, usize, &'static str)> {
    let text: String = token.iter().collect(); // ASCII only: byte = char offsets
    if let Some(open_at) = text.find('[') {
        let Some(close_rel) = text[open_at..].find(']') else {
            return Vec::new();
        };
        let close_at = open_at + close_rel;
        return parse_ip(&text[open_at + 1..close_at])
            .and_then(|a| address_class(&a))
            .map(|c| vec![(open_at, close_at + 1, c)])
            .unwrap_or_default();
    }
    if text.matches(':').count() >= 2 {
        let mut candidates = vec![text.as_str()];
        if let Some((head, port)) = text.rsplit_once(':') {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                candidates.push(head);
            }
        }
        for candidate in candidates {
            if let Some(address) = parse_ip(candidate) {
                return address_class(&address)
                    .map(|c| vec![(0, candidate.len(), c)])
                    .unwrap_or_default();
            }
        }
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut start = 0;
    for part in text.split(':') {
        let host = part.trim_end_matches('.');
        if !host.is_empty() {
            if let Some(c) = host_class(host, folded_value) {
                found.push((start, start + host.len(), c));
            }
        }
        start += part.len() + 1;
    }
    found
}

/// (class, the text of `value` that named it), in order of position.
pub fn findings(value: &str) -> Vec<(&'static str, &str)> {
    let norm = normalise(value);
    let chars = &norm.chars;
    let folded_chars: Vec<char> = chars.iter().map(|c| c.to_ascii_lowercase()).collect();
    let folded: String = folded_chars.iter().collect();
    let mut found: Vec<(usize, usize, &'static str)> = Vec::new();
    let n = chars.len();
    let mut i = 0;
    while i < n {
        if !is_token(chars[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < n && is_token(chars[j]) {
            j += 1;
        }
        for (s, e, c) in token_findings(&chars[i..j], &folded) {
            found.push((i + s, i + e, c));
        }
        i = j;
    }
    for (marker, class) in MARKERS {
        let m: Vec<char> = marker.chars().collect();
        if let Some(at) = folded_chars
            .windows(m.len())
            .position(|w| w == m.as_slice())
        {
            found.push((at, at + m.len(), class));
        }
    }
    found.sort_by_key(|&(s, e, _)| (s, e));
    found
        .into_iter()
        .map(|(s, e, c)| (c, &value[norm.starts[s]..norm.ends[e - 1]]))
        .collect()
}

/// (index of the first of `classes` the value names, the text that named it first).
pub fn first_match<'v>(value: &'v str, classes: &[String]) -> Option<(usize, &'v str)> {
    let seen = findings(value);
    classes.iter().enumerate().find_map(|(index, class)| {
        seen.iter()
            .find(|(c, _)| *c == class.as_str())
            .map(|(_, token)| (index, *token))
    })
}

// ------------------------------------------------ prefilter: a sound test on a raw line

/// Case-insensitive pieces of which a line holds one whenever a value names an endpoint by a
/// marker, a host name, a wildcard-DNS name or an IPv6 spelling (when the line has no `\u`
/// escape of a token character, no `%XX`, no fullwidth or ideographic dot): a slash-free piece
/// of every marker (`latest` for the `/latest/...` ones, `metadata` for `/metadata/...`,
/// `/computemetadata/...`, `/hetzner/v1/metadata`), every host name, the wildcard-DNS
/// suffixes, `ffff` (the IPv4-mapped group, in any spelling) and `ec2:` (`fd00:ec2::`).
const RAW_PIECES: &[(&[u8], usize, usize)] = &[
    // (piece, offset and length of its search anchor: rare in ECS logs, few case spellings)
    (b"aws_container_credentials_", 12, 3),
    (b"latest", 1, 4),
    (b"metadata", 2, 3),
    (b"opc/v", 2, 3),
    (b"opc\\/v", 2, 3),
    (b"meta_data.json", 3, 3),
    (b"instance-data", 7, 3),
    (b"nip.io", 2, 3),
    (b"sslip.io", 4, 3),
    (b"xip.io", 2, 3),
    (b"ffff", 0, 3),
    (b"ec2:", 1, 3),
    // fullwidth and ideographic dots, UTF-8
    (b"\xE3\x80\x82", 0, 3),
    (b"\xEF\xBD\xA1", 0, 3),
    (b"\xEF\xBC\x8E", 0, 3),
];

const HOST: u8 = 1; // [A-Za-z0-9._-]
const DIGIT: u8 = 2; // [0-9]
const ATON: u8 = 4; // [0-9a-fA-FxX.]

const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-' {
            class |= HOST;
        }
        if c.is_ascii_digit() {
            class |= DIGIT;
        }
        if c.is_ascii_hexdigit() || c == b'x' || c == b'X' || c == b'.' {
            class |= ATON;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// A searcher for [`RawTest::may_match`], built once.
#[derive(Debug, Clone)]
pub struct RawTest {
    /// Every case spelling of each piece's anchor (59: few enough for the packed searcher).
    anchors: aho_corasick::AhoCorasick,
    /// Per anchor pattern: the pieces (index into `RAW_PIECES`) it stands for.
    pieces_of: Vec<Vec<usize>>,
}

impl Default for RawTest {
    fn default() -> Self {
        RawTest::new()
    }
}

impl RawTest {
    pub fn new() -> RawTest {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut pieces_of: Vec<Vec<usize>> = Vec::new();
        for (index, (piece, offset, len)) in RAW_PIECES.iter().enumerate() {
            let mut spellings = vec![Vec::new()];
            for &b in &piece[*offset..*offset + len] {
                let cases = if b.is_ascii_alphabetic() {
                    vec![b.to_ascii_lowercase(), b.to_ascii_uppercase()]
                } else {
                    vec![b]
                };
                spellings = spellings
                    .into_iter()
                    .flat_map(|s| {
                        cases.iter().map(move |&c| {
                            let mut s = s.clone();
                            s.push(c);
                            s
                        })
                    })
                    .collect();
            }
            for spelling in spellings {
                match patterns.iter().position(|p| *p == spelling) {
                    Some(i) => pieces_of[i].push(index),
                    None => {
                        patterns.push(spelling);
                        pieces_of.push(vec![index]);
                    }
                }
            }
        }
        // Leftmost-first: aho-corasick uses its packed (Teddy) searcher only then. No anchor
        // is a prefix of another (tested), so no two match at one position, and restarting
        // one byte after each match still sees every anchor.
        let anchors = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .expect("valid patterns");
        RawTest { anchors, pieces_of }
    }

    /// Where the first of the pieces (ASCII case-insensitively) is found in `hay[at..end]`.
    pub fn first_piece(&self, hay: &[u8], mut at: usize, end: usize) -> Option<usize> {
        let hay = &hay[..end];
        while let Some(m) = self
            .anchors
            .find(aho_corasick::Input::new(hay).span(at..end))
        {
            for &index in &self.pieces_of[m.pattern().as_usize()] {
                let (piece, offset, _) = RAW_PIECES[index];
                if let Some(start) = m.start().checked_sub(offset) {
                    if hay
                        .get(start..start + piece.len())
                        .is_some_and(|w| w.eq_ignore_ascii_case(piece))
                    {
                        return Some(m.start());
                    }
                }
            }
            at = m.start() + 1;
        }
        None
    }

    /// The test of one line (no `\n`).
    pub fn may_match(&self, line: &[u8]) -> bool {
        self.first_piece(line, 0, line.len()).is_some() || self.runs_may_match(line)
    }

    /// False only when no value of the JSON `line` can name an endpoint (any class): the
    /// prefilter of `imds_endpoint` (docs/ir.md). Inside a JSON string, a value's characters
    /// appear as themselves except escapes (`\X`, skipped: they stand for non-token
    /// characters, `\/` aside, whose `/` only matters to markers); so the inet_aton hosts of
    /// a value are maximal runs of `[A-Za-z0-9._-]` of the line, checked here the same way.
    /// The rest of [`RawTest::may_match`], for a line holding none of the pieces.
    pub fn runs_may_match(&self, line: &[u8]) -> bool {
        let n = line.len();
        let mut i = 0;
        while i < n {
            let b = line[i];
            let class = BYTE_CLASS[b as usize];
            if class & HOST == 0 {
                if b == b'\\' {
                    if line.get(i + 1) == Some(&b'u') {
                        // `\uXXXX` of a character that a token, a marker or a percent-escape
                        // could use: give up (the line is a candidate).
                        let code = line
                            .get(i + 2..i + 6)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok());
                        match code.and_then(char::from_u32) {
                            Some(c) if is_token(c) || c == '/' || c == '%' => return true,
                            Some('\u{3002}' | '\u{FF61}' | '\u{FF0E}') => return true,
                            Some(_) => {}
                            None if code.is_none() => return true, // not 4 hex digits
                            None => {}                             // a surrogate half
                        }
                        i += 6;
                    } else {
                        i += 2; // a short escape: the next byte is not part of a run
                    }
                    continue;
                }
                if b == b'%'
                    && i + 2 < n
                    && line[i + 1].is_ascii_hexdigit()
                    && line[i + 2].is_ascii_hexdigit()
                {
                    return true;
                }
                i += 1;
                continue;
            }
            // A maximal run of host bytes: decoded when inet_aton could read it (a digit, and
            // nothing but digits, hex letters, `x` and dots).
            let start = i;
            let mut all = ATON | DIGIT;
            let mut any = 0;
            while i < n {
                let c = BYTE_CLASS[line[i] as usize];
                if c & HOST == 0 {
                    break;
                }
                all &= c;
                any |= c;
                i += 1;
            }
            if all & ATON != 0 && any & DIGIT != 0 {
                let mut end = i;
                while end > start && line[end - 1] == b'.' {
                    end -= 1;
                }
                if end > start
                    && inet_aton_bytes(&line[start..end], 0)
                        .is_some_and(|a| address_class(&a).is_some())
                {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_anchor_is_a_prefix_of_another() {
        let test = RawTest::new();
        let n = test.pieces_of.len();
        assert!(n <= 64, "{n} anchors: too many for the packed searcher");
        let mut anchors = Vec::new();
        for (piece, offset, len) in RAW_PIECES {
            anchors.push(piece[*offset..offset + len].to_ascii_lowercase());
        }
        for a in &anchors {
            for b in &anchors {
                if a.len() < b.len() {
                    assert!(!b.starts_with(a), "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn raw_test_passes_every_spelling() {
        let test = RawTest::new();
        for v in [
            "2852039166",
            "0xA9FEA9FE",
            "0251.00376.000251.0000376",
            "[::ffff:a9fe:a9fe]",
            "[FD00:EC2::254]",
            "169%2e254%2e169%2e254",
            "169\u{3002}254\u{3002}169\u{3002}254",
            "169-254-169-254.sslip.io",
            "/LATEST/api/token",
        ] {
            let line = format!("{{\"a\":\"x {v}\"}}");
            assert!(test.may_match(line.as_bytes()), "{v}");
        }
        assert!(!test.may_match(br#"{"a":"169.254.169.253","b":12}"#));
    }

    #[test]
    fn spellings() {
        for v in [
            "2852039166",
            "0xA9FEA9FE",
            "0xA9.0xFE.0xA9.0xFE",
            "0251.0376.0251.0376",
            "0251.254.169.254",
            "169.254.43518",
            "169.16689662",
            "0xa9.0xfea9fe",
            "0251.00376.000251.0000376",
            "[::ffff:a9fe:a9fe]",
            "[::ffff:169.254.169.254]",
            "169%2e254%2e169%2e254",
            "169\u{3002}254\u{3002}169\u{3002}254",
        ] {
            assert_eq!(findings(v), vec![("imds-link-local", v)], "{v}");
        }
        for v in [
            "169.254.169.253",
            "169.254.169.123",
            "1169.254.169.2545",
            "169.254.169.254.5",
        ] {
            assert!(findings(v).is_empty(), "{v}");
        }
    }
}
