"""The Python API: import_rows / import_rows_async on files, DataFrames and dicts, end to end
against the sandbox on loopback."""

from __future__ import annotations

import datetime as dt
import os
import signal
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import API_KEY, write_csv, write_mapping
from importer import ImportReport, RunAborted, import_rows, import_rows_async
from importer.errors import InputError
from importer.frames import frame_table
from importer.mapping import load_mapping
from importer.pipeline import Listener

MAPPING = """\
conversion_identifier: "api-test"
fields:
  email: "email"
  name: "nome"
  cf_idade: "idade"
  cf_plano: "plano"
  cf_cep: "cep"
  cf_vip: "vip"
  cf_cadastro: {column: "cadastro", transform: date}
  cf_visita: {column: "visita", transform: date}
"""
MAPPING_DICT = {
    "conversion_identifier": "api-test",
    "fields": {"email": "email", "name": "nome", "cf_plano": "plano"},
}
EMAIL_ONLY = {"conversion_identifier": "api-test", "fields": {"email": "email"}}
HEADER = ["email", "nome", "idade", "plano", "cep", "vip", "cadastro", "visita"]
# What a person sees in the DataFrame below, typed into a CSV.
CSV_ROWS = [
    [
        "ana@exemplo.com.br",
        "Ana",
        "30",
        "1",
        "01310100",
        "true",
        "2026-02-02",
        "2026-02-02T09:15:00",
    ],
    ["bia@exemplo.com.br", "", "41", "", "", "false", "", "2026-03-01T18:00:00"],
    ["caio@exemplo.com.br", "Caio", "", "2.5", "00012", "true", "2025-12-31", ""],
    ["nao-e-email", "Dora", "19", "3", "99999999", "false", "2026-01-15", "2026-01-15T00:00:00"],
]


def leads_frame() -> pd.DataFrame:
    """CSV_ROWS as pandas holds them: an integer column with an empty cell is float, dates are
    datetime64 (one with a time of day), text keeps its leading zeros, empty cells are
    None/NaN/NaT/""."""
    return pd.DataFrame(
        {
            "email": [r[0] for r in CSV_ROWS],
            "nome": ["Ana", None, "Caio", "Dora"],
            "idade": pd.array([30, 41, None, 19], dtype="Int64"),
            "plano": [1.0, np.nan, 2.5, 3.0],
            "cep": ["01310100", "", "00012", "99999999"],
            "vip": [True, False, True, False],
            "cadastro": pd.to_datetime(["2026-02-02", None, "2025-12-31", "2026-01-15"]),
            "visita": pd.to_datetime(
                ["2026-02-02 09:15", "2026-03-01 18:00", None, "2026-01-15 00:00"],
                format="ISO8601",
            ),
        }
    )


def send(source, out: Path, sandbox, mapping, **options) -> ImportReport:
    options.setdefault("rate", 0)
    return import_rows(source, mapping, out=out, api_url=sandbox.url, api_key=API_KEY, **options)


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    return write_mapping(tmp_path / "mapping.yaml", MAPPING)


def accepted(sandbox, since: int = 0) -> list[dict]:
    return sorted(
        (a["payload"] for a in sandbox.snapshot()["accepted"][since:]), key=lambda p: p["email"]
    )


# --- DataFrames --------------------------------------------------------------------------------


def test_a_dataframe_sends_what_the_same_rows_from_a_csv_send(tmp_path, sandbox, mapping):
    csv_path = write_csv(tmp_path / "leads.csv", HEADER, CSV_ROWS)
    from_csv = send(csv_path, tmp_path / "out-csv", sandbox, mapping)
    csv_payloads = accepted(sandbox)
    from_frame = send(leads_frame(), tmp_path / "out-df", sandbox, mapping, name="leads")
    frame_payloads = accepted(sandbox, since=len(csv_payloads))

    assert frame_payloads == csv_payloads
    assert len(frame_payloads) == 3
    assert frame_payloads[0] == {
        "conversion_identifier": "api-test",
        "email": "ana@exemplo.com.br",
        "name": "Ana",
        "cf_idade": "30",
        "cf_plano": "1",
        "cf_cep": "01310100",
        "cf_vip": "true",
        "cf_cadastro": "2026-02-02",
        "cf_visita": "2026-02-02",
    }
    for report in (from_csv, from_frame):
        assert (report.rows, report.succeeded, report.failed, report.skipped) == (4, 3, 1, 0)
    assert from_frame.out_dir == tmp_path / "out-df"
    [failure] = from_frame.failures()
    assert failure["row"] == "5"  # as a spreadsheet numbers it: the header is row 1
    assert failure["email"] == "nao-e-email"
    assert failure["cep"] == "99999999"
    assert failure["error_stage"] == "validation"
    assert [{k: v for k, v in f.items() if k != "row_id"} for f in from_frame.failures()] == [
        {k: v for k, v in f.items() if k != "row_id"} for f in from_csv.failures()
    ]


