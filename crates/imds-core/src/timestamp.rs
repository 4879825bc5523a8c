//! `@timestamp` values as Elasticsearch's default date format reads them
//! (`strict_date_optional_time||epoch_millis`), written down in spec/semantics.md
//! (`@timestamp`); `filters.parse_event_time` in the Python layer is the same grammar, and
//! spec/vectors/timestamps.jsonl holds both to it.

/// Microseconds from the epoch of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z: what
/// a Python `datetime` can hold; anything outside is refused.
const MIN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// A value's instant in microseconds since 1970-01-01T00:00:00Z, or `None` when it is not a
/// date of the grammar (or falls outside years 1 to 9999 in UTC). Fraction digits beyond
/// the sixth are dropped (truncated).
pub fn parse_timestamp(value: &str) -> Option<i64> {
    parse_with_round_up(value).map(|(micros, _)| micros)
}

/// A date literal's first and last instant, in microseconds kept to the millisecond, as
/// Elasticsearch's range query reads it: the last instant fills the components the literal
/// leaves out with their largest value (hour 23, minute 59, second 59, fraction .999), while
/// a missing month or day is still 01; an epoch-millis literal is one millisecond.
pub fn date_literal_span(value: &str) -> Option<(i64, i64)> {
    let (micros, round_up) = parse_with_round_up(value)?;
    let low = micros.div_euclid(1000) * 1000;
    Some((low, low + round_up))
}

/// The instant and how much the round-up parser adds to it (microseconds).
fn parse_with_round_up(value: &str) -> Option<(i64, i64)> {
    let bytes = value.as_bytes();
    let (micros, round_up) = match date_time(bytes) {
        Some(found) => found,
        None => (epoch_millis(bytes)?.checked_mul(1000)?, 0),
    };
    (MIN_MICROS..=MAX_MICROS)
        .contains(&micros)
        .then_some((micros, round_up))
}

/// `-?[0-9]{1,15}`: milliseconds since the epoch.
fn epoch_millis(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if digits.len() < bytes.len() { -n } else { n })
}

/// A cursor over the value's bytes.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits, as a number.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let head = self.rest.get(..n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.rest = &self.rest[n..];
        Some(head.iter().fold(0, |v, &d| v * 10 + i64::from(d - b'0')))
    }

    /// Consume `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        match self.rest.split_first() {
            Some((&b, rest)) if b == byte => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// Consume one of `options` if it comes next.
    fn eat_any(&mut self, options: &[u8]) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        options.contains(&b).then(|| {
            self.rest = rest;
            b
        })
    }
}

/// `YYYY[-MM[-DD]][T HH[:mm[:ss[(.|,)f{1,9}]]][Z|±HH[[:]mm]]]`, checked, in UTC microseconds,
/// with the round-up to the last millisecond of the last component given (none after a
/// fraction).
fn date_time(bytes: &[u8]) -> Option<(i64, i64)> {
    let mut at = Cursor { rest: bytes };
    let year = at.digits(4)?;
    let (mut month, mut day) = (1, 1);
    if at.eat(b'-') {
        month = at.digits(2)?;
        if at.eat(b'-') {
            day = at.digits(2)?;
        }
    }
    let (mut hour, mut minute, mut second, mut micros, mut offset) = (0, 0, 0, 0, 0);
    // A bare date reaches 23:59:59.999.
    let mut round_up = 86_400_000_000 - 1000;
    if at.eat(b'T') {
        hour = at.digits(2)?;
        round_up = 3_600_000_000 - 1000;
        if at.eat(b':') {
            minute = at.digits(2)?;
            round_up = 60_000_000 - 1000;
            if at.eat(b':') {
                second = at.digits(2)?;
                round_up = 1_000_000 - 1000;
                if at.eat_any(b".,").is_some() {
                    round_up = 0;
                    let digits = at.rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    if !(1..=9).contains(&digits) {
                        return None;
                    }
                    let kept = digits.min(6);
                    micros = at.digits(kept)? * 10i64.pow(u32::try_from(6 - kept).ok()?);
                    at.digits(digits - kept);
                }
            }
        }
        if !at.eat(b'Z') {
            if let Some(sign) = at.eat_any(b"+-") {
                let hours = at.digits(2)?;
                let minutes = if at.rest.is_empty() {
                    0
                } else {
                    at.eat(b':');
                    at.digits(2)?
                };
                if minutes > 59 || hours * 60 + minutes > 18 * 60 {
                    return None;
                }
                offset = (hours * 60 + minutes) * if sign == b'-' { -1 } else { 1 };
            }
        }
    }
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    if !at.rest.is_empty() || !valid || year == 0 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    Some((seconds * 1_000_000 + micros, round_up))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a (valid) date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Years counted from March, so that the leap day ends a year; 400-year eras of 146097 days.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_up_their_missing_components() {
        let t = |s: &str| parse_timestamp(s).unwrap();
        let span = |s: &str| date_literal_span(s).unwrap();
        let day = t("2017-08-30");
        assert_eq!(span("2017-08-30"), (day, t("2017-08-30T23:59:59.999Z")));
        // A missing month or day is 01 at both ends.
        assert_eq!(
            span("2017-08"),
            (t("2017-08-01"), t("2017-08-01T23:59:59.999Z"))
        );
        assert_eq!(span("2017").1, t("2017-01-01T23:59:59.999Z"));
        assert_eq!(span("2017-08-30T20+02:00").1, t("2017-08-30T18:59:59.999Z"));
        assert_eq!(span("2017-08-30T20:47").1, t("2017-08-30T20:47:59.999Z"));
        assert_eq!(
            span("2017-08-30T20:47:33Z").1,
            t("2017-08-30T20:47:33.999Z")
        );
        // A fraction, or epoch milliseconds: one millisecond.
        let ms = t("2017-08-30T20:47:33.123Z");
        assert_eq!(span("2017-08-30T20:47:33.1239Z"), (ms, ms));
        assert_eq!(
            span("1504126053000"),
            (t("1504126053000"), t("1504126053000"))
        );
        assert_eq!(date_literal_span("bad"), None);
    }

    #[test]
    fn days_agree_with_a_day_by_day_count() {
        // Walk from 1970-01-01 forward and back over more than one 400-year era.
        let mut expected = 0;
        for year in 1970..2500 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), expected);
                    expected += 1;
                }
            }
        }
        let mut expected = 0;
        for year in (1..1970).rev() {
            for month in (1..=12).rev() {
                for day in (1..=days_in_month(year, month)).rev() {
                    expected -= 1;
                    assert_eq!(days_from_civil(year, month, day), expected);
                }
            }
        }
    }

    #[test]
    fn bounds_are_years_1_and_9999() {
        assert_eq!(parse_timestamp("0001-01-01"), Some(MIN_MICROS));
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59.999999999Z"),
            Some(MAX_MICROS)
        );
        assert_eq!(parse_timestamp("0001-01-01T00:00+00:01"), None);
        assert_eq!(parse_timestamp("9999-12-31T23:59:59-00:01"), None);
        assert_eq!(parse_timestamp("999999999999999"), None);
        assert_eq!(parse_timestamp("1970-01-01T00:00:00.000001Z"), Some(1));
        assert_eq!(parse_timestamp("-1"), Some(-1000));
    }
}
