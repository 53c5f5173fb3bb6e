"""The page's skeleton: its head and CSS, its foot, and the helpers every part writes with."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Final

from importer import __version__
from importer.report import format_duration

CHART_TYPES: Final = 12  # failure types drawn one by one; the rest share a bar
LABEL_CHARS: Final = 40  # of an error type in the chart: SVG text does not wrap on a phone
MESSAGE_CHARS: Final = 400  # of a message in the table (failures.csv has it whole)
TYPE_CHARS: Final = 60  # of an error type: RD Station's, so of any length


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


def _foot(out_dir: Path) -> str:
    return (
        f"<footer>Written by rd-importer {_e(__version__)} into <code>{_e(out_dir)}/</code>, "
        "beside successes.csv, failures.csv and summary.json (which holds every figure on this "
        "page). This page holds personal data: share it as you would failures.csv.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
