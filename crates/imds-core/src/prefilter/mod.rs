//! The literals every match must contain, and the Aho-Corasick search over whole buffers.
//!
//! From each rule's IR we derive *needles*: byte strings such that every event any rule can
//! match contains at least one of them in its raw line (ASCII case-insensitively). A line
//! with no needle and no relevant escape is never parsed. Soundness rests on:
//! - a needle is a literal the matching value must contain, written as a JSON encoder writes
//!   it inside a string (`"` → `\"`, controls escaped, non-ASCII as UTF-8);
//! - the only other spellings of a character inside a JSON string are `\uXXXX` (any char,
//!   hex in either case) and `\/` (for `/`). `\/` is accepted wherever a needle has `/`;
//!   a line holding a real `\u` escape (odd backslash run) of a needle character, or of any
//!   non-ASCII character when a needle has one, is a candidate (an *escape guard*);
//! - invalid UTF-8 decodes to U+FFFD, so a literal is cut at U+FFFD and only its longest
//!   piece is a needle.
//!
//! Search strategy, measured on one core with aho-corasick 1.1.5 (bench/gen_corpus.py 200 MB
//! ECS corpus, and a synthetic one with Windows paths and Go `\u0026`/`\u003c` escapes):
//! - an `ascii_case_insensitive` automaton over the seed's 12 needles + guards: DFA
//!   0.49 GB/s, contiguous NFA 0.26 (case-insensitivity disables the packed searcher, so the
//!   prefilter setting changes nothing);
//! - an exact-case automaton over every case spelling of one short rare *anchor* per needle
//!   (≤ 64 patterns, so aho-corasick uses its packed Teddy searcher) + a `\u00` guard:
//!   ~4 GB/s search alone, ~3.1 GB/s for a whole `scan_bytes` with line counting; each
//!   anchor hit is verified against its needle here. Over 64 patterns Teddy is refused
//!   (exact-case automaton: 0.37 GB/s). A 2-byte pattern (`\/`, `\u`) drops Teddy to 2-byte
//!   fingerprints and ~1 GB/s, hence slashes are matched both ways (`/`, `\/`) in anchors
//!   and needles rather than by a `\/` guard.
//!
//! When the anchors' spellings do not fit Teddy's 64 patterns, a case-insensitive DFA over
//! the whole needles (each slash spelled both ways) and the `\u` guard is used instead.

use crate::endpoint::RawTest;
use crate::ir::{FieldType, Node, Op, Predicate, RuleIr};
use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};

/// Teddy (aho-corasick's packed searcher) refuses more patterns than this.
const PACKED_LIMIT: usize = 64;

/// Fallback mode: a needle with more slashes than this is not spelled with every `\/`
/// combination; any real `\/` in a line makes it a candidate instead.
const MAX_SLASH_SPELLINGS: usize = 3;

/// A literal every match of some subtree contains once decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Lit {
    /// The decoded text.
    text: String,
    /// How `text` appears raw inside a JSON string (canonical escapes).
    raw: Vec<u8>,
}

impl Lit {
    fn new(text: &str) -> Lit {
        Lit {
            text: text.to_string(),
            raw: json_encode(text),
        }
    }
}

/// JSON-encode `s` as it would appear inside a JSON string, with the short escapes encoders
/// use (other spellings are `\uXXXX`, covered by the escape guard).
fn json_encode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// The longest piece of `text` between U+FFFD (which may stand for invalid UTF-8 in the
/// line); `None` when there is none.
fn literal(text: &str) -> Option<Lit> {
    text.split('\u{FFFD}')
        .map(Lit::new)
        .filter(|l| !l.raw.is_empty())
        .max_by(|a, b| a.raw.len().cmp(&b.raw.len()).then(b.raw.cmp(&a.raw)))
}

/// Needles of an IP literal (docs/ir.md IP grammar); `None` when none is certain.
fn ip_lits(value: &str) -> Option<Vec<Lit>> {
    let b = crate::ip::parse_ip(value)?;
    let groups: Vec<u16> = b
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
        // IPv4: dotted (no leading zeros, so one spelling), or the two mapped hex groups.
        let dotted = format!("{}.{}.{}.{}", b[12], b[13], b[14], b[15]);
        let (hi, lo) = (groups[6], groups[7]);
        // 4 hex digits cannot carry leading zeros, and a nonzero group is never elided.
        let hex = if hi >= 0x1000 && lo >= 0x1000 {
            format!("{hi:x}:{lo:x}")
        } else {
            "ffff:".to_string()
        };
        return Some(vec![Lit::new(&dotted), Lit::new(&hex)]);
    }
    // A nonzero group among the first six is always written, in hex (the last two may be
    // dotted), with optional leading zeros, and followed by `:`.
    let mut best: Option<String> = None;
    for g in groups[..6].iter().filter(|&&g| g != 0) {
        let hex = format!("{g:x}:");
        if !matches!(&best, Some(b) if hex.len() <= b.len()) {
            best = Some(hex);
        }
    }
    Some(vec![Lit::new(&best?)])
}

/// Needles of a `cidr` block: an address inside it is written, in every spelling, with one
/// of them; `None` when nothing is certain (short prefixes, blocks holding IPv4 addresses
/// without a whole IPv4 octet fixed).
fn cidr_lits(value: &str) -> Option<Vec<Lit>> {
    let c = crate::ip::parse_cidr(value)?;
    let b = c.network;
    let len = usize::from(c.len);
    let mapped = crate::ip::ipv4_mapped([0; 4]);
    if len >= 96 && b[..12] == mapped[..12] {
        // An IPv4 block: dotted spellings start with the fixed whole octets (no leading zeros
        // in IPv4), mapped hex spellings hold `ffff:` or a fixed 4-digit group.
        let octets = (len - 96) / 8;
        if octets == 0 {
            return None;
        }
        let fixed: Vec<String> = b[12..12 + octets].iter().map(u8::to_string).collect();
        let mut dotted = fixed.join(".");
        if octets < 4 {
            dotted.push('.');
        }
        let (hi, lo) = (
            u16::from_be_bytes([b[12], b[13]]),
            u16::from_be_bytes([b[14], b[15]]),
        );
        let hex = if len == 128 && hi >= 0x1000 && lo >= 0x1000 {
            format!("{hi:x}:{lo:x}")
        } else if len >= 112 && hi >= 0x1000 {
            format!("{hi:x}:")
        } else {
            "ffff:".to_string()
        };
        return Some(vec![Lit::new(&dotted), Lit::new(&hex)]);
    }
    if len < 96 && c.contains(&mapped) {
        return None; // holds IPv4 addresses, which need no `:` at all
    }
    // IPv6: a nonzero group among the first six that the prefix fixes is always written (hex,
    // optional leading zeros) and followed by `:`.
    let mut best: Option<String> = None;
    for i in (0..6).filter(|i| 16 * (i + 1) <= len) {
        let g = u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
        let hex = format!("{g:x}:");
        if g != 0 && !matches!(&best, Some(b) if hex.len() <= b.len()) {
            best = Some(hex);
        }
    }
    Some(vec![Lit::new(&best?)])
}

