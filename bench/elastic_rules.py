#!/usr/bin/env python3
"""Elastic's detection-rules at a pinned commit, for the benchmark's rule-count sweep only
(imds-scan itself never fetches rules).

    python3 bench/elastic_rules.py                      # fetch (once) into bench/data/, list
    python3 bench/elastic_rules.py --from ~/detection-rules
    python3 bench/elastic_rules.py --commit SHA --sizes 1,10,100,all

Fetches the repository's ``rules/`` at ``--commit`` (a tarball from codeload.github.com, else
``git clone`` + checkout) into ``bench/data/detection-rules-COMMIT/`` (git-ignored), or takes
a local copy with ``--from DIR`` (the repository, or its ``rules/``). Every ``.toml`` below
``rules/`` that imds-scan accepts counts; the sweep's subsets are the first N of them sorted by
``rule_id``, copied into ``bench/data/detection-rules-COMMIT-sweep/sweep-N/`` so that ``--rule DIR``
loads exactly them. Prints a JSON summary (commit, files, accepted, subset directories).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.request
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
COMMIT = "14cf530f0d2177023092449cd9d9348b4a8884c2"
UPSTREAM = "elastic/detection-rules"
SIZES = ("1", "10", "100", "all")
# Elastic's network-side metadata-service rule, a KQL new_terms rule (issue 19's benchmark).
IMDS_RULE_NAME = "Suspicious Instance Metadata Service (IMDS) API Request"


def _log(msg: str) -> None:
    print(f"[elastic-rules] {msg}", file=sys.stderr, flush=True)


def _fetch_tarball(commit: str, dest: Path, url: str | None = None) -> bool:
    url = url or f"https://codeload.github.com/{UPSTREAM}/tar.gz/{commit}"
    _log(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except OSError as exc:
        _log(f"download failed: {exc}")
        return False
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = []
        for m in tar.getmembers():
            _top, _, rest = m.name.partition("/")
            if rest.startswith("rules/") and (m.isfile() or m.isdir()):
                m.name = rest
                members.append(m)
        tar.extractall(dest, members=members, filter="data")
    return (dest / "rules").is_dir()


def _fetch_git(commit: str, dest: Path) -> bool:
    with tempfile.TemporaryDirectory(prefix="detection-rules-") as tmp:
        clone = Path(tmp) / "repo"
        cmds = [
            ["git", "clone", "--quiet", "--no-checkout", f"https://github.com/{UPSTREAM}", clone],
            ["git", "-C", clone, "checkout", "--quiet", commit, "--", "rules"],
        ]
        for cmd in cmds:
            _log(" ".join(map(str, cmd)))
            if subprocess.run(cmd).returncode != 0:
                return False
        shutil.copytree(clone / "rules", dest / "rules")
    return True


def rules_dir(commit: str = COMMIT, data: Path = BENCH / "data", local: Path | None = None) -> Path:
    """The ``rules/`` directory: ``local`` as given, else the cached copy, fetched once."""
    if local is not None:
        return local / "rules" if (local / "rules").is_dir() else local
    cache = data / f"detection-rules-{commit}"
    if (cache / "rules").is_dir():
        return cache / "rules"
    part = data / f"detection-rules-{commit}.part"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    if not (_fetch_tarball(commit, part) or _fetch_git(commit, part)):
        shutil.rmtree(part, ignore_errors=True)
        raise SystemExit(f"cannot fetch {UPSTREAM} at {commit}; pass --from DIR with a local copy")
    part.rename(cache)
    return cache / "rules"


def accepted(rules: Path) -> tuple[int, list[tuple[str, Path]], list[tuple[str, Path]]]:
    """(number of .toml files, the accepted EQL ones as (rule_id, path) sorted by rule_id,
    the single-event ones among them). EQL only: the sweep's figures
    stay comparable now that KQL rules load too (their own rows are ``kql_sets``)."""
    import tomllib

    sys.path.append(str(REPO / "python"))  # after an installed imds_scan
    from imds_scan.rules import RuleFileError, load_rule_file

    files = sorted(rules.rglob("*.toml"))
    ok: list[tuple[str, Path]] = []
    single: list[tuple[str, Path]] = []
    for path in files:
        try:
            table = tomllib.loads(path.read_text("utf-8")).get("rule", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if str(table.get("language", "")).lower() != "eql":
            continue
        try:
            rule = load_rule_file(path)
        except RuleFileError:
            continue
        ok.append((rule.id, path))
        if rule.kind == "event":
            single.append((rule.id, path))
    ok.sort()
    single.sort()
    return len(files), ok, single


def subsets(
    ok: list[tuple[str, Path]], sizes: Sequence[str], dest: Path
) -> dict[str, tuple[int, Path]]:
    """Directories holding the first N accepted rules (by rule_id): size label -> (N, dir)."""
    out = {}
    for label in sizes:
        n = len(ok) if label == "all" else min(int(label), len(ok))
        folder = dest / f"sweep-{label}"
        want = [f"{i:04d}-{path.name}" for i, (_id, path) in enumerate(ok[:n])]
        have = sorted(p.name for p in folder.glob("*.toml")) if folder.is_dir() else []
        if have != want:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name, (_id, path) in zip(want, ok[:n], strict=True):
                shutil.copyfile(path, folder / name)
        out[label] = (n, folder)
    return out


def prepare(
    commit: str = COMMIT,
    data: Path = BENCH / "data",
    local: Path | None = None,
    sizes: Sequence[str] = SIZES,
) -> dict[str, object]:
    rules = rules_dir(commit, data, local)
    n_files, ok, single = accepted(rules)
    dest = data / f"detection-rules-{commit}-sweep"
    sets = subsets(ok, sizes, dest)
    # Issue 15's own measure: the single-event rules alone (sequences and samples, whose broad
    # stages match most events, were refused when it was written).
    _copy_set(single, dest / "sweep-single")
    sets["single"] = (len(single), dest / "sweep-single")
    return {
        "commit": commit if local is None else f"{commit} (local copy)",
        "rules_dir": str(rules),
        "files": n_files,
        "accepted": len(ok),
        "single_event": len(single),
        "subsets": {label: {"rules": n, "dir": str(d)} for label, (n, d) in sets.items()},
    }


def _kuery_rule(path: Path) -> dict[str, object] | None:
    """The ``[rule]`` table of a KQL ("kuery") rule file, else None."""
    try:
        rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return rule if isinstance(rule, dict) and rule.get("language") == "kuery" else None


def _copy_set(chosen: list[tuple[str, Path]], folder: Path) -> None:
    want = [f"{i:04d}-{path.name}" for i, (_id, path) in enumerate(chosen)]
    have = sorted(p.name for p in folder.glob("*.toml")) if folder.is_dir() else []
    if have != want:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, (_id, path) in zip(want, chosen, strict=True):
            shutil.copyfile(path, folder / name)


def kql_sets(rules: Path, dest: Path) -> dict[str, object]:
    """Issue 19's sets: every active KQL rule file (not under ``_deprecated/``) that imds-scan
    accepts, sorted by rule_id, in ``dest/kql-all/``, and the IMDS new_terms rule alone in
    ``dest/kql-imds/``; with the counts and, for a refused IMDS rule or when none is accepted,
    the first line of the reason."""
    sys.path.append(str(REPO / "python"))  # after an installed imds_scan
    from imds_scan.rules import RuleFileError, load_rule_file

    files, ok, imds = 0, [], None
    reasons: list[str] = []
    for path in sorted(rules.rglob("*.toml")):
        table = _kuery_rule(path)
        if table is None or "_deprecated" in path.relative_to(rules).parts:
            continue  # active rules only
        files += 1
        is_imds = table.get("name") == IMDS_RULE_NAME
        try:
            rule = load_rule_file(path)
        except RuleFileError as exc:
            why = (str(exc).splitlines() or ["no reason"])[0]
            reasons.append(why)
            if is_imds:
                imds = {"file": str(path), "accepted": False, "reason": why}
            continue
        ok.append((rule.id, path))
        if is_imds:
            imds = {"file": str(path), "accepted": True, "reason": None}
    ok.sort()
    _copy_set(ok, dest / "kql-all")
    if imds is not None and imds["accepted"]:
        _copy_set([("imds", Path(str(imds["file"])))], dest / "kql-imds")
        imds["dir"] = str(dest / "kql-imds")
    return {
        "files": files,
        "accepted": len(ok),
        "dir": str(dest / "kql-all"),
        "first_refusal": reasons[0] if reasons and not ok else None,
        "imds": imds,
    }


def prepare_kql(
    commit: str = COMMIT, data: Path = BENCH / "data", local: Path | None = None
) -> dict[str, object]:
    rules = rules_dir(commit, data, local)
    info = kql_sets(rules, data / f"detection-rules-{commit}-kql")
    info["commit"] = commit if local is None else f"{commit} (local copy)"
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commit", default=COMMIT, help=f"pinned commit (default {COMMIT})")
    ap.add_argument("--from", dest="local", type=Path, help="use this local copy, no fetch")
    ap.add_argument("--data", type=Path, default=BENCH / "data", help="cache directory")
    ap.add_argument("--sizes", default=",".join(SIZES), help="subset sizes (default 1,10,100,all)")
    a = ap.parse_args(argv)
    info = prepare(a.commit, a.data, a.local, a.sizes.split(","))
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
