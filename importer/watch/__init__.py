"""Import every spreadsheet dropped into a folder: the engine behind ``rd-importer watch``.

    run_watch(config, listener, echo=...) -> WatchResult

A *pass* takes the inbox lock, lists the spreadsheets that have settled (not changed for
``settle`` seconds), oldest first, and imports them one at a time, each into its own reports
folder under ``out_root``. Then each file moves:

    imported to the end (rows sent or failed)  -> INBOX/processed/
    identical to a file processed (sha256)     -> INBOX/processed/, without a run
    cannot be read at all (InputError)         -> INBOX/rejected/, beside <name>.reason.txt
    aborted (key refused, interrupted)         -> stays in INBOX; the next pass resumes its ledger
    changed after its import started           -> stays in (or goes back to) INBOX; the next pass
                                                  imports the rows it gained

Every file imported with one mapping shares one ledger, ``out_root/.ledger-<mapping stem>.sqlite``
(``each_file_new``: each file its own, in its folder), so a cumulative export sends only its
new rows; rows edited since they were sent stay as sent unless the template says
``changed="resend"``.

``once`` makes one pass; otherwise passes repeat every ``interval`` seconds until SIGTERM or
Ctrl-C. One line per file goes to ``echo`` and to ``out_root/watch.log``; it names the file and
counts rows, never a cell; the run's warnings follow it in the log, and ``out_root/index.html``
lists every file with its counts and a link to its report. What else the watcher sees (a file
still being written, a busy lock) goes to the listener's ``info``, so a quiet cron job mails only
when a file was imported.

The inbox is shared with whoever uploads, so nothing there is trusted. The watcher follows no
link in the folders it writes: ``processed/``, ``rejected/`` and the reports folders must be real
folders of the watcher's user (checked at start and before each file: else ``InputError``, before
anything is touched), and it writes in them through descriptors of the folders it checked, never
replacing an entry but by a rename (``O_NOFOLLOW``, ``O_EXCL``). A file is read only if it is still
the file listed (``loader.ListedFile``). A file that cannot be read is rejected; an unexpected error
in one file is logged and the others go on. File names are escaped (``printable``) wherever shown.

The modules: ``inbox`` (which files, their identity and sha256, the inbox lock), ``folders`` (the
checked folders and the moves), ``record`` (watch-index.json, watch.log, index.html), ``files``
(one file's import), ``watcher`` (the passes and the signals).
"""

from __future__ import annotations

from importer.watch.files import WatchConfig, check_settings
from importer.watch.folders import (
    PROCESSED,
    REJECTED,
    check_reports_folder,
    move_aside,
    open_folder,
)
from importer.watch.inbox import (
    LOCK_NAME,
    SPREADSHEET_SUFFIXES,
    UNREADABLE_SUFFIXES,
    Dropped,
    InboxLock,
    is_spreadsheet_name,
    listed_sha256,
    scan_inbox,
)
from importer.watch.record import (
    INDEX_NAME,
    LOG_NAME,
    PAGE_NAME,
    FileOutcome,
    FolderIndex,
    append_log,
    log_line,
    log_lines,
    render_index_page,
    warning_text,
    write_index_page,
)
from importer.watch.watcher import WatchResult, run_watch, watch_async

__all__ = [
    "INDEX_NAME",
    "LOCK_NAME",
    "LOG_NAME",
    "PAGE_NAME",
    "PROCESSED",
    "REJECTED",
    "SPREADSHEET_SUFFIXES",
    "UNREADABLE_SUFFIXES",
    "Dropped",
    "FileOutcome",
    "FolderIndex",
    "InboxLock",
    "WatchConfig",
    "WatchResult",
    "append_log",
    "check_reports_folder",
    "check_settings",
    "is_spreadsheet_name",
    "listed_sha256",
    "log_line",
    "log_lines",
    "move_aside",
    "open_folder",
    "render_index_page",
    "run_watch",
    "scan_inbox",
    "warning_text",
    "watch_async",
    "write_index_page",
]
