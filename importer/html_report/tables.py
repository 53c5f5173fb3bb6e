"""The tables: the plan against what happened, the warnings, the first failed rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from importer.html_report.page import MESSAGE_CHARS, TYPE_CHARS, _clip, _duration, _e, _n, _rows
from importer.ledger import Failure
from importer.report import SHOWN_FAILURES


def _plan(s: Mapping[str, Any]) -> str:
    plan = s.get("plan")
    if not plan or s.get("dry_run"):
        return ""
    rate = float(plan.get("rate") or 0)
    planned_rows = _n(plan.get("rows"))
    if not plan.get("complete"):
        planned_rows += "+ (the file was still being read)"
    eta = plan.get("eta_s")
    planned_time = (
        f"about {_duration(float(eta))} at {rate:g}/min"
        if eta is not None
        else ("not announced: still reading" if rate > 0 else "not announced: unpaced")
    )
    happened = f"{_n(s.get('succeeded'))} sent"
    if s.get("left_to_send"):
        happened += f", {_n(s['left_to_send'])} left to send"
    duration = float(s.get("duration_s") or 0)
    requests = int(s.get("requests") or 0)
    pace = f"{requests:,} requests in {_duration(duration)}"
    if duration >= 300:  # shorter, the first and last request weigh too much in an average
        pace += f" ({requests / duration * 60:,.0f}/min)"
    rows = [
        ("Rows to send", planned_rows, happened),
        ("Duration", planned_time, _duration(duration)),
        ("Pace", f"{rate:g} requests/min" if rate > 0 else "unpaced", pace),
    ]
    body = "".join(f"<tr><th>{a}</th><td>{_e(b)}</td><td>{_e(c)}</td></tr>" for a, b, c in rows)
    return (
        "<h2 id=plan>Plan and outcome</h2>\n<div class=scroll><table>"
        "<thead><tr><th></th><th>Announced at the start</th><th>What happened</th></tr></thead>"
        f"<tbody>{body}</tbody></table></div>\n"
    )


def _warnings(s: Mapping[str, Any]) -> str:
    notes = list(s.get("warnings") or [])
    if not notes:
        return ""
    items = []
    for note in notes[:50]:
        count = int(note.get("count") or 1)
        rows = note.get("rows") or []
        where = f" ({_rows(count)}; first: {', '.join(str(r) for r in rows[:10])})" if rows else ""
        if count > 1 and not rows:
            where = f" ({count:,} times)"
        items.append(f"<li>{_e(_clip(str(note.get('message', '')), MESSAGE_CHARS))}{where}</li>")
    more = (
        f"<p class=muted>{len(notes) - 50:,} more in summary.json.</p>" if len(notes) > 50 else ""
    )
    return f"<h2 id=warnings>Warnings</h2>\n<ul>{''.join(items)}</ul>{more}\n"


def _failed_rows(failures: Sequence[Failure], total: int) -> str:
    if not total:
        return ""
    shown = failures[:SHOWN_FAILURES]
    lines = "".join(
        f"<tr><td class=num>{f.row}</td><td><code>{_e(_clip(f.error_type, TYPE_CHARS))}</code>"
        f"</td><td class=msg>{_e(_clip(f.message, MESSAGE_CHARS))}</td></tr>"
        for f in shown
    )
    head = (
        f"The first {len(shown):,} of {_rows(total)} in failures.csv"
        if total > len(shown)
        else f"All {_rows(total)} of failures.csv"
    )
    more = (
        f"<p><b>{total - len(shown):,} more in failures.csv.</b></p>" if total > len(shown) else ""
    )
    return (
        f"<h2 id=rows>Failed rows</h2>\n<p class=muted>{head}, by row:</p>\n"
        "<div class=scroll><table><thead><tr><th>Row</th><th>Error type</th><th>Message</th>"
        f"</tr></thead><tbody>{lines}</tbody></table></div>\n{more}"
    )
