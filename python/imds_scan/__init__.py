"""imds-scan: find cloud Instance Metadata API access (MITRE ATT&CK T1552.005) in ECS NDJSON logs.

>>> from imds_scan import ScanConfig, scan
>>> result = scan(["logs/*.ndjson"], config=ScanConfig(hosts=("web-*",)))  # doctest: +SKIP
>>> result.frame.group_by("host.name").len()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engines import Engine, run_scan
    from .eql import EqlError, compile_rule
    from .filters import FilterError
    from .records import FileResult, Hit, ScanStats, SeqEvent
    from .results import ScanInterrupted, ScanResult
    from .rules import Rule, default_rules
    from .run import HitIterator, ScanConfig, expand_inputs, iter_scan, scan
    from .sources import InputError

# Each name is imported from its module when first used: `imds-scan` (imds_scan.cli) loads only
# what a scan needs, not every module the API exports.
_EXPORTS = {
    "Engine": "engines",
    "run_scan": "engines",
    "EqlError": "eql",
    "compile_rule": "eql",
    "FilterError": "filters",
    "FileResult": "records",
    "Hit": "records",
    "ScanStats": "records",
    "SeqEvent": "records",
    "ScanInterrupted": "results",
    "ScanResult": "results",
    "Rule": "rules",
    "default_rules": "rules",
    "HitIterator": "run",
    "ScanConfig": "run",
    "expand_inputs": "run",
    "iter_scan": "run",
    "scan": "run",
    "InputError": "sources",
}

__all__ = [
    "Engine",
    "EqlError",
    "FileResult",
    "FilterError",
    "Hit",
    "HitIterator",
    "InputError",
    "Rule",
    "ScanConfig",
    "ScanInterrupted",
    "ScanResult",
    "ScanStats",
    "SeqEvent",
    "compile_rule",
    "default_rules",
    "expand_inputs",
    "iter_scan",
    "run_scan",
    "scan",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imds_scan' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
