"""imds-scan: find cloud Instance Metadata API access (MITRE ATT&CK T1552.005) in ECS NDJSON logs.

>>> from imds_scan import scan
>>> result = scan(["logs/*.ndjson"])          # doctest: +SKIP
>>> for hit in result.hits: print(hit.source, hit.line, hit.branch)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from .eql import EqlError, compile_rule
from .rules import Rule, default_rules
from .scan import (
    Engine,
    FileResult,
    Hit,
    InputError,
    ScanResult,
    ScanStats,
    expand_inputs,
    run_scan,
)

__all__ = [
    "EqlError",
    "FileResult",
    "Hit",
    "InputError",
    "Rule",
    "ScanResult",
    "ScanStats",
    "compile_rule",
    "default_rules",
    "scan",
]


def scan(
    paths: Sequence[str],
    *,
    rules: Sequence[Rule] | None = None,
    engine: Engine = "rust",
    threads: int = 0,
) -> ScanResult:
    """Scan files, directories or globs with the given rules (default: the bundled rule)."""
    return run_scan(
        expand_inputs(paths),
        default_rules() if rules is None else rules,
        engine=engine,
        threads=threads,
    )
