"""What the watcher keeps of each file: its outcome, ``watch-index.json`` (which reports
folder each file owns, its sha256 and counts), ``watch.log`` and ``index.html``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from importer.errors import ExitStatus, InputError, printable
from importer.html_report.page import _duration, _e, _head, _n
from importer.pipeline import utc_now
from importer.report import Note
from importer.watch.folders import (
    _DIRECTORY,
    PROCESSED,
    REJECTED,
    _write_replacing,
    check_reports_folder,
)

INDEX_NAME = "watch-index.json"
LOG_NAME = "watch.log"
PAGE_NAME = "index.html"
Outcome = Literal["processed", "identical", "rejected", "aborted", "changed", "error"]


@dataclass
class FileOutcome:
    """What became of one file. ``reason`` is why it was rejected, aborted or changed, or the
    unexpected error that stopped it; ``not_moved`` why it stayed in the inbox all the same."""

    name: str
    outcome: Outcome
    folder: str
    rows: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    moved_to: str | None = None  # relative to the inbox: "processed/leads.csv"
    reason: str | None = None
    not_moved: str | None = None
    reason_unwritten: str | None = None  # why <name>.reason.txt could not be written
    change: str | None = None  # how the file changed while it was imported ("it grew ...")
    same_as: str | None = None  # identical: "leads.csv imported at <when>"
    warnings: list[str] = field(default_factory=list)  # the run's, one line each

    @property
    def exit_status(self) -> ExitStatus:
        if self.outcome in ("aborted", "error"):
            return ExitStatus.ABORTED
        if self.outcome not in ("processed", "identical") or self.failed or self.not_moved:
            return ExitStatus.FAILED_ROWS
        return ExitStatus.OK


# -- which reports folder ------------------------------------------------------------------------


class FolderIndex:
    """``OUTROOT/watch-index.json``: which inbox file owns which reports folder.

    A file keeps its folder while it stays in the inbox (an aborted import resumes its ledger)
    and after it was rejected (a fixed copy dropped under the same name resumes that ledger too,
    so no row is sent twice). Once a file is processed its name is free: the next file by that
    name is another file (tomorrow's drop) and gets a folder of its own: ``leads-2``, ``leads-3``.
    Files are known by their path, so watchers of two inboxes can share one ``OUTROOT``.
    """

    def __init__(self, out_root: Path, entries: list[dict[str, Any]]):
        self.out_root = out_root
        self.entries = entries

    @classmethod
    @contextlib.contextmanager
    def editing(cls, out_root: Path) -> Iterator[FolderIndex]:
        """Load, change and save the index under an flock, held for milliseconds: a watcher of
        another inbox may share ``out_root`` and must never be handed the same folder."""
        lock = out_root / f".{INDEX_NAME}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = cls.load(out_root)
            yield index
            index.save()
        finally:
            os.close(fd)

    @classmethod
    def load(cls, out_root: Path) -> FolderIndex:
        path = out_root / INDEX_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape") as handle:
                data = json.load(handle)
            entries = data["files"]
            if not isinstance(entries, list):
                raise TypeError
        except FileNotFoundError:
            return cls(out_root, [])
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(
                f"{printable(str(path))}: cannot be read; it says which reports folder each "
                "inbox file resumes into: restore it, or move it aside to start every file in a "
                "new folder"
            ) from None
        return cls(out_root, entries)

    def folder_for(self, file: Path, *, sha256: str = "", mapping: str = "") -> str:
        """The file's folder under ``out_root`` (created 0700), the one it had if it has one.
        ``sha256`` is the content whose import starts, ``mapping`` the mapping it is read with:
        a later drop identical to it is recognised once it is processed."""
        key = str(file.absolute())
        facts = {"sha256": sha256, "mapping": mapping} if sha256 else {}
        for entry in self.entries:
            if (
                entry.get("file") == key
                and entry.get("state") in ("importing", REJECTED)
                and entry.get("folder")
            ):
                entry.update(state="importing", **facts)
                return str(entry["folder"])
        taken = {str(e.get("folder")) for e in self.entries}
        stem = file.stem
        # lexists: a link (even one to nowhere) takes the name too; it is never used.
        folder = next(
            name
            for n in itertools.count(1)
            if (name := stem if n == 1 else f"{stem}-{n}") not in taken
            and not os.path.lexists(self.out_root / name)
        )
        (self.out_root / folder).mkdir(mode=0o700)  # on disk at once: nothing else takes it
        (self.out_root / folder).chmod(0o700)  # mkdir's mode is filtered by the umask
        self.entries.append(
            {"file": key, "folder": folder, "state": "importing", "since": utc_now(), **facts}
        )
        return folder

    def finish(self, file: Path, state: str, moved_to: str | None, **facts: Any) -> None:
        """The file's import ended: ``state`` is processed or rejected (``moved_to`` None when it
        stays in the inbox: still importing), ``facts`` its counts and outcome, for index.html."""
        key = str(file.absolute())
        for entry in self.entries:
            if entry.get("file") == key and entry.get("state") == "importing":
                entry.update(facts, finished=utc_now())
                if moved_to is not None:
                    entry.update(state=state, moved_to=moved_to)

    def add(self, file: Path, state: str, moved_to: str | None, **facts: Any) -> None:
        """A file that had no run (identical to one processed, or a format never read)."""
        now = utc_now()
        entry = {"file": str(file.absolute()), "folder": None, "state": state, "since": now}
        self.entries.append({**entry, "moved_to": moved_to, "finished": now, **facts})

    def processed_as(self, sha256: str, mapping: str) -> dict[str, Any] | None:
        """The file processed earlier with this content and this mapping, if any."""
        for entry in self.entries:
            if (
                entry.get("state") == PROCESSED
                and entry.get("sha256") == sha256
                and entry.get("mapping") == mapping
            ):
                return entry
        return None

    def save(self) -> None:
        text = json.dumps({"version": 1, "files": self.entries}, indent=1, ensure_ascii=False)
        # A file name that is not UTF-8 is kept byte for byte, as load reads it back.
        data = (text + "\n").encode("utf-8", "surrogateescape")
        folder = os.open(self.out_root, _DIRECTORY)
        try:
            _write_replacing(folder, INDEX_NAME, data)
        finally:
            os.close(folder)

    def check_folders(self) -> None:
        """The folders runs resume into are real folders of the watcher's user."""
        for entry in self.entries:
            if entry.get("state") in ("importing", REJECTED) and entry.get("folder"):
                folder = str(entry.get("folder"))
                if os.path.lexists(self.out_root / folder):
                    check_reports_folder(self.out_root, folder)


