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


class ImporterError(Exception):
    """Base of every error the importer reports to a user."""


class InputError(ImporterError):
    """The input file, the mapping or a setting cannot be used. Nothing was sent."""


class RowError(ImporterError):
    """One row cannot be sent. ``stage`` is ``read``, ``mapping`` or ``validation``."""

    def __init__(self, message: str, *, stage: str = "validation"):
        super().__init__(message)
        self.message = message
        self.stage = stage


class AbortError(ImporterError):
    """The run stopped before its end and can be resumed with the same command."""
