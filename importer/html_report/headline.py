"""The run at the top of the page: a headline in its colour, the run in words, the figures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from importer.html_report.page import CHART_TYPES, _duration, _e, _n, _rows


def _status(s: Mapping[str, Any]) -> tuple[str, str]:
    """The page's headline and its colour."""
    rows, sent = int(s.get("rows") or 0), int(s.get("succeeded") or 0)
    failed = int(s.get("failed") or 0)
    left = int(s.get("left_to_send") or 0)
    if s.get("dry_run"):
        ready = int(s.get("would_send") or 0)
        words = f"{_rows(rows)} checked: {ready:,} ready to send, {failed:,} failed"
        if s.get("aborted_reason"):
            return "Stopped while checking: " + words, "bad"
        return words, "warn" if failed else "ok"
    if s.get("aborted_reason"):
        return f"Stopped: {sent:,} sent, {failed:,} failed, {left:,} left to send", "bad"
    if failed:
        return f"{sent:,} sent, {failed:,} failed", "warn"
    if sent == rows and rows:
        return f"All {_rows(rows)} sent", "ok"
    return f"{sent:,} sent, none failed", "ok"


def _headline(s: Mapping[str, Any], name: str, out_dir: Path) -> str:
    headline, tone = _status(s)
    out: list[str] = [
        f'<header class="status {tone}">',
        f"<p class=kicker>rd-importer report &middot; {_e(name)}</p>",
        f"<h1>{_e(headline)}</h1></header>",
    ]
    said = _the_run(s, name, out_dir) + _the_rows(s)
    out.append("".join(f"<p>{line}</p>" for line in said))
    out.append(_tiles(s))
    return "\n".join(out) + "\n"


def _the_run(s: Mapping[str, Any], name: str, out_dir: Path) -> list[str]:
    """What ran on what, why it stopped, and what was sent (or would be)."""
    dry = bool(s.get("dry_run"))
    plan = s.get("plan") or {}
    said = [
        f"{'Checked' if dry else 'Imported'} <b>{_e(name)}</b> ({_e(s.get('input_format', ''))})"
        f" with the mapping <code>{_e(s.get('mapping', ''))}</code>; reports in "
        f"<code>{_e(out_dir)}/</code>. Finished {_e(_when(s.get('finished_at')))}, after "
        f"{_e(_duration(float(s.get('duration_s') or 0)))}."
    ]
    if s.get("aborted_reason"):
        said.append(f"<b>Why it stopped:</b> {_e(s['aborted_reason'])}.")
    if dry:
        said.append(
            f"Nothing was sent: this run only checked the rows. {_n(s.get('would_send'))} are "
            "ready to send" + _earlier(s) + "."
        )
    else:
        where = (
            "the built-in sandbox (nothing reached RD Station)"
            if plan.get("sandbox")
            else "RD Station"
        )
        text = f"{_rows(int(s.get('succeeded') or 0))} sent to {where}" + _earlier(s)
        if s.get("left_to_send"):
            text += f"; {_n(s['left_to_send'])} left to send"
        said.append(text + ".")
    return said


def _the_rows(s: Mapping[str, Any]) -> list[str]:
    """The rows that failed, were in doubt, changed, or were not rows at all."""
    failed = int(s.get("failed") or 0)
    types = s.get("failure_types") or {}
    said = []
    if failed:
        kinds = ", ".join(f"{_n(v)}\u00a0{_e(k)}" for k, v in list(types.items())[:CHART_TYPES])
        said.append(
            f"{_rows(failed)} failed ({kinds}): what to do about each type is below, and "
            "failures.csv holds every failed row with its cells and message."
        )
    else:
        said.append("No row failed.")
    funnel = s.get("funnel") or {}
    if not s.get("dry_run") and (funnel.get("failed") or funnel.get("pending")):
        # Counted as failed or left to send, yet RD Station recorded their conversions.
        done = ", ".join(
            f"{_n(funnel[k])} {k}" for k in ("sent", "failed", "pending") if funnel.get(k)
        )
        said.append(
            f"Funnel steps: {done}. The rows whose funnel step failed or is pending "
            "<b>were recorded</b> in RD Station (their conversion, or their contact); "
            "importing again sends only the funnel step."
        )
    if s.get("in_flight_found"):
        said.append(
            f"{_rows(int(s['in_flight_found']))} were in flight when an earlier run stopped: "
            "RD Station may have recorded them."
        )
    if s.get("changed_rows"):
        said.append(
            f"{_rows(int(s['changed_rows']))} sent earlier would now be sent with another payload."
        )
    skipped_lines = [
        f"{_n(s[k])} {what}"
        for k, what in (("blank_rows", "blank"), ("footer_rows", "export footer"))
        if s.get(k)
    ]
    if skipped_lines:
        said.append(f"Lines that are not rows were left out: {', '.join(skipped_lines)}.")
    return said


def _tiles(s: Mapping[str, Any]) -> str:
    dry = bool(s.get("dry_run"))
    failed = int(s.get("failed") or 0)
    tiles = [
        ("Rows", int(s.get("rows") or 0), ""),
        ("Ready to send" if dry else "Sent", s.get("would_send" if dry else "succeeded"), "sent"),
        ("Failed", failed, "failed" if failed else ""),
        ("Skipped", int(s.get("skipped") or 0), ""),
    ]
    items = "".join(
        f"<li class={cls or 'n'}><b>{_n(v)}</b><span>{label}</span></li>" for label, v, cls in tiles
    )
    duration = _e(_duration(float(s.get("duration_s") or 0)))
    return f"<ul class=tiles>{items}<li><b>{duration}</b><span>Duration</span></li></ul>"


def _earlier(s: Mapping[str, Any]) -> str:
    already = int(s.get("already_sent") or 0)
    return f"; {already:,} skipped, sent by an earlier run" if already else ""


def _when(stamp: object) -> str:
    text = str(stamp or "")
    return text.replace("T", " ").replace("Z", " UTC") if text else "(unknown)"
