//! The projected parse's skipping paths against the full parse and serde_json (bounded
//! proptest, as tests/fuzz_props.rs): members no projected path reads are passed over without
//! being built, and must still make a line malformed exactly when, and as, the full parse
//! does. The lines put what is hard for a skip into those members: escapes and `\\"` runs,
//! brackets and commas inside strings, strings around the 16- and 32-byte steps of the string
//! scan, numbers and words of every shape (broken ones too), invalid UTF-8 and control bytes,
//! nesting, repeated keys of which one copy is read, and lines cut or damaged inside them.

mod props_config;
use props_config::config;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod fuzz_model;
use fuzz_model::{builder_verdict, open_rules_verdict, projection_verdict};

/// Pieces of a string's contents (between its quotes), most of them hard for a string scan.
const STRING_PIECES: &[&[u8]] = &[
    b"a",
    b"x.y",
    b"\\\"",
    b"\\\\",
    b"\\\\\\\"",
    b"\\\\\\\\",
    b"\\/",
    b"\\n\\t\\r\\b\\f",
    b"\\u0041",
    b"\\u00e9",
    b"\\ud800",
    b"\\ud83d\\ude00",
    b"\\uDC00",
    b"\\u12G4",
    b"\\u12",
    b"\\x",
    b"\\",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\":\"",
    b"\xc3\xa9",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\x01",
    b"\x1f",
    b"\t",
    b"\x7f",
    b"xxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

/// Scalars, valid and not.
const SCALARS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"12",
    b"1.5e3",
    b"1E-07",
    b"-12.50",
    b"123456789012345678901234567890",
    b"1e400",
    b"01",
    b"1.",
    b"-",
    b"1e+",
    b".5",
    b"+1",
    b"true",
    b"false",
    b"null",
    b"tru",
    b"fals",
    b"nul",
    b"nulls",
    b"NaN",
];

/// Keys: the projected ones (`a`, `a.b`, `b`), others that share their first byte, and
/// escaped or broken ones.
const KEYS: &[&[u8]] = &[
    b"a", b"a.b", b"b", b"ab", b"s", b"t.u", b"\\u0061", b"a\\\"", b"", b"k\x01",
];

fn string() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(STRING_PIECES), 0..6).prop_map(|pieces| {
        let mut out = vec![b'"'];
        for piece in pieces {
            out.extend_from_slice(piece);
        }
        out.push(b'"');
        out
    })
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(|k| [b"\"", k, b"\""].concat()),
        1 => string(),
    ]
}

/// A JSON value (or a near miss), nested a few levels.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        3 => string(),
        2 => prop::sample::select(SCALARS).prop_map(<[u8]>::to_vec),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                let mut out = vec![b'['];
                out.extend(items.join(&b","[..]));
                out.push(b']');
                out
            }),
            prop::collection::vec((key(), inner), 0..4).prop_map(|members| {
                let mut out = vec![b'{'];
                for (i, (k, v)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend(k);
                    out.push(b':');
                    out.extend(v);
                }
                out.push(b'}');
                out
            }),
        ]
    })
}

/// What is done to the line: nothing, or a cut, a byte inserted or removed, a bracket of the
/// other kind, anywhere (so mostly inside a skipped member).
#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    /// A bracket (or brace) made the other kind: `{` `[`, `}` `]`.
    Swap(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), prop::sample::select(&b"\"\\{}[],: 0e-\x01\xff"[..]))
            .prop_map(|(at, b)| Damage::Insert(at, b)),
        1 => any::<usize>().prop_map(Damage::Remove),
        1 => any::<usize>().prop_map(Damage::Swap),
    ]
}

/// Plain members `"key":"value"` (no escape, no space), as most of a real line is: runs of
/// them are passed over from one scan.
fn plain_member() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, bool)> {
    let plain = prop_oneof![
        Just(&b"\"\""[..]),
        Just(&b"\"v\""[..]),
        Just(&b"\"process\""[..]),
        Just(&b"\"2024-05-06T00:59:04.180Z\""[..]),
        Just(&b"\"36d6f749-9725-54f5-8fe1-8562bee8d735\""[..]),
        Just(&b"\"a\\\"b\""[..]),
        Just(&b"12"[..]),
    ];
    (key(), plain).prop_map(|(k, v)| (k, v.to_vec(), false))
}

/// An object of members with those keys and values, optional spaces, optionally a long last
/// member (so that the others have 64 bytes after them, as most members of a real line do),
/// then the damage.
fn line() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            prop_oneof![(key(), value(), any::<bool>()), plain_member()],
            0..10,
        ),
        any::<bool>(),
        damage(),
    )
        .prop_map(|(members, tail, damage)| {
            let mut out = vec![b'{'];
            for (i, (k, v, spaced)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(k);
                out.extend_from_slice(if spaced { b" : " } else { b":" });
                out.extend(v);
            }
            if tail {
                out.extend(format!(r#","z":"{}""#, "x".repeat(70)).bytes());
            }
            out.push(b'}');
            let n = out.len();
            match damage {
                Damage::None => {}
                Damage::Truncate(at) => out.truncate(at % n),
                Damage::Insert(at, b) => out.insert(at % n, b),
                Damage::Remove(at) => {
                    out.remove(at % n);
                }
                Damage::Swap(at) => {
                    let brackets: Vec<usize> =
                        (0..n).filter(|&i| b"{}[]".contains(&out[i])).collect();
                    let i = brackets[at % brackets.len()];
                    out[i] = match out[i] {
                        b'{' => b'[',
                        b'[' => b'{',
                        b'}' => b']',
                        _ => b'}',
                    };
                }
            }
            // A `\n` would make two lines, where the properties expect one.
            for b in &mut out {
                if *b == b'\n' {
                    *b = b' ';
                }
            }
            out
        })
}

/// Projections: nothing, one of the keys, or a path below one (so that `a`'s value is
/// walked into and its other members skipped).
const FIELDS: &[&str] = &["a", "a.b", "b", "a.a", "s.x"];

fn fields() -> impl Strategy<Value = Vec<&'static str>> {
    prop::sample::subsequence(FIELDS, 0..3)
}

fn fail(e: String) -> TestCaseError {
    TestCaseError::fail(e)
}

proptest! {
    #![proptest_config(config(1500))]

    /// Skipped members decide the verdict (and its reason) as the full parse does, and the
    /// full parse as serde_json does; the projected fields have the full parse's values.
    #[test]
    fn skipped_members_are_checked_as_the_full_parse_checks_them(
        line in line(),
        fields in fields(),
    ) {
        // (The model's document spells exponents as serde_json rewrites them: `1.5e+3`.)
        let exponent = line.windows(2).any(|w| w[0].is_ascii_digit() && b"eE".contains(&w[1]));
        if !exponent {
            builder_verdict(&line).map_err(fail)?;
        }
        projection_verdict(&line, &fields).map_err(fail)?;
    }

    /// The same for a projection by rule, with some rules closed (their paths skipped).
    #[test]
    fn members_of_closed_rules_are_checked_as_the_full_parse_checks_them(
        line in line(),
        rules in prop::collection::vec((fields(), any::<bool>()), 1..4),
    ) {
        let (rules, open): (Vec<Vec<&str>>, Vec<bool>) = rules.into_iter().unzip();
        open_rules_verdict(&line, &rules, &open).map_err(fail)?;
    }
}