fn pred_lits(p: &Predicate) -> Option<Vec<Lit>> {
    if p.op == Op::Exists {
        return None; // any value at all
    }
    if p.op == Op::ImdsEndpoint {
        // No literal every spelling holds: the endpoint raw-line test stands for it.
        return Some(vec![endpoint_lit()]);
    }
    let mut out = Vec::new();
    for v in &p.values {
        match (p.field_type, p.op) {
            // `exists` returned above.
            (_, Op::Exists) => return None,
            (_, Op::ImdsEndpoint) => return Some(vec![endpoint_lit()]),
            (_, Op::Cidr) => out.extend(cidr_lits(v)?),
            (FieldType::Ip, Op::Eq | Op::EqCi) => out.extend(ip_lits(v)?),
            (FieldType::Ip, _) => return None,
            // The literal itself is in the value (the search ignores case, so the
            // case-sensitive forms are covered too).
            (
                FieldType::Keyword,
                Op::Eq
                | Op::EqCi
                | Op::StartsWith
                | Op::StartsWithCi
                | Op::EndsWith
                | Op::EndsWithCi
                | Op::Contains
                | Op::ContainsCi,
            ) => out.push(literal(v)?),
            (FieldType::Keyword, Op::Wildcard | Op::Like) => {
                let best = v
                    .split(['*', '?'])
                    .filter_map(literal)
                    .max_by(|a, b| a.raw.len().cmp(&b.raw.len()).then(b.raw.cmp(&a.raw)))?;
                out.push(best);
            }
        }
    }
    Some(normalize(out))
}

/// Deduplicate (case-insensitively) and drop needles that contain another needle: a line
/// holding the longer one holds the shorter one too. First-seen order is kept.
fn normalize(lits: Vec<Lit>) -> Vec<Lit> {
    let mut seen = std::collections::HashSet::new();
    let lits: Vec<(Lit, Vec<u8>)> = lits
        .into_iter()
        .map(|l| {
            let folded = l.raw.to_ascii_lowercase();
            (l, folded)
        })
        .filter(|(_, folded)| seen.insert(folded.clone()))
        .collect();
    // Quadratic: skipped for huge lists (say an IOC list), where it would cost more than
    // it saves.
    let subsume = lits.len() <= 1000;
    lits.iter()
        .filter(|(lit, folded)| {
            // The endpoint stand-in is not a string to find: never subsumed.
            lit.text == ENDPOINT_NEEDLE
                || !(subsume
                    && lits
                        .iter()
                        .any(|(_, other)| other.len() < folded.len() && contains(folded, other)))
        })
        .map(|(l, _)| l.clone())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The stand-in needle of an `imds_endpoint` predicate: a line is a candidate when
/// [`crate::endpoint::RawTest`] passes it. A NUL byte never occurs raw in a JSON line, so it is
/// never searched for as such; it is taken out of the needles by [`Prefilter::new`].
const ENDPOINT_NEEDLE: &str = "\0imds_endpoint";

fn endpoint_lit() -> Lit {
    Lit {
        text: ENDPOINT_NEEDLE.to_string(),
        raw: ENDPOINT_NEEDLE.as_bytes().to_vec(),
    }
}

/// Words found in nearly every ECS line (field names, `event.category` and `event.type`
/// values): a needle inside one of them selects almost nothing.
const COMMON_WORDS: &str = concat!(
    "authentication configuration database driver email file host iam intrusion_detection ",
    "malware network package process registry session threat vulnerability web ",
    "access admin allowed change connection creation deletion denied end error group info ",
    "installation indicator protocol start user event category type action outcome kind ",
    "dataset module agent source destination message labels tags observer related ",
);

/// Estimated occurrences of a needle per byte of log: the product of its bytes' frequencies,
/// or 1 when it is (part of) a word common in ECS logs.
fn needle_cost(lit: &Lit) -> f64 {
    if lit.text == ENDPOINT_NEEDLE {
        return 0.05; // the raw-line test passes about one line in twenty: rather avoid it
    }
    let folded = lit.raw.to_ascii_lowercase();
    if contains(COMMON_TEXT.as_bytes(), &folded) || contains(COMMON_WORDS.as_bytes(), &folded) {
        return 1.0;
    }
    folded.iter().map(|&b| byte_freq(b)).product()
}

/// How selective a needle set is, lower is better: the summed estimated frequency, then the
/// longer shortest needle, then fewer needles. An empty set (the subtree never matches)
/// beats everything.
fn selectivity(lits: &[Lit]) -> (f64, std::cmp::Reverse<usize>, usize) {
    let cost = lits.iter().map(needle_cost).sum();
    let shortest = lits.iter().map(|l| l.raw.len()).min().unwrap_or(usize::MAX);
    (cost, std::cmp::Reverse(shortest), lits.len())
}

fn more_selective(a: &[Lit], b: &[Lit]) -> bool {
    let (x, y) = (selectivity(a), selectivity(b));
    x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)) == std::cmp::Ordering::Less
}

/// Needles of a subtree; `None` = unfilterable (some match may contain no literal).
fn node_lits(node: &Node) -> Option<Vec<Lit>> {
    match node {
        Node::Pred(p) => pred_lits(p),
        Node::Not { .. } => None,
        Node::Or { args } => {
            let mut all = Vec::new();
            for a in args {
                all.extend(node_lits(a)?);
            }
            Some(normalize(all))
        }
        // Every child must hold, so any one child's needles will do: take the best.
        Node::And { args } => {
            let mut best: Option<Vec<Lit>> = None;
            for set in args.iter().filter_map(node_lits) {
                let better = match &best {
                    Some(b) => more_selective(&set, b),
                    None => true,
                };
                if better {
                    best = Some(set);
                }
            }
            best
        }
    }
}

/// Needles of a set of rules; `None` when some rule is unfilterable.
fn rules_lits(rules: &[RuleIr]) -> Option<Vec<Lit>> {
    let mut all = Vec::new();
    for rule in rules {
        for branch in &rule.branches {
            all.extend(node_lits(&branch.expr)?);
        }
    }
    Some(normalize(all))
}

/// Rough frequency (per 10 000 bytes) of a byte, ASCII case folded, in ECS JSON logs: used
/// only to pick rare anchors.
fn byte_freq(b: u8) -> f64 {
    let f = match b.to_ascii_lowercase() {
        b'"' => 800,
        b'e' => 450,
        b'a' | b't' => 400,
        b'o' | b'i' | b'n' | b's' | b'r' => 330,
        b'0' | b'1' => 300,
        b':' | b',' => 280,
        b'c' | b'l' | b'd' => 230,
        b'2' => 200,
        b'm' | b'p' | b'u' => 160,
        b'3'..=b'9' | b'f' | b'b' => 140,
        b'_' | b'.' | b'h' | b'g' => 110,
        b'-' | b'/' | b' ' | b'\\' => 100,
        b'y' | b'w' | b'v' | b'k' => 60,
        b'x' | b'{' | b'}' | b'[' | b']' => 40,
        b'=' | b'j' | b'q' | b'z' => 15,
        0x80.. => 5,
        _ => 3,
    };
    f as f64 / 10_000.0
}