def test_the_same_dataframe_into_the_same_out_sends_nothing_again(tmp_path, sandbox, mapping):
    frame = leads_frame()
    first = send(frame, tmp_path / "out", sandbox, mapping)
    sent = len(sandbox.snapshot()["accepted"])
    again = send(frame.copy(), tmp_path / "out", sandbox, mapping)
    assert first.succeeded == sent == 3
    assert len(sandbox.snapshot()["accepted"]) == sent
    assert (again.rows, again.succeeded, again.failed, again.skipped) == (4, 0, 1, 3)


def test_a_rehearsal_then_the_whole_frame_sends_each_row_once(tmp_path, sandbox, mapping):
    frame = leads_frame()
    send(frame, tmp_path / "out", sandbox, mapping, rows="2-3")
    send(frame, tmp_path / "out", sandbox, mapping)
    emails = [p["email"] for p in accepted(sandbox)]
    assert sorted(emails) == sorted(r[0] for r in CSV_ROWS[:3])


def test_cells_reach_the_mapping_as_the_text_a_person_sees():
    frame = pd.DataFrame(
        {
            "f": [1.0, np.nan, 0.1 + 0.2, -0.0, 1e20, 1.5e-7, 12345678901234.0],
            "f32": np.array([0.1, 1.0, np.nan, 2.5, 3e-8, 16777216.0, 1.0], dtype="float32"),
            "i": [1, 2, 3, 4, 5, 6, -7],
            "s": ["007", None, "", " x ", "nan", "None", "=1+1"],
            "obj": [Decimal("1.10"), None, dt.date(2026, 2, 2), 5, True, np.nan, pd.NaT],
            "cat": pd.Categorical(["a", None, "b", "a", "a", "b", None]),
            "tz": pd.to_datetime(["2026-02-02 10:00"] * 6 + [None]).tz_localize("UTC"),
            "ns": pd.to_datetime(["2026-02-02 10:00:00.5"] * 6 + [None]),
            "td": pd.to_timedelta(["1h", "90min", None, "0s", "26h", "1s", "1D"]),
            "b": pd.array([True, False, None, True, True, False, None], dtype="boolean"),
        }
    )
    with frame_table(frame, "t") as table:
        rows = [row.cells for row in table.rows()]
    column = {name: [row[name] for row in rows] for name in frame.columns}
    assert column["f"] == [
        "1",
        "",
        "0.3",
        "0",
        "100000000000000000000",
        "0.00000015",
        "12345678901234",
    ]
    assert column["f32"] == ["0.1", "1", "", "2.5", "0.00000003", "16777216", "1"]
    assert column["i"] == ["1", "2", "3", "4", "5", "6", "-7"]
    assert column["s"] == ["007", "", "", " x ", "nan", "None", "=1+1"]
    assert column["obj"] == ["1.10", "", "2026-02-02", "5", "true", "", ""]
    assert column["cat"] == ["a", "", "b", "a", "a", "b", ""]
    assert column["tz"] == ["2026-02-02T10:00:00+00:00"] * 6 + [""]
    assert column["ns"] == ["2026-02-02T10:00:00.500"] * 6 + [""]
    assert column["td"] == ["1:00:00", "1:30:00", "", "0:00:00", "26:00:00", "0:00:01", "24:00:00"]
    assert column["b"] == ["true", "false", "", "true", "true", "false", ""]


def test_rows_are_numbered_from_2_and_blank_rows_are_skipped_as_in_a_file():
    frame = pd.DataFrame({"email": ["a@x.com", None, "c@x.com"], "nome": ["A", np.nan, "C"]})
    with frame_table(frame, "t") as table:
        numbers = [row.number for row in table.rows()]
        assert table.blank_rows == 1
    assert numbers == [2, 4]


def test_a_large_frame_is_converted_in_chunks_with_the_rows_in_order():
    count = 20_000  # more than one chunk
    frame = pd.DataFrame({"n": np.arange(count), "x": np.where(np.arange(count) % 2, 1.5, np.nan)})
    with frame_table(frame, "t") as table:
        rows = list(table.rows())
    assert len(rows) == count
    assert rows[-1].number == count + 1
    assert rows[-1].cells == {"n": str(count - 1), "x": "1.5"}
    assert rows[10_000].cells == {"n": "10000", "x": ""}


