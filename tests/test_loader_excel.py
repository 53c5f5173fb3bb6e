"""The loader on workbooks (XLSX written with openpyxl) and on hostile or fake workbooks."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import struct
import zipfile
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from helpers import read_summary, write_mapping
from importer import workbook
from importer.cli import cli
from importer.errors import AbortError, InputError
from importer.loader import open_table
from importer.pipeline import ImportConfig, run_import
from importer.records import Row


def write_leads(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Leads"
    sheet.append(["Nome", "Celular", "Nota", "Nasc", "Quando", "Ativo", "Soma", "CEP", "Big"])
    sheet.append(
        [
            "Ana",
            11987654321,
            7.5,
            dt.date(2024, 3, 5),
            dt.datetime(2024, 3, 5, 14, 30),
            True,
            "=1+2",
            "01310100",
            1e20,
        ]
    )
    sheet.append([])
    sheet.append(["Bia", 5511987654321, 0.1 + 0.2, None, None, False, None, "00100", 1e-7])
    other = book.create_sheet("Outra")
    other.append(["email"])
    other.append(["c@x.com"])
    book.save(path)
    return _with_cached_formula_value(path)


def _with_cached_formula_value(path: Path) -> Path:
    """openpyxl writes formulas without a result; Excel saves the result beside the formula.

    Rewrite the sheet so G2 holds ``<f>1+2</f><v>3</v>`` as Excel would have saved it.
    """
    patched = path.with_name("patched-" + path.name)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(patched, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(rb"<f>1\+2</f><v\s*/>", b"<f>1+2</f><v>3</v>", data)
                assert count == 1
            target.writestr(item, data)
    patched.replace(path)
    return path


def test_xlsx_cells_read_as_a_person_sees_them(tmp_path: Path) -> None:
    with open_table(write_leads(tmp_path / "leads.xlsx")) as table:
        rows = list(table.rows())
    assert table.description == "XLSX, sheet 'Leads'"
    assert rows == [
        Row(
            2,
            {
                "Nome": "Ana",
                "Celular": "11987654321",
                "Nota": "7.5",
                "Nasc": "2024-03-05",
                "Quando": "2024-03-05T14:30:00",
                "Ativo": "true",
                "Soma": "3",
                "CEP": "01310100",
                "Big": "100000000000000000000",
            },
        ),
        Row(
            4,
            {
                "Nome": "Bia",
                "Celular": "5511987654321",
                "Nota": "0.3",
                "Nasc": "",
                "Quando": "",
                "Ativo": "false",
                "Soma": "",
                "CEP": "00100",
                "Big": "0.0000001",
            },
        ),
    ]
    assert table.blank_rows == 1


@pytest.mark.parametrize("name", ["Outra", "outra", " OUTRA "])
def test_sheet_by_name(tmp_path: Path, name: str) -> None:
    with open_table(write_leads(tmp_path / "leads.xlsx"), sheet=name) as table:
        assert table.description == "XLSX, sheet 'Outra'"
        assert list(table.rows()) == [Row(2, {"email": "c@x.com"})]


def test_missing_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = write_leads(tmp_path / "leads.xlsx")
    with pytest.raises(InputError) as error:
        open_table(path, sheet="Contatos")
    assert str(error.value) == (
        f"{path} has no sheet 'Contatos': its sheets are 'Leads', 'Outra'; check --sheet"
    )


def test_header_row_and_offset_data_in_a_sheet(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["C1"] = "Relatório"
    sheet["C3"], sheet["D3"] = "email", "nome"
    sheet["C4"], sheet["D4"] = "a@x.com", "Ana"
    sheet["C6"], sheet["D6"] = "b@x.com", "Bia"
    sheet["F7"] = "solto"
    path = tmp_path / "offset.xlsx"
    book.save(path)
    with open_table(path, header_row=3) as table:
        rows = list(table.rows())
    assert table.headers == ["email", "nome"]
    assert rows == [
        Row(4, {"email": "a@x.com", "nome": "Ana"}),
        Row(6, {"email": "b@x.com", "nome": "Bia"}),
        Row(
            7,
            {"email": "", "nome": "", " 3": "", " 4": "solto"},  # E and F, kept for the report
            "this row has a value in column F, which has no header: "
            "give that column a header or clear the cell",
        ),
    ]


def test_xlsx_named_csv_is_read_as_a_workbook(tmp_path: Path) -> None:
    path = write_leads(tmp_path / "leads.xlsx").rename(tmp_path / "leads.csv")
    with open_table(path, delimiter=";") as table:
        assert table.description == "XLSX, sheet 'Leads'"
        assert table.warnings == [f"--delimiter is ignored: {path} is a workbook, not a CSV"]


def test_empty_sheet(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Vazia"
    path = tmp_path / "empty.xlsx"
    book.save(path)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert (
        str(error.value) == f"sheet 'Vazia' of {path} is empty: choose another sheet with --sheet"
    )


def test_a_sheet_with_a_header_and_no_rows(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "Leads"
    book.active.append(["email", "nome"])
    path = tmp_path / "header.xlsx"
    book.save(path)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"sheet 'Leads' of {path} has a header but no rows under it: nothing to import; "
        "choose another sheet with --sheet, or export the data again with its rows"
    )


def write_ods(path: Path, rows: str) -> Path:
    """An OpenDocument spreadsheet, as LibreOffice saves it, with ``rows`` on sheet 'Leads'."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Leads">{rows}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return path


