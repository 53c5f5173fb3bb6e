"""The charts, as inline SVG in percentage coordinates: failed rows by type, requests over time."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from importer.html_report.fixes import fix_advice
from importer.html_report.page import CHART_TYPES, LABEL_CHARS, TYPE_CHARS, _clip, _e, _n, _rows


def _failures_by_type(s: Mapping[str, Any]) -> str:
    types = [(str(k), int(v)) for k, v in (s.get("failure_types") or {}).items()]
    if not types:
        return ""
    types.sort(key=lambda kv: -kv[1])
    shown = types[:CHART_TYPES]
    if len(types) > CHART_TYPES:
        rest = types[CHART_TYPES:]
        shown.append((f"{len(rest):,} other types", sum(v for _, v in rest)))
    top, total = max(v for _, v in shown), sum(v for _, v in types)
    step = 38
    bars = []
    for i, (kind, count) in enumerate(shown):
        y = i * step
        width = 75 * count / top
        label = _e(_clip(kind, LABEL_CHARS))
        share = f"{count / total:.0%}" if total else ""
        bars.append(
            f"<g><title>{_e(_clip(kind, TYPE_CHARS))}: {_rows(count)} ({share})</title>"
            f'<text class=name x="0" y="{y + 13}">{label}</text>'
            f'<rect class=f x="0" y="{y + 18}" width="{max(width, 0.4):.2f}%" height="14" rx="2"/>'
            f'<text class=cnt x="{width + 1.2:.2f}%" y="{y + 30}">{count:,}</text></g>'
        )
    height = len(shown) * step
    chart = (
        f'<svg role=img aria-label="Failed rows by error type" height="{height}">'
        f"<title>Failed rows by error type</title>{''.join(bars)}</svg>"
    )
    fixes = "".join(
        f"<div class=fix><h3><code>{_e(_clip(kind, TYPE_CHARS))}</code> "
        f"<span class=count>{_rows(count)}</span></h3><p>{_e(fix_advice(kind))}</p></div>"
        for kind, count in types[:CHART_TYPES]
    )
    return f"<h2 id=failures>Why rows failed</h2>\n{chart}\n{fixes}\n"


def _sending(s: Mapping[str, Any]) -> str:
    """Requests over time against the budget, with the 429 answers and the retries."""
    out = ["<h2 id=sending>Sending over time</h2>"]
    timeline = list(s.get("timeline") or [])
    width = float(s.get("timeline_bucket_s") or 0)
    requests = int(s.get("requests") or 0)
    if s.get("dry_run") or not timeline or width <= 0 or not requests:
        out.append("<p>No request was sent in this run.</p>")
        return "\n".join(out) + "\n"
    rate = float((s.get("plan") or {}).get("rate") or 0)
    limited, retries = int(s.get("rate_limited_answers") or 0), int(s.get("retries") or 0)
    budget = rate * width / 60 if rate > 0 else None
    most = max(max(int(b["requests"]) for b in timeline), budget or 0, 1)
    top, grid = _scale(most)
    per = f"{width:g} s" if width < 60 else _clock(width)
    chart = _requests_chart(timeline, width, _Plot(top), grid, budget, rate, per)
    out.append(
        f"<p>{_n(requests)} requests in all; {_n(limited)} answered 429 (RD Station's limit: "
        f"the pace slows down and the row is sent again), {_n(retries)} retries after an error "
        "on the way.</p>"
    )
    out += [_legend(per, budget, rate), chart]
    return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class _Plot:
    """The requests chart's vertical scale: ``top`` requests at the top of the plot."""

    top: int
    height: int = 180  # the plot's
    above: int = 22  # room for labels above it
    below: int = 26  # and below it

    def y(self, value: float) -> float:
        return self.above + self.height * (1 - value / self.top)