/// Text common in ECS logs (field names, cloud API hosts, paths, browser strings), lowercase
/// and JSON-encoded:
/// an anchor found in it is likely frequent whatever its bytes (`gle.` in `google.com`,
/// `/v1` in `/api/v1/`), so anchors avoid it.
const COMMON_TEXT: &str = concat!(
    "@timestamp event.category event.type event.action event.dataset event.module event.kind ",
    "process.command_line process.args process.name process.executable process.parent.pid ",
    "process.entity_id destination.ip destination.address destination.port source.ip ",
    "source.address network.transport network.community_id url.domain url.path url.full ",
    "url.original http.request.method http.response.status_code user_agent.original ",
    "host.name host.hostname host.os.platform host.id agent.ephemeral_id agent.version ",
    "ecs.version cloud.instance.id cloud.provider cloud.region cloud.account.id ",
    "container.image.name kubernetes.pod.name data_stream.dataset dns.question.name file.path ",
    "winlog.event_data winlog.channel user.name user.id related.ip related.hosts ",
    "https://www.google.com/ googleapis.com compute.googleapis.com storage.googleapis.com ",
    "management.azure.com login.microsoftonline.com s3.amazonaws.com /api/v1/namespaces ",
    "/apis/ /v1/ /v2/ /index.html /include/ /images/ x-request-id x-correlation-id instance-id ",
    "instance-type nginx:latest metadata.name metadata.labels c:\\\\windows\\\\system32 ",
    "c:\\\\users\\\\ c:\\\\program files appdata\\\\local microsoft-windows-sysmon/operational ",
    "/usr/bin/ /usr/lib/ /var/log/ /etc/ /home/ /tmp/ /proc/ /bin/bash python3 systemd ",
    "computer_name information security credentials dynamic latest metadata instance identity ",
    "internal mozilla/5.0 (windows nt 10.0; win64; x64) applewebkit/537.36 (khtml, like gecko) ",
    "chrome/ safari/ 127.0.0.1 10.0.0.1 192.168.1.254 0.0.0.0 ::1 fe80:: 2001:db8:: ",
    "255.255.255.0 ",
);

/// Estimated frequency of an anchor window (folded).
fn window_freq(w: &[u8]) -> f64 {
    let unigram: f64 = w.iter().map(|&b| byte_freq(b)).product();
    if contains(COMMON_TEXT.as_bytes(), w) {
        unigram * 100.0
    } else {
        unigram
    }
}

/// How many spellings a window of needle bytes has: both ASCII cases of each letter, and
/// `/` or `\/` for each slash.
fn spellings_count(w: &[u8]) -> usize {
    w.iter()
        .map(|&b| {
            if b.is_ascii_alphabetic() || b == b'/' {
                2
            } else {
                1
            }
        })
        .product()
}

/// Every string made by replacing each byte of `s` with one of `alts(byte)`, in order.
fn expand(s: &[u8], alts: impl Fn(u8) -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new()];
    for &b in s {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                alts(b).into_iter().map(move |alt| {
                    let mut v = prefix.clone();
                    v.extend_from_slice(&alt);
                    v
                })
            })
            .collect();
    }
    out
}

/// All spellings of `w` (already folded), folded: `/` and `\/` for each slash.
fn slash_spellings(w: &[u8]) -> Vec<Vec<u8>> {
    expand(w, |b| match b {
        b'/' => vec![b"/".to_vec(), b"\\/".to_vec()],
        _ => vec![vec![b]],
    })
}

/// All ASCII case variants of `s`.
fn case_variants(s: &[u8]) -> Vec<Vec<u8>> {
    expand(s, |b| {
        if b.is_ascii_alphabetic() {
            vec![vec![b.to_ascii_lowercase()], vec![b.to_ascii_uppercase()]]
        } else {
            vec![vec![b]]
        }
    })
}

/// A window of a needle: `(offset, len)`, its estimated frequency and spelling count.
#[derive(Debug, Clone, Copy)]
struct Window {
    offset: usize,
    len: usize,
    freq: f64,
    spellings: usize,
}

/// Pick one anchor window per needle so that all spellings fit in `budget` patterns and the
/// anchors' summed estimated frequency (expected hits to verify) is least: a small knapsack,
/// solved exactly. `None` when they cannot fit.
fn plan_anchors(needles: &[Vec<u8>], budget: usize) -> Option<Vec<Window>> {
    if needles.len() > budget {
        return None; // each needle needs a spelling at least
    }
    let options: Vec<Vec<Window>> = needles
        .iter()
        .map(|n| {
            let mut ws = Vec::new();
            for len in [3usize, 4] {
                let len = len.min(n.len());
                for offset in 0..=n.len() - len {
                    let w = &n[offset..offset + len];
                    ws.push(Window {
                        offset,
                        len,
                        freq: window_freq(w),
                        spellings: spellings_count(w),
                    });
                }
            }
            ws
        })
        .collect();
    // best[b]: least total frequency of the needles so far using b spellings, and for each
    // needle the option chosen to reach each b.
    let mut best = vec![f64::INFINITY; budget + 1];
    best[0] = 0.0;
    let mut choice: Vec<Vec<Option<(usize, usize)>>> = Vec::with_capacity(needles.len());
    for opts in &options {
        let mut next = vec![f64::INFINITY; budget + 1];
        let mut picked = vec![None; budget + 1];
        for (b, &f) in best.iter().enumerate().filter(|(_, f)| f.is_finite()) {
            for (k, w) in opts.iter().enumerate() {
                let nb = b + w.spellings;
                if nb <= budget && f + w.freq < next[nb] {
                    next[nb] = f + w.freq;
                    picked[nb] = Some((k, b));
                }
            }
        }
        best = next;
        choice.push(picked);
    }
    let (mut b, _) = best
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_finite())
        .min_by(|x, y| x.1.total_cmp(y.1))?;
    let mut out = Vec::with_capacity(needles.len());
    for i in (0..needles.len()).rev() {
        let (k, prev) = choice[i][b]?;
        out.push(options[i][k]);
        b = prev;
    }
    out.reverse();
    Some(out)
}

/// One way an anchor can start at a hit position.
#[derive(Debug, Clone)]
struct Entry {
    /// Folded spelling of the anchor (with `\/` where the text escapes a slash).
    spelling: Vec<u8>,
    needle: usize,
    /// Anchor offset in the (canonical) needle.
    offset: usize,
    /// Slashes in the needle before the anchor: each may be written `\/` (one byte more).
    slashes_before: usize,
}

/// The prefilter of a set of rules.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// `None`: no needle (every line is a candidate unless `endpoint` is set).
    search: Option<Search>,
    /// Some rule is unfilterable: every line is a candidate.
    all: bool,
    /// Lines the endpoint raw-line test passes are candidates too (`imds_endpoint`).
    endpoint: Option<RawTest>,
    /// The endpoint test also passes every line holding a needle: `search` is not run.
    needles_held: bool,
}

#[derive(Debug, Clone)]
struct Search {
    lits: Vec<Lit>,
    /// Needles as searched: raw, ASCII-folded.
    needles: Vec<Vec<u8>>,
    ac: AhoCorasick,
    /// Anchor entries by (folded) first byte.
    entries: Vec<Vec<Entry>>,
    /// Decoded ASCII chars (folded) that occur in some needle.
    relevant_ascii: [bool; 128],
    /// Some needle has a non-ASCII char: every `\u` escape ≥ 0x80 is relevant.
    relevant_non_ascii: bool,
    /// Fallback mode only: a real `\/` makes the line a candidate.
    slash_guard: bool,
    strategy: String,
}

