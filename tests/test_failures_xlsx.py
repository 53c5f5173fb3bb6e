"""failures.xlsx: failures.csv's rows as a workbook whose cells are text exactly as read, laid
out for a person, and that can be fixed in Excel and imported again like failures.csv."""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pytest
import python_calamine

from helpers import API_KEY, read_csv, read_summary, write_csv, write_mapping
from importer import xlsx_report
from importer.errors import InputError
from importer.ledger import Failure
from importer.loader import open_table
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.report import FAILURE_COLUMNS
from importer.xlsx_report import write_failures_xlsx

# Cells a spreadsheet would turn into numbers, formulas, errors or booleans, or that XML cannot
# hold as they are: each must come back exactly.
TRICKY = [
    "01310100",  # a CEP: its leading zero
    "12345678901234567890",  # past a float's digits
    "5511987654321",
    "=1+1",
    '=HYPERLINK("http://x")',
    "+55 11 98765-4321",
    "-5",
    "@SUM(A1)",
    "'=already quoted",  # a real leading quote: kept, not taken for the CSV's escaping
    "#N/A",
    "TRUE",
    "1e5",
    "2024-03-05",
    "<b>&amp;</b>",
    " spaces around ",
    "two\nlines",
    "Olá, São João 😀",
]
CONTROL = ["a\x0bb", "tab\tand\r\nCRLF", "looks_x000D_escaped", "\x01"]  # XML 1.0 cannot hold


def failure(row: int, cells: list[str], **kw) -> Failure:
    values = {
        "stage": "validation",
        "http_status": None,
        "error_type": "INVALID_EMAIL",
        "message": "email 'x' is not a valid email address: fix the cell",
        "attempts": 0,
        "source_row": row,
        "row_id": f"id{row:022d}",
    }
    values.update(kw)
    return Failure(row, cells, **values)


def calamine_rows(path: Path) -> list[list]:
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    return book.get_sheet_by_name(book.sheet_names[0]).to_python()


