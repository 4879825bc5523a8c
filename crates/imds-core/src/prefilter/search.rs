//! Literal search with escape guards: the aho-corasick automaton over anchors (or whole
//! needles), each hit verified against its needle, plus the `\\u` (and `\\/`) escape guards.

use super::anchors::{case_variants, plan_anchors, slash_spellings};
use super::fold_teddy::{self, FoldTeddy};
use super::needles::Lit;
use super::pair::FoldedPair;
use aho_corasick::{packed, AhoCorasick, AhoCorasickKind, Input, MatchKind, Span};

/// Teddy (aho-corasick's packed searcher) refuses more patterns than this.
const PACKED_LIMIT: usize = 64;

/// Fallback mode: a needle with more slashes than this is not spelled with every `\/`
/// combination; any real `\/` in a line makes it a candidate instead.
const MAX_SLASH_SPELLINGS: usize = 3;

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

#[derive(Debug, Clone)]
pub(super) struct Search {
    pub(super) lits: Vec<Lit>,
    /// Needles as searched: raw, ASCII-folded.
    needles: Vec<Vec<u8>>,
    ac: AhoCorasick,
    /// The anchors' spellings in Teddy itself, when it runs here: given patterns sharing a
    /// few first bytes (`p`, `P`, `\\` for `process`), the automaton runs a `memchr3` of them
    /// instead.
    teddy: Option<packed::Searcher>,
    /// Instead of `teddy`, where the CPU runs it: one pattern per anchor spelling, whatever
    /// its case.
    fold: Option<FoldTeddy>,
    /// One needle without a slash: two of its bytes tested at every position, and the escape
    /// guard searched on its own ([`FoldedPair`]); Teddy, given its 16 or so case spellings,
    /// verified most positions of a line.
    pair: Option<(FoldedPair, memchr::memmem::Finder<'static>)>,
    /// Anchor entries by (folded) first byte.
    entries: Vec<Vec<Entry>>,
    /// Decoded ASCII chars (folded) that occur in some needle.
    relevant_ascii: [bool; 128],
    /// Some needle has a non-ASCII char: every `\u` escape ≥ 0x80 is relevant.
    relevant_non_ascii: bool,
    /// Fallback mode only: a real `\/` makes the line a candidate.
    slash_guard: bool,
    pub(super) strategy: String,
    /// The automaton runs on Teddy (anchors).
    pub(super) packed: bool,
}

impl Search {
    /// `None` only if the automaton cannot be built (then every line is a candidate).
    pub(super) fn new(lits: Vec<Lit>) -> Option<Search> {
        Self::with_fold(lits, FoldTeddy::available())
    }

    /// [`Search::new`]; `folds`: the anchors may be searched with [`FoldTeddy`] (false: as
    /// on a CPU without it).
    fn with_fold(lits: Vec<Lit>, folds: bool) -> Option<Search> {
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
        let pair = match &needles[..] {
            [n] if !n.contains(&b'/') => {
                FoldedPair::new(n).map(|p| (p, memchr::memmem::Finder::new(u_guard).into_owned()))
            }
            _ => None,
        };
        let mut entries: Vec<Vec<Entry>> = vec![Vec::new(); 256];
        let slashes = |n: &[u8]| n.iter().filter(|&&b| b == b'/').count();
        let folded = (pair.is_none() && folds)
            .then(|| {
                let budget = fold_teddy::MAX_PATTERNS - 1;
                plan_anchors(&needles, budget, Some(fold_teddy::FINGERPRINT))
            })
            .flatten();
        let folds = folded.is_some();
        let packed = folded.or_else(|| plan_anchors(&needles, PACKED_LIMIT - 1, None));
        let packed_mode = packed.is_some();
        let mut teddy = None;
        let mut fold = None;
        let (ac, slash_guard, strategy) = match packed {
            Some(windows) => {
                let mut spellings: Vec<Vec<u8>> = Vec::new();
                for (i, w) in windows.iter().enumerate() {
                    let anchor = &needles[i][w.offset..w.offset + w.len];
                    for spelling in slash_spellings(anchor) {
                        spellings.push(spelling.clone());
                        entries[spelling[0] as usize].push(Entry {
                            spelling,
                            needle: i,
                            offset: w.offset,
                            slashes_before: slashes(&needles[i][..w.offset]),
                        });
                    }
                }
                spellings.sort();
                spellings.dedup();
                let anchors = windows.len();
                let guard = String::from_utf8_lossy(u_guard);
                let (ac, strategy) = if folds {
                    spellings.push(u_guard.to_vec());
                    fold = FoldTeddy::new(&spellings);
                    // Searched only if the folding Teddy could not be built: the same
                    // patterns in any case.
                    let ac = AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostFirst)
                        .ascii_case_insensitive(true)
                        .kind(Some(AhoCorasickKind::DFA))
                        .build(&spellings)
                        .ok()?;
                    let kernel = fold.as_ref().map_or("none", FoldTeddy::kernel_name);
                    let n = spellings.len() - 1;
                    let strategy = format!(
                        "case-folding Teddy ({kernel}) over {n} spellings of {anchors} anchors \
                         + `{guard}` guard"
                    );
                    (ac, strategy)
                } else {
                    let mut patterns: Vec<Vec<u8>> =
                        spellings.iter().flat_map(|s| case_variants(s)).collect();
                    patterns.sort();
                    patterns.dedup();
                    let n = patterns.len();
                    patterns.push(u_guard.to_vec());
                    let ac = AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostFirst)
                        .kind(Some(AhoCorasickKind::DFA))
                        .build(&patterns)
                        .ok()?;
                    if pair.is_none() {
                        teddy = packed::Config::new()
                            .match_kind(packed::MatchKind::LeftmostFirst)
                            .builder()
                            .extend(&patterns)
                            .build();
                    }
                    let strategy = format!(
                        "exact-case automaton (packed prefilter) over {n} spellings of {anchors} \
                         anchors + `{guard}` guard"
                    );
                    (ac, strategy)
                };
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
        let strategy = match &pair {
            Some(_) => format!(
                "two bytes of the needle tested at every position (ASCII case folded) + `{}` guard",
                String::from_utf8_lossy(u_guard)
            ),
            None => strategy,
        };
        if let Some((p, _)) = &pair {
            entries = vec![Vec::new(); 256];
            entries[p.needle()[0] as usize].push(Entry {
                spelling: p.needle().to_vec(),
                needle: 0,
                offset: 0,
                slashes_before: 0,
            });
        }
        Some(Search {
            lits,
            needles,
            ac,
            pair,
            teddy,
            fold,
            entries,
            relevant_ascii,
            relevant_non_ascii,
            slash_guard,
            strategy,
            packed: packed_mode,
        })
    }