def _ods_cell(kind: str, value: str) -> str:
    attribute = {"string": "", "float": "office:value", "date": "office:date-value"}.get(
        kind, "office:boolean-value"
    )
    typed = f' {attribute}="{value}"' if attribute else ""
    return (
        f'<table:table-cell office:value-type="{kind}"{typed}><text:p>{value}</text:p>'
        "</table:table-cell>"
    )


def _ods_row(*cells: tuple[str, str]) -> str:
    return "<table:table-row>" + "".join(_ods_cell(*c) for c in cells) + "</table:table-row>"


def test_ods_cells_read_as_a_person_sees_them(tmp_path: Path) -> None:
    header = [("string", h) for h in ("email", "Celular", "Nota", "Nasc", "Ativo")]
    rows = (
        _ods_row(*header)
        + _ods_row(
            ("string", "ana@x.com"),
            ("float", "11987654321"),
            ("float", "7.5"),
            ("date", "2024-03-05"),
            ("boolean", "true"),
        )
        + '<table:table-row><table:table-cell table:number-columns-repeated="5"/></table:table-row>'
        + _ods_row(
            ("string", "bia@x.com"),
            ("float", "5511987654321"),
            ("float", "0.3"),
            ("date", "2024-03-05T14:30:00"),
        )
    )
    with open_table(write_ods(tmp_path / "leads.ods", rows)) as table:
        read = list(table.rows())
    assert table.description == "ODS, sheet 'Leads'"
    assert read == [
        Row(
            2,
            {
                "email": "ana@x.com",
                "Celular": "11987654321",
                "Nota": "7.5",
                "Nasc": "2024-03-05",
                "Ativo": "true",
            },
        ),
        Row(
            4,
            {
                "email": "bia@x.com",
                "Celular": "5511987654321",
                "Nota": "0.3",
                "Nasc": "2024-03-05T14:30:00",
                "Ativo": "",  # a row shorter than the header: its last cells are empty
            },
        ),
    ]


def test_ods_far_cells_are_refused_and_the_process_survives(tmp_path: Path) -> None:
    # Repeated empty rows and columns, then one cell at row 1,048,572, column 16,384.
    far = (
        _ods_row(("string", "email")) + '<table:table-row table:number-rows-repeated="1048570">'
        '<table:table-cell table:number-columns-repeated="16384"/></table:table-row>'
        '<table:table-row><table:table-cell table:number-columns-repeated="16383"/>'
        + _ods_cell("string", "x")
        + "</table:table-row>"
    )
    path = write_ods(tmp_path / "far.ods", far)
    with pytest.raises(InputError) as error:
        open_table(path)
    message = str(error.value)
    assert message.startswith(f"{path} cannot be read as ODS (")
    assert "\n" not in message


# --- hostile and fake workbooks ---------------------------------------------------------------


