"""The loader on CSV files: conformance, encodings, delimiters, headers and broken records."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.errors import InputError
from importer.loader import (
    ChangedFile,
    FileIdentity,
    ListedFile,
    check_text_options,
    open_table,
    printable,
)
from importer.records import Row
from importer.report import escape_formula, unescape_formula

DATA = Path(__file__).resolve().parent / "data" / "loader"
# Vendored from the shared conformance data (tests/data/csv-spectrum/README.md), so it always runs.
CONFORMANCE = Path(__file__).resolve().parent / "data" / "csv-spectrum"
SPECTRUM_CASES = sorted(p.stem for p in (CONFORMANCE / "csvs").glob("*.csv"))


def read(path: Path, **options: object) -> tuple[list[Row], object]:
    with open_table(path, **options) as table:  # type: ignore[arg-type]
        rows = list(table.rows())
    return rows, table


def write(tmp_path: Path, content: str | bytes, name: str = "leads.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_csv_spectrum_is_all_there_with_its_crlf_endings() -> None:
    # An empty case list would make the test below vanish rather than fail; and a checkout that
    # turned CRLF into LF would quietly test the LF shape twice (.gitattributes forbids that).
    assert len(SPECTRUM_CASES) == 11
    assert sorted(p.stem for p in (CONFORMANCE / "json").glob("*.json")) == SPECTRUM_CASES
    for case in (c for c in SPECTRUM_CASES if c.endswith("_crlf")):
        raw = (CONFORMANCE / "csvs" / f"{case}.csv").read_bytes()
        assert b"\r\n" in raw
        assert b"\n" not in raw.replace(b"\r\n", b""), case


@pytest.mark.parametrize("case", SPECTRUM_CASES)
def test_csv_spectrum_reads_exactly_its_json(case: str) -> None:
    expected = json.loads((CONFORMANCE / "json" / f"{case}.json").read_text(encoding="utf-8"))
    rows, _ = read(CONFORMANCE / "csvs" / f"{case}.csv")
    assert [r.cells for r in rows] == expected
    assert all(r.error is None for r in rows)


@pytest.mark.parametrize(
    ("encoding", "prefix", "label"),
    [
        ("utf-8", b"", "UTF-8"),
        ("utf-8", b"\xef\xbb\xbf", "UTF-8 with BOM"),
        ("cp1252", b"", "Windows-1252"),
        ("latin-1", b"", "Windows-1252"),
    ],
)
def test_encodings_are_detected(tmp_path: Path, encoding: str, prefix: bytes, label: str) -> None:
    text = "Nome;Cidade\r\nJoão;São Paulo\r\nÇá;Ñ\r\n"
    rows, table = read(write(tmp_path, prefix + text.encode(encoding)))
    assert table.description == f"CSV, {label}, ';'-separated"
    assert table.headers == ["Nome", "Cidade"]
    assert [r.cells for r in rows] == [
        {"Nome": "João", "Cidade": "São Paulo"},
        {"Nome": "Çá", "Cidade": "Ñ"},
    ]


def test_rd_station_export_utf16_tab_separated(tmp_path: Path) -> None:
    text = "Email\tNome\tCelular\tCelular\r\na@x.com\tJosé\t(11) 98765-4321\t011\r\n"
    rows, table = read(write(tmp_path, text.encode("utf-16")))
    assert table.description == "CSV, UTF-16, tab-separated"
    assert table.headers == ["Email", "Nome", "Celular", "Celular (2)"]
    assert rows == [
        Row(
            2,
            {
                "Email": "a@x.com",
                "Nome": "José",
                "Celular": "(11) 98765-4321",
                "Celular (2)": "011",
            },
        )
    ]


def test_utf16_without_bom_is_recognised(tmp_path: Path) -> None:
    rows, table = read(write(tmp_path, "a\tb\r\nção\t2\r\n".encode("utf-16-le")))
    assert table.description == "CSV, UTF-16, tab-separated"
    assert rows[0].cells == {"a": "ção", "b": "2"}


def test_cp1252_accents_after_10000_ascii_rows_are_not_missed(tmp_path: Path) -> None:
    lines = ["email,nome"] + [f"p{i}@x.com,Pessoa {i}" for i in range(10_000)]
    lines.append("ultima@x.com,Conceição “Ção”")
    rows, table = read(write(tmp_path, ("\n".join(lines) + "\n").encode("cp1252")))
    assert table.description == "CSV, Windows-1252, ','-separated"
    assert rows[-1] == Row(10_002, {"email": "ultima@x.com", "nome": "Conceição “Ção”"})


def test_bytes_cp1252_leaves_undefined_read_as_latin1(tmp_path: Path) -> None:
    rows, _ = read(write(tmp_path, b"a,b\n\x81x,\xe9\n"))
    assert rows[0].cells == {"a": "\x81x", "b": "é"}


def test_encoding_override(tmp_path: Path) -> None:
    # Valid UTF-8 too, but the person knows it is Latin-1.
    rows, table = read(write(tmp_path, "a,b\nÃ©,1\n".encode()), encoding="latin-1")
    assert table.description == "CSV, latin-1, ','-separated"
    assert rows[0].cells == {"a": "Ã\x83Â©", "b": "1"}


def test_encoding_override_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n\xe9,1\n")
    with pytest.raises(InputError) as error:
        open_table(path, encoding="utf-8")
    assert str(error.value) == (
        f"{path} is not valid utf-8 text (near byte 4): leave out --encoding to let the "
        "importer detect it, or give the right one"
    )


def test_unknown_encoding_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        open_table(write(tmp_path, "a\n1\n"), encoding="klingon")
    assert str(error.value) == (
        "--encoding 'klingon' is not an encoding Python knows: try utf-8, cp1252, latin-1 or utf-16"
    )


@pytest.mark.parametrize(
    ("delimiter", "shown"), [(",", "','"), (";", "';'"), ("\t", "tab"), ("|", "'|'")]
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_delimiters_and_line_ends(tmp_path: Path, delimiter: str, shown: str, newline: str) -> None:
    d = delimiter
    lines = [
        f"Nome{d}Endereço{d}CEP",
        f'Ana{d}"Rua 1{d} 23, ap ""B"""{d}01310100',
        f'Bia{d}"linha 1{newline}linha 2"{d}00000-001',
        f"Caio{d}{d}",
    ]
    rows, table = read(write(tmp_path, newline.join(lines) + newline))
    assert table.description == f"CSV, UTF-8, {shown}-separated"
    assert [r.number for r in rows] == [2, 3, 4]
    assert [r.cells for r in rows] == [
        {"Nome": "Ana", "Endereço": f'Rua 1{d} 23, ap "B"', "CEP": "01310100"},
        {"Nome": "Bia", "Endereço": f"linha 1{newline}linha 2", "CEP": "00000-001"},
        {"Nome": "Caio", "Endereço": "", "CEP": ""},
    ]