# --- dicts and mappings -----------------------------------------------------------------------


def test_a_list_of_dicts_takes_every_key_as_a_column(tmp_path, sandbox):
    rows = [
        {"email": "ana@exemplo.com.br", "nome": "Ana"},
        {"email": "bia@exemplo.com.br", "plano": 2.0},  # a key the first row has not
    ]
    report = send(rows, tmp_path / "out", sandbox, MAPPING_DICT)
    assert report.succeeded == 2
    assert accepted(sandbox) == [
        {"conversion_identifier": "api-test", "email": "ana@exemplo.com.br", "name": "Ana"},
        {"conversion_identifier": "api-test", "email": "bia@exemplo.com.br", "cf_plano": "2"},
    ]


def test_an_iterator_of_dicts_is_read_once_as_it_goes(tmp_path, sandbox):
    def rows():
        yield {"email": "ana@exemplo.com.br", "nome": "Ana", "plano": None}
        yield {"email": "bia@exemplo.com.br", "nome": "Bia", "extra": "x"}  # not a column
        yield ["not", "a", "dict"]
        yield {"email": "caio@exemplo.com.br"}

    report = send(rows(), tmp_path / "out", sandbox, MAPPING_DICT, name="crm")
    assert (report.rows, report.succeeded, report.failed) == (4, 2, 2)
    failed = {f["row"]: f["error_message"] for f in report.failures()}
    assert "'extra', which is not a column" in failed["3"]
    assert "is a list, not a dict" in failed["4"]
    assert report.out_dir == tmp_path / "out"


def test_the_mapping_may_be_a_path_a_dict_or_a_loaded_mapping(tmp_path, sandbox, mapping):
    frame = leads_frame()
    for i, given in enumerate((str(mapping), MAPPING_DICT, load_mapping(mapping))):
        report = send(frame, tmp_path / f"out{i}", sandbox, given, dry_run=True)
        assert (report.succeeded, report.failed) == (3, 1)


def test_a_dict_mapping_with_a_mistake_names_its_line_and_shows_the_yaml(tmp_path):
    mapping = {"conversion_identifier": "x", "fields": {"email": "email", "name": "nomee"}}
    with pytest.raises(InputError) as caught:
        import_rows(leads_frame(), mapping, out=tmp_path / "out", dry_run=True)
    message = str(caught.value)
    assert message.startswith(
        "the mapping dict: line 4: column 'nomee' is not in dataframe (did you mean 'nome'?)"
    )
    assert "   4    name: nomee" in message


def test_a_file_is_imported_as_the_cli_imports_it(tmp_path, sandbox, mapping):
    csv_path = write_csv(tmp_path / "leads.csv", HEADER, CSV_ROWS)
    report = send(str(csv_path), tmp_path / "out", sandbox, mapping, delimiter=",", header_row=1)
    assert (report.succeeded, report.failed) == (3, 1)


# --- bad input ---------------------------------------------------------------------------------


def test_duplicate_column_names_are_renamed_as_a_file_s_are(tmp_path):
    frame = pd.DataFrame([["a@exemplo.com.br", "b@exemplo.com.br", "Ana"]])
    frame.columns = ["email", "email", "nome"]
    report = import_rows(frame, EMAIL_ONLY, out=tmp_path / "out", dry_run=True)
    assert report.succeeded == 1
    assert [note.message for note in report.warnings] == [
        "column 'email' appears 2 times in the header of DataFrame 'dataframe': the first "
        "keeps the name, the others are read as 'email (2)'"
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame([["a@x.com", "Ana"]]),
            "DataFrame 'dataframe' has column names that are not text (column 1 is 0, column 2 "
            "is 1): the mapping finds columns by their header text, so name them",
        ),
        (
            pd.DataFrame(
                [["a@x.com", "Ana"]],
                columns=pd.MultiIndex.from_tuples([("lead", "email"), ("lead", "nome")]),
            ),
            "DataFrame 'dataframe' has 2 levels of column names (a MultiIndex)",
        ),
        (
            pd.DataFrame({"email": [], "nome": []}),
            "DataFrame 'dataframe' has a header but no rows under it: nothing to import; pass a "
            "DataFrame with rows",
        ),
        (pd.DataFrame(), "DataFrame 'dataframe' has no named columns: nothing to import"),
    ],
)
def test_a_dataframe_a_file_could_not_be_is_refused_before_anything_is_sent(
    tmp_path, frame, message
):
    with pytest.raises(InputError) as caught:
        import_rows(frame, MAPPING_DICT, out=tmp_path / "out", dry_run=True)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "rows 'rows' holds no rows (or only empty dicts): nothing to import"),
        ([("a@x.com", "Ana")], "rows 'rows': a row is a tuple, not a dict of column: value"),
        ([{1: "a@x.com"}], "rows 'rows' has column names that are not text (column 1 is 1)"),
    ],
)
def test_rows_that_are_not_dicts_of_text_keys_are_refused(tmp_path, rows, message):
    with pytest.raises(InputError) as caught:
        import_rows(rows, MAPPING_DICT, out=tmp_path / "out", dry_run=True)
    assert str(caught.value).startswith(message)


