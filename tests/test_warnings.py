"""Every doubt reaches the reports: warnings go to summary.json with a count and example rows,
and the console's last line says there were some."""

from __future__ import annotations

from click.testing import CliRunner

from helpers import read_summary, write_csv, write_mapping
from importer.cli import cli
from importer.pipeline import ImportConfig, Tuning, run_import

MAPPING = """\
conversion_identifier: "feira"
fields:
  email: "email"
  name: "nome"
legal_bases:
  - category: communications
    type: consent
    status: {column: "aceita", map: {"sim": granted, "não": declined}}
"""


def dry_run(tmp_path, data, mapping):
    return run_import(
        ImportConfig(
            input_path=data,
            mapping_path=mapping,
            out_dir=tmp_path / "out",
            dry_run=True,
            tuning=Tuning(retry_wait=False),
        )
    )


def test_rows_of_one_email_that_disagree_are_a_warning_with_their_rows(tmp_path):
    rows = [
        ["ana@exemplo.com", "Ana", "não"],
        ["bia@exemplo.com", "Bia", "sim"],
        ["ana@exemplo.com", "Ana", "sim"],  # consent declined above, granted here
        ["bia@exemplo.com", "Bia", "sim"],  # the same row again: a duplicate, not a conflict
        ["caio@exemplo.com", "Caio", "sim"],
        ["caio@exemplo.com", "Caio Souza", "sim"],
    ]
    data = write_csv(tmp_path / "leads.csv", ["email", "nome", "aceita"], rows)
    mapping = write_mapping(tmp_path / "m.yaml", MAPPING)
    report = dry_run(tmp_path, data, mapping)

    [note] = read_summary(tmp_path / "out")["warnings"]
    assert note["count"] == 2
    assert note["rows"] == [2, 6]
    assert note["message"] == (
        "rows 2, 4 have the same email and different legal_bases: RD Station keeps the values "
        "of the row it receives last"
    )
    assert "ana@" not in str(report.warnings)


def test_reading_warnings_reach_the_summary_and_the_last_line(tmp_path):
    data = tmp_path / "leads.csv"
    data.write_text("email,nome,,aceita\nana@exemplo.com,Ana,x,sim\n", encoding="utf-8")
    mapping = write_mapping(tmp_path / "m.yaml", MAPPING)
    result = CliRunner().invoke(
        cli, ["validate", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    [note] = read_summary(tmp_path / "out")["warnings"]
    assert note["message"] == f"column C of {data} has no header: its cells are read as 'Column C'"
    assert result.stdout.splitlines()[-1].endswith("; 1 warning, listed in summary.json")
