//! The `imds_endpoint` decoder (docs/ir.md, "Metadata endpoints"), mirrored by
//! python/imds_scan/endpoint.py: which metadata endpoints a string value names, in any spelling
//! a resolver or an HTTP client accepts, and the text that named each one.

use crate::ip::{ipv4_mapped, parse_ip};
use crate::prefilter::real_escape;

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

/// glibc inet_aton (1-4 parts, the last filling the remaining bytes; decimal, octal with a
/// leading 0, hex with 0x), IPv4-mapped. `parts_wanted` > 0: exactly that many parts.
pub fn inet_aton(text: &str, parts_wanted: usize) -> Option<[u8; 16]> {
    inet_aton_bytes(text.as_bytes(), parts_wanted)
}

fn inet_aton_bytes(text: &[u8], parts_wanted: usize) -> Option<[u8; 16]> {
    let (value, parts) = inet_aton_value(text)?;
    (parts_wanted == 0 || parts == parts_wanted).then(|| ipv4_mapped(value.to_be_bytes()))
}

/// The address inet_aton reads in `text` and its number of parts.
fn inet_aton_value(text: &[u8]) -> Option<(u32, usize)> {
    let mut parts = [0u64; 4];
    let mut count = 0;
    for part in text.split(|&b| b == b'.') {
        if count == 4 {
            return None;
        }
        parts[count] = part_value(part)?;
        count += 1;
    }
    let (head, last) = (&parts[..count - 1], parts[count - 1]);
    if head.iter().any(|&v| v > 255) || last >= 1u64 << (8 * (4 - head.len())) {
        return None;
    }
    let mut value = last;
    for (k, v) in head.iter().enumerate() {
        value |= v << (8 * (3 - k));
    }
    Some((value as u32, count))
}

