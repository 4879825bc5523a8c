//! A field's values read as its Elasticsearch type (spec/ir.md, "Field types"), and the typed
//! comparisons of predicates and expressions.
//!
//! Values are read from their flattened text and whether it was a JSON number (integer types
//! read a JSON number with a fraction through a double, a string exactly); `true`/`false` read
//! like `"true"`/`"false"`.

use crate::ip::parse_ip;
use crate::ir::FieldType;
use crate::timestamp::{date_literal_span, parse_timestamp};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A value at run time (spec/ir.md, "Expressions"): also what a typed field's value reads as.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (any integer type; arithmetic keeps results within `long`).
    Int(i128),
    /// A double (float and half_float values are rounded to their type first).
    Float(f64),
    /// A string.
    Str(Cow<'a, str>),
    /// An instant, in microseconds since the epoch.
    Date(i64),
    /// An address.
    Ip([u8; 16]),
}

impl Val<'_> {
    /// The same value, owning its text.
    pub fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Int(n) => Val::Int(n),
            Val::Float(x) => Val::Float(x),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Date(d) => Val::Date(d),
            Val::Ip(a) => Val::Ip(a),
        }
    }
}

/// `text` lowercased code point by code point as Java's `Character.toLowerCase(int)` does
/// (the simple Unicode mapping, one table with the analyzers: [`crate::analysis::lowercase`]):
/// the `lowercase` normalizer (spec/ir.md, "KQL additions").
pub fn java_lowercase(text: &str) -> Cow<'_, str> {
    let lower = crate::analysis::lowercase(text);
    if lower == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(lower)
    }
}

/// Java's `String.length()`: UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// `text` (a JSON number's text when `json_number`) read as a value of `field_type`, or `None`
/// when Elasticsearch would not index it (spec/semantics.md, "Reading values by type").
pub fn read(field_type: FieldType, text: Cow<'_, str>, json_number: bool) -> Option<Val<'_>> {
    Some(match field_type {
        // Text and wildcard fields in expressions and join keys: their text, as keyword.
        FieldType::Keyword | FieldType::Text | FieldType::Wildcard => Val::Str(text),
        FieldType::Ip => Val::Ip(parse_ip(&text)?),
        // A date field keeps milliseconds: later digits are dropped, toward the past.
        FieldType::Date => Val::Date(parse_timestamp(&text)?.div_euclid(1000) * 1000),
        FieldType::Boolean => match &*text {
            "true" => Val::Bool(true),
            "false" | "" => Val::Bool(false),
            _ => return None,
        },
        FieldType::Double | FieldType::ScaledFloat => Val::Float(java_double(&text)?),
        FieldType::Float => Val::Float(java_float(&text)?.into()),
        FieldType::HalfFloat => Val::Float(half(java_float(&text)?)?),
        integer => {
            let (min, max) = integer.integer_range().expect("the other types are above");
            let n = read_integer(integer, &text, json_number)?;
            if !(min..=max).contains(&n) {
                return None;
            }
            Val::Int(n)
        }
    })
}

/// An integer type's reading, before its range check (Elasticsearch's
/// `AbstractXContentParser.longValue`/`intValue`/`shortValue`, `NumberFieldMapper.BYTE`,
/// `UnsignedLongFieldMapper.parseUnsignedLong`).
fn read_integer(t: FieldType, text: &str, json_number: bool) -> Option<i128> {
    let plain = !text.contains(['.', 'e', 'E']);
    let long_range = i128::from(i64::MIN)..=i128::from(i64::MAX);
    let int_range = i128::from(i32::MIN)..=i128::from(i32::MAX);
    if json_number {
        if plain {
            let n: i128 = text.parse().ok()?;
            // Jackson reads an int or a long; past them the number is refused.
            return match t {
                FieldType::Long => long_range.contains(&n).then_some(n),
                FieldType::UnsignedLong => Some(n),
                _ => int_range.contains(&n).then_some(n),
            };
        }
        // A fraction or an exponent: a double first.
        let x: f64 = text.parse().ok()?;
        if !x.is_finite() {
            return None;
        }
        return match t {
            // Whole only; past 2^63 - 1 saturates (Double.longValue).
            FieldType::UnsignedLong => (x.fract() == 0.0).then(|| {
                if x >= 2f64.powi(63) {
                    i64::MAX.into()
                } else {
                    x as i128
                }
            }),
            FieldType::Long => {
                let n = x.trunc();
                (n >= -(2f64.powi(63)) && n < 2f64.powi(63)).then_some(n as i128)
            }
            _ => {
                let n = x.trunc();
                (n >= f64::from(i32::MIN) && n <= f64::from(i32::MAX)).then_some(n as i128)
            }
        };
    }
    match t {
        FieldType::Long => {
            if let Some(n) = java_long(text) {
                return Some(n);
            }
            let d = Decimal::parse(text)?;
            // Elasticsearch's shortcut: a scale past 19 digits is 0, below -19 out of range.
            let scale = -d.exponent;
            if scale > 19 {
                return Some(0);
            }
            if scale < -19 {
                return None;
            }
            d.truncate()
        }
        FieldType::UnsignedLong => {
            let digits = text.strip_prefix('+').unwrap_or(text);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                return digits.parse::<u64>().ok().map(i128::from);
            }
            Decimal::parse(text)?.integer()
        }
        FieldType::Byte => {
            // Truncated to an int (Java's cast: NaN is 0, saturating), then range-checked.
            let x = java_double_any(text)?;
            Some(if x.is_nan() {
                0
            } else {
                x.trunc().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i128
            })
        }
        _ => {
            // integer, short: the double is range-checked before it is truncated.
            let x = java_double_any(text)?;
            if x.is_nan() {
                return Some(0);
            }
            let (min, max) = t.integer_range().expect("an integer type");
            (x >= min as f64 && x <= max as f64).then(|| x.trunc() as i128)
        }
    }
}