def test_zip_bomb_is_refused_from_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            zeros = b"\0" * (1 << 20)
            for _ in range(40):
                part.write(zeros)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert re.fullmatch(
        re.escape(f"{path} holds a part that unpacks ")
        + r"[\d,]+"
        + re.escape(
            " times its packed size (a zip bomb?): it was refused; "
            "save the data again from Excel or as CSV"
        ),
        str(error.value),
    )


def test_zip_declaring_more_than_a_gibibyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<x/>")
    data = bytearray(path.read_bytes())
    # Claim 2 GiB in the central directory entry of the sheet (uncompressed size at offset 24).
    entry = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, entry + 24, 2 << 30)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} would unpack to 2.0 GiB, over the 1 GiB limit (a zip bomb?): "
        "split the data or save it as CSV"
    )


def test_two_stray_cells_far_apart_are_refused_before_loading(tmp_path: Path) -> None:
    # calamine would allocate 1,048,576 x 16,384 cells and abort the process.
    book = openpyxl.Workbook()
    book.active["A1"] = "email"
    book.active["XFD1048576"] = "x"
    path = tmp_path / "corners.xlsx"
    book.save(path)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"a sheet of {path} spans 1,048,576 rows x 16,384 columns (up to XFD1048576), too many "
        "cells to load: delete the stray cells far from the data, or save the data as CSV"
    )


def _far_cell_variant(tmp_path: Path, name: str, old: bytes, new: bytes) -> Path:
    """A workbook with cells at A1 and XFD1048576 whose far reference is spelled ``new``."""
    book = openpyxl.Workbook()
    book.active["A1"] = "email"
    book.active["XFD1048576"] = "x"
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    path = tmp_path / name
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                assert old in data
                data = data.replace(old, new)
            target.writestr(item.filename, data)
    return path


@pytest.mark.parametrize(
    "spelling",
    [
        b'r = "XFD1048576"',
        b'r\n=\n"XFD1048576"',
        b"r='XFD1048576'",
        b'r="xfd1048576"',
        b'r="XFD0001048576"',
    ],
    ids=["spaces", "newlines", "single-quotes", "lower-case", "leading-zeros"],
)
def test_far_cells_however_spelled_are_refused_and_the_process_survives(
    tmp_path: Path, spelling: bytes
) -> None:
    # quick-xml, under calamine, reads every one of these spellings as the same reference.
    path = _far_corner(tmp_path, {b'r="XFD1048576"': spelling})
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"a sheet of {path} spans 1,048,576 rows x 16,384 columns (up to XFD1048576), too many "
        "cells to load: delete the stray cells far from the data, or save the data as CSV"
    )


def test_a_far_row_number_alone_is_refused(tmp_path: Path) -> None:
    # A row's number places the cells of that row that carry no reference of their own.
    path = _far_corner(
        tmp_path, {b'<c r="XFD1048576"': b"<c", b'<row r="1048576"': b'<row r="99999999"'}
    )
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"a sheet of {path} spans 99,999,999 rows x 1 columns (up to A99999999), too many "
        "cells to load: delete the stray cells far from the data, or save the data as CSV"
    )


def _far_corner(tmp_path: Path, replacements: dict[bytes, bytes]) -> Path:
    """A workbook with cells at A1 and XFD1048576, its sheet's XML rewritten as given."""
    book = openpyxl.Workbook()
    book.active["A1"] = "email"
    book.active["XFD1048576"] = "x"
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    path = tmp_path / "far.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                for old, new in replacements.items():
                    assert old in data
                    data = data.replace(old, new)
            target.writestr(item.filename, data)
    return path


def test_a_reader_that_dies_is_reported_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever kills the reading child (a crash inside calamine, the OOM killer), the importer
    # survives it and names the file, the way it ended and what to do.
    path = write_leads(tmp_path / "leads.xlsx")
    died = "import os, sys; sys.stderr.write('boom\\n'); sys.stderr.flush(); os.abort()"
    monkeypatch.setattr(workbook, "_CHILD", died)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} cannot be read as XLSX (it stopped on SIGABRT: boom): open it in Excel, delete "
        "any cells far from the data and any long text repeated in many cells, save it again, "
        "and retry, or save the data as CSV"
    )


