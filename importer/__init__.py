"""rd-importer: bulk import of lead spreadsheets into RD Station Marketing conversions.

from importer import import_rows          # the Python API: see importer.api
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ImportReport", "RunAborted", "__version__", "import_rows", "import_rows_async"]

if TYPE_CHECKING:
    from importer.api import ImportReport, RunAborted, import_rows, import_rows_async


def __getattr__(name: str) -> Any:
    # Imported when first asked for: every submodule imports this package, and the workbook's
    # reading process or `rd-importer --version` need not load the whole run.
    if name in ("ImportReport", "RunAborted", "import_rows", "import_rows_async"):
        from importer import api

        return getattr(api, name)
    raise AttributeError(f"module 'importer' has no attribute {name!r}")
