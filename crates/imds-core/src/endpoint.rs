//! The `imds_endpoint` decoder (spec/ir.md, "Metadata endpoints"), mirrored by
//! python/imds_scan/endpoint.py: which metadata endpoints a string value names, in any spelling
//! a resolver or an HTTP client accepts, and the text that named each one.

use crate::ip::{ipv4_mapped, parse_ip};

// The tables (ADDRESSES, PORT_SCOPED, HOSTS, BARE_METADATA_HOST and its class and header,
// WILDCARD_DNS and its class, MARKERS, CLASSES) come from spec/endpoints.toml, which the Python
// reference engine reads too; build.rs writes them out as constants.
include!(concat!(env!("OUT_DIR"), "/endpoints.rs"));

/// A port written as digits: its value, or `u64::MAX` (no port anyone lists) when too long.
pub fn port_number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(if trimmed.len() > 10 {
        u64::MAX
    } else {
        trimmed.parse().unwrap_or(0)
    })
}

/// The ports a port-scoped class is limited to, `None` for an unscoped class.
fn scoped_ports(class: &str) -> Option<&'static [u64]> {
    PORT_SCOPED
        .iter()
        .find(|(c, _)| *c == class)
        .map(|(_, ports)| *ports)
}

/// Whether `name` is an endpoint class the decoder reports.
pub fn is_class(name: &str) -> bool {
    CLASSES.contains(&name)
}

pub(crate) fn address_class(address: &[u8; 16]) -> Option<&'static str> {
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

pub(crate) fn is_token(c: char) -> bool {
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

pub(crate) fn inet_aton_bytes(text: &[u8], parts_wanted: usize) -> Option<[u8; 16]> {
    let (value, parts) = inet_aton_value(text)?;
    (parts_wanted == 0 || parts == parts_wanted).then(|| ipv4_mapped(value.to_be_bytes()))
}

/// The address inet_aton reads in `text` and its number of parts.
pub(crate) fn inet_aton_value(text: &[u8]) -> Option<(u32, usize)> {
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
pub(crate) fn part_value(part: &[u8]) -> Option<u64> {
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
        return Some(BARE_METADATA_CLASS);
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
                        return Some(WILDCARD_DNS_CLASS);
                    }
                }
            }
            return None;
        }
    }
    None
}

/// (start, end, class, port) inside the token (char offsets); the port is the one written
/// right after the address (`host:port`, `[address]:port`, `address:port`).
type Found = (usize, usize, &'static str, Option<u64>);

fn token_findings(token: &[char], folded_value: &str) -> Vec<Found> {
    let text: String = token.iter().collect(); // ASCII only: byte = char offsets
    if let Some(open_at) = text.find('[') {
        let Some(close_rel) = text[open_at..].find(']') else {
            return Vec::new();
        };
        let close_at = open_at + close_rel;
        let port = text[close_at + 1..]
            .strip_prefix(':')
            .and_then(|rest| port_number(rest.split(|c: char| !c.is_ascii_digit()).next()?));
        return parse_ip(&text[open_at + 1..close_at])
            .and_then(|a| address_class(&a))
            .map(|c| vec![(open_at, close_at + 1, c, port)])
            .unwrap_or_default();
    }
    if text.matches(':').count() >= 2 {
        let mut candidates = vec![(text.as_str(), None)];
        if let Some((head, port)) = text.rsplit_once(':') {
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                candidates.push((head, port_number(port)));
            }
        }
        for (candidate, port) in candidates {
            if let Some(address) = parse_ip(candidate) {
                return address_class(&address)
                    .map(|c| vec![(0, candidate.len(), c, port)])
                    .unwrap_or_default();
            }
        }
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut start = 0;
    let parts: Vec<&str> = text.split(':').collect();
    for (k, part) in parts.iter().enumerate() {
        let host = part.trim_end_matches('.');
        if !host.is_empty() {
            if let Some(c) = host_class(host, folded_value) {
                let port = parts.get(k + 1).and_then(|p| port_number(p));
                found.push((start, start + host.len(), c, port));
            }
        }
        start += part.len() + 1;
    }
    found
}

/// One automaton over all markers, built once.
fn marker_search() -> &'static aho_corasick::AhoCorasick {
    static SEARCH: std::sync::OnceLock<aho_corasick::AhoCorasick> = std::sync::OnceLock::new();
    SEARCH.get_or_init(|| {
        aho_corasick::AhoCorasick::new(MARKERS.iter().map(|(m, _)| m)).expect("valid markers")
    })
}