def test_a_reader_that_cannot_start_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_leads(tmp_path / "leads.xlsx")
    monkeypatch.setattr(workbook.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} cannot be read: the process that reads workbooks did not start "
        "(No such file or directory); retry, or save the data as CSV"
    )


def test_the_reader_is_given_no_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_leads(tmp_path / "leads.xlsx")
    seen = tmp_path / "environment.txt"
    monkeypatch.setenv("RDSTATION_API_KEY", "secret-key-1234")
    spy = f"import os; open({str(seen)!r}, 'w').write(' '.join(os.environ)); "
    monkeypatch.setattr(workbook, "_CHILD", spy + workbook._CHILD)
    with open_table(path) as table:
        assert len(list(table.rows())) == 2
    names = seen.read_text().split()
    assert "PATH" in names
    assert "RDSTATION_API_KEY" not in names


def _many_rows(tmp_path: Path, rows: int) -> Path:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Leads")
    sheet.append(["email"])
    for i in range(rows):
        sheet.append([f"p{i}@x.com"])
    path = tmp_path / "many.xlsx"
    book.save(path)
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_reach_the_importer_not_the_reader(tmp_path: Path, sig: int) -> None:
    # The terminal sends Ctrl-C to the whole process group, and systemd's stop sends SIGTERM to
    # every process of the unit; the importer decides when to stop, and the file is not taken
    # for an unreadable one.
    reader = workbook.Sheet(_many_rows(tmp_path, 20_000), "XLSX", None)
    assert reader._child is not None
    os.kill(reader._child.pid, sig)
    assert sum(1 for _ in reader.records()) == 20_001


def test_a_reader_killed_while_rows_flow_stops_the_run_resumably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is fine and some rows may be sent already: stop (exit 3), do not reject the file.
    path = _many_rows(tmp_path, 100)
    stalls_after_one_batch = (
        "import sys, time; sys.path.append(sys.argv.pop(1)); import importer.workbook.child as w\n"
        "read = w._sheet_messages\n"
        "def stalling(*args):\n"
        "    for message in read(*args):\n"
        "        yield message\n"
        "        if message[0] == 'rows':\n"
        "            sys.stdout.buffer.flush(); time.sleep(60)\n"
        "w._sheet_messages = stalling; w.serve(sys.argv[1:])"
    )
    monkeypatch.setattr(workbook, "_CHILD", stalls_after_one_batch)
    with open_table(path) as table:
        rows = table.rows()
        assert next(rows).cells == {"email": "p0@x.com"}
        child = table._close.reader._child  # type: ignore[attr-defined]
        child.kill()
        with pytest.raises(AbortError) as error:
            for _ in rows:
                pass
    assert str(error.value) == (
        f"the process reading {path} was killed (SIGKILL) while reading its rows"
    )


def test_closing_a_table_early_stops_its_reader(tmp_path: Path) -> None:
    reader = workbook.Sheet(_many_rows(tmp_path, 20_000), "XLSX", None)
    child = reader._child
    assert child is not None
    records = reader.records()
    assert next(records) == ["email"]
    reader.close()
    assert child.returncode is not None  # killed and reaped: no zombie, no pipe left open
    reader.close()  # twice is harmless


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "fotos.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("foto.txt", "not a sheet")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} is a zip archive, not an XLSX workbook (it holds no xl/workbook.xml): "
        "unzip it and import the spreadsheet inside, or save the data as XLSX or CSV"
    )


def test_damaged_zip(tmp_path: Path) -> None:
    path = tmp_path / "cut.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x01" * 100)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} is a damaged zip/XLSX file (File is not a zip file): save it again from Excel"
    )


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"email,nome\na@x.com,Ana\n", "it looks like text"),
        (b"<html><body><table><tr><td>1</td></tr></table>", "it is an HTML page"),
    ],
)
def test_fake_xlsx_is_refused(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "leads.xlsx"
    path.write_bytes(content)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} is named like a workbook but is not one ({what}): if it is a CSV, rename it to "
        ".csv; otherwise open it in Excel and save it as XLSX"
    )