impl Prefilter {
    /// Derive the needles of `rules` and build the searcher.
    pub fn new(rules: &[RuleIr]) -> Prefilter {
        let Some(mut lits) = rules_lits(rules) else {
            return Prefilter {
                search: None,
                all: true,
                endpoint: None,
                needles_held: false,
            };
        };
        let before = lits.len();
        lits.retain(|l| l.text != ENDPOINT_NEEDLE);
        if lits.len() == before {
            let search = Search::new(lits);
            return Prefilter {
                all: search.is_none(),
                search,
                endpoint: None,
                needles_held: false,
            };
        }
        // The endpoint test passes a line anyway: when it can also hold the other needles,
        // one pass over the text does for both.
        let texts: Vec<&str> = lits.iter().map(|l| l.text.as_str()).collect();
        let rarity = |w: &[u8]| w.iter().map(|&b| byte_freq(b)).product::<f64>();
        let (endpoint, needles_held) = match RawTest::holding(&texts, rarity) {
            Some(test) => (test, true),
            None => (RawTest::new(), false),
        };
        let needed = !lits.is_empty();
        let search = needed.then(|| Search::new(lits)).flatten();
        Prefilter {
            // No automaton for needles the test does not hold: every line is a candidate.
            all: needed && !needles_held && search.is_none(),
            search,
            endpoint: Some(endpoint),
            needles_held,
        }
    }

    /// False when some rule can match a line holding no needle: every line is a candidate.
    pub fn is_active(&self) -> bool {
        !self.all
    }

    /// The needles, as they appear raw in a JSON line (matched ignoring ASCII case).
    pub fn needles(&self) -> Vec<String> {
        self.search.as_ref().map_or_else(Vec::new, |s| {
            s.lits
                .iter()
                .map(|l| String::from_utf8_lossy(&l.raw).into_owned())
                .collect()
        })
    }

    /// How the search runs, for `--explain`.
    pub fn strategy(&self) -> &str {
        match (&self.search, self.all, &self.endpoint) {
            (_, true, _) => "none: every line is parsed",
            (None, false, _) => "the imds_endpoint raw-line test only",
            (Some(_), false, _) if self.needles_held => {
                "the imds_endpoint raw-line test, also holding the needles (one pass)"
            }
            (Some(s), false, _) => &s.strategy,
        }
    }

    /// Position of the first relevant hit in `hay[at..end]`: the line holding it is a
    /// candidate. Needle occurrences must not cross `at` or `end` (pass line boundaries);
    /// bytes of `hay` outside the range are only looked at to decode escapes. When the
    /// prefilter is inactive, `at` itself (when `at < end`).
    pub fn find(&self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        self.finder().find(hay, at, end)
    }

    /// For successive searches of one buffer from increasing positions.
    pub fn finder(&self) -> Finder<'_> {
        Finder {
            prefilter: self,
            needle: None,
            from: 0,
            to: 0,
        }
    }

    /// Whether one line (no `\n`) is a candidate.
    pub fn is_candidate(&self, line: &[u8]) -> bool {
        self.all || self.find(line, 0, line.len()).is_some()
    }
}

/// Searches of one buffer from increasing positions ([`Prefilter::finder`]). It keeps the
/// needle search's result: the endpoint test may pass a line before the next needle, and the
/// needle search then goes on from where it stopped instead of searching the bytes again.
#[derive(Debug)]
pub struct Finder<'p> {
    prefilter: &'p Prefilter,
    /// The first needle in `hay[from..to]`, if any.
    needle: Option<usize>,
    from: usize,
    to: usize,
}

impl Finder<'_> {
    /// [`Prefilter::find`]; `at` never goes back and `end` is a line end.
    pub fn find(&mut self, hay: &[u8], at: usize, end: usize) -> Option<usize> {
        let pf = self.prefilter;
        if pf.all {
            return (at < end).then_some(at);
        }
        let search = pf.search.as_ref().filter(|_| !pf.needles_held);
        let found = search.and_then(|s| {
            // What is known from `at` on: the first needle, or that there is none before `to`.
            let known = at >= self.from && self.needle.is_none_or(|h| h >= at);
            if !known || (self.needle.is_none() && self.to < end) {
                let from = if known { self.to.max(at) } else { at };
                self.needle = s.find(hay, from, end);
                (self.from, self.to) = (at, end);
            }
            self.needle.filter(|&h| h < end)
        });
        let Some(test) = &pf.endpoint else {
            return found;
        };
        // The first line (from `at`) holding a needle or passing the endpoint test.
        test.first(hay, at, found.unwrap_or(end)).or(found)
    }
}

impl Search {
    /// `None` only if the automaton cannot be built (then every line is a candidate).
    fn new(lits: Vec<Lit>) -> Option<Search> {
        let needles: Vec<Vec<u8>> = lits.iter().map(|l| l.raw.to_ascii_lowercase()).collect();
        let mut relevant_ascii = [false; 128];
        let mut relevant_non_ascii = false;
        for lit in &lits {
            for c in lit.text.chars() {
                if c.is_ascii() {
                    relevant_ascii[c.to_ascii_lowercase() as usize] = true;
                } else {
                    relevant_non_ascii = true;
                }
            }
        }
        // `\u00` suffices when every needle char is ASCII: a 4-byte guard keeps Teddy fast.
        let u_guard: &[u8] = if relevant_non_ascii { b"\\u" } else { b"\\u00" };
        let mut entries: Vec<Vec<Entry>> = vec![Vec::new(); 256];
        let slashes = |n: &[u8]| n.iter().filter(|&&b| b == b'/').count();
        let packed = plan_anchors(&needles, PACKED_LIMIT - 1);
        let (ac, slash_guard, strategy) = match packed {
            Some(windows) => {
                let mut patterns: Vec<Vec<u8>> = Vec::new();
                for (i, w) in windows.iter().enumerate() {
                    let anchor = &needles[i][w.offset..w.offset + w.len];
                    for spelling in slash_spellings(anchor) {
                        patterns.extend(case_variants(&spelling));
                        entries[spelling[0] as usize].push(Entry {
                            spelling,
                            needle: i,
                            offset: w.offset,
                            slashes_before: slashes(&needles[i][..w.offset]),
                        });
                    }
                }
                patterns.sort();
                patterns.dedup();
                let n = patterns.len();
                patterns.push(u_guard.to_vec());
                let ac = AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .ok()?;
                let strategy = format!(
                    "exact-case automaton (packed prefilter) over {n} spellings of {} anchors \
                     + `{}` guard",
                    windows.len(),
                    String::from_utf8_lossy(u_guard)
                );
                (ac, false, strategy)
            }
            None => {
                let mut patterns = Vec::new();
                let mut slash_guard = false;
                for (i, n) in needles.iter().enumerate() {
                    // Each slash may be `\/`: search every spelling, unless there are too many.
                    let spellings = if slashes(n) <= MAX_SLASH_SPELLINGS {
                        slash_spellings(n)
                    } else {
                        slash_guard = true;
                        vec![n.clone()]
                    };
                    for spelling in spellings {
                        patterns.push(spelling.clone());
                        entries[spelling[0] as usize].push(Entry {
                            spelling,
                            needle: i,
                            offset: 0,
                            slashes_before: 0,
                        });
                    }
                }
                patterns.push(u_guard.to_vec());
                if slash_guard {
                    patterns.push(b"\\/".to_vec());
                }
                let kind = (patterns.len() <= 1000).then_some(AhoCorasickKind::DFA);
                let ac = AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .ascii_case_insensitive(true)
                    .kind(kind)
                    .build(&patterns)
                    .ok()?;
                let strategy = format!(
                    "case-insensitive automaton over {} needles + escape guards",
                    needles.len()
                );
                (ac, slash_guard, strategy)
            }
        };
        Some(Search {
            lits,
            needles,
            ac,
            entries,
            relevant_ascii,
            relevant_non_ascii,
            slash_guard,
            strategy,
        })
    }