/// A literal of a predicate on `field_type`, as the compiler wrote it: read the way the
/// field's values are, except that numbers on integer fields keep their fraction (a literal
/// with a fraction never equals an integer; `80.0` and `8e1` are 80). `None`: refused.
pub fn read_literal(field_type: FieldType, text: &str) -> Option<Val<'static>> {
    if field_type.integer_range().is_some() {
        return exact_number(text);
    }
    read(field_type, Cow::Borrowed(text), false).map(Val::into_owned)
}

/// A predicate's literal as the first and last value it stands for: the same value except on a
/// date field, where a literal covers everything up to its components' round-up
/// (`date_literal_span`; Elasticsearch's range and term queries on dates).
pub fn read_literal_span(
    field_type: FieldType,
    text: &str,
) -> Option<(Val<'static>, Val<'static>)> {
    if field_type == FieldType::Date {
        let (low, high) = date_literal_span(text)?;
        return Some((Val::Date(low), Val::Date(high)));
    }
    read_literal(field_type, text).map(|v| (v.clone(), v))
}

/// A decimal number as exactly as it can be held: an integer when it has no fraction (and
/// fits 128 bits), else a double. `None` when it is not BigDecimal syntax.
pub fn exact_number(text: &str) -> Option<Val<'static>> {
    let decimal = Decimal::parse(text)?;
    match decimal.integer() {
        Some(n) => Some(Val::Int(n)),
        None => java_double(text).map(Val::Float),
    }
}

/// How two values compare, when they are of comparable kinds: numbers by value (exactly
/// between integers and doubles), strings by code point, booleans (`false` first), instants,
/// addresses as 16 bytes.
pub fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y),
        (Val::Int(x), Val::Float(y)) => int_float(*x, *y),
        (Val::Float(x), Val::Int(y)) => int_float(*y, *x).map(Ordering::reverse),
        (Val::Str(x), Val::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Date(x), Val::Date(y)) => Some(x.cmp(y)),
        (Val::Ip(x), Val::Ip(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// An integer against a double, exactly (no rounding of either).
fn int_float(n: i128, x: f64) -> Option<Ordering> {
    if x.is_nan() {
        return None;
    }
    // 2^127: beyond every i128.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if x >= LIMIT {
        return Some(Ordering::Less);
    }
    if x < -LIMIT {
        return Some(Ordering::Greater);
    }
    let t = x.trunc();
    // |t| < 2^127 and integral: exact as an i128.
    Some(n.cmp(&(t as i128)).then(if x > t {
        Ordering::Less
    } else if x < t {
        Ordering::Greater
    } else {
        Ordering::Equal
    }))
}

/// Java's `Long.parseLong`: an optional sign and ASCII digits, within `long`.
fn java_long(text: &str) -> Option<i128> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i128 = digits.parse().ok()?;
    let n = if text.starts_with('-') { -n } else { n };
    (i128::from(i64::MIN)..=i128::from(i64::MAX))
        .contains(&n)
        .then_some(n)
}

