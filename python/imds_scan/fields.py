"""Field types: the ECS fields of type ``ip``. Every other field compares as a keyword string."""

from __future__ import annotations

from collections.abc import Mapping

# ECS 8.x fields mapped as `ip` (keyword fields such as destination.address are not here).
IP_FIELDS = frozenset(
    {
        "client.ip",
        "client.nat.ip",
        "destination.ip",
        "destination.nat.ip",
        "host.ip",
        "observer.ip",
        "related.ip",
        "server.ip",
        "server.nat.ip",
        "source.ip",
        "source.nat.ip",
        "threat.enrichments.indicator.ip",
        "threat.indicator.ip",
    }
)


def field_type(field: str, overrides: Mapping[str, str] | None = None) -> str:
    """``"ip"`` for ECS ip-typed fields, else ``"keyword"``."""
    if overrides and field in overrides:  # stand-in until the `types` helper's table lands
        return overrides[field]
    return "ip" if field in IP_FIELDS else "keyword"