def test_delimiter_is_not_fooled_by_commas_in_cells(tmp_path: Path) -> None:
    text = "Nome;Valor;Tags\nAna;7,5;a,b,c\nBia;8,25;d,e\n"
    rows, table = read(write(tmp_path, text))
    assert table.description == "CSV, UTF-8, ';'-separated"
    assert rows[0].cells == {"Nome": "Ana", "Valor": "7,5", "Tags": "a,b,c"}


@pytest.mark.parametrize("given_delimiter", ["|", "tab", "\\t"])
def test_delimiter_override(tmp_path: Path, given_delimiter: str) -> None:
    sep = "\t" if given_delimiter != "|" else "|"
    rows, _ = read(write(tmp_path, f"a,b{sep}c\n1,2{sep}3\n"), delimiter=given_delimiter)
    assert rows[0].cells == {"a,b": "1,2", "c": "3"}


@pytest.mark.parametrize(
    ("content", "delimiter", "shown"),
    [
        ("sep=;\r\nNome;Valor\r\nJoão;7,5\r\n".encode("cp1252"), ";", "Windows-1252, ';'"),
        (b'sep=,\nNome,Valor\nJoao,"7,5"\n', ",", "UTF-8, ','"),
        (b"sep=\t\nNome\tValor\nJoao\t7,5\n", "\t", "UTF-8, tab"),
    ],
    ids=["semicolon-cp1252", "comma", "tab"],
)
def test_excels_sep_line_names_the_delimiter_and_is_no_row(
    tmp_path: Path, content: bytes, delimiter: str, shown: str
) -> None:
    # Tools that export for Excel put "sep=;" on the first line; Excel uses it and hides it,
    # so the header is row 1 and the first lead row 2, as the person sees them.
    rows, table = read(write(tmp_path, content))
    assert table.description == f"CSV, {shown}-separated (its first line says sep=)"
    assert table.headers == ["Nome", "Valor"]
    assert rows[0].number == 2
    assert rows[0].cells["Valor"] == "7,5"