/// A number in Java's `BigDecimal` syntax: `[+-]? (digits [. digits?] | . digits)
/// ([eE] [+-]? digits)?`, the exponent within an `int`.
struct Decimal {
    negative: bool,
    /// The digits, integer part then fraction, without the point.
    digits: String,
    /// The value is `digits × 10^(exponent)`.
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.find('.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !all_digits(digits) {
                    return None;
                }
                // BigDecimal refuses an exponent beyond an int.
                let value: i64 = e.parse().ok()?;
                i32::try_from(value).ok()?;
                value
            }
        };
        Some(Decimal {
            negative,
            digits: format!("{int}{frac}"),
            exponent: exponent - frac.len() as i64,
        })
    }

    /// The integer part (truncated toward zero), when it fits 128 bits comfortably.
    fn truncate(&self) -> Option<i128> {
        let significant = self.digits.trim_start_matches('0');
        let digits = if self.exponent >= 0 {
            if significant.is_empty() {
                return Some(0);
            }
            if significant.len() as i64 + self.exponent > 30 {
                return None;
            }
            format!("{significant}{}", "0".repeat(self.exponent as usize))
        } else {
            let drop = self.exponent.unsigned_abs();
            if drop >= significant.len() as u64 {
                return Some(0);
            }
            significant[..significant.len() - drop as usize].to_owned()
        };
        if digits.len() > 30 {
            return None;
        }
        let n: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        Some(if self.negative { -n } else { n })
    }

    /// The value when it is an integer (no nonzero fraction digit).
    fn integer(&self) -> Option<i128> {
        if self.exponent < 0 {
            let drop = self.exponent.unsigned_abs();
            let tail = self
                .digits
                .len()
                .saturating_sub(drop.min(usize::MAX as u64) as usize);
            if drop > self.digits.len() as u64 {
                if self.digits.bytes().any(|b| b != b'0') {
                    return None;
                }
            } else if self.digits[tail..].bytes().any(|b| b != b'0') {
                return None;
            }
        }
        self.truncate()
    }
}

/// The text of a Java floating-point literal (`Double.parseDouble`'s grammar, decimal form:
/// surrounding spaces and control characters trimmed, a sign, digits with an optional point
/// and exponent of any length, an optional `f`/`d` suffix), ready for Rust's parser; `None`
/// otherwise (`NaN`, `Infinity` and hexadecimal floats are read by `java_double_any`).
fn java_float_text(text: &str) -> Option<&str> {
    let text = text.trim_matches(|c: char| c <= ' ');
    let body = text.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(text);
    let unsigned = body.strip_prefix(['+', '-']).unwrap_or(body);
    let (mantissa, exponent) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, "0"));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // Rust's parser saturates a long exponent as Java's does (to an infinity or zero).
    let ok = int.len() + frac.len() > 0
        && !exponent.is_empty()
        && digits(int)
        && digits(frac)
        && digits(exponent);
    ok.then_some(body)
}

/// `Double.parseDouble` of any result (`NaN`, infinities, hexadecimal floating point too).
pub fn java_double_any(text: &str) -> Option<f64> {
    if let Some(body) = java_float_text(text) {
        return body.parse().ok();
    }
    let t = text.trim_matches(|c: char| c <= ' ');
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let sign = if negative { -1.0 } else { 1.0 };
    match body {
        "NaN" => return Some(f64::NAN),
        "Infinity" => return Some(sign * f64::INFINITY),
        _ => {}
    }
    hex_float(body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body)).map(|x| sign * x)
}

/// Java's hexadecimal floating point: `0x` hex digits, optional `.` fraction, `p` exponent.
fn hex_float(body: &str) -> Option<f64> {
    let rest = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))?;
    let (mantissa, exponent) = rest.split_once(['p', 'P'])?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let hex = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    if int.len() + frac.len() == 0 || !hex(int) || !hex(frac) {
        return None;
    }
    let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exponent = exponent
        .parse::<i64>()
        .unwrap_or(if exponent.starts_with('-') {
            -5000
        } else {
            5000
        });
    let exponent = exponent.clamp(-5000, 5000) as i32;
    let mut value = 0f64;
    for c in int.chars().chain(frac.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    Some(value * 2f64.powi(exponent - 4 * frac.len() as i32))
}

/// `Double.parseDouble`, finite.
fn java_double(text: &str) -> Option<f64> {
    let x = java_double_any(text)?;
    x.is_finite().then_some(x)
}

/// `Float.parseFloat` (rounded once, to the nearest binary32), finite.
fn java_float(text: &str) -> Option<f32> {
    let x: f32 = match java_float_text(text) {
        Some(body) => body.parse().ok()?,
        None => java_double_any(text)? as f32,
    };
    x.is_finite().then_some(x)
}