def sheet_xml(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("xl/worksheets/sheet1.xml")


def test_every_cell_comes_back_as_the_text_it_was_and_none_is_a_formula(tmp_path: Path) -> None:
    headers = [f"h{i}" for i in range(len(TRICKY))]
    headers[0] = "=SUM(1)"  # a header is the user's text too
    path = tmp_path / "failures.xlsx"
    bad = failure(2, TRICKY, http_status=400, error_type="@SUM(1)", message='=HYPERLINK("x")')
    written = write_failures_xlsx(path, headers, [bad])
    assert (written.rows, written.warnings()) == (1, [])

    header, row = calamine_rows(path)
    assert header == [*headers, *FAILURE_COLUMNS]
    assert row[: len(TRICKY)] == TRICKY
    # The report's own numbers are numbers (the filter sorts them so), its words are text.
    assert row[len(TRICKY) :] == [
        2,
        "validation",
        400,
        "@SUM(1)",
        '=HYPERLINK("x")',
        0,
        2,
        bad.row_id,
    ]

    sheet = openpyxl.load_workbook(path).active
    assert [c.value for c in sheet[1]] == [*headers, *FAILURE_COLUMNS]
    assert [c.value for c in sheet[2]][: len(TRICKY)] == TRICKY
    assert {c.data_type for c in sheet[2][: len(TRICKY)]} == {"s"}
    assert [c.data_type for c in sheet[2][len(TRICKY) :]] == list("nsnssnns")

    xml = sheet_xml(path)
    ElementTree.fromstring(xml)  # well-formed
    assert b"<f>" not in xml and b"<f " not in xml
    assert b"'=" not in xml.replace(b"'=already", b"")  # no CSV escaping


def test_characters_xml_cannot_hold_come_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "failures.xlsx"
    write_failures_xlsx(path, ["a", "b", "c", "d"], [failure(2, CONTROL)])
    ElementTree.fromstring(sheet_xml(path))  # no raw control character made it invalid
    assert calamine_rows(path)[1][:4] == CONTROL
    # ... and the loader reads them as they were.
    with open_table(path) as table:
        (row,) = table.rows()
    assert list(row.cells.values()) == CONTROL


def test_the_sheet_is_laid_out_for_a_person(tmp_path: Path) -> None:
    headers = ["Nome", "E-mail", "CEP", "Observação longa do vendedor"]
    rows = [failure(n, ["Ana", f"ana{n}@exemplo.com", "01310100", "curta"]) for n in range(2, 80)]
    rows.append(failure(80, ["Ana", "x" * 35, "0", "y" * 200]))  # past the rows that size them
    path = tmp_path / "failures.xlsx"
    write_failures_xlsx(path, headers, rows)

    book = openpyxl.load_workbook(path)
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:L{len(rows) + 1}"
    assert sheet["A1"].value == "Nome"  # the user's first column first
    assert sheet["A1"].font.b and sheet["E1"].font.b
    user_fill, error_fill = sheet["A1"].fill.fgColor.rgb, sheet["E1"].fill.fgColor.rgb
    assert user_fill != error_fill
    assert (
        sheet["E2"].fill.fill_type == "solid"
        and sheet[f"L{len(rows) + 1}"].fill.fill_type == "solid"
    )
    assert sheet["D2"].fill.fill_type is None  # the user's cells have no fill
    assert {sheet.cell(2, c).number_format for c in range(1, 5)} == {"@"}  # a fix stays text
    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEFGHIJKL"}
    assert widths["I"] == 60  # error_message
    assert widths["A"] == xlsx_report.MIN_WIDTH
    assert widths["B"] == len("ana10@exemplo.com") + 1  # the first rows only, not row 80
    assert widths["D"] == len(headers[3]) + 3
    assert b'numberStoredAsText="1"' in sheet_xml(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failures.xlsx"]  # no temp file left


def test_written_only_when_there_are_failures(tmp_path: Path) -> None:
    path = tmp_path / "failures.xlsx"
    write_failures_xlsx(path, ["email"], [])
    assert not path.exists()
    write_failures_xlsx(path, ["email"], [failure(2, ["x"])])
    assert path.exists()
    write_failures_xlsx(path, ["email"], [])  # all fixed: the old list would mislead
    assert not path.exists()


def test_a_write_that_fails_leaves_the_previous_report_whole(tmp_path: Path) -> None:
    path = tmp_path / "failures.xlsx"
    write_failures_xlsx(path, ["email"], [failure(2, ["x"])])
    before = path.read_bytes()

    def broken():
        yield from (failure(n, ["y"]) for n in range(2, 200))
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_failures_xlsx(path, ["email"], broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failures.xlsx"]


def test_rows_excel_cannot_hold_are_left_out_and_said(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "failures.xlsx"
    rows = [
        failure(2, ["a@x", "ok"]),
        failure(3, ["b@x", "z" * 32_768]),  # one character over what a cell holds
        failure(4, ["c@x", "😀" * 16_384]),  # 16,384 characters, 32,768 UTF-16 units
        failure(5, ["d@x", "é" * 32_767]),  # exactly what it holds
    ]
    written = write_failures_xlsx(path, ["email", "nota"], rows)
    assert (written.rows, written.too_long, written.too_long_rows) == (2, 2, [3, 4])
    assert [r[0] for r in calamine_rows(path)[1:]] == ["a@x", "d@x"]
    (said,) = written.warnings()
    assert "leaves out 2 failed row(s)" in said and "(row 3, 4)" in said
    assert said.endswith("fix those in failures.csv")

    monkeypatch.setattr(xlsx_report, "MAX_ROWS", 3)  # a sheet of a header and two rows
    written = write_failures_xlsx(path, ["email"], [failure(n, [f"{n}@x"]) for n in range(2, 7)])
    assert (written.rows, written.past_last_row) == (2, 3)
    assert written.warnings() == [
        "failures.xlsx holds the first 2 of the 5 failed rows (an Excel sheet holds no more): "
        "failures.csv has them all"
    ]
    assert len(calamine_rows(path)) == 3


def test_the_loader_reads_an_xlsx_report_back_without_the_csv_unescaping(tmp_path: Path) -> None:
    path = tmp_path / "failures.xlsx"
    headers = ["'=Nome", "email"]
    write_failures_xlsx(path, headers, [failure(7, ["'=1+1", "x"], source_row=4, row_id="abc")])
    with open_table(path) as table:
        assert table.source_headers == headers
        assert table.headers == headers
        (row,) = table.rows()
    assert row.cells == {"'=Nome": "'=1+1", "email": "x"}  # a real leading quote stays
    assert (row.number, row.source_row, row.row_id) == (2, 4, "abc")


# --- the fix-and-import-again loop, end to end -----------------------------------------------

MAPPING = """\
conversion_identifier: "feira-2025"
fields:
  email: "email"
  name: "nome"
  cf_cep: "cep"
  cf_fone: "fone"
  cf_obs: "obs"
"""
HEADER = ["email", "nome", "cep", "fone", "obs"]


def leads() -> list[list[str]]:
    rows = [
        [f"pessoa{i}@exemplo.com.br", f"Pessoa {i}", f"0{i}310100", "11987654321", "=1+1"]
        for i in range(1, 9)
    ]
    rows[1][0] = "sem-arroba"  # row 3
    rows[3][0] = "outro erro"  # row 5
    rows[5][0] = "mais um"  # row 7
    rows[6][0] = ""  # row 8: no email
    return rows


def config(tmp_path: Path, data: Path, url: str) -> ImportConfig:
    return ImportConfig(
        input_path=data,
        mapping_path=tmp_path / "m.yaml",
        out_dir=tmp_path / "out",
        api_url=url,
        api_key=API_KEY,
        rate=0,
        concurrency=4,
        tuning=Tuning(retry_wait=False),
    )


def accepted(box) -> list[dict]:
    return [e["payload"] for e in box.snapshot()["accepted"]]


def sheet_rows(path: Path) -> list[dict]:
    header, *rows = calamine_rows(path)
    return [dict(zip(header, row, strict=True)) for row in rows]


def first_run(tmp_path: Path, sandbox) -> Path:
    write_mapping(tmp_path / "m.yaml", MAPPING)
    data = write_csv(tmp_path / "leads.csv", HEADER, leads())
    first = run_import(config(tmp_path, data, sandbox.url))
    assert (first.succeeded, first.failed) == (4, 4)
    out = tmp_path / "out"
    in_book = sheet_rows(out / "failures.xlsx")
    in_csv = read_csv(out / "failures.csv")
    assert [r["source_row"] for r in in_book] == [3, 5, 7, 8]
    # The same rows and columns as failures.csv, the CSV's ' escaping aside.
    for book_row, csv_row in zip(in_book, in_csv, strict=True):
        assert list(book_row) == list(csv_row)
        assert book_row["obs"] == "=1+1" and csv_row["obs"] == "'=1+1"
        assert book_row["cep"] == csv_row["cep"] and book_row["cep"].startswith("0")
    return out


def test_a_fixed_copy_of_failures_xlsx_imports_like_failures_csv(tmp_path: Path, sandbox) -> None:
    out = first_run(tmp_path, sandbox)
    with pytest.raises(InputError, match=r"failures\.xlsx: this input is a report of .*copy it"):
        run_import(config(tmp_path, out / "failures.xlsx", sandbox.url))

    # Fixed in Excel: two emails corrected (one with the phone typed as a number), row 7 deleted
    # (its row is no longer in the sheet), row 8 left as it was.
    fixed = tmp_path / "failures-fixed.xlsx"
    shutil.copy(out / "failures.xlsx", fixed)
    book = openpyxl.load_workbook(fixed)
    sheet = book.active
    sheet["A2"] = "bia@exemplo.com.br"  # source row 3
    sheet["A3"] = "caio@exemplo.com.br"  # source row 5
    sheet["D3"] = 11912345678  # a number, as Excel stores what is typed into a General cell
    sheet.delete_rows(4)  # source row 7
    book.save(fixed)

    second = run_import(config(tmp_path, fixed, sandbox.url))
    assert (second.rows, second.succeeded, second.failed) == (3, 2, 1)
    sent = {p["email"]: p for p in accepted(sandbox)}
    assert len(accepted(sandbox)) == 6  # 4 + 2: nothing sent twice
    assert sent["bia@exemplo.com.br"]["cf_cep"] == "02310100"  # leading zero kept
    assert sent["bia@exemplo.com.br"]["cf_obs"] == "=1+1"  # not a formula, not escaped
    assert sent["caio@exemplo.com.br"]["cf_fone"] == "11912345678"

    # Still failed: row 8 (still bad) and row 7 (deleted from the copy, not fixed), under the
    # numbers they had in leads.csv.
    still = sheet_rows(out / "failures.xlsx")
    assert [(r["source_row"], r["email"]) for r in still] == [(7, "mais um"), (8, "")]
    assert [r["source_row"] for r in read_csv(out / "failures.csv")] == ["7", "8"]
    successes = read_csv(out / "successes.csv")
    assert sorted(int(s["source_row"]) for s in successes) == [2, 3, 4, 5, 6, 9]
    assert read_summary(out)["folder"] == {"sent": 6, "failed": 2, "left_to_send": 0}

    # The next round from the new failures.xlsx: the rest fixed, then none left, no stale file.
    again = tmp_path / "failures-fixed-2.xlsx"
    shutil.copy(out / "failures.xlsx", again)
    book = openpyxl.load_workbook(again)
    book.active["A2"] = "davi@exemplo.com.br"
    book.active["A3"] = "eva@exemplo.com.br"
    book.save(again)
    third = run_import(config(tmp_path, again, sandbox.url))
    assert (third.succeeded, third.failed) == (2, 0)
    assert len(accepted(sandbox)) == 8
    assert not (out / "failures.xlsx").exists()
    assert read_csv(out / "failures.csv") == []


def test_a_copy_with_a_column_added_sends_its_fixes_and_keeps_the_rest(
    tmp_path: Path, sandbox
) -> None:
    out = first_run(tmp_path, sandbox)
    fixed = tmp_path / "fixed.xlsx"
    shutil.copy(out / "failures.xlsx", fixed)
    book = openpyxl.load_workbook(fixed)
    sheet = book.active
    sheet.insert_cols(3)  # a column of notes beside the data, as people add in Excel
    sheet["C1"] = "anotação"
    sheet["C2"] = "liguei"
    sheet["A2"] = "bia@exemplo.com.br"  # source row 3 fixed
    book.save(fixed)

    second = run_import(config(tmp_path, fixed, sandbox.url))
    assert (second.rows, second.succeeded, second.failed) == (4, 1, 3)
    assert len(accepted(sandbox)) == 5
    still = sheet_rows(out / "failures.xlsx")
    assert list(still[0])[:6] == ["email", "nome", "anotação", "cep", "fone", "obs"]
    assert [r["source_row"] for r in still] == [5, 7, 8]
    # Importing the same copy again sends nothing more.
    third = run_import(config(tmp_path, fixed, sandbox.url))
    assert (third.succeeded, third.skipped) == (0, 1)
    assert len(accepted(sandbox)) == 5


def test_a_run_says_which_rows_failures_xlsx_could_not_hold(tmp_path: Path, sandbox) -> None:
    write_mapping(tmp_path / "m.yaml", MAPPING)
    rows = leads()[:3]
    rows[1][4] = "x" * 40_000  # row 3: a bad email and a note longer than an Excel cell
    data = write_csv(tmp_path / "leads.csv", HEADER, rows)
    run_import(config(tmp_path, data, sandbox.url))
    out = tmp_path / "out"
    assert len(read_csv(out / "failures.csv")) == 1
    assert not (out / "failures.xlsx").exists()  # a sheet of no rows would only puzzle
    (warning,) = [w["message"] for w in read_summary(out)["warnings"]]
    assert warning.startswith("failures.xlsx leaves out 1 failed row(s) with a cell longer")