/// [`findings`] as byte spans of `value`, with the port written after each address.
fn finding_spans(value: &str) -> Vec<(&'static str, usize, usize, Option<u64>)> {
    let norm = normalise(value);
    let chars = &norm.chars;
    let folded_chars: Vec<char> = chars.iter().map(|c| c.to_ascii_lowercase()).collect();
    let folded: String = folded_chars.iter().collect();
    let mut found: Vec<Found> = Vec::new();
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
        for (s, e, c, port) in token_findings(&chars[i..j], &folded) {
            found.push((i + s, i + e, c, port));
        }
        i = j;
    }
    // Each marker's first occurrence. Markers are ASCII: a byte search, then its offset in
    // characters.
    let mut first = [usize::MAX; MARKERS.len()];
    for m in marker_search().find_overlapping_iter(folded.as_bytes()) {
        let k = m.pattern().as_usize();
        first[k] = first[k].min(m.start());
    }
    for (k, (marker, class)) in MARKERS.iter().enumerate() {
        if first[k] != usize::MAX {
            let at = folded[..first[k]].chars().count();
            found.push((at, at + marker.len(), class, None));
        }
    }
    found.sort_by_key(|&(s, e, _, _)| (s, e));
    found
        .into_iter()
        .map(|(s, e, c, port)| (c, norm.starts[s], norm.ends[e - 1], port))
        .collect()
}

/// (index of the first of `classes` the value names, the text that named it first).
/// `event_ports` gives the event's `destination.port` numbers; it is asked only for a
/// port-scoped class whose finding has no port of its own.
pub fn first_match<'v>(
    value: &'v str,
    classes: &[String],
    event_ports: &mut dyn FnMut() -> Vec<u64>,
) -> Option<(usize, &'v str)> {
    // Several rules (the pack's, each excluding the ones above it) ask about the same values
    // of a line: the last values' findings are kept, by content. Only short values are kept,
    // so that the copies stay small (a value may be a 100 MB line).
    const KEPT: usize = 16;
    const KEPT_LEN: usize = 64 << 10;
    type Kept = Vec<(Box<str>, Vec<(&'static str, usize, usize, Option<u64>)>)>;
    thread_local! {
        static KEEP: std::cell::RefCell<(Kept, usize)> = const { std::cell::RefCell::new((Vec::new(), 0)) };
    }
    let mut ports: Option<Vec<u64>> = None;
    let mut first = |seen: &[(&'static str, usize, usize, Option<u64>)]| {
        classes.iter().enumerate().find_map(|(index, class)| {
            let scope = scoped_ports(class);
            seen.iter()
                .find(|(c, _, _, port)| {
                    *c == class.as_str()
                        && scope.is_none_or(|wanted| match port {
                            Some(p) => wanted.contains(p),
                            // No port in the value: the event's, if it has any.
                            None => {
                                let event = ports.get_or_insert_with(&mut *event_ports);
                                event.is_empty() || event.iter().any(|p| wanted.contains(p))
                            }
                        })
                })
                .map(|&(_, start, end, _)| (index, &value[start..end]))
        })
    };
    if value.len() > KEPT_LEN {
        return first(&finding_spans(value));
    }
    KEEP.with_borrow_mut(|(kept, next)| {
        let at = match kept.iter().position(|(v, _)| **v == *value) {
            Some(at) => at,
            None => {
                let entry = (Box::from(value), finding_spans(value));
                if kept.len() < KEPT {
                    kept.push(entry);
                    kept.len() - 1
                } else {
                    let at = *next;
                    kept[at] = entry;
                    *next = (at + 1) % KEPT;
                    at
                }
            }
        };
        first(&kept[at].1)
    })
}

// The decoder's spellings and port scoping are shared vectors: spec/vectors/endpoint.jsonl.
