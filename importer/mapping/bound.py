"""A mapping bound to one file's headers: the only thing that turns a row into a payload."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from importer import payload as rd
from importer.errors import RowError
from importer.mapping.compile import Cells, Plan
from importer.records import Row

if TYPE_CHECKING:
    from importer.mapping.funnel import FunnelGetter

Warn = Callable[[str, str], None]  # (kind, message): a warning for the run's record


class BoundMapping:
    """A mapping whose columns were checked against a file's headers (``Mapping.bind``).

    ``warnings`` are what the check found and let pass: an optional column the file lacks,
    a likely typo among candidate columns. ``key`` is the mapping's ``key:`` columns.
    """

    def __init__(self, plan: Plan, warnings: list[str], key: list[str] | None = None) -> None:
        self.warnings = warnings
        self.key = key  # the columns that identify a row across runs (None: every cell)
        self._constants = plan.constants
        self._plain = plan.plain
        self._getters = plan.getters
        self._legal = plan.legal
        self._labels = plan.labels
        self._read_columns = plan.read_columns
        self._notes = plan.notes
        # The funnel: section (``importer.mapping.funnel``), set by ``Mapping.bind``; None when
        # the mapping has none, or it is left out (``with_apikey: skip`` under the API key).
        self.funnel: FunnelGetter | None = None

    @property
    def columns_read(self) -> list[str]:
        """Every column of the file the mapping reads."""
        return list(self._read_columns)

    def apply(self, row: Row, warn: Warn | None = None) -> dict[str, Any]:
        """The row's payload (the inner ``payload`` object), or RowError saying what is wrong.

        ``warn(kind, message)`` hears what the row's mapping let pass: a value ``on_invalid:
        drop`` left out, a number read as an Excel date serial (a row that fails says only
        why it failed). Its messages name the field and column, never the cell.
        """
        cells = row.cells
        try:
            payload: dict[str, Any] = self._constants.copy()
            # most fields are a constant or one column's trimmed text: filled here, without a
            # function call each
            for name, column in self._plain:
                value = cells.get(column)
                if value and (value := value.strip()):
                    payload[name] = value
            for name, get in self._getters:
                value = get(cells)
                if value is not None:
                    payload[name] = value
            if self._legal:
                bases = self._legal_bases(cells)
                if bases:
                    payload["legal_bases"] = bases
            if "email" not in payload or "conversion_identifier" not in payload:
                raise self._missing_required(payload)
            tags = payload.get("tags")
            if tags:
                payload["tags"] = rd.lowercase_tags(tags)
            if self._notes:  # rare: one check per row otherwise
                self._tell(warn)
            return payload
        except RowError:
            self._notes.clear()
            columns = self._read_columns
            if columns and not any((cells.get(column) or "").strip() for column in columns):
                raise RowError(
                    "the row has none of the mapped columns filled (a blank or leftover row)",
                    stage="mapping",
                ) from None
            raise

    def _tell(self, warn: Warn | None) -> None:
        notes = self._notes
        if warn is not None:
            for kind, message in dict.fromkeys(notes):  # once per row each
                warn(kind, message)
        notes.clear()

    def _legal_bases(self, cells: Cells) -> list[dict[str, str]]:
        bases = []
        for kind, status in self._legal:
            kind_value = kind if isinstance(kind, str) else kind(cells)
            status_value = status if isinstance(status, str) else status(cells)
            if kind_value is not None and status_value is not None:
                bases.append(
                    {"category": "communications", "type": kind_value, "status": status_value}
                )
        return bases

    def _missing_required(self, payload: dict[str, Any]) -> RowError:
        name = "email" if "email" not in payload else "conversion_identifier"
        what = "an email address" if name == "email" else "a conversion identifier"
        return RowError(
            f"{self._labels[name]} is empty: every conversion needs {what}", stage="validation"
        )
