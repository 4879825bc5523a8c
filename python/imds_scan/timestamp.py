"""The @timestamp grammar (Elasticsearch's default date format), apart from the filters so
that the EQL compiler can read date literals without importing the rule loader."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DATE_TIME = re.compile(
    r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?"
    r"(?:T([0-9]{2})(?::([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]{1,9}))?)?)?"
    r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)
_EPOCH_MILLIS = re.compile(r"-?[0-9]{1,15}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_event_time(value: str) -> datetime | None:
    """An @timestamp value as Elasticsearch's default date format reads it
    (``strict_date_optional_time||epoch_millis``, spec/semantics.md): a UTC datetime,
    fraction digits past the microsecond dropped; None if it does not fit the grammar or
    falls outside years 1 to 9999 in UTC."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        if _EPOCH_MILLIS.fullmatch(value) is None:
            return None
        try:
            return _EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    offset = 0
    if zone is not None and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[-2:]) if len(zone) > 3 else 0
        if minutes > 59 or hours * 60 + minutes > 18 * 60:
            return None
        offset = (hours * 60 + minutes) * (-1 if zone[0] == "-" else 1)
    try:
        local = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micros,
            tzinfo=UTC,
        )
        return local - timedelta(minutes=offset)
    except (ValueError, OverflowError):  # out of range: month 13, hour 24, year 0, ...
        return None


def round_up_micros(value: str) -> int:
    """How far past its instant a date literal reaches when Elasticsearch's range query reads
    it with the round-up parser: the components it leaves out at their largest (hour 23,
    minute 59, second 59, fraction .999; a missing month or day stays 01), in microseconds
    at millisecond precision. 0 after a fraction and for epoch milliseconds."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return 0
    hour, minute, second, fraction = match.group(4, 5, 6, 7)
    if fraction is not None:
        return 0
    if second is not None:
        unit = 1
    elif minute is not None:
        unit = 60
    else:
        unit = 86400 if hour is None else 3600
    return unit * 1_000_000 - 1000
