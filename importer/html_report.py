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
"""

from __future__ import annotations

import html
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from importer import __version__
from importer.ledger import Failure
from importer.report import SHOWN_FAILURES, format_duration, open_private

CHART_TYPES: Final = 12  # failure types drawn one by one; the rest share a bar
LABEL_CHARS: Final = 40  # of an error type in the chart: SVG text does not wrap on a phone
MESSAGE_CHARS: Final = 400  # of a message in the table (failures.csv has it whole)
TYPE_CHARS: Final = 60  # of an error type: RD Station's, so of any length
DEFAULT_RATE: Final = 120.0  # the CLI's --rate: left out of the commands shown

# What to do about the rows that failed with each type, in a line or two.
_ON_THE_WAY = (
    "The row itself may be fine: RD Station could not be reached or had a problem of its own. "
    "Run the same command later: these rows are sent again, rows already sent are skipped."
)
_RD_RULES = {
    ("CANNOT_BE_NULL", "CANNOT_BE_BLANK"): (
        "RD Station requires a value for this field: fill the cell (or map the field from "
        "another column)."
    ),
    ("INVALID_FORMAT", "INVALID"): (
        "RD Station did not accept the value's format (an email, a phone, a URL, a date): fix "
        "the cell the message names."
    ),
    ("INVALID_OPTION", "MUST_BE_VALID_OPTION", "INCLUSION", "EXCLUSION"): (
        "The value is not one of the options this field has in RD Station: use one of them, or "
        "translate the cells with map: in the mapping."
    ),
    ("TOO_LONG", "TOO_SHORT", "MUST_BE_LESS_THAN_OR_EQUAL"): (
        "The value is too long, too short or too large for RD Station: fix the cell."
    ),
    ("MUST_BE_BOOLEAN", "MUST_BE_STRING", "MUST_BE_STRING_ARRAY", "INVALID_DATA_TYPE"): (
        "The value has the wrong type for its field: fix the field in the mapping (split: for a "
        "list, transform: bool for yes/no), then run the same command with --retry-rejected."
    ),
    ("VALUES_MUST_BE_LOWERCASE",): (
        "RD Station wants tags in lower case: add transform: lower to the tags field of the "
        "mapping, then run the same command with --retry-rejected."
    ),
    ("TAKEN",): "Another lead in RD Station already has this value: fix the cell or leave it.",
    ("UNABLE_TO_LOAD_CDP_SCHEMA",): (
        "The API key is an RD Station CRM account's: use the key of an RD Station Marketing "
        "account, then run the same command with --retry-rejected."
    ),
    ("BAD_REQUEST", "RESOURCE_NOT_FOUND"): (
        "RD Station refused the request; the message says why (a custom field that does not "
        "exist there?). Fix the cause, then run the same command with --retry-rejected."
    ),
}
FIXES: Final[dict[str, str]] = {
    "VALIDATION_ERROR": (
        "A cell does not hold a value its field accepts (an email without its domain, an empty "
        "email): fix the cell the message names."
    ),
    "MAPPING_ERROR": (
        "The mapping could not turn a cell into its field (a phone with too few digits, a date "
        "it cannot read, a value its map: does not list): fix the cell, or the mapping when many "
        "rows fail the same way."
    ),
    "READ_ERROR": (
        "The line could not be read as a row (a quote opened and never closed): fix the quotes "
        "in the file, or the row in a copy of failures.csv, and import it again."
    ),
    "DUPLICATE_ROW": (
        "The row is identical to an earlier row of the file, which was sent: nothing to fix, "
        "unless the two rows should have differed."
    ),
    "TOO_LARGE": "The request would exceed RD Station's 0.2 MB limit: shorten the longest cells.",
    "LEAD_LIMITED": (
        "RD Station takes only about 24 conversions a day per lead (email): nothing to fix. Run "
        "the same command tomorrow and these rows are sent."
    ),
    "RATE_LIMITED": (
        "The account's request budget was spent (other integrations share it): run the same "
        "command later, or with a lower --rate."
    ),
    "IN_FLIGHT_UNKNOWN": (
        "An earlier run stopped while these rows were being sent, so RD Station may have "
        "recorded them. Look them up in RD Station; to send them again, run the same command "
        "with --in-flight resend."
    ),
    "TIMEOUT": _ON_THE_WAY,
    "CONNECTION_ERROR": _ON_THE_WAY,
    "TLS_ERROR": _ON_THE_WAY,
} | {kind: text for kinds, text in _RD_RULES.items() for kind in kinds}
GENERIC_FIX: Final = (
    "The message says why. A cell's problem: fix it in a copy of failures.csv and import the "
    "copy into the same folder. A cause in RD Station (a custom field not created yet): fix it "
    "there, then run the same command with --retry-rejected."
)
# Failures the same command sends again later (the cause was on the way, not in the row).
_RETRIED_LATER: Final = frozenset(
    {"LEAD_LIMITED", "RATE_LIMITED", "TIMEOUT", "CONNECTION_ERROR", "TLS_ERROR"}
)


def fix_advice(error_type: str) -> str:
    """What to do about rows that failed with ``error_type`` (ours or RD Station's)."""
    if error_type in FIXES:
        return FIXES[error_type]
    if error_type.startswith("HTTP_5"):
        return _ON_THE_WAY
    return GENERIC_FIX


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


# -- the page's parts -----------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: Any) -> str:
    return f"{int(value or 0):,}"


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    """'17 s', '1 h 44 min', never broken between a number and its unit."""
    return format_duration(seconds).replace(" ", "\u00a0")


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--bg:#fff;--card:#f6f8fa;--line:#d1d9e0;--ok:#1a7f37;
--warn:#9a6700;--bad:#cf222e;--bar:#0969da;--budget:#1f2328;--retry:#bc4c00;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--card:#151b23;--line:#3d444d;--ok:#3fb950;--warn:#d29922;--bad:#f85149;--bar:#4493f8;
--budget:#e6edf3;--retry:#db6d28}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);overflow-wrap:break-word;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:880px;margin:0 auto;padding:24px 16px 48px}
h1{font-size:1.65rem;line-height:1.25;margin:.15em 0 .5em}
h2{font-size:1.15rem;margin:2.2em 0 .7em;padding-bottom:.3em;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:1.2em 0 .2em}
p{margin:.5em 0}
.kicker{color:var(--muted);font-size:.8rem;text-transform:uppercase;letter-spacing:.05em;margin:0}
.status{border-left:6px solid var(--ok);padding:2px 0 2px 14px}
.status.warn{border-color:var(--warn)}.status.bad{border-color:var(--bad)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(96px,1fr));gap:8px;
margin:18px 0;padding:0;list-style:none}
.tiles li{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.tiles b{display:block;font-size:1.45rem;line-height:1.2;font-variant-numeric:tabular-nums}
.tiles span{color:var(--muted);font-size:.85rem}
.tiles .failed b{color:var(--bad)}.tiles .sent b{color:var(--ok)}
pre{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;
margin:.4em 0;white-space:pre-wrap;overflow-wrap:anywhere}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;
font-size:13px}
ol{padding-left:1.4em}li{margin:.3em 0}
svg{display:block;width:100%;overflow:visible}
svg text{font-size:12px;fill:var(--muted)}svg text.name{fill:var(--fg);font-weight:600}
svg text.cnt{fill:var(--fg);font-size:13px;font-weight:600}
svg text.tick{paint-order:stroke;stroke:var(--bg);stroke-width:3px;stroke-linejoin:round}
.b{fill:var(--bar)}.q{fill:var(--bad)}.r{fill:var(--retry)}.f{fill:var(--bad)}
.g{stroke:var(--line)}.budget{stroke:var(--budget);stroke-width:2;stroke-dasharray:6 4}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:.85rem;color:var(--muted);
margin:6px 0 10px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-1px;
margin-right:6px}
.sw.line{height:0;border-top:2px dashed var(--budget);border-radius:0;vertical-align:3px;
width:18px}
.sw.dot{border-radius:50%}
h3 code{font-size:.95rem}
.fix{margin:.9em 0}.fix p{margin:.15em 0 0}.count{color:var(--muted);font-weight:400}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:6px 10px 6px 0;border-bottom:1px solid var(--line)}
th{font-weight:600;color:var(--muted)}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td.msg{overflow-wrap:anywhere;min-width:16em}
.muted,footer{color:var(--muted)}footer{font-size:.85rem;margin-top:3em}
"""


def _head(title: str) -> str:
    # No network and no script, said to the browser as well: the page needs neither.
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"
    return (
        "<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name=viewport content="width=device-width, initial-scale=1">\n'
        '<meta name=referrer content=no-referrer>\n<meta name=robots content="noindex">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
    )


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
    dry = bool(s.get("dry_run"))
    rows, skipped = int(s.get("rows") or 0), int(s.get("skipped") or 0)
    failed = int(s.get("failed") or 0)
    plan = s.get("plan") or {}
    out: list[str] = [
        f'<header class="status {tone}">',
        f"<p class=kicker>rd-importer report &middot; {_e(name)}</p>",
        f"<h1>{_e(headline)}</h1></header>",
    ]
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
    types = s.get("failure_types") or {}
    if failed:
        kinds = ", ".join(f"{_n(v)}\u00a0{_e(k)}" for k, v in list(types.items())[:CHART_TYPES])
        said.append(
            f"{_rows(failed)} failed ({kinds}): what to do about each type is below, and "
            "failures.csv holds every failed row with its cells and message."
        )
    else:
        said.append("No row failed.")
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
    out.append("".join(f"<p>{line}</p>" for line in said))
    tiles = [
        ("Rows", rows, ""),
        ("Ready to send" if dry else "Sent", s.get("would_send" if dry else "succeeded"), "sent"),
        ("Failed", failed, "failed" if failed else ""),
        ("Skipped", skipped, ""),
    ]
    items = "".join(
        f"<li class={cls or 'n'}><b>{_n(v)}</b><span>{label}</span></li>" for label, v, cls in tiles
    )
    duration = _e(_duration(float(s.get("duration_s") or 0)))
    out.append(f"<ul class=tiles>{items}<li><b>{duration}</b><span>Duration</span></li></ul>")
    return "\n".join(out) + "\n"


def _earlier(s: Mapping[str, Any]) -> str:
    already = int(s.get("already_sent") or 0)
    return f"; {already:,} skipped, sent by an earlier run" if already else ""


def _when(stamp: object) -> str:
    text = str(stamp or "")
    return text.replace("T", " ").replace("Z", " UTC") if text else "(unknown)"


def _command(*words: object) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _next_steps(s: Mapping[str, Any], failed_total: int, out_dir: Path) -> str:
    """The next command to run: resume, import a fixed copy, send what was checked, or none."""
    source, mapping = str(s.get("input", "")), str(s.get("mapping", ""))
    plan = s.get("plan") or {}
    extra: list[object] = []
    if plan.get("sandbox"):
        extra.append("--sandbox")
    if plan and plan.get("rate") != DEFAULT_RATE:
        extra += ["--rate", f"{float(plan.get('rate') or 0):g}"]
    same = _command("rd-importer", "import", source, "--mapping", mapping, "--out", out_dir, *extra)
    fixed = f"{Path(source).stem}-fixed.csv"
    copy = _command("cp", out_dir / "failures.csv", fixed)
    types = dict(s.get("failure_types") or {})
    steps: list[tuple[str, list[str]]] = []
    if s.get("dry_run"):
        if s.get("aborted_reason"):
            check = _command(
                "rd-importer", "validate", source, "--mapping", mapping, "--out", out_dir
            )
            steps.append(("Once the cause is fixed, check the file again:", [check]))
        if failed_total:
            check = _command(
                "rd-importer", "validate", fixed, "--mapping", mapping, "--out", out_dir
            )
            steps.append(
                (
                    "Copy failures.csv, fix the cells the messages name (keep its columns), and "
                    "check the copy:",
                    [copy, check],
                )
            )
        if s.get("would_send"):
            send = _command("rd-importer", "import", source, "--mapping", mapping, "--out", out_dir)
            steps.append(
                (
                    "Send the rows that are ready (set RDSTATION_API_KEY first; add --sandbox "
                    "to try it locally):",
                    [send],
                )
            )
    elif s.get("aborted_reason") or s.get("left_to_send"):
        steps.append(
            (
                "Once the cause is fixed, run the same command to resume: rows already sent "
                "are skipped, never sent twice.",
                [same],
            )
        )
    else:
        later = sorted(t for t in types if t in _RETRIED_LATER or t.startswith("HTTP_5"))
        nothing_to_fix = {*later, "DUPLICATE_ROW", "IN_FLIGHT_UNKNOWN"}
        if any(t not in nothing_to_fix for t in types):
            again = _command(
                "rd-importer", "import", fixed, "--mapping", mapping, "--out", out_dir, *extra
            )
            steps.append(
                (
                    "Copy failures.csv, fix the cells the messages name (keep its columns), and "
                    "import the copy into the same folder: rows already sent are never sent "
                    "again.",
                    [copy, again],
                )
            )
        if later:
            steps.append(
                (
                    f"Rows that failed on the way ({', '.join(later)}) are sent by the same "
                    "command, later:",
                    [same],
                )
            )
        if "IN_FLIGHT_UNKNOWN" in types:
            steps.append(
                (
                    "Rows in doubt: look them up in RD Station; to send them again:",
                    [same + " --in-flight resend"],
                )
            )
    out = ["<h2 id=next>What to do next</h2>"]
    if not steps:
        out.append(
            "<p>Nothing: every row was sent"
            + (", and the duplicate rows once." if types else ".")
            + "</p>"
        )
    else:
        out.append("<ol>")
        for text, commands in steps:
            block = "\n".join(_e(c) for c in commands)
            out.append(f"<li>{_e(text)}<pre><code>{block}</code></pre></li>")
        out.append("</ol>")
    return "\n".join(out) + "\n"


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
    plot, above, below = 180, 22, 26  # the plot's height, and room for labels around it
    n = len(timeline)

    def y(value: float) -> float:
        return above + plot * (1 - value / top)

    slot = 100 / n
    parts = []
    labels = []  # drawn over the bars, so they stay readable
    for tick in range(0, top + 1, grid):
        ty = y(tick)
        parts.append(f'<line class=g x1="0" x2="100%" y1="{ty:.1f}" y2="{ty:.1f}"/>')
        if tick:
            labels.append(f'<text class=tick x="2" y="{ty - 4:.1f}">{tick:,}</text>')
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
            f'<rect class=b x="{x:.3f}%" y="{y(sent):.1f}" width="{w:.3f}%" '
            f'height="{plot * sent / top:.1f}"/>'
        )
        if q:
            parts.append(
                f'<rect class=q x="{x:.3f}%" y="{y(q):.1f}" width="{w:.3f}%" '
                f'height="{plot * q / top:.1f}"/>'
            )
        if r:
            cy = y(sent) - 7
            parts.append(f'<circle class=r cx="{x + w / 2:.3f}%" cy="{cy:.1f}" r="4"/>')
        parts.append("</g>")
    if budget is not None:
        by = y(budget)
        parts.append(f'<line class=budget x1="0" x2="100%" y1="{by:.1f}" y2="{by:.1f}"/>')
        parts.append(f'<text x="100%" y="{by - 5:.1f}" text-anchor=end>budget {rate:g}/min</text>')
    parts += labels
    span = n * width
    axis = above + plot + 17
    every = next((step for step in _TIME_STEPS if span / step <= 5), span)
    for k in range(math.floor(span / every) + 1):
        at = k * every
        anchor = "start" if k == 0 else ("end" if at >= span * 0.97 else "middle")
        parts.append(
            f'<text x="{at / span * 100:.3f}%" y="{axis}" text-anchor={anchor}>'
            f"{_e(_clock(at))}</text>"
        )
    per = f"{width:g} s" if width < 60 else _clock(width)
    chart = (
        f'<svg role=img aria-label="Requests per {per} against the budget" '
        f'height="{above + plot + below}"><title>Requests per {per} since sending started'
        f"</title>{''.join(parts)}</svg>"
    )
    legend = (
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
    out.append(
        f"<p>{_n(requests)} requests in all; {_n(limited)} answered 429 (RD Station's limit: "
        f"the pace slows down and the row is sent again), {_n(retries)} retries after an error "
        "on the way.</p>"
    )
    out += [legend, chart]
    return "\n".join(out) + "\n"


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


def _foot(out_dir: Path) -> str:
    return (
        f"<footer>Written by rd-importer {_e(__version__)} into <code>{_e(out_dir)}/</code>, "
        "beside successes.csv, failures.csv and summary.json (which holds every figure on this "
        "page). This page holds personal data: share it as you would failures.csv.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