def test_password_protected_workbook(tmp_path: Path) -> None:
    # Excel saves an encrypted workbook as an OLE compound file holding an EncryptedPackage
    # stream; the directory entry's UTF-16 name is what the loader looks for.
    path = tmp_path / "secret.xlsx"
    path.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 1000
        + "EncryptedPackage".encode("utf-16-le")
        + b"\0" * 100
    )
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} is protected with a password: open it in Excel, remove the password "
        "(File > Info > Protect Workbook > Encrypt with Password), save, and import that file"
    )


def test_ole_file_calamine_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x07" * 600)
    with pytest.raises(InputError) as error:
        open_table(path)
    message = str(error.value)
    assert message.startswith(f"{path} cannot be read as XLS (")
    assert message.endswith("): open it in Excel, save it again as XLSX, and retry")
    assert "\n" not in message


def test_long_sheet_converts_every_column_type_as_a_single_cell_would(tmp_path: Path) -> None:
    # Over 512 rows, cells convert a column at a time: each type, mixed columns and the float
    # values that need care must still give the texts a person sees.
    tricky = [7.5, 0.1 + 0.2, 1e20, -0.0, 1e-7, 11987654321.0, -2.25, 123456789012345.0]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Num", "Dia", "Quando", "Hora", "Ativo", "Misto", "Texto"])
    for i in range(1200):
        sheet.append(
            [
                tricky[i % len(tricky)] if i < 600 else float(i),
                dt.date(2024, 1, 1) + dt.timedelta(days=i % 31),
                dt.datetime(2024, 3, 5, 14, 30, 15),
                dt.time(8, 5, 9),
                i % 3 == 0,
                i if i % 2 else "x",
                f"t{i}",
            ]
        )
    path = tmp_path / "long.xlsx"
    book.save(path)
    with open_table(path) as table:
        rows = list(table.rows())
    assert len(rows) == 1200
    shown = ["7.5", "0.3", "100000000000000000000", "0", "0.0000001", "11987654321", "-2.25"]
    shown.append("123456789012345")
    assert [r.cells["Num"] for r in rows[:8]] == shown
    assert rows[700].cells == {
        "Num": "700",
        "Dia": "2024-01-19",
        "Quando": "2024-03-05T14:30:15",
        "Hora": "08:05:09",
        "Ativo": "false",
        "Misto": "x",
        "Texto": "t700",
    }
    assert (rows[1].cells["Misto"], rows[3].cells["Ativo"]) == ("1", "true")


# --- issue 18: a damaged zip directory, cells that are too big ---------------------------------


def _damaged(path: Path, how: str) -> Path:
    """One byte changed in the zip's central directory, as a bad disk or upload leaves it."""
    raw = bytearray(path.read_bytes())
    entry = raw.rfind(b"PK\x01\x02")
    if how == "version needed to extract":
        raw[entry + 6] = 0xFF  # zipfile: NotImplementedError("zip file version 25.5")
    else:  # a name that claims to be UTF-8 and is not: UnicodeDecodeError
        raw[entry + 8] |= 0x08
        raw[entry + 9] |= 0x08  # general purpose flag bit 11: the name is UTF-8
        raw[entry + 46] = 0xFF
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("how", ["version needed to extract", "a name that is not UTF-8"])
def test_a_damaged_zip_directory_is_refused_in_one_line(tmp_path: Path, how: str) -> None:
    path = _damaged(write_leads(tmp_path / "leads.xlsx"), how)
    with pytest.raises(InputError) as error:
        open_table(path)
    message = str(error.value)
    assert message.startswith(f"{path} is a damaged zip/XLSX file (")
    assert message.endswith("): save it again from Excel")
    assert "\n" not in message


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _shared_string_sheet(path: Path, text: str, uses: int, plain_rows: int = 0) -> Path:
    """A sheet whose column B holds one shared string ``text`` in ``uses`` rows: a file of a
    few KB that unpacks to ``uses`` copies of the text. (Excel and openpyxl stop a cell at
    32,767 characters; calamine reads what the file holds.)"""
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>']
    strings = ["email", "obs", text, "curta"]
    for i in range(plain_rows + uses):
        n = i + 2
        strings.append(f"p{i}@x.com" if i < plain_rows else f"big{i}@x.com")
        which = 3 if i < plain_rows else 2
        rows.append(
            f'<row r="{n}"><c r="A{n}" t="s"><v>{len(strings) - 1}</v></c>'
            f'<c r="B{n}" t="s"><v>{which}</v></c></row>'
        )
    shared = "".join(f"<si><t>{s}</t></si>" for s in strings)
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" Type="{_DOC_RELS}/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC_RELS}"><sheets>'
            '<sheet name="Leads" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" Type="{_DOC_RELS}/'
            'worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
            f'Type="{_DOC_RELS}/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
        ),
        "xl/sharedStrings.xml": f'<sst xmlns="{_MAIN}">{shared}</sst>',
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{_MAIN}"><sheetData>{"".join(rows)}</sheetData></worksheet>'
        ),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, xml in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>' + xml)
    return path