def test_wrong_arguments_are_type_errors_naming_what_to_pass(tmp_path):
    with pytest.raises(
        TypeError, match=r"unexpected keyword argument 'rat' \(did you mean 'rate'\?\)"
    ):
        import_rows(leads_frame(), MAPPING_DICT, rat=10)
    with pytest.raises(TypeError, match=r"'out_dir' \(did you mean 'out'\?\)"):
        import_rows(leads_frame(), MAPPING_DICT, out_dir=tmp_path)
    with pytest.raises(TypeError, match="missing a required argument: 'mapping'"):
        import_rows(leads_frame())
    with pytest.raises(TypeError, match="a pandas Series: pass a DataFrame"):
        import_rows(leads_frame()["email"], MAPPING_DICT)
    with pytest.raises(TypeError, match="source is a dict"):
        import_rows({"email": "a@x.com"}, MAPPING_DICT)
    with pytest.raises(InputError, match="name='leads' names rows given in memory"):
        import_rows(tmp_path / "x.csv", MAPPING_DICT, name="leads")
    with pytest.raises(InputError, match="keep_sent and resend_changed exclude each other"):
        import_rows(leads_frame(), MAPPING_DICT, keep_sent=True, resend_changed=True)


def test_without_a_key_the_error_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.delenv("RDSTATION_API_KEY", raising=False)
    with pytest.raises(InputError, match="set RDSTATION_API_KEY or pass api_key="):
        import_rows(leads_frame(), MAPPING_DICT, out=tmp_path / "out")


def test_file_options_given_with_a_dataframe_are_ignored_with_a_warning(tmp_path):
    report = import_rows(leads_frame(), MAPPING_DICT, out=tmp_path / "o", dry_run=True, sheet="X")
    assert [n.message for n in report.warnings] == [
        "sheet= is ignored: the rows are a DataFrame, not a file"
    ]


# --- how it runs -------------------------------------------------------------------------------


