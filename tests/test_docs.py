"""The reference in docs/ keeps up with the CLI: every option and config key is in
docs/usage.md's table."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from imds_scan.cli import app
from imds_scan.config import NOT_IN_CONFIG, option_keys

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "docs" / "usage.md"
COMMAND = typer.main.get_command(app)


def options_table() -> list[tuple[str, str]]:
    """(option cell, config-key cell) of each row of the table under "## Options"."""
    text = USAGE.read_text(encoding="utf-8")
    section = text.split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [(cells[0], cells[1]) for cells in rows[1:]]


def test_usage_table_lists_every_option_and_its_config_key() -> None:
    rows = options_table()
    options = " ".join(cell for cell, _ in rows)
    keys = {k for _, cell in rows for k in re.findall(r"`([^`]+)`", cell)}
    missing = []
    for param in COMMAND.params:
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("-") and not re.search(rf"`{re.escape(opt)}[` ]", options):
                missing.append(opt)
    for key in option_keys(COMMAND):
        if "_" not in key and key not in keys:
            missing.append(f"config key {key}")
    assert not missing, f"not in docs/usage.md's options table: {', '.join(missing)}"
    # and no key there that a config file refuses
    assert not keys & NOT_IN_CONFIG


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for a page's headings."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#+ (.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            out.add(slug.replace(" ", "-"))
    return out


def test_relative_links_of_the_docs_resolve() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            full = (page.parent / path).resolve() if path else page
            name = f"{page.relative_to(ROOT)} -> {target}"
            if not full.is_relative_to(ROOT):
                broken.append(f"{name}: outside the repository")
            elif not full.exists():
                broken.append(f"{name}: no such file")
            elif anchor and full.suffix == ".md" and anchor not in _anchors(full):
                broken.append(f"{name}: no such heading")
    assert not broken, "\n".join(broken)