def test_a_cell_over_the_limit_fails_its_row_and_is_not_kept(tmp_path: Path) -> None:
    path = _shared_string_sheet(tmp_path / "big.xlsx", "y" * (workbook.MAX_CELL_CHARS + 1), 2, 2)
    with open_table(path) as table:
        rows = list(table.rows())
    assert [r.error for r in rows[:2]] == [None, None]
    assert [r.number for r in rows[2:]] == [4, 5]
    for row in rows[2:]:
        assert row.error == (
            "the cell in column B of this row is longer than 1,048,576 characters "
            "(more than RD Station accepts): shorten it"
        )
        assert row.cells["obs"] == ""
        assert row.cells["email"].startswith("big")


def test_a_sheet_of_much_more_text_than_its_file_holds_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    # One shared text of 512 KB used by 200 cells: 100 million characters from a 30 KB file.
    path = _shared_string_sheet(tmp_path / "bomb.xlsx", "z" * (512 << 10), 200)
    assert path.stat().st_size < 64 << 10
    with pytest.raises(InputError) as error, open_table(path) as table:
        list(table.rows())
    assert str(error.value) == (
        f"sheet 'Leads' of {path} holds more than {workbook.MIN_SHEET_TEXT:,} characters of "
        "text, more than a file of its size should (a long text repeated in many cells?): "
        "remove the repeated text, or save the data as CSV"
    )


# --- cells as shown, hidden rows, formulas with no saved value --------------------------------

SHOWN_MAPPING = """\
conversion_identifier: "feira"
fields:
  email: "Email"
  mobile_phone: {column: "Celular", transform: phone_br}
  cf_cep: {column: "CEP", transform: digits}
  cf_cep_como_visto: "CEP"
  cf_desconto: "Desconto"
  cf_valor: "Valor"
"""


