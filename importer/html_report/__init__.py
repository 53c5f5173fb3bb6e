"""report.html: the run at a glance, for a person, in one self-contained file.

    write_html_report(path, summary, failures, failed_total, out_dir)
    render(summary, failures, failed_total, out_dir) -> str
    fix_advice(error_type) -> str        what to do about rows that failed with that type

Built from summary.json's document (so a report can be rebuilt from it) and the first rows of
failures.csv (never all of them: a run with ten million failed rows gets the same small page).
The page loads nothing: inline CSS, charts as inline SVG, no script; its Content-Security-Policy
forbids anything else, so it opens offline and a cell shaped like markup stays text (every
value from a file or from the server goes through ``html.escape`` too). Charts use percentage
coordinates rather than a scaled viewBox, so their text keeps its size on a phone.

Where each part lives: ``page`` (the HTML skeleton, the CSS, the small formatting helpers),
``headline`` (the run in words and figures), ``fixes`` (what to do about each failure type),
``next_steps`` (the next command), ``charts`` (failures by type, requests over time) and
``tables`` (plan and outcome, warnings, the first failed rows).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from importer.html_report.charts import _failures_by_type, _sending
from importer.html_report.fixes import FIXES, GENERIC_FIX, fix_advice
from importer.html_report.headline import _headline
from importer.html_report.next_steps import _next_steps
from importer.html_report.page import _foot, _head
from importer.html_report.tables import _failed_rows, _plan, _warnings
from importer.ledger import Failure
from importer.report import open_private

__all__ = ["FIXES", "GENERIC_FIX", "fix_advice", "render", "write_html_report"]


def write_html_report(
    path: Path,
    summary: Mapping[str, Any],
    failures: Sequence[Failure],
    failed_total: int,
    out_dir: Path,
) -> None:
    """Write report.html as the other reports are written: 0600, renamed into place."""
    text = render(summary, failures, failed_total, out_dir)
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)


def render(
    summary: Mapping[str, Any], failures: Sequence[Failure], failed_total: int, out_dir: Path
) -> str:
    """The page for a run: ``summary`` is summary.json's document, ``failures`` the first
    failed rows of failures.csv, ``failed_total`` how many rows it holds."""
    s = summary
    name = Path(str(s.get("input", ""))).name
    title = f"rd-importer: {name}"
    parts = [
        _head(title),
        _headline(s, name, out_dir),
        _next_steps(s, failed_total, out_dir),
        _failures_by_type(s),
        _sending(s),
        _plan(s),
        _warnings(s),
        _failed_rows(failures, failed_total),
        _foot(out_dir),
    ]
    return "".join(parts)