def test_delimiter_override_wins_over_a_sep_line(tmp_path: Path) -> None:
    rows, table = read(write(tmp_path, "sep=,\na;b,c\n1;2,3\n"), delimiter=";")
    assert table.headers == ["a", "b,c"]
    assert rows == [Row(2, {"a": "1", "b,c": "2,3"})]


def test_bad_delimiter_override(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        open_table(write(tmp_path, "a\n"), delimiter=";;")
    assert str(error.value) == "--delimiter ';;' must be one character such as ',' ';' '|' or 'tab'"


def test_cells_stay_text(tmp_path: Path) -> None:
    text = "cep,tel,valor,vazio,nan,none\n01310100,011987654321,1.0,,nan,None\n"
    rows, _ = read(write(tmp_path, text))
    assert rows[0].cells == {
        "cep": "01310100",
        "tel": "011987654321",
        "valor": "1.0",
        "vazio": "",
        "nan": "nan",
        "none": "None",
    }


def test_duplicate_and_missing_header_names(tmp_path: Path) -> None:
    path = write(tmp_path, "Celular, Nome ,,Celular,Celular (2),Celular,,\n1,2,3,4,5,6\n")
    rows, table = read(path)
    assert table.headers == [
        "Celular",
        "Nome",
        "Column C",
        "Celular (3)",
        "Celular (2)",
        "Celular (4)",
    ]
    assert table.source_headers == ["Celular", " Nome ", "", "Celular", "Celular (2)", "Celular"]
    assert table.warnings == [
        f"column C of {path} has no header: its cells are read as 'Column C'",
        f"column 'Celular' appears 3 times in the header of {path}: the first keeps the name, "
        "the others are read as 'Celular (3)', 'Celular (4)'",
    ]
    assert list(rows[0].cells.values()) == ["1", "2", "3", "4", "5", "6"]


def test_header_row_skips_the_rows_above(tmp_path: Path) -> None:
    text = "Relatório de leads\nGerado em 2024-03-05\nemail;nome\na@x.com;Ana\n\nb@x.com;Bia\n"
    rows, table = read(write(tmp_path, text), header_row=3)
    assert table.headers == ["email", "nome"]
    assert [(r.number, r.cells["email"]) for r in rows] == [(4, "a@x.com"), (6, "b@x.com")]
    assert table.blank_rows == 1


def test_blank_rows_are_skipped_and_keep_the_numbering(tmp_path: Path) -> None:
    text = "a;b\n1;2\n\n;\n  ; \n3;4\n\n"
    rows, table = read(write(tmp_path, text))
    assert [(r.number, r.cells) for r in rows] == [
        (2, {"a": "1", "b": "2"}),
        (6, {"a": "3", "b": "4"}),
    ]
    assert table.blank_rows == 4


def test_salesforce_footer_rows_are_skipped() -> None:
    rows, table = read(DATA / "salesforce_report.csv")
    assert [r.cells["Email"] for r in rows] == ["ana@example.com", "bia@example.com"]
    assert table.footer_rows == 3
    assert table.blank_rows == 3


def test_trailing_empty_cells_are_ignored_and_missing_ones_are_empty(tmp_path: Path) -> None:
    rows, table = read(write(tmp_path, "a;b;c;;\n1;2;3;;\n4\n5;6;7;;;;;\n"))
    assert table.headers == ["a", "b", "c"]
    assert [r.cells for r in rows] == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "4", "b": "", "c": ""},
        {"a": "5", "b": "6", "c": "7"},
    ]


def test_extra_cells_with_values_fail_that_row(tmp_path: Path) -> None:
    rows, _ = read(write(tmp_path, "nome;email\nSilva; Ana;a@x.com\nBia;b@x.com\n"))
    assert rows[0] == Row(
        2,
        {"nome": "Silva", "email": " Ana", " 3": "a@x.com"},  # the extra cell stays with it
        "this row has 3 cells but the header has 2 columns "
        "(a delimiter inside a cell without quotes?): fix the row",
    )
    assert rows[1] == Row(3, {"nome": "Bia", "email": "b@x.com"})