def write_formatted(path: Path) -> Path:
    """A sheet as a Brazilian user formats one: CEP, phone, percent and reais."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "Celular", "CEP", "Desconto", "Valor", "Codigo", "Nota"])
    sheet.append(["ana@x.com", 11987654321, 1310100, 0.15, 1234.5, 7, 7.5])
    sheet.append(["bia@x.com", 21987654321, 20040020, 0.155, -1234.5, 7, 7.5])
    formats = {
        "B": "(00) 00000-0000",
        "C": "00000-000",
        "D": "0%",
        "E": '"R$" #,##0.00',
        "F": "000",
    }
    for column, code in formats.items():
        for row in (2, 3):
            sheet[f"{column}{row}"].number_format = code
    sheet["D3"].number_format = "0.00%"
    sheet["E3"].number_format = "[$R$-416]\\ #,##0.00;[Red]\\-[$R$-416]\\ #,##0.00"
    book.save(path)
    return path


def test_numbers_arrive_as_their_format_shows_them(tmp_path):
    path = write_formatted(tmp_path / "leads.xlsx")
    with open_table(path) as table:
        rows = [row.cells for row in table.rows()]
    assert rows[0] == {
        "Email": "ana@x.com",
        "Celular": "(11) 98765-4321",
        "CEP": "01310-100",
        "Desconto": "15%",
        "Valor": "R$ 1.234,50",
        "Codigo": "007",
        "Nota": "7.5",  # General: the digits stored
    }
    assert rows[1]["CEP"] == "20040-020"
    assert rows[1]["Desconto"] == "15,50%"
    assert rows[1]["Valor"] == "-R$ 1.234,50"


def test_formatted_cells_read_right_through_a_mapping(tmp_path):
    path = write_formatted(tmp_path / "leads.xlsx")
    mapping = write_mapping(tmp_path / "m.yaml", SHOWN_MAPPING)
    config = ImportConfig(path, mapping, out_dir=tmp_path / "out", dry_run=True)
    report = run_import(config)
    assert report.failed == 0
    lines = (tmp_path / "out" / "payloads.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])["request"]["payload"]
    assert first["mobile_phone"] == "+5511987654321"
    assert first["cf_cep"] == "01310100"  # the zero a person sees is kept
    assert first["cf_cep_como_visto"] == "01310-100"
    assert first["cf_desconto"] == "15%"
    assert first["cf_valor"] == "R$ 1.234,50"


def test_a_date_format_keeps_the_iso_date(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "Nasc"])
    sheet.append(["ana@x.com", dt.date(1990, 5, 17)])
    sheet["B2"].number_format = "dd/mm/yyyy"
    book.save(tmp_path / "d.xlsx")
    with open_table(tmp_path / "d.xlsx") as table:
        [row] = table.rows()
    assert row.cells["Nasc"] == "1990-05-17"


def write_hidden(path: Path) -> Path:
    """Five data rows: 3 and 5 hidden (as an autofilter hides them), 4 a formula never
    calculated (openpyxl saves no value for it)."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "Cliente", "Pontos"])
    sheet.append(["ana@x.com", "Sim", 1])
    sheet.append(["bia@x.com", "Não", 2])
    sheet.append(["caio@x.com", "Sim", "=C2*10"])
    sheet.append(["davi@x.com", "Não", 4])
    sheet.append(["eva@x.com", "Sim", 5])
    sheet.auto_filter.ref = "A1:C6"
    sheet.row_dimensions[3].hidden = True
    sheet.row_dimensions[5].hidden = True
    book.save(path)
    return path


HIDDEN_MAPPING = """\
conversion_identifier: "feira"
fields:
  email: "Email"
  cf_pontos: "Pontos"
"""


def test_hidden_rows_and_unsaved_formulas_are_warnings_in_the_summary(tmp_path):
    path = write_hidden(tmp_path / "filtered.xlsx")
    mapping = write_mapping(tmp_path / "m.yaml", HIDDEN_MAPPING)
    report = run_import(ImportConfig(path, mapping, out_dir=tmp_path / "out", dry_run=True))
    assert report.rows == 5  # hidden rows are imported unless asked otherwise
    notes = {n["message"].split(" ")[0]: n for n in read_summary(tmp_path / "out")["warnings"]}
    hidden = notes["rows"]
    assert hidden["count"] == 2
    assert hidden["rows"] == [3, 5]
    assert hidden["message"] == (
        f"rows hidden in Excel (by a filter or by hand) in sheet 'Sheet' of {path} are imported "
        "like the others: check that they should be, or leave them out with --skip-hidden-rows"
    )
    formula = notes["formulas"]
    assert formula["count"] == 1
    assert formula["rows"] == [4]
    assert "column C of row 4" in formula["message"]
    assert "let it calculate" in formula["message"]


def test_skip_hidden_rows_leaves_them_out(tmp_path):
    path = write_hidden(tmp_path / "filtered.xlsx")
    mapping = write_mapping(tmp_path / "m.yaml", HIDDEN_MAPPING)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["validate", str(path), "--mapping", str(mapping), "--out", str(out), "--skip-hidden-rows"],
    )
    assert result.exit_code == 0, result.output
    summary = read_summary(out)
    assert summary["rows"] == 3
    sent = [json.loads(line)["row"] for line in (out / "payloads.jsonl").read_text().splitlines()]
    assert sent == [2, 4, 6]
    messages = [n["message"] for n in summary["warnings"]]
    assert f"2 row(s) hidden in Excel in sheet 'Sheet' of {path} were left out " in messages[-1]
    assert not any(m.startswith("rows hidden") for m in messages)


