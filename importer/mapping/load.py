"""Loading a mapping file: read the YAML, check it, and report every problem at once."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from importer.errors import InputError
from importer.mapping.bound import BoundMapping
from importer.mapping.checks import check
from importer.mapping.columns import (
    Rows,
    forgiven,
    forgiven_warnings,
    missing_columns,
    none_found,
    renamed,
)
from importer.mapping.compile import compile_plan
from importer.mapping.funnel import compile_funnel, funnel_line, funnel_problems
from importer.mapping.problems import pydantic_problems, raise_problems
from importer.mapping.schema import MappingFile, columns_read
from importer.mapping.yamltext import Lines, line_of, read_yaml


class Mapping:
    """A checked mapping file. :meth:`bind` it to a file's headers to map that file's rows."""

    def __init__(self, path: Path, spec: MappingFile, lines: Lines | None = None):
        self.path = path
        self.spec = spec
        self._lines = lines or {}

    def line_of(self, *key: str) -> int:
        """The mapping file's line of ``key`` (``line_of("fields", "cf_plano")``); 0 when
        unknown (a mapping given as a dict, a key it does not have)."""
        lines = self._lines
        return line_of(lines, key) if key in lines else 0

    @property
    def columns(self) -> list[str]:
        """Every column the mapping reads, in the order the mapping names them."""
        return columns_read(self.spec)

    def bind(
        self,
        headers: list[str],
        source: str = "the file",
        *,
        first_rows: Rows = (),
        header_row: int = 1,
    ) -> BoundMapping:
        """The mapping for a file with these headers; InputError naming every needed column
        the file lacks. ``source`` names the file in messages (e.g. ``leads.csv``); the
        returned mapping's ``warnings`` say what the file lacks that the mapping can do without,
        and which columns it reads from a header spelled another way (case, accents, spaces).

        A file with none of the mapping's columns gets one error showing the header read
        (row ``header_row``); ``first_rows`` (``Table.first_rows``) let it say which row holds
        the columns, when another does.
        """
        renames = forgiven(self.spec, headers)
        spec = renamed(self.spec, renames)
        diagnosis = none_found(spec, headers, source, self.path.name, first_rows, header_row)
        if diagnosis is not None:
            raise diagnosis
        problems, warnings = missing_columns(spec, self._lines, headers, source)
        warnings = forgiven_warnings(self.spec, self._lines, renames, source) + warnings
        key = spec.key_columns
        for column in key or ():
            if column not in headers:
                line = line_of(self._lines, ("key",)) if self._lines else 0
                problems.append(
                    (line, f"key column '{column}' is not in {source}: a row's key must be there")
                )
        raise_problems(self.path.name, problems)
        bound = BoundMapping(compile_plan(spec, set(headers)), warnings, key)
        bound.funnel = compile_funnel(spec.funnel, set(headers))
        return bound

    @property
    def funnel_line(self) -> int:
        """The line of the mapping's ``funnel:`` section (0 when unknown)."""
        return funnel_line(self._lines)


def load_mapping(path: Path) -> Mapping:
    """Reads and checks a mapping file; InputError lists every problem with its line."""
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"mapping file {path} not found: check the --mapping path") from None
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"mapping file {path} cannot be read: {exc.strerror}") from None
    document = read_yaml(text, name)
    raise_problems(name, document.refused)
    data, lines, problems = document.data, document.lines, list(document.problems)
    if not isinstance(data, dict):
        raise InputError(
            f"{name}: line 1: a mapping starts with conversion_identifier: and fields: "
            "(see mappings/example.yaml)"
        )
    spec: MappingFile | None = None
    try:
        spec = MappingFile.model_validate(data)
    except ValidationError as exc:
        problems += pydantic_problems(exc, data, lines)
    problems += check(data, lines)
    problems += funnel_problems(data, lines)
    raise_problems(name, problems)
    if spec is None:  # cannot be: a spec that did not validate left problems, raised above
        raise InputError(f"{name}: the mapping cannot be read")
    return Mapping(path, spec, lines)