    pub(super) fn find(&self, hay: &[u8], mut at: usize, end: usize) -> Option<usize> {
        if let Some((pair, guard)) = &self.pair {
            while at < end {
                let hit = pair.find(hay, at, end);
                let until = hit.unwrap_or(end);
                let p = match guard.find(&hay[at..until]) {
                    Some(g) => at + g,
                    None => hit?,
                };
                if self.relevant_at(hay, p, end) {
                    return Some(p);
                }
                at = p + 1;
            }
            return None;
        }
        if let Some(fold) = &self.fold {
            return fold.find(hay, at, end, |p| self.relevant_at(hay, p, end));
        }
        while at < end {
            let p = match &self.teddy {
                Some(t) => t.find_in(hay, Span::from(at..end))?.start(),
                None => self.ac.find(Input::new(hay).span(at..end))?.start(),
            };
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
pub(super) fn real_escape(hay: &[u8], p: usize) -> bool {
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

#[cfg(test)]
mod tests {
    use super::super::test_ir::SEED_NEEDLES;
    use super::*;

    /// The seed's needles, with one that has a slash (`\/` spellings) and one with a
    /// non-ASCII char (`\u` guard).
    fn needle_sets() -> Vec<Vec<&'static str>> {
        vec![
            SEED_NEEDLES.to_vec(),
            vec![
                "curl",
                "wget",
                "169.254.169.254",
                "Invoke-WebRequest",
                "a/b/c",
            ],
            vec!["caf\u{e9}", "169.254", "x/y"],
        ]
    }

    /// Which lines of `hay` the search finds something relevant in (the anchor it finds a
    /// needle by may differ between searchers, not the line).
    fn lines_found(s: &Search, hay: &[u8]) -> Vec<bool> {
        let mut out = Vec::new();
        let mut start = 0;
        for line in hay.split(|&b| b == b'\n') {
            let end = start + line.len();
            out.push(s.find(hay, start, end).is_some());
            start = end + 1;
        }
        out
    }

    #[test]
    fn folding_teddy_finds_what_the_exact_case_automaton_finds() {
        if !FoldTeddy::available() {
            return; // nothing to compare on this CPU
        }
        let pieces: &[&[u8]] = &[
            b"169.254.169.254",
            b"169.254.169.25",
            b"METADATA.Google.internal",
            b"metadata\\/v1",
            b"latest\\/meta-data",
            b"LATEST/DYNAMIC",
            b"\\u0069",
            b"\\\\u0069",
            b"\\u00e9",
            b"Instance-Identity",
            b"computemetadata",
            b"CURL",
            b"wgeT",
            b"a\\/b/c",
            b"x\\/y",
            b"caf\xc3\xa9",
            b"CAF\xc3\xa9",
            b"a9FE:A9fe",
            b"fd00:EC2::254",
            b"imds.azure.co",
            b"iam/security-credentials",
            b"\"process\":{",
            b" ",
            b"\n",
            b"x",
            b"69.2",
        ];
        let mut x: u64 = 1;
        for needles in needle_sets() {
            let lits = || needles.iter().map(|t| Lit::new(t)).collect::<Vec<_>>();
            let fold = Search::with_fold(lits(), true).expect("search");
            let exact = Search::with_fold(lits(), false).expect("search");
            assert!(fold.fold.is_some(), "{}", fold.strategy);
            assert!(exact.fold.is_none(), "{}", exact.strategy);
            for _ in 0..300 {
                let mut hay = Vec::new();
                for _ in 0..(x % 90) {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    hay.extend_from_slice(pieces[(x >> 33) as usize % pieces.len()]);
                }
                x = x.wrapping_add(7);
                assert_eq!(
                    lines_found(&fold, &hay),
                    lines_found(&exact, &hay),
                    "{needles:?} over {:?}",
                    String::from_utf8_lossy(&hay)
                );
            }
        }
    }
}
