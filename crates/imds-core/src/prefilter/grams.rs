//! Every occurrence of many short literals, ASCII case-insensitively, by hashed grams.
//!
//! The rule gate's thousands of needles made one aho-corasick DFA of 34 MB: each byte's
//! transition missed the caches, one load after another. Here each position of the
//! haystack costs three independent table lookups that fit L1/L2 (a bitset per pattern
//! length class, keyed by the position's folded 2-, 4- or 8-byte gram); only the positions
//! where a bit is set look at the patterns sharing that gram, and compare them exactly.
//! No position depends on another, so the loads of neighbouring positions overlap.

use super::cost::window_freq;
use std::collections::HashMap;

/// Bits of the 4-byte grams' hash: with thousands of patterns, 2^17 bits (16 KB, in L1
/// beside the 8 KB of 2-byte grams) are a few percent set.
const BITS4: u32 = 17;

/// Positions whose filter bits are computed before their candidates are verified.
const BLOCK: usize = 1024;

/// `| FOLD` makes ASCII letters lowercase (and maps a few other bytes together: the tables
/// are a filter, the verification is exact).
const FOLD: u64 = 0x2020_2020_2020_2020;

const K32: u32 = 0x9E37_79B1;

/// Where the 4-byte grams' words start in [`Grams::filter`].
const FOUR: usize = 2048;

/// One pattern as a bucket holds it.
#[derive(Debug, Clone)]
struct Entry {
    /// The pattern's first `min(len, 8)` bytes (little-endian): the hay's 8 bytes `w` at the
    /// pattern's start match them when `(w | fold) & keep == key`.
    key: u64,
    fold: u64,
    keep: u64,
    /// Where its bytes (and case masks) are in [`Grams::bytes`].
    off: u32,
    len: u32,
    /// Where its gram is in it.
    at: u32,
    id: u32,
}

/// A bitset over gram hashes with the entries of each set bit's patterns.
#[derive(Debug, Clone)]
struct Table {
    bits: Vec<u64>,
    /// Per word of `bits`: the set bits before it (a bucket's index is its bit's rank).
    rank: Vec<u32>,
    /// Bucket `b`'s entries are `entries[start[b]..start[b + 1]]`.
    start: Vec<u32>,
    entries: Vec<Entry>,
}

impl Table {
    fn new(bits: u32, mut keyed: Vec<(usize, Entry)>) -> Table {
        keyed.sort_by_key(|(h, e)| (*h, e.id));
        // A 1-byte pattern lands twice under one folded index.
        keyed.dedup_by(|a, b| a.0 == b.0 && a.1.id == b.1.id);
        let mut table = Table {
            bits: vec![0; (1 << bits) / 64],
            rank: Vec::new(),
            start: Vec::new(),
            entries: Vec::with_capacity(keyed.len()),
        };
        let mut last = None;
        for (h, e) in keyed {
            if last != Some(h) {
                table.bits[h / 64] |= 1 << (h % 64);
                table.start.push(table.entries.len() as u32);
                last = Some(h);
            }
            table.entries.push(e);
        }
        table.start.push(table.entries.len() as u32);
        let mut sum = 0;
        for w in &table.bits {
            table.rank.push(sum);
            sum += w.count_ones();
        }
        table
    }

    /// The entries of the bit `h` (none when it is clear), without branches.
    #[inline(always)]
    fn span(&self, h: usize) -> (u32, u32) {
        let w = self.bits[h / 64];
        let b = self.rank[h / 64] as usize + (w & ((1u64 << (h % 64)) - 1)).count_ones() as usize;
        let start = self.start[b];
        let end = if (w >> (h % 64)) & 1 != 0 {
            self.start[b + 1]
        } else {
            start
        };
        (start, end)
    }
}

/// The searcher. A pattern is found by one gram of it: patterns under 4 bytes by a 2-byte
/// gram (direct index; a 1-byte pattern under every second byte), longer ones by a hashed
/// 4-byte gram. Of a pattern's grams the one fewest other patterns hold is used (then the
/// one of rarest bytes): many needles share a start (`"c:\\\\windows`, `"/usr/bin/`),
/// and such shared text is common in logs too; a 3-byte needle's start `":` ends every key.
#[derive(Debug, Clone)]
pub(super) struct Grams {
    two: Table,
    four: Table,
    /// Both tables' bits in one array (words `0..1024`, then from `FOUR`): one base address
    /// and no bounds checks in the per-position loop.
    filter: Box<[u64; 4096]>,
    /// Every pattern's folded bytes, then per byte `0x20` where it is a letter (the hay byte
    /// `| 0x20` must then equal it) and `0` elsewhere (equal as is).
    bytes: Vec<u8>,
    masks: Vec<u8>,
}

