"""Hit filters: host globs compiled into the rule IR, time windows applied to hits.

Host filters run inside the engine (both engines consume the IR), so excluded hosts never cost
a hit object. Time filters run on hits: in the Rust engine as it finds them (from the parsed
event's @timestamp, with the same grammar: crates/imds-core/src/scan/forms.rs), else here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .reference.event import field_values
from .rules import Rule
from .timestamp import parse_event_time

HOST_FIELD = "host.name"
TIMESTAMP_FIELD = "@timestamp"

_RELATIVE = re.compile(r"\s*(\d+)\s*([smhdw])\s*", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# Elasticsearch's default date format, `strict_date_optional_time||epoch_millis`, as
# spec/semantics.md (@timestamp) writes it down; crates/imds-core/src/timestamp.rs is the same.


class FilterError(ValueError):
    """A filter value that cannot be understood (e.g. an unparsable --since)."""


# ---------------------------------------------------------------- hosts (in the rule IR)


def _host_pred(globs: Sequence[str]) -> dict[str, Any]:
    return {
        "node": "pred",
        "field": HOST_FIELD,
        "field_type": "keyword",
        "op": "wildcard",
        "values": list(globs),
    }


def host_filter_node(
    include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> dict[str, Any] | None:
    """The conjunct selecting ``host.name``: some value matches an include glob (if any are
    given) and no value matches an exclude glob. None when there is nothing to filter."""
    conjuncts: list[dict[str, Any]] = []
    if include:
        conjuncts.append(_host_pred(include))
    if exclude:
        conjuncts.append({"node": "not", "arg": _host_pred(exclude)})
    if not conjuncts:
        return None
    return conjuncts[0] if len(conjuncts) == 1 else {"node": "and", "args": conjuncts}


def with_host_filter(
    rules: Sequence[Rule], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Rule]:
    """Rules whose every branch also requires the host filter (same ids, names, branches).

    The filter is the *first* conjunct: a true ``not`` or a single ``pred`` is never an
    *under-or* witness entry and the branch's own entries come last, so the reported
    ``matched`` is the same as without the filter (spec/ir.md, Witness).
    """
    node = host_filter_node(include, exclude)
    if node is None:
        return list(rules)
    for glob in [*include, *exclude]:
        if not glob:
            raise FilterError("an empty --host/--exclude-host glob matches nothing")
    filtered = []
    for rule in rules:
        ir = rule.map_conditions(lambda expr: {"node": "and", "args": [node, expr]})
        filtered.append(dataclasses.replace(rule, ir=ir))
    return filtered


# ---------------------------------------------------------------- time (on hits)


def as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC (ECS @timestamp is UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time_bound(text: str, now: datetime | None = None) -> datetime:
    """``--since``/``--until``: ISO 8601 (a date, or a date and time; naive = UTC) or a
    duration back from now: ``30s``, ``15m``, ``12h``, ``7d``, ``2w``."""
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2).lower()
        try:
            return (now or datetime.now(UTC)) - timedelta(**{_UNITS[unit]: amount})
        except OverflowError:  # before year 1, or more than timedelta holds
            raise FilterError(f"{text!r} reaches back before the year 1") from None
    try:
        return as_utc(datetime.fromisoformat(text.strip()))
    except OverflowError:  # its zone takes it past year 1 or 9999 in UTC
        raise FilterError(f"{text!r} is out of range in UTC") from None
    except ValueError:
        raise FilterError(
            f"{text!r} is neither an ISO 8601 date/time (2024-05-01, 2024-05-01T12:00:00Z) "
            "nor a duration back from now (30m, 12h, 7d, 2w)"
        ) from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else (as_utc(moment) - _EPOCH) // timedelta(microseconds=1)


def event_time(doc: dict[str, Any]) -> datetime | None:
    """The event's @timestamp (the first value if several), None if missing or unparsable."""
    for value in field_values(doc, [TIMESTAMP_FIELD]):
        return parse_event_time(value)
    return None


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """Half-open ``[since, until)`` on @timestamp; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None

    def micros(self) -> tuple[int | None, int | None]:
        """The bounds in microseconds since the epoch (as the Rust engine takes them)."""
        return (_micros(self.since), _micros(self.until))

    def contains(self, moment: datetime | None) -> bool:
        """Without a bound, everything passes; with one, an event without a parsable
        @timestamp is excluded (it cannot be shown to fall inside)."""
        if not self.active:
            return True
        if moment is None:
            return False
        if self.since is not None and moment < self.since:
            return False
        return not (self.until is not None and moment >= self.until)