def test_the_loader_skips_hidden_rows_only_when_asked(tmp_path):
    path = write_hidden(tmp_path / "filtered.xlsx")
    with open_table(path) as table:
        assert [row.number for row in table.rows()] == [2, 3, 4, 5, 6]
        assert table.marks.rows == {3, 4, 5}
        assert [kind for kind, _ in table.row_warnings(4)] == ["unsaved_formula"]
    with open_table(path, skip_hidden_rows=True) as table:
        assert [row.number for row in table.rows()] == [2, 4, 6]
        assert table.marks.rows == {4}
        assert table.read_warnings() == [
            f"2 row(s) hidden in Excel in sheet 'Sheet' of {path} were left out "
            "(--skip-hidden-rows): rows 3, 5"
        ]


def test_a_formula_saved_as_empty_text_is_no_warning(tmp_path):
    path = write_hidden(tmp_path / "f.xlsx")
    patched = tmp_path / "saved.xlsx"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(patched, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(
                    rb'<c r="C4"><f>C2\*10</f><v\s*/>', b'<c r="C4" t="str"><f>""</f><v></v>', data
                )
                assert count == 1
            target.writestr(item, data)
    with open_table(patched) as table:
        assert table.marks.rows == {3, 5}


def test_formats_and_hidden_rows_follow_a_sheet_that_starts_further_in(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["C3"], sheet["D3"] = "Email", "CEP"
    sheet["C4"], sheet["D4"] = "ana@x.com", 1310100
    sheet["C5"], sheet["D5"] = "bia@x.com", 1310100
    sheet["D4"].number_format = "00000-000"
    sheet.row_dimensions[5].hidden = True
    book.save(tmp_path / "far.xlsx")
    with open_table(tmp_path / "far.xlsx", header_row=3) as table:
        rows = list(table.rows())
        assert [row.cells["CEP"] for row in rows] == ["01310-100", "1310100"]
        assert table.marks.rows == {5}


def test_a_sheet_whose_every_row_is_hidden_and_left_out_says_so(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email"])
    sheet.append(["ana@x.com"])
    sheet.append(["bia@x.com"])
    sheet.row_dimensions[2].hidden = sheet.row_dimensions[3].hidden = True
    book.save(tmp_path / "all-hidden.xlsx")
    with pytest.raises(InputError) as refused:
        open_table(tmp_path / "all-hidden.xlsx", skip_hidden_rows=True)
    assert str(refused.value) == (
        f"sheet 'Sheet' of {tmp_path / 'all-hidden.xlsx'}: every row under the header is hidden "
        "in Excel, and --skip-hidden-rows left all 2 out: nothing to import; show the rows in "
        "Excel (clear the filter), or import without --skip-hidden-rows"
    )
    with open_table(tmp_path / "all-hidden.xlsx") as table:  # not asked to skip: both read
        assert [row.number for row in table.rows()] == [2, 3]


def test_a_mapping_that_reads_a_column_excel_hides_is_warned(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["B1"], sheet["C1"], sheet["D1"], sheet["E1"] = "Email", "CPF", "Nome", "Notas"
    sheet["B2"], sheet["C2"], sheet["D2"], sheet["E2"] = "ana@x.com", "123", "Ana", "vip"
    for letter in ("C", "E", "H"):
        sheet.column_dimensions[letter].hidden = True
    book.save(tmp_path / "cols.xlsx")
    with open_table(tmp_path / "cols.xlsx") as table:
        assert table.hidden_columns == {"CPF": "C", "Notas": "E"}
        assert table.hidden_columns_read(["Email", "Nome"]) == []
    mapping = write_mapping(
        tmp_path / "m.yaml",
        'conversion_identifier: "x"\nfields:\n  email: "Email"\n  cf_cpf: "CPF"\n',
    )
    run_import(ImportConfig(tmp_path / "cols.xlsx", mapping, out_dir=tmp_path / "o", dry_run=True))
    [warning] = read_summary(tmp_path / "o")["warnings"]
    assert warning["message"] == (
        f"the mapping reads columns hidden in Excel in sheet 'Sheet' of {tmp_path / 'cols.xlsx'}: "
        "C ('CPF'); they are imported like the others, though a person looking at the sheet "
        "does not see them: check that they hold what the mapping expects"
    )


@pytest.mark.parametrize("command", ["import", "validate", "watch"])
def test_skip_hidden_rows_is_a_flag_of_every_reading_command(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert "--skip-hidden-rows" in result.output