fn load(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[inline(always)]
fn index2(w: u64) -> usize {
    (w as u16 | FOLD as u16) as usize
}

#[inline(always)]
fn hash4(w: u64) -> usize {
    ((w as u32 | FOLD as u32).wrapping_mul(K32) >> (32 - BITS4)) as usize
}

/// The `n`-byte gram of `p` at `at` (little-endian, zero above).
fn gram(p: &[u8], at: usize, n: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..n].copy_from_slice(&p[at..at + n]);
    u64::from_le_bytes(b) | (FOLD >> (64 - 8 * n))
}

impl Grams {
    /// `patterns` are ASCII-lowercase (other bytes as they are), non-empty; a match is
    /// reported with the pattern's index.
    pub(super) fn new<P: AsRef<[u8]>>(patterns: &[P]) -> Grams {
        // How many patterns hold each 4-byte gram.
        let mut held: HashMap<u64, u32> = HashMap::new();
        for p in patterns {
            let p = p.as_ref();
            let mut grams: Vec<u64> = (0..(p.len() + 1).saturating_sub(4))
                .map(|at| gram(p, at, 4))
                .collect();
            grams.sort_unstable();
            grams.dedup();
            for g in grams {
                *held.entry(g).or_default() += 1;
            }
        }
        let (mut two, mut four) = (Vec::new(), Vec::new());
        let (mut bytes, mut masks) = (Vec::new(), Vec::new());
        for (id, p) in patterns.iter().enumerate() {
            let p = p.as_ref();
            assert!(!p.is_empty(), "an empty pattern");
            let fold_of = |b: u8| if b.is_ascii_lowercase() { 0x20 } else { 0 };
            let n = p.len().min(8);
            let mut first = [0u8; 8];
            first[..n].copy_from_slice(&p[..n]);
            let mut fold = [0u8; 8];
            fold.iter_mut()
                .zip(&first[..n])
                .for_each(|(f, &b)| *f = fold_of(b));
            let gram_len = if p.len() >= 4 { 4 } else { p.len().min(2) };
            let at = (0..=p.len() - gram_len)
                .min_by(|&a, &b| {
                    let cost = |at: usize| {
                        // Each occurrence in the log costs a look at every pattern of the gram.
                        let held = held.get(&gram(p, at, gram_len)).copied().unwrap_or(1);
                        window_freq(&p[at..at + gram_len]) * f64::from(held.max(1))
                    };
                    cost(a).total_cmp(&cost(b))
                })
                .unwrap_or(0);
            let e = Entry {
                key: u64::from_le_bytes(first),
                fold: u64::from_le_bytes(fold),
                keep: if n == 8 { u64::MAX } else { (1 << (8 * n)) - 1 },
                off: bytes.len() as u32,
                len: p.len() as u32,
                at: at as u32,
                id: id as u32,
            };
            bytes.extend_from_slice(p);
            masks.extend(p.iter().map(|&b| fold_of(b)));
            let g = gram(p, at, gram_len);
            match gram_len {
                1 => two.extend((0..=255u64).map(|b| (index2(g | b << 8), e.clone()))),
                2 => two.push((index2(g), e)),
                _ => four.push((hash4(g), e)),
            }
        }
        // Room to load 8 bytes from any pattern byte.
        bytes.resize(bytes.len() + 8, 0);
        masks.resize(masks.len() + 8, 0);
        let (two, four) = (Table::new(16, two), Table::new(BITS4, four));
        let mut filter = Box::new([0; 4096]);
        filter[..two.bits.len()].copy_from_slice(&two.bits);
        filter[FOUR..FOUR + four.bits.len()].copy_from_slice(&four.bits);
        Grams {
            filter,
            two,
            four,
            bytes,
            masks,
        }
    }

