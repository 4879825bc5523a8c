"""Field types: the ECS fields of type ``ip``. Every other field compares as a keyword string."""

from __future__ import annotations

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


def field_type(field: str) -> str:
    """``"ip"`` for ECS ip-typed fields, else ``"keyword"``."""
    return "ip" if field in IP_FIELDS else "keyword"