def record_outcome(
    out_root: Path, file: Path, outcome: FileOutcome, notice: Callable[[str], None]
) -> None:
    """Keep a file's outcome and counts in the index, and show them in index.html."""
    facts = {
        "outcome": outcome.outcome,
        "rows": outcome.rows,
        "sent": outcome.sent,
        "failed": outcome.failed,
        "skipped": outcome.skipped,
        "duration_s": round(outcome.duration_s, 1),
    }
    moved = outcome.moved_to if outcome.outcome in (PROCESSED, REJECTED) else None
    state = REJECTED if outcome.outcome == REJECTED else PROCESSED
    with FolderIndex.editing(out_root) as index:
        if outcome.folder:
            index.finish(file, state, moved, **facts)
        elif outcome.moved_to:  # no run: identical to a file processed, or never readable
            state = "identical" if outcome.outcome == "identical" else state
            index.add(file, state, outcome.moved_to, **facts)
        try:
            write_index_page(out_root, index)
        except OSError as exc:  # the log and the reports are what count
            notice(f"{PAGE_NAME} in {printable(str(out_root))}: not written ({exc})")


# -- watch.log ----------------------------------------------------------------------------------


def log_line(outcome: FileOutcome, when: datetime | None = None) -> str:
    """One line an operator reads in the morning: file, outcome, counts, where things are. Names
    and reasons are escaped: whatever a file is called, the line stays one line of plain text."""
    stamp = (when or datetime.now().astimezone()).isoformat(timespec="seconds")
    what: str = outcome.outcome
    if outcome.outcome == "aborted":
        what = f"aborted ({outcome.reason})"
    elif outcome.outcome == "changed" and outcome.reason:
        what = f"changed before it was read ({_why_changed(outcome.reason)})"
    elif outcome.outcome == "changed":
        what = f"changed while being imported ({outcome.change or 'it changed'})"
    elif outcome.outcome == "identical":
        what = f"identical to {outcome.same_as}: nothing sent"
    elif outcome.outcome == "error":
        what = f"unexpected error ({outcome.reason}); please report it"
    elif outcome.outcome == "rejected" and (outcome.not_moved or outcome.reason_unwritten):
        what = f"rejected ({outcome.reason})"
    counts = (
        f"{outcome.rows} rows, {outcome.sent} sent, {outcome.failed} failed, "
        f"{outcome.skipped} skipped, {outcome.duration_s:.1f} s"
    )
    if outcome.not_moved:
        into = PROCESSED if outcome.outcome == "processed" else REJECTED
        where = (
            f"cannot be moved into {into}/ ({outcome.not_moved}): it stays in the inbox, and the "
            f"next run resumes from {outcome.folder}/ (sending no row twice) and moves it"
        )
    elif outcome.outcome == "processed":
        where = f"reports in {outcome.folder}/, file in {outcome.moved_to}"
    elif outcome.outcome == "identical":
        where = f"file in {outcome.moved_to}"
    elif outcome.outcome == "changed" and not outcome.reason and outcome.moved_to:
        where = (
            f"it was in {outcome.moved_to} and cannot be moved back: move it back into the "
            f"inbox, and the next run imports the rows it gained from {outcome.folder}/"
        )
    elif outcome.outcome == "changed" and not outcome.reason:
        where = (
            f"left in the inbox; the next pass imports the rows it gained, resuming from "
            f"{outcome.folder}/"
        )
    elif outcome.outcome == "rejected" and outcome.reason_unwritten:
        where = (
            f"file in {outcome.moved_to}; its reason file cannot be written "
            f"({outcome.reason_unwritten})"
        )
    elif outcome.outcome == "rejected":
        where = f"reason in {outcome.moved_to}.reason.txt"
    elif outcome.folder:
        where = f"stays in the inbox, resumes from {outcome.folder}/"
    else:
        where = "stays in the inbox"
    return printable(f"{stamp} {printable(outcome.name)}: {what}, {counts}; {where}")