    /// Append every match `(start, end, pattern)` in `hay[from..to]` to `out`, line after
    /// line (no pattern holds a `\n`), within a line in no particular order.
    pub(super) fn find(
        &self,
        hay: &[u8],
        from: usize,
        to: usize,
        out: &mut Vec<(usize, usize, u32)>,
    ) {
        // Positions with 8 bytes to load; the rest through a padded copy.
        let fast_end = to.min(hay.len().saturating_sub(7)).max(from);
        // Per candidate: its offset in the block, times 4, plus which tables hit.
        let mut cands = [0u32; BLOCK];
        let mut at = from;
        while at < fast_end {
            let stop = (at + BLOCK).min(fast_end);
            let mut n = 0;
            for (i, win) in hay[at..stop + 7].windows(8).enumerate() {
                let w = u64::from_le_bytes(win.try_into().unwrap());
                let tag = self.tag(w);
                cands[n % BLOCK] = (i as u32) << 2 | tag as u32;
                n += (tag != 0) as usize;
            }
            // The candidates' buckets first: independent loads that overlap.
            let mut spans = [(0u32, 0u32); BLOCK];
            for (span, &c) in spans.iter_mut().zip(&cands[..n]) {
                *span = self.four.span(hash4(load(hay, at + (c >> 2) as usize)));
            }
            for (&(start, end), &c) in spans.iter().zip(&cands[..n]) {
                let i = at + (c >> 2) as usize;
                if c & 1 != 0 {
                    self.verify(hay, i, load(hay, i), 1, from, to, out);
                }
                for e in &self.four.entries[start as usize..end as usize] {
                    self.check(hay, i, from, to, e, out);
                }
            }
            at = stop;
        }
        for i in fast_end..to {
            let mut win = [0u8; 8];
            let n = (hay.len() - i).min(8);
            win[..n].copy_from_slice(&hay[i..i + n]);
            self.verify(hay, i, u64::from_le_bytes(win), 3, from, to, out);
        }
    }

    /// Bit 0: the 2-byte gram of `w` is some pattern's; bit 1: its 4-byte gram.
    #[inline(always)]
    fn tag(&self, w: u64) -> u64 {
        let (d, h) = (index2(w), hash4(w));
        let two = self.filter[(d / 64) % 1024] >> (d % 64);
        let four = self.filter[FOUR + (h / 64) % 2048] >> (h % 64);
        (two & 1) | (four & 1) << 1
    }