    fn find(&self, hay: &[u8], mut at: usize, end: usize) -> Option<usize> {
        while at < end {
            let m = self.ac.find(Input::new(hay).span(at..end))?;
            let p = m.start();
            if self.relevant_at(hay, p, end) {
                return Some(p);
            }
            at = p + 1;
        }
        None
    }

    /// Does a needle (in some spelling) or a relevant escape start at `p`?
    fn relevant_at(&self, hay: &[u8], p: usize, end: usize) -> bool {
        let hay = &hay[..end];
        if hay[p] == b'\\' && real_escape(hay, p) {
            match hay.get(p + 1) {
                Some(b'u') if self.escape_relevant(hay.get(p + 2..p + 6)) => return true,
                Some(b'/') if self.slash_guard => return true,
                _ => {}
            }
        }
        for e in &self.entries[hay[p].to_ascii_lowercase() as usize] {
            if !starts_with_folded(&hay[p..], &e.spelling) {
                continue;
            }
            let needle = &self.needles[e.needle];
            for k in 0..=e.slashes_before {
                if let Some(s) = p.checked_sub(e.offset + k) {
                    if needle_at(hay, s, needle) {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Whether the `\u` escape with these 4 hex digits decodes to a needle character.
    fn escape_relevant(&self, hex: Option<&[u8]>) -> bool {
        let code = hex.and_then(|h| {
            h.iter().try_fold(0u32, |acc, &b| {
                (b as char).to_digit(16).map(|d| acc * 16 + d)
            })
        });
        match code {
            // Not an escape JSON allows: let the parser report the line.
            None => true,
            Some(c) if c < 0x80 => self.relevant_ascii[(c as u8).to_ascii_lowercase() as usize],
            Some(_) => self.relevant_non_ascii,
        }
    }
}

/// The backslash at `p` starts an escape: the run of backslashes ending at `p` is odd.
pub(crate) fn real_escape(hay: &[u8], p: usize) -> bool {
    let run = hay[..=p].iter().rev().take_while(|&&b| b == b'\\').count();
    run % 2 == 1
}

fn starts_with_folded(hay: &[u8], folded: &[u8]) -> bool {
    hay.len() >= folded.len()
        && hay
            .iter()
            .zip(folded)
            .all(|(h, f)| h.to_ascii_lowercase() == *f)
}

/// `needle` (folded) occurs at `s`, ignoring ASCII case, a `/` possibly written `\/`.
fn needle_at(hay: &[u8], s: usize, needle: &[u8]) -> bool {
    let mut i = s;
    for &n in needle {
        match hay.get(i) {
            Some(h) if h.to_ascii_lowercase() == n => i += 1,
            Some(b'\\') if n == b'/' && hay.get(i + 1) == Some(&b'/') => i += 2,
            _ => return false,
        }
    }
    true
}

/// Which rules to evaluate on a candidate line, when several rules run: a rule whose needles
/// (ASCII case-insensitively) are all absent from the line cannot match it. One automaton
/// over every rule's needles; a rule without needles, or with the `imds_endpoint` stand-in,
/// is always evaluated, and so is every rule on a line with a real `\u` or `\/` escape (a
/// needle could be spelled with it).
#[derive(Debug, Clone)]
pub struct RuleGate {
    ac: Option<AhoCorasick>,
    /// Per pattern: the rules it opens.
    opens: Vec<Vec<usize>>,
    /// Rules evaluated on every line.
    always: Vec<usize>,
    rules: usize,
}

impl RuleGate {
    pub fn new(rules: &[RuleIr]) -> RuleGate {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut opens: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            match rules_lits(std::slice::from_ref(rule)) {
                Some(lits)
                    if !lits.is_empty() && lits.iter().all(|l| l.text != ENDPOINT_NEEDLE) =>
                {
                    for lit in lits {
                        let folded = lit.raw.to_ascii_lowercase();
                        match patterns.iter().position(|p| *p == folded) {
                            Some(k) => opens[k].push(i),
                            None => {
                                patterns.push(folded);
                                opens.push(vec![i]);
                            }
                        }
                    }
                }
                _ => always.push(i),
            }
        }
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&patterns)
            .ok();
        if ac.is_none() {
            always = (0..rules.len()).collect(); // cannot build: evaluate everything
        }
        RuleGate {
            ac,
            opens,
            always,
            rules: rules.len(),
        }
    }

    /// `open[i]`: rule `i` may match `line` (set for every rule it cannot rule out).
    pub fn open(&self, line: &[u8], open: &mut Vec<bool>) {
        open.clear();
        let escaped = memchr::memchr_iter(b'\\', line)
            .any(|p| matches!(line.get(p + 1), Some(b'u' | b'/')) && real_escape(line, p));
        let Some(ac) = self.ac.as_ref().filter(|_| !escaped) else {
            open.resize(self.rules, true);
            return;
        };
        open.resize(self.rules, false);
        for &i in &self.always {
            open[i] = true;
        }
        for m in ac.find_overlapping_iter(line) {
            for &i in &self.opens[m.pattern().as_usize()] {
                open[i] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Branch;

    const SEED: &str = include_str!("../tests/data/seed_ir.json");

    fn seed_ir() -> RuleIr {
        RuleIr::from_json(SEED).unwrap()
    }

    fn pred(field: &str, field_type: FieldType, op: Op, values: &[&str]) -> Node {
        Node::Pred(Predicate {
            field: field.into(),
            field_type,
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        })
    }

    fn kw(op: Op, values: &[&str]) -> Node {
        pred("f", FieldType::Keyword, op, values)
    }

    fn ip(values: &[&str]) -> Node {
        pred("destination.ip", FieldType::Ip, Op::Eq, values)
    }

    fn and(args: Vec<Node>) -> Node {
        Node::And { args }
    }

    fn or(args: Vec<Node>) -> Node {
        Node::Or { args }
    }

    fn not(arg: Node) -> Node {
        Node::Not { arg: Box::new(arg) }
    }

    fn rule(exprs: Vec<Node>) -> RuleIr {
        RuleIr {
            ir_version: 1,
            id: "t".into(),
            name: "t".into(),
            severity: String::new(),
            branches: exprs
                .into_iter()
                .enumerate()
                .map(|(i, expr)| Branch {
                    name: format!("b{i}"),
                    expr,
                })
                .collect(),
            allowlist: Vec::new(),
        }
    }

    /// The needles of one expression, as strings; `None` = unfilterable.
    fn lits(node: Node) -> Option<Vec<String>> {
        node_lits(&node).map(|ls| {
            ls.iter()
                .map(|l| String::from_utf8(l.raw.clone()).unwrap())
                .collect()
        })
    }

    fn s(xs: &[&str]) -> Option<Vec<String>> {
        Some(xs.iter().map(|x| x.to_string()).collect())
    }

    // ------------------------------------------------------------------ derivation

    #[test]
    fn seed_needles() {
        let p = Prefilter::new(&[seed_ir()]);
        assert!(p.is_active());
        assert_eq!(
            p.needles(),
            [
                "169.254.169.254",
                "a9fe:a9fe",
                "metadata.google.internal",
                "fd00:ec2::254",
                "metadata/instance",
                "iam/security-credentials",
                "latest/meta-data",
                "latest/dynamic",
                "instance-identity",
                "computeMetadata",
                "imds.azure.com",
                "metadata/v1",
            ]
        );
        // The seed fits the packed searcher.
        assert!(p.strategy().contains("packed"), "{}", p.strategy());
    }

    #[test]
    fn ip_needles() {
        assert_eq!(
            lits(ip(&["169.254.169.254"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        // A group below 0x1000 may be written with leading zeros: fall back to `ffff:`.
        assert_eq!(lits(ip(&["10.0.0.1"])), s(&["10.0.0.1", "ffff:"]));
        assert_eq!(lits(ip(&["169.254.0.1"])), s(&["169.254.0.1", "ffff:"]));
        // IPv4-mapped IPv6 literals are IPv4.
        assert_eq!(
            lits(ip(&["::ffff:169.254.169.254"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        assert_eq!(
            lits(ip(&["::FFFF:a9fe:a9fe"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        // IPv6: the longest nonzero group among the first six, without leading zeros.
        assert_eq!(lits(ip(&["FD00:EC2:0:0:0:0:0:254"])), s(&["fd00:"]));
        assert_eq!(lits(ip(&["fd00:0ec2::254%eth0"])), s(&["fd00:"]));
        assert_eq!(lits(ip(&["64:ff9b::a9fe:a9fe"])), s(&["ff9b:"]));
        assert_eq!(lits(ip(&["1:22:3:44:5:6:7:8"])), s(&["22:"]));
        // Nothing certain: only the last two groups (or none) are nonzero.
        assert_eq!(lits(ip(&["::1"])), None);
        assert_eq!(lits(ip(&["::"])), None);
        assert_eq!(lits(ip(&["::169.254.169.254"])), None);
        assert_eq!(lits(ip(&["::1:2"])), None);
        // Several values: union; one unfilterable value spoils the predicate.
        assert_eq!(
            lits(ip(&["169.254.169.254", "fd00:ec2::254"])),
            s(&["169.254.169.254", "a9fe:a9fe", "fd00:"])
        );
        assert_eq!(lits(ip(&["169.254.169.254", "::1"])), None);
        // eq_ci on an ip field compares addresses too; a wildcard cannot be used.
        assert_eq!(
            lits(pred("source.ip", FieldType::Ip, Op::EqCi, &["10.1.2.3"])),
            s(&["10.1.2.3", "ffff:"])
        );
        assert_eq!(
            lits(pred("source.ip", FieldType::Ip, Op::Wildcard, &["10.*"])),
            None
        );
        assert_eq!(lits(ip(&["not an address"])), None);
    }

    #[test]
    fn keyword_needles_are_json_encoded() {
        assert_eq!(
            lits(kw(Op::Eq, &["a\"b\\c\td\n\u{1}é/"])),
            s(&["a\\\"b\\\\c\\td\\n\\u0001é/"])
        );
        assert_eq!(
            lits(kw(Op::EqCi, &["Cloud-Init", "WAAGENT"])),
            s(&["Cloud-Init", "WAAGENT"])
        );
        // U+FFFD may stand for invalid UTF-8 in the line: only the longest piece is certain.
        assert_eq!(lits(kw(Op::Eq, &["ab\u{FFFD}cdef"])), s(&["cdef"]));
        assert_eq!(lits(kw(Op::Eq, &["\u{FFFD}"])), None);
        assert_eq!(lits(kw(Op::Eq, &[""])), None);
        assert_eq!(lits(kw(Op::Eq, &["abc", ""])), None);
    }

    #[test]
    fn wildcard_needles() {
        assert_eq!(
            lits(kw(Op::Wildcard, &["*169.254.169.254*"])),
            s(&["169.254.169.254"])
        );
        assert_eq!(lits(kw(Op::Wildcard, &["*foo?barbaz*q"])), s(&["barbaz"]));
        assert_eq!(lits(kw(Op::Wildcard, &["exact"])), s(&["exact"]));
        assert_eq!(lits(kw(Op::Wildcard, &["*?*"])), None);
        assert_eq!(lits(kw(Op::Wildcard, &["*"])), None);
        assert_eq!(lits(kw(Op::Wildcard, &["*abc*", "**"])), None);
        assert_eq!(lits(kw(Op::Wildcard, &["*a\"b*"])), s(&["a\\\"b"]));
    }

    #[test]
    fn affix_and_like_needles() {
        for op in [
            Op::Like,
            Op::StartsWith,
            Op::StartsWithCi,
            Op::EndsWith,
            Op::EndsWithCi,
            Op::Contains,
            Op::ContainsCi,
        ] {
            assert_eq!(lits(kw(op, &["curl"])), s(&["curl"]), "{op:?}");
            assert_eq!(lits(kw(op, &["a/\"b"])), s(&["a/\\\"b"]), "{op:?}");
            // An empty literal holds for any value (startsWith(f, "")): nothing is certain.
            assert_eq!(lits(kw(op, &["curl", ""])), None, "{op:?}");
        }
        assert_eq!(lits(kw(Op::Like, &["*Meta?Data*"])), s(&["Data"]));
        assert_eq!(lits(kw(Op::Exists, &[])), None);
        // On an ip field only equality and cidr are defined.
        assert_eq!(
            lits(pred("source.ip", FieldType::Ip, Op::StartsWith, &["10."])),
            None
        );
    }

    fn cidr(values: &[&str]) -> Node {
        pred("destination.ip", FieldType::Ip, Op::Cidr, values)
    }

    #[test]
    fn cidr_needles() {
        assert_eq!(lits(cidr(&["169.254.0.0/16"])), s(&["169.254.", "a9fe:"]));
        assert_eq!(
            lits(cidr(&["169.254.169.254/32"])),
            s(&["169.254.169.254", "a9fe:a9fe"])
        );
        assert_eq!(
            lits(cidr(&["169.254.169.254"])),
            lits(cidr(&["169.254.169.254/32"]))
        );
        // A group below 0x1000 may carry leading zeros: fall back to the mapped `ffff:`.
        assert_eq!(lits(cidr(&["10.0.0.0/8"])), s(&["10.", "ffff:"]));
        assert_eq!(lits(cidr(&["10.1.2.0/23"])), s(&["10.1.", "ffff:"]));
        assert_eq!(lits(cidr(&["192.168.0.0/16"])), s(&["192.168.", "c0a8:"]));
        assert_eq!(
            lits(cidr(&["::ffff:192.168.0.0/112"])),
            s(&["192.168.", "c0a8:"])
        );
        // No whole octet fixed: nothing certain.
        assert_eq!(lits(cidr(&["128.0.0.0/1"])), None);
        assert_eq!(lits(cidr(&["0.0.0.0/0"])), None);
        // IPv6 blocks: a nonzero group the prefix fixes, among the first six.
        assert_eq!(lits(cidr(&["fd00:ec2::/32"])), s(&["fd00:"]));
        assert_eq!(lits(cidr(&["fd00:ec2::254/128"])), s(&["fd00:"]));
        assert_eq!(lits(cidr(&["fd00::/8"])), None);
        assert_eq!(lits(cidr(&["fe80::/10"])), None);
        assert_eq!(lits(cidr(&["2001:db8:1234::/48"])), s(&["2001:"]));
        assert_eq!(lits(cidr(&["0:db8:1234::/48"])), s(&["1234:"]));
        // A block holding IPv4-mapped addresses matches plain dotted IPv4 values.
        assert_eq!(lits(cidr(&["::/0"])), None);
        assert_eq!(lits(cidr(&["::/80"])), None);
        assert_eq!(lits(cidr(&["::/96"])), None);
        // Any field type: values are read as addresses either way.
        assert_eq!(
            lits(pred("f", FieldType::Keyword, Op::Cidr, &["10.0.0.0/8"])),
            s(&["10.", "ffff:"])
        );
    }

    #[test]
    fn and_prefers_rare_needles_over_common_words() {
        // `process where process.name == "terraform"`: the category word is in every process
        // event (as a field name, too); the name is rarer, though shorter than nothing else.
        assert_eq!(
            lits(and(vec![
                pred("event.category", FieldType::Keyword, Op::Eq, &["process"]),
                kw(Op::EqCi, &["terraform"]),
            ])),
            s(&["terraform"])
        );
        assert_eq!(
            lits(and(vec![
                pred(
                    "event.category",
                    FieldType::Keyword,
                    Op::Eq,
                    &["authentication"]
                ),
                kw(Op::Eq, &["4625"]),
            ])),
            s(&["4625"])
        );
    }

    #[test]
    fn boolean_structure() {
        // not: unfilterable.
        assert_eq!(lits(not(kw(Op::Eq, &["abc"]))), None);
        // and: the most selective filterable child (longest shortest needle, then fewest).
        assert_eq!(
            lits(and(vec![
                kw(Op::Eq, &["network"]),
                kw(Op::Eq, &["metadata"]),
                not(kw(Op::Eq, &["x"]))
            ])),
            s(&["metadata"])
        );
        assert_eq!(
            lits(and(vec![
                kw(Op::Eq, &["abcd", "wxyz"]),
                kw(Op::Eq, &["klmn"])
            ])),
            s(&["klmn"])
        );
        assert_eq!(
            lits(and(vec![not(kw(Op::Eq, &["a"])), not(kw(Op::Eq, &["b"]))])),
            None
        );
        // or: union; one unfilterable child spoils it.
        assert_eq!(
            lits(or(vec![kw(Op::Eq, &["abc"]), kw(Op::Eq, &["def"])])),
            s(&["abc", "def"])
        );
        assert_eq!(
            lits(or(vec![kw(Op::Eq, &["abc"]), not(kw(Op::Eq, &["def"]))])),
            None
        );
        // An `and` picks around an unfilterable `or`.
        assert_eq!(
            lits(and(vec![
                or(vec![kw(Op::Eq, &["abc"]), not(kw(Op::Eq, &["d"]))]),
                kw(Op::Eq, &["xy"])
            ])),
            s(&["xy"])
        );
        // Union drops duplicates (case-insensitively) and needles holding another needle.
        assert_eq!(
            lits(or(vec![
                kw(Op::Eq, &["xabcx", "ABC"]),
                kw(Op::Wildcard, &["*abc*", "*zz*"])
            ])),
            s(&["ABC", "zz"])
        );
    }

    #[test]
    fn unfilterable_rule_disables_prefilter() {
        let good = rule(vec![kw(Op::Eq, &["metadata"])]);
        let bad = rule(vec![kw(Op::Eq, &["metadata"]), not(kw(Op::Eq, &["x"]))]);
        assert!(Prefilter::new(std::slice::from_ref(&good)).is_active());
        let p = Prefilter::new(&[good, bad]);
        assert!(!p.is_active());
        assert!(p.needles().is_empty());
        assert!(p.is_candidate(b"{}"));
    }

    // ------------------------------------------------------------------ soundness

    fn seed() -> Prefilter {
        Prefilter::new(&[seed_ir()])
    }

    /// The seed and an `imds_endpoint` rule: the endpoint test holds the seed's needles.
    fn seed_with_endpoint() -> Prefilter {
        let p = Prefilter::new(&[
            seed_ir(),
            rule(vec![pred(
                "url.full",
                FieldType::Keyword,
                Op::ImdsEndpoint,
                &["imds-link-local"],
            )]),
        ]);
        assert!(p.needles_held, "{}", p.strategy());
        p
    }

    const SEED_FRAGMENTS: [&str; 11] = [
        "169.254.169.254",
        "metadata.google.internal",
        "fd00:ec2::254",
        "metadata/instance",
        "iam/security-credentials",
        "latest/meta-data",
        "latest/dynamic",
        "instance-identity",
        "computeMetadata",
        "imds.azure.com",
        "metadata/v1",
    ];

    /// Many needles of letters only: their spellings overflow the packed searcher.
    fn fallback() -> Prefilter {
        let words: Vec<String> = (0..40u8)
            .map(|i| format!("zq{}{}xw", (b'a' + i / 26) as char, (b'a' + i % 26) as char))
            .collect();
        let mut values: Vec<&str> = words.iter().map(|w| w.as_str()).collect();
        values.extend(SEED_FRAGMENTS);
        values.push("caf\u{e9}");
        let p = Prefilter::new(&[rule(vec![
            kw(Op::Wildcard, &values),
            ip(&["169.254.169.254"]),
        ])]);
        assert!(
            p.strategy().contains("case-insensitive"),
            "{}",
            p.strategy()
        );
        p
    }

    fn line(value: &str) -> Vec<u8> {
        format!(r#"{{"event":{{"category":["process"]}},"process":{{"command_line":"{value}"}}}}"#)
            .into_bytes()
    }

    fn assert_candidate(p: &Prefilter, value: &str) {
        assert!(p.is_candidate(&line(value)), "missed: {value}");
    }

    fn assert_skipped(p: &Prefilter, value: &str) {
        assert!(!p.is_candidate(&line(value)), "not skipped: {value}");
    }

    #[test]
    fn escaped_and_cased_spellings_are_candidates() {
        for p in [seed(), fallback()] {
            for v in [
                "curl http://169.254.169.254/latest/meta-data/",
                r"curl http:\/\/x\/latest\/meta-data\/iam",
                r"latest\/meta-data",
                "LATEST/META-DATA",
                r"LaTeSt\/MeTa-DaTa",
                r"\u0069am/security-credentials",
                r"iam\u002fsecurity-credentials",
                r"iam\u002Fsecurity-credentials",
                r"\u0031\u0036\u0039.254.169.254",
                r"\u0049AM/security-credentials",
                r"x\\\u0069am",
                "::FFFF:A9FE:A9FE",
                "::ffff:a9fe:a9fe",
                "0:0:0:0:0:FFFF:169.254.169.254",
                "COMPUTEMETADATA",
                r"compute\u004detadata",
            ] {
                assert_candidate(&p, v);
            }
        }
        let p = seed();
        for v in [
            "FD00:EC2::254",
            "fd00:ec2::254",
            r"imds.azure.com",
            r"metadata\/v1",
        ] {
            assert_candidate(&p, v);
        }
        // A non-ASCII needle: any `\u` escape >= 0x80 (or a surrogate) is relevant.
        let p = fallback();
        assert_candidate(&p, "caf\u{e9}");
        assert_candidate(&p, r"caf\u00e9");
        assert_candidate(&p, r"caf\u00E9");
        assert_candidate(&p, r"x \ud83d\ude00");
    }

    #[test]
    fn irrelevant_escapes_are_skipped() {
        for p in [seed(), fallback()] {
            for v in [
                r"\u003chtml\u003e a \u0026 b",
                r"C:\\Users\\alice\\AppData",
                r"C:\\Users\\U0069am",
                // An even backslash run: `\\` then a literal `u0069`.
                r"C:\\u0069am\\u0031",
                r"\\\\u002f",
                // `\U` is not an escape in JSON.
                r"\U0069am",
                r"http:\/\/example.com\/index.html",
                "metadata instance latest meta data",
                "169.254.169.25",
                "a9fe a9fe",
            ] {
                assert_skipped(&p, v);
            }
        }
        // With ASCII-only needles, non-ASCII escapes are irrelevant.
        assert_skipped(&seed(), r"caf\u00e9 \ud83d\ude00");
    }

    #[test]
    fn invalid_escape_is_candidate() {
        // Not valid JSON: the parser should see (and report) it.
        let p = seed();
        assert!(p.is_candidate(br#"{"a":"\u00zz"}"#));
        assert!(p.is_candidate(br#"{"a":"\u00"#));
    }

    /// Deterministic xorshift for the spelling fuzz.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn finder_equals_fresh_searches() {
        // The seed's needles and the endpoint test: lines pass by either, or by both.
        let kinds = [
            "curl http://169.254.169.254/latest",
            "wget 0xa9fea9fe",
            "GET /latest/api/token",
            "echo imds.azure.com",
            "cat iam/security-credentials",
            "ls -la /tmp",
            "ping 10.0.0.1",
        ];
        // The needle search runs apart (not held by the endpoint test): the cache is used.
        let mut p = seed_with_endpoint();
        p.needles_held = false;
        let (search, test) = (p.search.as_ref().unwrap(), p.endpoint.as_ref().unwrap());
        let mut rng = Rng(0x5EED_F00D_1234_5678);
        for _ in 0..300 {
            let lines: Vec<Vec<u8>> = (0..rng.below(30))
                .map(|_| line(kinds[rng.below(kinds.len() as u64) as usize]))
                .collect();
            let hay = lines.join(&b'\n');
            // As the scan does: search windows of a few lines, restart after each hit's line.
            let mut finder = p.finder();
            let (mut at, mut found) = (0, Vec::new());
            while at < hay.len() {
                let window = at + rng.below(400) as usize;
                let end = memchr::memchr(b'\n', hay.get(window..).unwrap_or(&[]))
                    .map_or(hay.len(), |i| window + i);
                // Both searches from scratch, composed as `Finder::find` does.
                let needle = search.find(&hay, at, end);
                let fresh = test.first(&hay, at, needle.unwrap_or(end)).or(needle);
                assert_eq!(
                    finder.find(&hay, at, end),
                    fresh,
                    "{}",
                    String::from_utf8_lossy(&hay)
                );
                match fresh {
                    Some(h) => {
                        found.push(h);
                        at = memchr::memchr(b'\n', &hay[h..]).map_or(hay.len(), |i| h + i);
                    }
                    None => at = end,
                }
            }
            let expected = lines
                .iter()
                .filter(|l| search.find(l, 0, l.len()).is_some() || test.may_match(l))
                .count();
            assert_eq!(found.len(), expected, "{}", String::from_utf8_lossy(&hay));
        }
    }

    /// Write `text` as some JSON encoder might: random case, random `\u` escapes (either hex
    /// case), `\/` for some slashes.
    fn respell(rng: &mut Rng, text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            let c = match rng.below(3) {
                0 => c.to_ascii_uppercase(),
                1 => c.to_ascii_lowercase(),
                _ => c,
            };
            match rng.below(8) {
                0 => {
                    let esc = format!("\\u{:04x}", c as u32);
                    out.push_str(&if rng.below(2) == 0 {
                        esc.to_ascii_uppercase().replace("\\U", "\\u")
                    } else {
                        esc
                    });
                }
                1 | 2 if c == '/' => out.push_str("\\/"),
                _ => match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                },
            }
        }
        out
    }

    #[test]
    fn respelled_literals_are_candidates() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for p in [seed(), fallback(), seed_with_endpoint()] {
            for lit in SEED_FRAGMENTS.iter().chain(&["::ffff:a9fe:a9fe"]) {
                for _ in 0..300 {
                    let v = respell(&mut rng, lit);
                    assert_candidate(&p, &format!("curl -s http://{v}/x"));
                }
            }
        }
        // Needles with quotes and backslashes.
        let p = Prefilter::new(&[rule(vec![kw(Op::Wildcard, &["*say \"a\\b/c\"*"])])]);
        for _ in 0..500 {
            let v = respell(&mut rng, "say \"a\\b/c\"");
            assert_candidate(&p, &format!("x {v} y"));
        }
    }

    #[test]
    fn find_reports_hits_within_range() {
        let p = seed();
        let hay = b"{\"a\":\"x\"}\n{\"a\":\"latest/dynamic\"}\n{\"a\":\"y\"}\n";
        let second = hay.iter().position(|&b| b == b'\n').unwrap() + 1;
        let hit = p.find(hay, 0, hay.len()).unwrap();
        assert!(hit >= second && hit < second + 30);
        assert_eq!(p.find(hay, 0, second - 1), None);
        // An inactive prefilter makes every line a candidate.
        let all = Prefilter::new(&[rule(vec![not(kw(Op::Eq, &["x"]))])]);
        assert_eq!(all.find(hay, 3, hay.len()), Some(3));
        assert_eq!(all.find(hay, 3, 3), None);
    }

    #[test]
    fn anchors_fit_and_cover_every_needle() {
        let needles: Vec<Vec<u8>> = (0..12)
            .map(|i| format!("needle/number{i}").into_bytes())
            .collect();
        let ws = plan_anchors(&needles, 63).unwrap();
        let total: usize = ws.iter().map(|w| w.spellings).sum();
        assert!(total <= 63);
        for (n, w) in needles.iter().zip(&ws) {
            assert!(w.offset + w.len <= n.len());
        }
        // Short needles anchor on themselves.
        let ws = plan_anchors(&[b"ab".to_vec()], 63).unwrap();
        assert_eq!((ws[0].offset, ws[0].len), (0, 2));
        assert!(plan_anchors(&vec![b"abcdef".to_vec(); 20], 63).is_none());
    }
}