def log_lines(outcome: FileOutcome, when: datetime | None = None) -> list[str]:
    """The file's line, then one line for each of its run's warnings."""
    return [log_line(outcome, when)] + [printable(f"    warning: {w}") for w in outcome.warnings]


def warning_text(note: Note) -> str:
    """A run's warning as a log line says it: the message, and which rows when it names some."""
    if not note.rows:
        return note.message
    if note.count == 1:
        return f"{note.message} (row {note.rows[0]})"
    rows = ", ".join(str(row) for row in note.rows)
    more = ", ..." if note.count > len(note.rows) else ""
    return f"{note.message} ({note.count} rows: {rows}{more})"


def _why_changed(reason: str | None) -> str:
    # The loader says "<path> changed after it was listed (it is ...): it was not read".
    if reason and "(" in reason and ")" in reason:
        return reason[reason.index("(") + 1 : reason.rindex(")")]
    return reason or "it changed"


def append_log(out_root: Path, *lines: str) -> None:
    """Append ``lines`` in one write: a watcher of another inbox sharing out_root never puts its
    line between a file's line and its warnings."""
    fd = _open_log(out_root)
    try:
        os.write(fd, "".join(printable(line) + "\n" for line in lines).encode("utf-8"))
    finally:
        os.close(fd)