def test_nothing_is_printed_unless_asked(tmp_path, sandbox, capfd, mapping):
    send(leads_frame(), tmp_path / "out", sandbox, mapping)
    assert capfd.readouterr() == ("", "")
    send(leads_frame(), tmp_path / "out2", sandbox, mapping, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "Reading dataframe: pandas DataFrame, 4 rows x 8 columns" in err
    assert "Imported dataframe: 3 rows sent, 1 failed" in err


def test_a_listener_hears_the_run(tmp_path, sandbox, mapping):
    heard: list[str] = []

    class Ears(Listener):
        def info(self, message: str) -> None:
            heard.append(message)

    send(leads_frame(), tmp_path / "out", sandbox, mapping, listener=Ears())
    assert heard[0] == "Reading dataframe: pandas DataFrame, 4 rows x 8 columns"


async def test_import_rows_async_runs_inside_the_caller_s_event_loop(tmp_path, sandbox, mapping):
    report = await import_rows_async(
        leads_frame(),
        mapping,
        out=tmp_path / "out",
        api_url=sandbox.url,
        api_key=API_KEY,
        rate=0,
    )
    assert (report.succeeded, report.failed) == (3, 1)
    assert isinstance(report, ImportReport)


async def test_import_rows_inside_an_event_loop_points_to_import_rows_async(tmp_path):
    with pytest.raises(RuntimeError, match=r"await import_rows_async\(\.\.\.\)"):
        import_rows(leads_frame(), MAPPING_DICT, out=tmp_path / "out", dry_run=True)
    assert not (tmp_path / "out").exists()


async def test_in_a_notebook_import_rows_runs_beside_the_kernel_s_loop(tmp_path, monkeypatch):
    monkeypatch.setattr("importer.api._in_notebook", lambda: True)
    report = import_rows(leads_frame(), MAPPING_DICT, out=tmp_path / "out", dry_run=True)
    assert (report.succeeded, report.failed) == (3, 1)


def test_the_failures_come_back_as_a_dataframe(tmp_path, sandbox, mapping):
    report = send(leads_frame(), tmp_path / "out", sandbox, mapping)
    frame = report.failures_frame()
    assert list(frame["email"]) == ["nao-e-email"]
    assert list(frame["row"]) == ["5"]
    assert list(frame.columns[:8]) == HEADER
    clean = send([{"email": "a@exemplo.com.br"}], tmp_path / "clean", sandbox, EMAIL_ONLY)
    assert clean.failures() == []
    assert clean.failures_frame().empty


def test_a_refused_key_raises_run_aborted_with_the_report(tmp_path, sandbox, mapping):
    with pytest.raises(RunAborted) as caught:
        import_rows(
            leads_frame(),
            mapping,
            out=tmp_path / "out",
            api_url=sandbox.url,
            api_key="wrong-key",
            rate=0,
        )
    assert "refused the API key" in str(caught.value)
    assert "call again with the same out= to resume" in str(caught.value)
    assert caught.value.report.aborted
    assert caught.value.report.succeeded == 0


def test_ctrl_c_stops_the_run_as_it_stops_the_cli(tmp_path, make_sandbox):
    box = make_sandbox()

    class CtrlC(Listener):
        def progress(self, done: int, total, eta) -> None:
            if done == 1:
                os.kill(os.getpid(), signal.SIGINT)  # the main thread takes it, as at a terminal

    frame = pd.DataFrame({"email": [f"lead{i}@exemplo.com.br" for i in range(20)]})
    with pytest.raises(RunAborted) as caught:
        import_rows(
            frame,
            EMAIL_ONLY,
            out=tmp_path / "out",
            api_url=box.url,
            api_key=API_KEY,
            rate=6,
            concurrency=1,
            listener=CtrlC(),
        )
    report = caught.value.report
    assert report.interrupted
    assert str(caught.value).startswith("interrupted (Ctrl-C)")
    assert report.succeeded == len(box.snapshot()["accepted"]) >= 1
    assert report.left_to_send == 20 - report.succeeded


def test_ctrl_c_stops_a_dry_run_at_once(tmp_path):
    def rows():
        for i in range(200_000):
            if i == 1000:
                os.kill(os.getpid(), signal.SIGINT)
            yield {"email": f"lead{i}@exemplo.com.br"}

    with pytest.raises(KeyboardInterrupt):
        import_rows(rows(), EMAIL_ONLY, out=tmp_path / "out", dry_run=True)


def test_the_failures_frame_fixed_and_imported_again_sends_the_fixed_rows(
    tmp_path, sandbox, mapping
):
    report = send(leads_frame(), tmp_path / "out", sandbox, mapping)
    fixed = report.failures_frame()
    fixed.loc[0, "email"] = "dora@exemplo.com.br"
    again = send(fixed, tmp_path / "out", sandbox, mapping, name="fixed")
    assert (again.succeeded, again.failed) == (1, 0)
    assert again.failures() == []
    assert accepted(sandbox)[-1]["email"] == "dora@exemplo.com.br"
    assert len(sandbox.snapshot()["accepted"]) == 4


def test_show_keeps_the_requests_of_the_first_rows(tmp_path):
    report = import_rows(leads_frame(), MAPPING_DICT, out=tmp_path / "out", dry_run=True, show=1)
    [shown] = report.shown
    assert shown.row == 2
    assert shown.request["payload"]["cf_plano"] == "1"


# --- options added with the flags: skip_hidden_rows=, auth= -------------------------------------


def test_skip_hidden_rows_leaves_out_the_rows_excel_hides(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["email"])
    for name in ("ana", "bia", "caio"):
        sheet.append([f"{name}@x.com"])
    sheet.row_dimensions[3].hidden = True
    book.save(tmp_path / "filtered.xlsx")
    report = import_rows(
        tmp_path / "filtered.xlsx",
        EMAIL_ONLY,
        out=tmp_path / "o",
        dry_run=True,
        skip_hidden_rows=True,
    )
    assert (report.rows, report.skipped) == (2, 0)
    frame = import_rows(
        leads_frame(), EMAIL_ONLY, out=tmp_path / "f", dry_run=True, skip_hidden_rows=True
    )
    assert [n.message for n in frame.warnings] == [
        "skip_hidden_rows= is ignored: the rows are a DataFrame, not a file"
    ]


def test_auth_oauth_signs_in_to_the_sandbox_and_refuses_an_api_key(tmp_path):
    report = import_rows(
        leads_frame(), EMAIL_ONLY, out=tmp_path / "o", sandbox=True, auth="oauth", rate=0
    )
    assert (report.succeeded, report.failed) == (3, 1)
    with pytest.raises(InputError, match="api_key= goes with auth='apikey'"):
        import_rows(leads_frame(), EMAIL_ONLY, out=tmp_path / "k", auth="oauth", api_key="K")
