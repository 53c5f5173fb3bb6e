"""The importer's exceptions.

    ImporterError               anything the importer reports to a user
     +-- InputError             the file, the mapping or a setting is unusable: found before sending
     |                          (exit 2)
     +-- RowError               one row is bad: it fails, the rest of the file goes on
     +-- AbortError             the run must stop now, resumable: credentials refused, interrupted
                                (exit 3)

Messages are one line, name the file, row, column or setting, and say what to do next.
Third-party exceptions (aiohttp, csv, openpyxl, pydantic, yaml) are translated into these at the
module that talks to the library; nothing above that module sees them.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """The process's exit status: one list for the CLI, ``watch`` and ``RunReport``."""

    OK = 0  # every row sent
    FAILED_ROWS = 1  # the run finished and some rows (or files) failed
    INPUT = 2  # a usage, mapping, input or setting error, found before anything was sent
    ABORTED = 3  # stopped before its end (credentials refused, interrupted): resumable


class ImporterError(Exception):
    """Base of every error the importer reports to a user."""


class InputError(ImporterError):
    """The input file, the mapping or a setting cannot be used. Nothing was sent.

    ``setting`` names the setting at fault as the library calls it (``concurrency``,
    ``api_url``, ``out_dir``...) when the message begins with it; the CLI shows it as its flag.
    """

    def __init__(self, message: str, *, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class SettingsError(InputError):
    """An InputError that is the mapping's or a setting's, not the file's: the same file with
    other settings would import (a custom field the account lacks). ``watch`` stops on it
    instead of rejecting each file it meets."""


class RowError(ImporterError):
    """One row cannot be sent. ``stage`` is ``read``, ``mapping`` or ``validation``."""

    def __init__(self, message: str, *, stage: str = "validation"):
        super().__init__(message)
        self.message = message
        self.stage = stage


class AbortError(ImporterError):
    """The run stopped before its end and can be resumed with the same command."""


def printable(text: str) -> str:
    """``text`` with what a terminal or a log would act on written as a Python string literal
    writes it: line breaks, escape sequences and other control characters, invisible format
    characters (a right-to-left override), the bytes of a file name that are not UTF-8
    (``\\n``, ``\\x1b``, ``\\u202e``, ``\\udcff``). Accents, other scripts and spaces stay as
    they are; applied twice, it changes nothing more."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