def test_unclosed_quote_fails_that_row_and_the_rest_is_read(tmp_path: Path) -> None:
    lines = ["nome,email", 'Ana,"a@x.com', "Bia,b@x.com", 'Caio,"c@x.com"', "Duda,d@x.com"]
    rows, _ = read(write(tmp_path, "\n".join(lines) + "\n"))
    assert rows[0] == Row(
        2,
        {"nome": "Ana", "email": "a@x.com"},
        'a quoted cell of this row has text after its closing quote (a stray ")": '
        'fix the quotes (a " inside a quoted cell is written "")',
    )
    assert rows[1:] == [
        Row(3, {"nome": "Bia", "email": "b@x.com"}),
        Row(4, {"nome": "Caio", "email": "c@x.com"}),
        Row(5, {"nome": "Duda", "email": "d@x.com"}),
    ]


def test_quote_never_closed_to_the_end_of_the_file(tmp_path: Path) -> None:
    rows, _ = read(write(tmp_path, 'nome,email\nAna,"a@x.com\nBia,b@x.com\n'))
    assert rows == [
        Row(
            2,
            {"nome": "Ana", "email": "a@x.com"},
            'a quote (") opened in this row is never closed: fix the quote',
        ),
        Row(3, {"nome": "Bia", "email": "b@x.com"}),
    ]


def test_quote_open_for_too_many_lines(tmp_path: Path) -> None:
    body = "".join(f"p{i},p{i}@x.com\n" for i in range(1500))
    rows, _ = read(write(tmp_path, 'nome,email\nAna,"a@x.com\n' + body))
    assert rows[0].number == 2
    assert rows[0].error == (
        'a quote (") opened in this row is not closed within 1,000 lines; '
        "the lines after it were read as rows of their own: fix the quote"
    )
    assert [r.number for r in rows[1:]] == list(range(3, 1503))
    assert all(r.error is None for r in rows[1:])
    assert rows[-1].cells == {"nome": "p1499", "email": "p1499@x.com"}


def test_a_50_mb_cell_fails_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("nome,obs\nAna,curta\nBia,")
        out.write("x" * (50 << 20))
        out.write("\nCaio,fim\n")
    rows, _ = read(path)
    assert rows[0] == Row(2, {"nome": "Ana", "obs": "curta"})
    assert rows[1].number == 3
    assert rows[1].error == (
        "a line of this row is longer than 2,097,152 characters; it was not read: "
        "shorten it in the file"
    )
    assert rows[2] == Row(4, {"nome": "Caio", "obs": "fim"})


def test_a_cell_over_the_limit_on_several_lines_fails_its_row_only(tmp_path: Path) -> None:
    # 1.1 million characters in one quoted cell over 500 lines: the cell fails its row; its
    # lines are then read again as rows of their own (they fail on their own) and reading goes on.
    huge = "\n".join(["y" * 2200] * 500)
    rows, _ = read(write(tmp_path, f'nome,obs\nAna,"{huge}"\nBia,ok\n'))
    assert rows[0].number == 2
    assert rows[0].error == (
        "a cell of this row is longer than 1,048,576 characters "
        "(more than RD Station accepts): shorten it"
    )
    assert rows[-1].cells == {"nome": "Bia", "obs": "ok"}


@pytest.mark.parametrize(
    "content",
    [
        "email,nome\n",
        "email,nome\n,\n\n ,  \n",  # blank rows only
        '"Lead ID","Email"\n\n"Grand Totals (0 records)"\n',  # a Salesforce report of nothing
    ],
    ids=["header-only", "blank-rows", "footer-only"],
)
def test_a_header_with_no_rows_under_it_is_refused(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} has a header but no rows under it: nothing to import; "
        "export the data again with its rows"
    )
    with open_table(path, allow_empty=True) as table:  # what mapping init reads
        assert list(table.rows()) == []
        assert table.headers[-1] in ("nome", "Email")


def test_rows_can_be_read_once(tmp_path: Path) -> None:
    with open_table(write(tmp_path, "a\n1\n")) as table:
        list(table.rows())
        with pytest.raises(RuntimeError):
            table.rows()


