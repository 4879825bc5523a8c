"""imds-scan: find cloud Instance Metadata API access (MITRE ATT&CK T1552.005) in ECS NDJSON logs.

>>> from imds_scan import ScanConfig, scan
>>> result = scan(["logs/*.ndjson"], config=ScanConfig(hosts=("web-*",)))  # doctest: +SKIP
>>> result.frame.group_by("host.name").len()  # doctest: +SKIP
"""

from __future__ import annotations

from .eql import EqlError, compile_rule
from .filters import FilterError
from .rules import Rule, default_rules
from .scan import (
    Engine,
    FileResult,
    Hit,
    InputError,
    ScanConfig,
    ScanInterrupted,
    ScanResult,
    ScanStats,
    expand_inputs,
    run_scan,
    scan,
)

__all__ = [
    "Engine",
    "EqlError",
    "FileResult",
    "FilterError",
    "Hit",
    "InputError",
    "Rule",
    "ScanConfig",
    "ScanInterrupted",
    "ScanResult",
    "ScanStats",
    "compile_rule",
    "default_rules",
    "expand_inputs",
    "run_scan",
    "scan",
]