/// A binary32 rounded to the nearest binary16 (ties to even), finite.
fn half(x: f32) -> Option<f64> {
    let x = f64::from(x);
    if x == 0.0 {
        return Some(x);
    }
    // Normal halves have 11 significant bits; below 2^-14 the spacing is 2^-24.
    let exponent = x.abs().log2().floor().max(-14.0);
    let ulp = (exponent - 10.0).exp2();
    let rounded = (x / ulp).round_ties_even() * ulp;
    (rounded.abs() <= 65504.0).then_some(rounded)
}

/// Java's `Double.toString` (what `string()` of a double gives): the shortest digits that
/// read back to the same double, at least two (of those, the closest; on a tie the even one,
/// as Java's), as `ddd.ddd` between 10^-3 and 10^7, else `d.dddEn`.
pub fn java_double_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let magnitude = x.abs();
    if magnitude == 0.0 {
        return format!("{sign}0.0");
    }
    // Rust's shortest form gives the length; on a tie between two shortest decimals it may
    // take the odd one, so the digits come from the exact rounding (ties to even) at that
    // length, which is the closest decimal of that length and so reads back too.
    let shortest = format!("{magnitude:e}");
    // Java never gives one digit alone: it takes the closest of two (4.9E-324, not 5.0E-324).
    let length = (shortest.split_once('e')).map_or(2, |(m, _)| m.replace('.', "").len().max(2));
    let exact = format!("{magnitude:.*e}", length - 1);
    let (mantissa, exponent) = exact.split_once('e').expect("{:e} has an exponent");
    let digits = mantissa.replace('.', "");
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let exponent: i64 = exponent.parse().expect("an integer exponent");
    if (1e-3..1e7).contains(&magnitude) {
        // The value is 0.digits × 10^point.
        let point = exponent + 1;
        let len = digits.len() as i64;
        return if point <= 0 {
            format!(
                "{sign}0.{}{digits}",
                "0".repeat(point.unsigned_abs() as usize)
            )
        } else if point >= len {
            format!("{sign}{digits}{}.0", "0".repeat((point - len) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{sign}{a}.{b}")
        };
    }
    let (first, rest) = digits.split_at(1);
    let rest = if rest.is_empty() { "0" } else { rest };
    format!("{sign}{first}.{rest}E{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: FieldType, text: &str) -> Option<Val<'static>> {
        read(t, Cow::Borrowed(text), false).map(Val::into_owned)
    }

    #[test]
    fn integers_truncate_and_check_their_range() {
        use FieldType::*;
        assert_eq!(r(Long, "80"), Some(Val::Int(80)));
        assert_eq!(r(Long, "80.9"), Some(Val::Int(80)));
        assert_eq!(r(Long, "-80.9"), Some(Val::Int(-80)));
        assert_eq!(r(Long, "8e1"), Some(Val::Int(80)));
        assert_eq!(r(Long, "+7"), Some(Val::Int(7)));
        assert_eq!(r(Long, ".5"), Some(Val::Int(0)));
        assert_eq!(r(Long, "5."), Some(Val::Int(5)));
        assert_eq!(r(Long, "1e-400"), Some(Val::Int(0)));
        assert_eq!(r(Long, "80.00000000000000000001"), Some(Val::Int(0)));
        assert_eq!(r(Long, "0e20"), None);
        let json = |t, text| read(t, Cow::Borrowed(text), true).map(Val::into_owned);
        assert_eq!(
            json(Long, "9007199254740993.5"),
            Some(Val::Int(9_007_199_254_740_994))
        );
        assert_eq!(
            r(Long, "9007199254740993.5"),
            Some(Val::Int(9_007_199_254_740_993))
        );
        assert_eq!(json(UnsignedLong, "1e19"), Some(Val::Int(i64::MAX.into())));
        assert_eq!(json(UnsignedLong, "5.5"), None);
        assert_eq!(r(Integer, " 5 "), Some(Val::Int(5)));
        assert_eq!(r(Integer, "0x1.4p2"), Some(Val::Int(5)));
        assert_eq!(r(Integer, "NaN"), Some(Val::Int(0)));
        assert_eq!(r(Integer, "2147483647.5"), None);
        assert_eq!(json(Integer, "2147483647.5"), Some(Val::Int(2_147_483_647)));
        assert_eq!(r(Byte, "127.9"), Some(Val::Int(127)));
        assert_eq!(
            r(Long, "9223372036854775807"),
            Some(Val::Int(i64::MAX.into()))
        );
        assert_eq!(r(Long, "9223372036854775808"), None);
        assert_eq!(
            r(UnsignedLong, "18446744073709551615"),
            Some(Val::Int(u64::MAX.into()))
        );
        assert_eq!(r(UnsignedLong, "-1"), None);
        assert_eq!(r(Byte, "127"), Some(Val::Int(127)));
        assert_eq!(r(Byte, "128"), None);
        assert_eq!(r(Short, "-32768"), Some(Val::Int(-32768)));
        assert_eq!(r(Integer, "2147483648"), None);
        for bad in [
            "",
            "abc",
            "0x10",
            "1 ",
            " 1",
            "NaN",
            "true",
            "1e",
            "-",
            ".",
            "1e99999999999",
            "1_0",
        ] {
            assert_eq!(r(Long, bad), None, "{bad:?}");
        }
        assert_eq!(r(Long, "1e30"), None);
        assert_eq!(r(UnsignedLong, "5.0"), Some(Val::Int(5)));
        assert_eq!(r(UnsignedLong, "+05"), Some(Val::Int(5)));
        assert_eq!(r(UnsignedLong, "-0"), Some(Val::Int(0)));
        assert_eq!(r(UnsignedLong, "5.5"), None);
    }

    #[test]
    fn floats_round_to_their_type() {
        use FieldType::*;
        assert_eq!(r(Double, "0.1"), Some(Val::Float(0.1)));
        assert_eq!(r(Double, " 1.5d "), Some(Val::Float(1.5)));
        assert_eq!(r(Double, "1e400"), None);
        assert_eq!(r(Double, "NaN"), None);
        assert_eq!(r(Float, "0.1"), Some(Val::Float(f64::from(0.1f32))));
        assert_eq!(r(HalfFloat, "0.1"), Some(Val::Float(0.0999755859375)));
        assert_eq!(r(HalfFloat, "65504"), Some(Val::Float(65504.0)));
        assert_eq!(r(HalfFloat, "65520"), None);
        assert_eq!(r(HalfFloat, "1e-8"), Some(Val::Float(0.0)));
        assert_eq!(r(HalfFloat, "6e-8"), Some(Val::Float(2f64.powi(-24))));
    }

    #[test]
    fn other_types() {
        use FieldType::*;
        assert_eq!(r(Boolean, ""), Some(Val::Bool(false)));
        assert_eq!(r(Boolean, "true"), Some(Val::Bool(true)));
        assert_eq!(r(Boolean, "True"), None);
        assert_eq!(r(Date, "2017-08-30T20:47:33Z"), r(Date, "1504126053000"));
        assert!(r(Ip, "10.0.0.1").is_some());
        assert_eq!(r(Ip, "10.0.0.01"), None);
    }

    #[test]
    fn literals_keep_their_fraction_on_integer_fields() {
        assert_eq!(read_literal(FieldType::Long, "80.0"), Some(Val::Int(80)));
        assert_eq!(read_literal(FieldType::Long, "8e1"), Some(Val::Int(80)));
        assert_eq!(
            read_literal(FieldType::Long, "80.5"),
            Some(Val::Float(80.5))
        );
        assert_eq!(read_literal(FieldType::Long, "abc"), None);
    }

    #[test]
    fn integers_and_doubles_compare_exactly() {
        let big = Val::Int(9_007_199_254_740_993); // 2^53 + 1
        assert_eq!(
            compare(&big, &Val::Float(9_007_199_254_740_992.0)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&Val::Int(80), &Val::Float(80.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(&Val::Int(-80), &Val::Float(-80.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&Val::Float(80.0), &Val::Int(80)),
            Some(Ordering::Equal)
        );
        assert_eq!(compare(&Val::Int(1), &Val::Str("1".into())), None);
    }

    #[test]
    fn doubles_print_as_java_does() {
        for (x, s) in [
            (42.5, "42.5"),
            (1.0, "1.0"),
            (1e7, "1.0E7"),
            (1.5e-4, "1.5E-4"),
            (0.001, "0.001"),
            (-0.0, "-0.0"),
            (123456.789, "123456.789"),
            // Two shortest decimals equally near (…931.125): the even one, as Java's.
            (86_517_696_840_931.12, "8.651769684093112E13"), // exactly …931.125
            (1_266_801_553_342_592.2, "1.2668015533425922E15"),
            (9_999_999.0, "9999999.0"),
            (1e-3, "0.001"),
            (9.999e-4, "9.999E-4"),
            (1e22, "1.0E22"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            // One digit would do: Java takes the closest of two digits.
            (5e-324, "4.9E-324"),
            (1e-323, "9.9E-324"),
            (2e23, "2.0E23"),
            (f64::MAX, "1.7976931348623157E308"),
            (-0.5, "-0.5"),
            (100.0, "100.0"),
        ] {
            assert_eq!(java_double_string(x), s);
        }
    }
}