    /// Report the patterns whose gram is at `i` (`w` the 8 bytes there, zero past the hay),
    /// of the tables in `tag` (bit 0: 2-byte grams, bit 1: 4-byte grams).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn verify(
        &self,
        hay: &[u8],
        i: usize,
        w: u64,
        tag: u32,
        from: usize,
        to: usize,
        out: &mut Vec<(usize, usize, u32)>,
    ) {
        for (table, h, bit) in [(&self.two, index2(w), 1), (&self.four, hash4(w), 2)] {
            if tag & bit != 0 {
                let (start, end) = table.span(h);
                for e in &table.entries[start as usize..end as usize] {
                    self.check(hay, i, from, to, e, out);
                }
            }
        }
    }

    /// Report `e`'s pattern if it is in `hay[from..to]` with its gram at `i`. Few branches:
    /// whether a candidate matches is hard to predict.
    #[inline(always)]
    fn check(
        &self,
        hay: &[u8],
        i: usize,
        from: usize,
        to: usize,
        e: &Entry,
        out: &mut Vec<(usize, usize, u32)>,
    ) {
        let len = e.len as usize;
        let s = i.wrapping_sub(e.at as usize);
        let fits = (s >= from) & (s <= i) & (s.wrapping_add(len) <= to);
        let s = if fits { s } else { i };
        let w = match hay.get(s..s + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
            None => {
                let mut b = [0u8; 8];
                b[..hay.len() - s].copy_from_slice(&hay[s..]);
                u64::from_le_bytes(b)
            }
        };
        let mut ok = fits & ((w | e.fold) & e.keep == e.key);
        if ok && len > 8 {
            ok = self.rest(hay, s, e);
        }
        out.push((s, s + len, e.id));
        out.truncate(out.len() - 1 + ok as usize);
    }

    /// The pattern's bytes past its first 8 match at `s` (it fits in `hay`).
    #[inline(always)]
    fn rest(&self, hay: &[u8], s: usize, e: &Entry) -> bool {
        let len = e.len as usize;
        let off = e.off as usize;
        let mut k = 8;
        while k < len {
            // The last chunk ends at the pattern's end (overlapping the one before).
            let c = k.min(len - 8);
            if load(hay, s + c) | load(&self.masks, off + c) != load(&self.bytes, off + c) {
                return false;
            }
            k += 8;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Grams;
    use aho_corasick::AhoCorasick;
    use proptest::prelude::*;

    fn reference(
        patterns: &[Vec<u8>],
        hay: &[u8],
        from: usize,
        to: usize,
    ) -> Vec<(usize, usize, u32)> {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(patterns)
            .unwrap();
        let mut out: Vec<_> = ac
            .find_overlapping_iter(aho_corasick::Input::new(&hay[..to]).span(from..to))
            .map(|m| (m.start(), m.end(), m.pattern().as_u32()))
            .collect();
        out.sort_unstable();
        out
    }

    fn found(g: &Grams, hay: &[u8], from: usize, to: usize) -> Vec<(usize, usize, u32)> {
        let mut out = Vec::new();
        g.find(hay, from, to, &mut out);
        // Line after line (the rule gate's order).
        let line = |m: &(usize, usize, u32)| hay[..m.0].iter().filter(|&&b| b == b'\n').count();
        assert!(
            out.windows(2).all(|w| line(&w[0]) <= line(&w[1])),
            "not line after line: {out:?}"
        );
        out.sort_unstable();
        out
    }

    #[test]
    fn finds_every_occurrence_at_every_length() {
        let patterns: Vec<Vec<u8>> = [
            "a",
            "ab",
            "abc",
            "abcd",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "\"x\\\\y",
            "bcdefghijklmnopqrstu",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
        let g = Grams::new(&patterns);
        let hay = b"xxABCDEFGHIJKLMNOPQRSTU \"X\\\\Y\nabcdefghi";
        for from in 0..hay.len() {
            for to in from..=hay.len() {
                assert_eq!(
                    found(&g, hay, from, to),
                    reference(&patterns, hay, from, to),
                    "{from}..{to}"
                );
            }
        }
    }

    #[test]
    fn finds_across_blocks_and_at_the_end() {
        // Lines of matches across several blocks of positions, cut anywhere near the block
        // edges and the hay's end (the last 7 positions go through a padded copy).
        let patterns: Vec<Vec<u8>> = ["ab", "b\"c", "\"abc\"", "xyz", "y", "abcdefghijk", "\\u"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let g = Grams::new(&patterns);
        let line = b"{\"ABC\":\"xYz\",\"k\":\"abcdefghijk\\u0041b\"c\"}\n";
        let hay: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(3 * super::BLOCK + 37)
            .collect();
        let n = hay.len();
        let edges = [
            0,
            1,
            7,
            1017,
            1023,
            1024,
            1025,
            2047,
            2048,
            2049,
            n - 9,
            n - 8,
            n - 7,
            n - 1,
            n,
        ];
        for &from in &edges {
            for &to in edges.iter().filter(|&&to| to >= from) {
                assert_eq!(
                    found(&g, &hay, from, to),
                    reference(&patterns, &hay, from, to),
                    "{from}..{to}"
                );
                // The same window in a hay that ends with it.
                assert_eq!(
                    found(&g, &hay[..to], from, to),
                    reference(&patterns, &hay[..to], from, to)
                );
            }
        }
    }

    fn pattern() -> impl Strategy<Value = Vec<u8>> {
        // A small alphabet so patterns share prefixes and occur in the hay; `"`, `\` and
        // bytes `| 0x20` folds onto letters or each other (`@`, `` ` ``, `\`, `|`, `_`).
        let byte = prop::sample::select(b"abcAB\"\\|@`_ 0\xc3".to_vec());
        prop::collection::vec(byte, 1..14).prop_map(|p| p.to_ascii_lowercase())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn finds_what_aho_corasick_finds(
            patterns in prop::collection::vec(pattern(), 1..40),
            hay in prop::collection::vec(prop::sample::select(b"abcABC\"\\|@`_ 0\n\xc3\x83".to_vec()), 0..300),
            cut in any::<(prop::sample::Index, prop::sample::Index)>(),
        ) {
            let mut patterns = patterns;
            patterns.sort();
            patterns.dedup();
            let g = Grams::new(&patterns);
            let (a, b) = (cut.0.index(hay.len() + 1), cut.1.index(hay.len() + 1));
            let (from, to) = (a.min(b), a.max(b));
            prop_assert_eq!(found(&g, &hay, from, to), reference(&patterns, &hay, from, to));
            prop_assert_eq!(found(&g, &hay, 0, hay.len()), reference(&patterns, &hay, 0, hay.len()));
        }
    }
}
