"""The seed rule (imds-scan's bundled default rule) as the engine compiles it: its IR and the
needles of the Rust engine's prefilter (``Scanner.needles()``). The corpus's literal guard and
near misses, the harness's needle file and the peers' queries take what the rule looks for
from here, so that bench/ restates none of it.

Only ``SeedRule.from_engine`` imports imds_scan; a peer process reads the same data from the
JSON file the harness writes (``write`` / ``from_file``), so its start-up stays its own (this
module imports nothing heavy for that reason).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _engine() -> tuple[Any, Any]:
    """(default_rules, Scanner) from the installed imds_scan, else from this checkout."""
    try:
        from imds_scan import default_rules
        from imds_scan._engine import Scanner
    except ImportError:
        sys.path.insert(0, str(REPO / "python"))
        try:
            from imds_scan import default_rules
            from imds_scan._engine import Scanner
        except ImportError as exc:
            print(
                f"bench: cannot import imds_scan's Rust engine ({exc}); run `pip install .` "
                "or build the extension into python/imds_scan first",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
    return default_rules, Scanner


class SeedRule:
    def __init__(self, ir: dict[str, Any], needles: tuple[str, ...]) -> None:
        self.ir = ir
        # Every match holds one of these in its raw bytes, in any ASCII case, unless a JSON
        # escape hides it; ASCII lower case here, as the engine folds them.
        self.needles = needles

    @classmethod
    def from_engine(cls) -> SeedRule:
        default_rules, scanner = _engine()
        (rule,) = default_rules()
        needles = scanner([json.dumps(rule.ir)]).needles()
        if not needles:
            print("bench: the engine found no prefilter needles in the seed rule", file=sys.stderr)
            raise SystemExit(2)
        return cls(rule.ir, tuple(n.translate(_ASCII_LOWER) for n in needles))

    @classmethod
    def from_file(cls, path: str | Path) -> SeedRule:
        data = json.loads(Path(path).read_text())
        return cls(data["ir"], tuple(data["needles"]))

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"ir": self.ir, "needles": list(self.needles)}) + "\n")

    def _args(self, branch: str) -> list[dict[str, Any]]:
        """The conditions ANDed in a branch."""
        expr: dict[str, Any] = next(b["expr"] for b in self.ir["branches"] if b["name"] == branch)
        args: list[dict[str, Any]] = expr["args"]
        return args

    def excluded(self, branch: str) -> tuple[str, ...]:
        """The process names a branch excludes (its `not`), in the rule's order."""
        return tuple(next(a["arg"]["values"] for a in self._args(branch) if a["node"] == "not"))

    def alternatives(self, branch: str) -> list[tuple[str, str, str]]:
        """(field, op, value) of every predicate in the branch's `or`, in the rule's order."""
        return [
            (pred["field"], pred["op"], value)
            for arg in self._args(branch)
            if arg["node"] == "or"
            for pred in arg["args"]
            for value in pred["values"]
        ]

    def substrings(self, field: str) -> tuple[str, ...]:
        """The process branch's `*text*` patterns on a field, without their `*`."""
        return tuple(
            value.strip("*")
            for f, op, value in self.alternatives("process")
            if f == field and op == "wildcard"
        )


@functools.cache
def engine_rule() -> SeedRule:
    """The seed rule from the engine, compiled once per process."""
    return SeedRule.from_engine()