def test_our_failures_report_reads_back_as_the_original_cells(tmp_path: Path) -> None:
    header = (
        "Nome,=Calc,Email,Celular,row,error_stage,http_status,error_type,error_message,attempts"
    )
    line = "'=SUM(A1),'+1,a@x.com,'-5,2,validation,,invalid_email,\"bad, email\",0"
    rows, table = read(write(tmp_path, "\ufeff" + header + "\r\n" + line + "\r\n"))
    assert table.description == (
        "CSV, UTF-8 with BOM, ','-separated, a failures report: its report columns are left out"
    )
    assert table.headers == ["Nome", "=Calc", "Email", "Celular"]
    assert table.source_headers == ["Nome", "=Calc", "Email", "Celular"]
    assert rows == [
        Row(2, {"Nome": "=SUM(A1)", "=Calc": "+1", "Email": "a@x.com", "Celular": "-5"})
    ]


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("+55 11", "'+55 11"),
        ("-5", "'-5"),
        ("@handle", "'@handle"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("'=x", "''=x"),
        ("'abc", "'abc"),
        ("abc=", "abc="),
        ("", ""),
    ],
)
def test_escape_formula(cell: str, escaped: str) -> None:
    assert escape_formula(cell) == escaped
    assert unescape_formula(escaped) == cell


@given(st.text(alphabet=st.sampled_from("'=+-@\t\rab ,\"")))
def test_formula_escaping_round_trips(cell: str) -> None:
    assert unescape_formula(escape_formula(cell)) == cell
    assert escape_formula(cell)[:1] not in ("=", "+", "-", "@", "\t", "\r")


# --- bad input --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == f"{path}: no such file; check the path"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, content)
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == f"{path} is empty: export the spreadsheet again"


def test_file_of_blank_lines_has_an_empty_header(tmp_path: Path) -> None:
    path = write(tmp_path, "\n\n\n")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"the header row 1 of {path} is empty: "
        "put the column names on that row, or point --header-row at them"
    )


def test_empty_header_row_suggests_the_first_filled_row(tmp_path: Path) -> None:
    path = write(tmp_path, ";;\n;;\nemail;nome\na@x.com;Ana\n")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"the header row 1 of {path} is empty: its first filled row is 3: use --header-row 3"
    )


def test_header_row_past_the_end(tmp_path: Path) -> None:
    path = write(tmp_path, "a\n1\n")
    with pytest.raises(InputError) as error:
        open_table(path, header_row=5)
    assert str(error.value) == (
        f"{path} has only 2 rows, so row 5 cannot be its header: check --header-row"
    )


def test_csv_with_nul_bytes_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n1,2\n" + b"x" * 70_000 + b"\x00\n")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} looks like a binary file, not a CSV (it holds NUL bytes, the first at byte "
        "70,008): export the data as CSV or XLSX"
    )


def test_binary_named_csv_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert (
        str(error.value)
        == f"{path} is a PNG image, not a spreadsheet: export the data as CSV or XLSX"
    )


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        open_table(tmp_path)
    assert str(error.value) == f"{tmp_path} is a folder, not a spreadsheet file: give the file"


# --- issue 18: odd input ----------------------------------------------------------------------


def test_extra_cells_stay_with_the_row_that_fails(tmp_path: Path) -> None:
    # The row must come back whole in failures.csv, so the user can fix it.
    rows, _ = read(write(tmp_path, "email,nome,sobrenome\nb@b.co,Bia,Souza, Jr,extra,,\n"))
    assert rows[0].error is not None
    assert list(rows[0].cells.values()) == ["b@b.co", "Bia", "Souza", " Jr", "extra"]
    assert list(rows[0].cells)[:3] == ["email", "nome", "sobrenome"]


def test_a_failures_report_read_back_keeps_the_extra_cells_not_its_report_columns(
    tmp_path: Path,
) -> None:
    header = "email,nome,row,error_stage,http_status,error_type,error_message,attempts"
    line = "b@b.co,Bia,2,read,,READ_ERROR,too wide,0, Jr,extra"
    rows, _ = read(write(tmp_path, header + "\n" + line + "\n"))
    assert rows[0].error is not None
    assert list(rows[0].cells.values()) == ["b@b.co", "Bia", " Jr", "extra"]


def test_many_repeated_header_names_are_renamed_quickly_with_a_short_warning(
    tmp_path: Path,
) -> None:
    # 20,000 columns named alike took 42 s (each rename looked for a free number from 2 up),
    # and the warning named every one of them.
    names = ["email", *["Celular"] * 20_000, "Celular (3)"]
    path = write(tmp_path, ",".join(names) + "\n" + "a@x.com" + "," * (len(names) - 1) + "\n")
    started = time.monotonic()
    _, table = read(path)
    assert time.monotonic() - started < 10  # measured: 42 s before, 0.1 s after
    assert table.headers[:4] == ["email", "Celular", "Celular (2)", "Celular (4)"]
    assert table.headers[-2:] == ["Celular (20001)", "Celular (3)"]
    assert len(set(table.headers)) == len(names)
    [warning] = table.warnings
    assert warning == (
        f"column 'Celular' appears 20,000 times in the header of {path}: the first keeps the "
        "name, the others are read as 'Celular (2)', 'Celular (4)', 'Celular (5)' "
        "and 19,996 more"
    )


