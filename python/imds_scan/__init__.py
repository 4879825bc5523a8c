"""imds-scan: find cloud Instance Metadata API access (MITRE ATT&CK T1552.005) in ECS NDJSON logs.

>>> from imds_scan import ScanConfig, scan
>>> result = scan(["logs/*.ndjson"], config=ScanConfig(hosts=("web-*",)))  # doctest: +SKIP
>>> result.frame.group_by("host.name").len()  # doctest: +SKIP
"""

from __future__ import annotations

from .engines import Engine, run_scan
from .eql import EqlError, compile_rule
from .filters import FilterError
from .records import FileResult, Hit, ScanStats
from .results import ScanInterrupted, ScanResult
from .rules import Rule, default_rules
from .run import HitIterator, ScanConfig, expand_inputs, iter_scan, scan
from .sources import InputError

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
    "compile_rule",
    "default_rules",
    "expand_inputs",
    "iter_scan",
    "run_scan",
    "scan",
]