/// One inet_aton part: 0x hex, 0 octal, else decimal; `None` if empty, not a number, or past
/// 2**32 (no address comes of it; leading zeros never count).
fn part_value(part: &[u8]) -> Option<u64> {
    let (radix, digits) = match part {
        [b'0', x, rest @ ..] if x | 0x20 == b'x' => (16, rest),
        [b'0', ..] => (8, part),
        _ => (10, part),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        value = value * u64::from(radix) + u64::from((b as char).to_digit(radix)?);
        if value > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(value)
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
        // Markers are ASCII: a byte search, then its offset in characters.
        if let Some(at_byte) = memchr::memmem::find(folded.as_bytes(), marker.as_bytes()) {
            let at = folded[..at_byte].chars().count();
            found.push((at, at + marker.len(), class));
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
    /// Each piece's anchor, lower case (13), searched in folded text.
    anchors: aho_corasick::AhoCorasick,
    /// Per anchor pattern: the pieces (index into `RAW_PIECES`) it stands for.
    pieces_of: Vec<Vec<usize>>,
    /// No inet_aton spelling of an address is shorter: shorter runs are never decoded.
    min_run: usize,
    /// The IPv4 addresses of `ADDRESSES`.
    targets: Vec<u32>,
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
            // Searched in a folded copy of the text: one (lower-case) spelling per anchor.
            let anchor = piece[*offset..*offset + len].to_ascii_lowercase();
            match patterns.iter().position(|p| *p == anchor) {
                Some(i) => pieces_of[i].push(index),
                None => {
                    patterns.push(anchor);
                    pieces_of.push(vec![index]);
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
        RawTest {
            anchors,
            pieces_of,
            min_run: shortest_aton_spelling(),
            targets: ipv4_targets().map(u32::from).collect(),
        }
    }

    /// Where the first of the pieces (ASCII case-insensitively) is found in `hay[at..end]`.
    /// The text is folded to lower case a slice at a time (slices overlap by an anchor less
    /// a byte), so that Teddy looks for one spelling of each anchor, not all of their cases.
    pub fn first_piece(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        const SLICE: usize = 32 << 10;
        const OVERLAP: usize = 3; // longest anchor less one
        thread_local! {
            static FOLDED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let hay = &hay[..end];
        FOLDED.with_borrow_mut(|folded| {
            let mut lo = at;
            while lo < end {
                let hi = (lo + SLICE).min(end);
                folded.clear();
                folded.extend(hay[lo..hi].iter().map(u8::to_ascii_lowercase));
                let mut from = 0;
                while let Some(m) = self
                    .anchors
                    .find(aho_corasick::Input::new(&folded[..]).span(from..folded.len()))
                {
                    let p = lo + m.start();
                    for &index in &self.pieces_of[m.pattern().as_usize()] {
                        let (piece, offset, _) = RAW_PIECES[index];
                        if p.checked_sub(offset).is_some_and(|start| {
                            hay.get(start..start + piece.len())
                                .is_some_and(|w| w.eq_ignore_ascii_case(piece))
                        }) {
                            return Some(p);
                        }
                    }
                    from = m.start() + 1;
                }
                if hi == end {
                    break;
                }
                lo = hi - OVERLAP;
            }
            None
        })
    }

    /// The test of one line (no `\n`).
    pub fn may_match(&self, line: &[u8]) -> bool {
        self.first_piece(line, 0, line.len()).is_some()
            || self.first_other(line, 0, line.len()).is_some()
    }

    /// The rest of [`RawTest::may_match`] over whole lines `hay[at..end]` (`at` starts a
    /// line): where the first escape or inet_aton run that passes is, or `None` when no value
    /// there can name an endpoint (any class) but by one of the pieces. Inside a JSON string
    /// a value's characters appear as themselves except escapes (`\X`, skipped: they stand
    /// for non-token characters, `\/` aside, whose `/` only matters to markers); so the
    /// inet_aton hosts of a value are maximal runs of `[A-Za-z0-9._-]` of the line, checked
    /// here the same way. Equal, line by line, to the plain byte-by-byte reading kept in the
    /// tests (`runs_reference`), but only runs of at least `min_run` inet_aton bytes, found
    /// 64 bytes at a time, are looked at.
    pub fn first_other(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        let mut base = at;
        let mut current = masks(hay, base, end);
        let mut resume = at; // runs before this were checked
        while base < end {
            let next = masks(hay, base + 64, end);
            let mut escape = None;
            let mut marks = current.marks;
            while marks != 0 {
                let p = base + marks.trailing_zeros() as usize;
                if escape_at(hay, p, at, end) {
                    escape = Some(p);
                    break;
                }
                marks &= marks - 1;
            }
            // Bit i: hay[base + i ..][..min_run] are all inet_aton bytes.
            let both = u128::from(current.aton) | (u128::from(next.aton) << 64);
            let window = runs_at_least(both, self.min_run);
            let before_escape = escape.map_or(u64::MAX, |p| low_bits(p - base));
            let mut starts = window as u64 & !low_bits(resume.saturating_sub(base)) & before_escape;
            while starts != 0 {
                // The first window start left in a run of inet_aton bytes is where it starts
                // (an earlier one would have been taken, and its run skipped).
                let offset = starts.trailing_zeros() as usize;
                let q = base + offset;
                let mut run_end = q + (both >> offset).trailing_ones() as usize;
                if offset + (run_end - q) == 128 {
                    while run_end < end && is_aton_byte(hay[run_end]) {
                        run_end += 1;
                    }
                }
                if self.aton_run_at(hay, q, run_end, at, end) {
                    return Some(q);
                }
                resume = run_end;
                starts &= !low_bits(run_end - base);
            }
            if escape.is_some() {
                return escape;
            }
            base += 64;
            current = next;
        }
        None
    }

    /// Whether the host run holding the inet_aton bytes `hay[q..run_end]` (a maximal run of
    /// them in `hay[lo..hi]`) is one that inet_aton reads as an address. Usually decided
    /// from the bytes on either side, without walking the run again.
    fn aton_run_at(&self, hay: &[u8], q: usize, run_end: usize, lo: usize, hi: usize) -> bool {
        let is_host = |b: u8| BYTE_CLASS[b as usize] & HOST != 0;
        if run_end < hi && is_host(hay[run_end]) {
            return false; // a host byte that is no inet_aton byte follows: not all of them
        }
        let (start, stop) = if q > lo && is_host(hay[q - 1]) {
            host_run(hay, q, lo, hi) // e.g. `\u00e9` before it: walk it
        } else if q > lo && hay[q - 1] == b'\\' && real_escape(hay, q - 1) {
            (q + 1, run_end) // `\b`, `\f`: the escaped letter is no part of it
        } else {
            (q, run_end)
        };
        start < stop && aton_run_names_address(&hay[start..stop], &self.targets)
    }
}

/// Bit i: bits i..i + n of `m` are all set (n ≥ 1), in log2(n) + 1 shifts.
fn runs_at_least(m: u128, n: usize) -> u128 {
    let (mut window, mut len) = (m, 1);
    while len * 2 <= n {
        window &= window >> len;
        len *= 2;
    }
    if len < n {
        window &= window >> (n - len);
    }
    window
}

/// The `n` (≤ 64 or more) low bits set.
fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

fn is_aton_byte(b: u8) -> bool {
    BYTE_CLASS[b as usize] & ATON != 0
}

/// What one 64-byte block holds, a bit per byte.
#[derive(Clone, Copy)]
struct Masks {
    /// inet_aton bytes: `[0-9a-fA-FxX.]`.
    aton: u64,
    /// `%`, and `\\` before `u`: where a relevant escape may start.
    marks: u64,
}

/// The masks of `hay[from..end][..64]` (bytes past `end` count as neither).
fn masks(hay: &[u8], from: usize, end: usize) -> Masks {
    // 65 bytes: a mark also looks at the byte after it.
    if let Some(bytes) = hay[..end].get(from..from + 65) {
        return masks64(bytes.try_into().expect("65 bytes"));
    }
    if from >= end {
        return Masks { aton: 0, marks: 0 };
    }
    let mut block = [0u8; 65]; // NUL is neither
    block[..end - from].copy_from_slice(&hay[from..end]);
    masks64(&block)
}

/// SSE2, 16 bytes at a time.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn masks64(block: &[u8; 65]) -> Masks {
    use safe_arch::*;
    let splat = |b: u8| set_splat_i8_m128i(b as i8);
    // x ≤ max, unsigned, byte-wise.
    let at_most = |x: m128i, max: u8| cmp_eq_mask_i8_m128i(min_u8_m128i(x, splat(max)), x);
    let (mut aton, mut marks) = (0u64, 0u64);
    for k in 0..4 {
        let at = 16 * k;
        let v = load_unaligned_m128i(block[at..at + 16].try_into().expect("16 bytes"));
        let next = load_unaligned_m128i(block[at + 1..at + 17].try_into().expect("16 bytes"));
        let lower = bitor_m128i(v, splat(0x20));
        let digit = at_most(sub_i8_m128i(v, splat(b'0')), 9);
        let hex = at_most(sub_i8_m128i(lower, splat(b'a')), 5);
        let x_or_dot = bitor_m128i(
            cmp_eq_mask_i8_m128i(lower, splat(b'x')),
            cmp_eq_mask_i8_m128i(v, splat(b'.')),
        );
        let a = bitor_m128i(bitor_m128i(digit, hex), x_or_dot);
        let backslash_u = bitand_m128i(
            cmp_eq_mask_i8_m128i(v, splat(b'\\')),
            cmp_eq_mask_i8_m128i(next, splat(b'u')),
        );
        let m = bitor_m128i(cmp_eq_mask_i8_m128i(v, splat(b'%')), backslash_u);
        aton |= u64::from(move_mask_i8_m128i(a) as u16) << at;
        marks |= u64::from(move_mask_i8_m128i(m) as u16) << at;
    }
    Masks { aton, marks }
}

/// Portable: the same masks a byte at a time.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn masks64(block: &[u8; 65]) -> Masks {
    masks_scalar(block)
}

#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn masks_scalar(block: &[u8; 65]) -> Masks {
    let (mut aton, mut marks) = (0u64, 0u64);
    for i in 0..64 {
        let (b, next) = (block[i], block[i + 1]);
        aton |= u64::from(is_aton_byte(b)) << i;
        marks |= u64::from(b == b'%' || (b == b'\\' && next == b'u')) << i;
    }
    Masks { aton, marks }
}

/// Whether the `%` or `\\` at `p` starts a `%XX` or `\u` escape that a value could use to
/// spell a token, a marker or a percent-escape (such a line is a candidate). `lo` starts a
/// line; a backslash escapes the next byte when an odd run of backslashes ends at it, as
/// in a JSON string (`\\%` is no percent-escape, `\\\\u` no `\u` escape).
fn escape_at(hay: &[u8], p: usize, lo: usize, end: usize) -> bool {
    let hay = &hay[..end];
    if hay[p] == b'%' {
        p + 2 < end
            && hay[p + 1].is_ascii_hexdigit()
            && hay[p + 2].is_ascii_hexdigit()
            && !(p > lo && hay[p - 1] == b'\\' && real_escape(hay, p - 1))
    } else {
        hay.get(p + 1) == Some(&b'u')
            && real_escape(hay, p)
            && escape_may_spell(hay.get(p + 2..p + 6))
    }
}

/// The run of host bytes around `q` in `hay[lo..hi]` as the byte-by-byte reading sees it:
/// an escape (`\X`, `\uXXXX`) just before it is not part of it.
fn host_run(hay: &[u8], q: usize, lo: usize, hi: usize) -> (usize, usize) {
    let is_host = |b: u8| BYTE_CLASS[b as usize] & HOST != 0;
    let mut start = q;
    while start > lo && is_host(hay[start - 1]) {
        start -= 1;
    }
    let mut end = q;
    while end < hi && is_host(hay[end]) {
        end += 1;
    }
    // The `\` of an escape is no host byte, so only an escape right before can reach in.
    if start > lo && hay[start - 1] == b'\\' && real_escape(hay, start - 1) {
        start += if hay[start] == b'u' { 5 } else { 1 };
    }
    (start.min(end), end)
}

/// A host run inet_aton reads as one of the addresses (`targets`): such a run has a digit
/// and nothing but digits, hex letters, `x` and dots.
fn aton_run_names_address(run: &[u8], targets: &[u32]) -> bool {
    let mut end = run.len();
    while end > 0 && run[end - 1] == b'.' {
        end -= 1;
    }
    let text = &run[..end];
    // Most runs are other dotted addresses and versions: their first part, the address's
    // first byte when there are two parts or more, already tells.
    if let Some(dot) = memchr::memchr(b'.', text) {
        let first = part_value(&text[..dot]);
        if !first.is_some_and(|v| targets.iter().any(|&t| u64::from(t >> 24) == v)) {
            return false;
        }
    }
    end > 0 && inet_aton_value(text).is_some_and(|(v, _)| targets.contains(&v))
}

/// Whether `\u` and these 4 bytes may stand for a character that a token, a marker or a
/// percent-escape could use (or are not a valid escape: then the parser decides).
fn escape_may_spell(hex: Option<&[u8]>) -> bool {
    let code = hex
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    match code.and_then(char::from_u32) {
        Some(c) if is_token(c) || c == '/' || c == '%' => true,
        Some('\u{3002}' | '\u{FF61}' | '\u{FF0E}') => true,
        Some(_) => false,
        None => code.is_none(), // not 4 hex digits; a surrogate half is skipped
    }
}

fn ipv4_targets() -> impl Iterator<Item = std::net::Ipv4Addr> {
    ADDRESSES.iter().filter_map(|(text, _)| text.parse().ok())
}

/// The length of the shortest inet_aton spelling of any IPv4 address in `ADDRESSES`: each
/// part as short as decimal, octal (`0` first) or hex (`0x` first) can write it.
fn shortest_aton_spelling() -> usize {
    fn digits(mut v: u64, radix: u64) -> usize {
        let mut n = 1;
        while v >= radix {
            v /= radix;
            n += 1;
        }
        n
    }
    let part = |v: u64| {
        let octal = if v == 0 { 2 } else { 1 + digits(v, 8) };
        digits(v, 10).min(octal).min(2 + digits(v, 16))
    };
    ipv4_targets()
        .flat_map(|ip| {
            let b = ip.octets().map(u64::from);
            (1..=4).map(move |parts| {
                let last = b[parts - 1..].iter().fold(0, |acc, &x| acc * 256 + x);
                let head: usize = b[..parts - 1].iter().map(|&x| part(x)).sum();
                head + part(last) + (parts - 1)
            })
        })
        .min()
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte reading [`RawTest::first_other`] must equal on one line.
    fn runs_reference(line: &[u8]) -> bool {
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

    /// Lines rich in what the raw test looks at: runs, escapes, percent-escapes, spellings.
    fn random_line(state: &mut u64) -> Vec<u8> {
        const PARTS: &[&str] = &[
            "169.254.169.254",
            "0xa9fea9fe",
            "0XA9.0xFE.0251.254",
            "2852039166",
            "192.192",
            "169.254.43518",
            "0251.0376.0251.0376.",
            "169.254.169.253",
            "10.0.3.17",
            "1",
            "0",
            "00",
            "0x",
            "x",
            ".",
            "..",
            "a",
            "F",
            "g",
            "-",
            "_",
            ":",
            "/",
            " ",
            "\"",
            "\\",
            "\\\\",
            "\\n",
            "\\u",
            "\\u002e",
            "\\u0030",
            "\\u00e9",
            "\\uD800",
            "\\u3002",
            "\\u12",
            "%",
            "%2e",
            "%zz",
            "%4",
            "é",
            "\u{3002}",
            "192.0.0.192",
            "100.100.100.200",
        ];
        let mut next = || {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            *state
        };
        let len = (next() % 40) as usize;
        let mut line = Vec::new();
        for _ in 0..len {
            line.extend_from_slice(PARTS[(next() % PARTS.len() as u64) as usize].as_bytes());
        }
        line
    }

    #[test]
    fn fast_reading_equals_byte_by_byte_reading() {
        let test = RawTest::new();
        let mut state = 0x2545_F491_4F6C_DD1D;
        let mut passed = 0;
        for _ in 0..200_000 {
            let line = random_line(&mut state);
            let expected = runs_reference(&line);
            let found = test.first_other(&line, 0, line.len());
            assert_eq!(
                found.is_some(),
                expected,
                "{}",
                String::from_utf8_lossy(&line)
            );
            passed += usize::from(expected);
        }
        // Both outcomes are exercised.
        assert!(passed > 20_000 && passed < 180_000, "{passed}");
    }

    #[test]
    fn region_search_finds_the_first_passing_line() {
        let test = RawTest::new();
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let lines: Vec<Vec<u8>> = (0..4).map(|_| random_line(&mut state)).collect();
            let hay = lines.join(&b'\n');
            let first_line = lines.iter().position(|l| test.may_match(l));
            let piece = test.first_piece(&hay, 0, hay.len());
            let other = test.first_other(&hay, 0, piece.unwrap_or(hay.len()));
            let found = other.or(piece);
            let line_of = |p: usize| hay[..p].iter().filter(|&&b| b == b'\n').count();
            assert_eq!(
                found.map(line_of),
                first_line,
                "{}",
                String::from_utf8_lossy(&hay)
            );
        }
    }

    #[test]
    fn runs_at_least_marks_run_starts() {
        let mut state = 0xDEAD_BEEF_u64;
        for _ in 0..2_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let m = (u128::from(state) << 64) | u128::from(state.rotate_left(29) | state);
            for n in 1..=12 {
                let naive = (1..n).fold(m, |w, k| w & (m >> k));
                assert_eq!(runs_at_least(m, n), naive, "{m:x} {n}");
            }
        }
    }

    #[test]
    fn block_masks_equal_the_byte_loop() {
        let mut state = 0x1234_5678_9ABC_DEF1_u64;
        let alphabet = b"0123456789abcdefxXABCDEFgGuU.%\\-_:/\"\n\0\x80\xff";
        for _ in 0..20_000 {
            let mut block = [0u8; 65];
            for b in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = if state.is_multiple_of(4) {
                    (state >> 8) as u8 // any byte
                } else {
                    alphabet[(state >> 8) as usize % alphabet.len()]
                };
            }
            let (fast, slow) = (masks64(&block), masks_scalar(&block));
            assert_eq!(
                (fast.aton, fast.marks),
                (slow.aton, slow.marks),
                "{block:?}"
            );
        }
    }

    #[test]
    fn no_address_has_a_shorter_spelling_than_min_run() {
        // 192.0.0.192 as `192.192`: two parts, the last holding 0.0.192.
        assert_eq!(shortest_aton_spelling(), 7);
        assert_eq!(inet_aton("192.192", 0), inet_aton("192.0.0.192", 0));
        let test = RawTest::new();
        let line = br#"{"a":"x 192.192 y"}"#;
        assert!(test.first_other(line, 0, line.len()).is_some());
    }

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