def test_many_different_repeated_header_names_give_a_bounded_warning(tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(3000)] * 2
    path = write(tmp_path, ",".join(names) + "\n" + "1" * 1 + "," * (len(names) - 1) + "\n")
    _, table = read(path)
    assert len(table.warnings) <= 6
    assert sum(map(len, table.warnings)) < 2000
    assert table.warnings[-1] == (
        f"2,995 more column names appear more than once in the header of {path}; "
        "each repeat is read as the name followed by its number, as above"
    )


@pytest.mark.parametrize(
    "encoding", ["rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri", "idna", "punycode"]
)
def test_an_encoding_that_does_not_read_text_is_refused_in_one_line(
    tmp_path: Path, encoding: str
) -> None:
    path = write(tmp_path, "email\na@x.com\n")
    with pytest.raises(InputError) as error:
        open_table(path, encoding=encoding)
    assert str(error.value) == (
        f"--encoding {encoding!r} is not a text encoding (it turns bytes into other bytes or "
        "names into other names): try utf-8, cp1252, latin-1 or utf-16"
    )
    with pytest.raises(InputError):
        check_text_options(encoding, None)


def test_a_file_swapped_for_a_link_after_it_was_listed_is_not_read(tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@x.com\n")
    listed = ListedFile(path, FileIdentity.of(path.lstat()))
    secret = write(tmp_path, "email\nsecret@x.com\n", name="secret.csv")
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(ChangedFile) as error:
        open_table(listed)
    assert str(error.value) == (
        f"{path} changed after it was listed (it is a symbolic link now): it was not read"
    )


def test_a_file_replaced_after_it_was_listed_is_not_read(tmp_path: Path) -> None:
    path = write(tmp_path, "email\na@x.com\n")
    listed = ListedFile(path, FileIdentity.of(path.lstat()))
    stat = path.stat()
    replacement = write(tmp_path, "email\nb@x.com\n", name="other.csv")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time
    replacement.replace(path)
    with pytest.raises(ChangedFile) as error:
        open_table(listed)
    assert str(error.value) == (
        f"{path} changed after it was listed (it is another file now): it was not read"
    )
    assert open_table(ListedFile(path, FileIdentity.of(path.lstat()))).headers == ["email"]


def test_every_read_goes_through_the_file_first_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name is swapped for another file while the delimiter is being detected, between
    # the reads that sniff the file and the one that reads its rows: all read the first file.
    path = write(tmp_path, "email\na@x.com\n")
    real_reader = csv.reader
    swapped: list[Path] = []

    def swapping_reader(*args: Any, **kwargs: Any) -> Any:
        if not swapped:
            path.unlink()
            swapped.append(write(tmp_path, "email\nswapped@x.com\n"))
        return real_reader(*args, **kwargs)

    monkeypatch.setattr(csv, "reader", swapping_reader)
    with open_table(path) as table:
        assert swapped
        assert [r.cells["email"] for r in table.rows()] == ["a@x.com"]


@pytest.mark.parametrize("make", ["fifo", "device"])
def test_a_pipe_or_a_device_is_refused_without_waiting(tmp_path: Path, make: str) -> None:
    if make == "fifo":
        path = tmp_path / "leads.csv"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert str(error.value) == (
        f"{path} is not a regular file (a pipe or a device?): save the data to a file and "
        "give that file"
    )


def test_a_name_with_control_characters_is_shown_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, b"", name="a\nb\x1b[31m.csv")
    with pytest.raises(InputError) as error:
        open_table(path)
    assert (
        str(error.value) == f"{tmp_path}/a\\nb\\x1b[31m.csv is empty: export the spreadsheet again"
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("leads.csv", "leads.csv"),
        ("São Paulo – março.csv", "São Paulo – março.csv"),
        ("a\nb.csv", "a\\nb.csv"),
        ("\x1b[2J\r.csv", "\\x1b[2J\\r.csv"),
        ("a\u202eb.csv", "a\\u202eb.csv"),
        ("bad\udcffname.csv", "bad\\udcffname.csv"),
        ("back\\slash.csv", "back\\slash.csv"),
    ],
)
def test_printable_escapes_what_a_terminal_or_a_log_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # escaping twice changes nothing