def _open_log(out_root: Path) -> int:
    path = out_root / LOG_NAME
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        shown = printable(str(path))
        if exc.errno == errno.ELOOP:
            raise InputError(
                f"{shown} is a symbolic link: the watcher appends to its log and follows no "
                "link; remove it"
            ) from None
        raise InputError(f"{shown}: cannot be written ({exc.strerror})") from None


# -- index.html ----------------------------------------------------------------------------------

_PAGE_CSS = """<style>
td.num,th.num{text-align:right}td.outcome{white-space:nowrap}
.processed,.identical{color:var(--ok)}.rejected,.error{color:var(--bad)}
.importing{color:var(--warn)}
</style>
"""
_STATE_WORDS = {
    PROCESSED: "processed",
    REJECTED: "rejected",
    "identical": "identical to an earlier file: nothing sent",
    "importing": "in the inbox, to be resumed",
}


def write_index_page(out_root: Path, index: FolderIndex) -> None:
    """``out_root/index.html``: every file the watcher took, newest first, with its counts and a
    link to its report. Self-contained (report.html's style, no script), 0600, replaced whole."""
    folder = os.open(out_root, _DIRECTORY)
    try:
        _write_replacing(folder, PAGE_NAME, render_index_page(out_root, index).encode("utf-8"))
    finally:
        os.close(folder)


def render_index_page(out_root: Path, index: FolderIndex) -> str:
    # Newest first; in the order they were added when the clock says the same second.
    order = sorted(
        enumerate(index.entries),
        key=lambda ie: (str(ie[1].get("finished") or ie[1].get("since") or ""), ie[0]),
        reverse=True,
    )
    entries = [entry for _, entry in order]
    rows = "".join(_index_row(out_root, entry) for entry in entries)
    table = (
        "<div class=scroll><table><thead><tr><th>File</th><th>When</th><th>Outcome</th>"
        "<th class=num>Rows</th><th class=num>Sent</th><th class=num>Failed</th>"
        "<th class=num>Skipped</th><th>Report</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>\n"
        if entries
        else "<p>No file imported yet.</p>\n"
    )
    head = _head(f"rd-importer watch: {out_root.name}").replace("</head>", _PAGE_CSS + "</head>")
    return (
        f"{head}<p class=kicker>rd-importer watch</p>\n<h1>Files imported into "
        f"<code>{_e(out_root)}</code></h1>\n<p>{len(entries)} file"
        f"{'' if len(entries) == 1 else 's'}, newest first. Each file's own report is in its "
        "folder; watch.log has a line for each file.</p>\n"
        f"{table}<footer>This page holds file names only; the reports it links to hold personal "
        "data.</footer>\n</main>\n</body>\n</html>\n"
    )


def _index_row(out_root: Path, entry: dict[str, Any]) -> str:
    state = str(entry.get("state") or "")
    moved = entry.get("moved_to")
    name = Path(str(moved)).name if moved else Path(str(entry.get("file") or "")).name
    outcome = str(entry.get("outcome") or state)
    words = _STATE_WORDS.get(state, state)
    if outcome not in (state, PROCESSED):
        words = f"{words} ({outcome})"
    when = str(entry.get("finished") or entry.get("since") or "")
    folder = entry.get("folder")
    report = "<span class=muted>none</span>"
    if folder and os.path.isfile(out_root / str(folder) / "report.html"):
        href = urllib.parse.quote(f"{folder}/report.html")
        report = f'<a href="{_e(href)}">{_e(folder)}/report.html</a>'
    elif folder:
        report = f"<code>{_e(folder)}/</code>"
    counts = "".join(
        f"<td class=num>{_n(entry.get(key))}</td>" for key in ("rows", "sent", "failed", "skipped")
    )
    took = (
        f" <span class=muted>({_duration(float(entry['duration_s']))})</span>"
        if entry.get("duration_s")
        else ""
    )
    return (
        f"<tr><td>{_e(printable(name))}</td><td class=num>{_e(when)}</td>"
        f'<td class="outcome {_e(state)}">{_e(words)}{took}</td>{counts}<td>{report}</td></tr>'
    )
