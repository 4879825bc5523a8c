//! Anchor planning: one short window per needle whose every case and slash spelling fits
//! aho-corasick's packed (Teddy) searcher, at the least estimated frequency.

use super::cost::window_freq;

/// How many spellings a window of needle bytes has: `/` or `\/` for each slash, and unless
/// the searcher folds case, both ASCII cases of each letter.
fn spellings_count(w: &[u8], folds: bool) -> usize {
    w.iter()
        .map(|&b| {
            if b == b'/' || (b.is_ascii_alphabetic() && !folds) {
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
pub(super) fn slash_spellings(w: &[u8]) -> Vec<Vec<u8>> {
    expand(w, |b| match b {
        b'/' => vec![b"/".to_vec(), b"\\/".to_vec()],
        _ => vec![vec![b]],
    })
}

/// All ASCII case variants of `s`.
pub(super) fn case_variants(s: &[u8]) -> Vec<Vec<u8>> {
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
pub(super) struct Window {
    pub(super) offset: usize,
    pub(super) len: usize,
    freq: f64,
    pub(super) spellings: usize,
}

/// Pick one anchor window per needle so that all spellings fit in `budget` patterns and the
/// anchors' summed estimated frequency (expected hits to verify) is least: a small knapsack,
/// solved exactly. `None` when they cannot fit. `folds`: the searcher folds ASCII case
/// (one pattern for all cases) and tests `fingerprint` bytes: windows are that long.
pub(super) fn plan_anchors(
    needles: &[Vec<u8>],
    budget: usize,
    folds: Option<usize>,
) -> Option<Vec<Window>> {
    if needles.len() > budget {
        return None; // each needle needs a spelling at least
    }
    let options: Vec<Vec<Window>> = needles
        .iter()
        .map(|n| {
            let mut ws = Vec::new();
            let lens = match folds {
                Some(fingerprint) => vec![fingerprint],
                None => vec![3usize, 4],
            };
            for len in lens {
                let len = len.min(n.len());
                for offset in 0..=n.len() - len {
                    let w = &n[offset..offset + len];
                    ws.push(Window {
                        offset,
                        len,
                        freq: window_freq(w),
                        spellings: spellings_count(w, folds.is_some()),
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