def _requests_chart(
    timeline: Sequence[Mapping[str, Any]],
    width: float,
    plot: _Plot,
    grid: int,
    budget: float | None,
    rate: float,
    per: str,
) -> str:
    parts = []
    labels = []  # drawn over the bars, so they stay readable
    for tick in range(0, plot.top + 1, grid):
        ty = plot.y(tick)
        parts.append(f'<line class=g x1="0" x2="100%" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        if tick:
            labels.append(f'<text class=tick x="2" y="{ty - 4:.1f}">{tick:,}</text>')
    parts += _bars(timeline, width, plot)
    if budget is not None:
        by = plot.y(budget)
        parts.append(f'<line class=budget x1="0" x2="100%" y1="{by:.1f}" y2="{by:.1f}"/>')
        parts.append(f'<text x="100%" y="{by - 5:.1f}" text-anchor=end>budget {rate:g}/min</text>')
    parts += labels
    parts += _time_axis(len(timeline) * width, plot.above + plot.height + 17)
    return (
        f'<svg role=img aria-label="Requests per {per} against the budget" '
        f'height="{plot.above + plot.height + plot.below}"><title>Requests per {per} since '
        f"sending started</title>{''.join(parts)}</svg>"
    )


def _bars(timeline: Sequence[Mapping[str, Any]], width: float, plot: _Plot) -> list[str]:
    """One bar per bucket of requests, the 429 answers over it, a dot when it had retries."""
    parts = []
    top, height = plot.top, plot.height
    slot = 100 / len(timeline)
    for i, bucket in enumerate(timeline):
        sent, q, r = int(bucket["requests"]), int(bucket["rate_limited"]), int(bucket["retries"])
        if not (sent or q or r):
            continue
        x, w = i * slot + slot * 0.1, max(slot * 0.8, 0.15)
        start = float(bucket["t"])
        when = f"{_clock(start)} to {_clock(start + width)}"
        tip = f"{when}: {sent:,} requests, {q:,} answered 429, {r:,} retries"
        parts.append(f"<g><title>{_e(tip)}</title>")
        parts.append(
            f'<rect class=b x="{x:.3f}%" y="{plot.y(sent):.1f}" width="{w:.3f}%" '
            f'height="{height * sent / top:.1f}"/>'
        )
        if q:
            parts.append(
                f'<rect class=q x="{x:.3f}%" y="{plot.y(q):.1f}" width="{w:.3f}%" '
                f'height="{height * q / top:.1f}"/>'
            )
        if r:
            cy = plot.y(sent) - 7
            parts.append(f'<circle class=r cx="{x + w / 2:.3f}%" cy="{cy:.1f}" r="4"/>')
        parts.append("</g>")
    return parts


def _time_axis(span: float, axis: int) -> list[str]:
    """Round moments along the bottom, at most six."""
    parts = []
    every = next((step for step in _TIME_STEPS if span / step <= 5), span)
    for k in range(math.floor(span / every) + 1):
        at = k * every
        anchor = "start" if k == 0 else ("end" if at >= span * 0.97 else "middle")
        parts.append(
            f'<text x="{at / span * 100:.3f}%" y="{axis}" text-anchor={anchor}>'
            f"{_e(_clock(at))}</text>"
        )
    return parts


def _legend(per: str, budget: float | None, rate: float) -> str:
    return (
        "<div class=legend>"
        f"<span><i class=sw style=background:var(--bar)></i>requests per {_e(per)}</span>"
        + (
            f"<span><i class='sw line'></i>budget: --rate {rate:g}/min = {budget:g} per {per}"
            "</span>"
            if budget is not None
            else "<span>unpaced (--rate 0)</span>"
        )
        + "<span><i class=sw style=background:var(--bad)></i>answered 429</span>"
        "<span><i class='sw dot' style=background:var(--retry)></i>retries</span></div>"
    )


def _scale(most: float) -> tuple[int, int]:
    """The chart's top and the step of its grid: a step of 1, 2 or 5 times a power of ten, at
    most 6 lines, and the lowest top above ``most`` (the highest bar fills most of the chart)."""
    most = max(most, 1) * 1.05
    power = 10 ** max(0, math.floor(math.log10(most / 6)))
    steps = [m * power for m in (1, 2, 5, 10, 20)]
    # The lowest top; of steps that reach it, the one nearest 4 lines.
    top, _, step = min(
        (math.ceil(most / step) * step, abs(math.ceil(most / step) - 4), step)
        for step in steps
        if most / step <= 6
    )
    return top, step


# Round steps for the time axis, in seconds: 10 s to 12 h.
_TIME_STEPS: Final = (10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)


def _clock(seconds: float) -> str:
    """A moment since sending started: '0 s', '45 s', '2 min 30 s', '1 h 05 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
