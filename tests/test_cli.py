"""The command line as a user meets it: exact messages and exit statuses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import (
    API_KEY,
    EXAMPLE_MAPPING,
    ROOT,
    SAMPLE_CSV,
    read_csv,
    read_summary,
    write_csv,
    write_mapping,
)
from importer.cli import cli

MAPPING = """\
conversion_identifier: "teste-cli"
fields:
  email: "email"
  name: "nome"
"""


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("RDSTATION_API_KEY", raising=False)
    monkeypatch.delenv("RDSTATION_API_URL", raising=False)
    return CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    rows = [["ana@exemplo.com.br", "Ana"], ["bruno@exemplo.com.br", "Bruno"], ["x", "Xis"]]
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], rows)
    return data, write_mapping(tmp_path / "m.yaml", MAPPING)


def test_import_sends_reports_and_exits_1_when_a_row_failed(runner, tmp_path, sandbox, files):
    data, mapping = files
    out = tmp_path / "out"
    result = runner.invoke(
        cli,
        [
            "import",
            str(data),
            "--mapping",
            str(mapping),
            "--out",
            str(out),
            "--rate",
            "0",
            "--api-url",
            sandbox.url,
        ],
        env={"RDSTATION_API_KEY": API_KEY},
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Imported leads.csv: 2 rows sent, 1 failed, 0 skipped (of 3) in ")
    assert lines[1] == "Failures by type: VALIDATION_ERROR 1"
    assert lines[2] == f"Reports: {out}/ (report.html, successes.csv, failures.csv, summary.json)"
    assert "Reading leads.csv: CSV, UTF-8, ','-separated" in result.stderr
    assert "2 rows to send, unpaced" in result.stderr
    assert read_summary(out)["succeeded"] == 2
    assert len(sandbox.snapshot()["accepted"]) == 2
    failure = read_csv(out / "failures.csv")[0]
    assert (failure["email"], failure["row"], failure["error_stage"]) == ("x", "4", "validation")


def test_the_same_command_again_skips_what_was_sent(runner, tmp_path, sandbox, files):
    data, mapping = files
    args = [
        "import",
        str(data),
        "--mapping",
        str(mapping),
        "--out",
        str(tmp_path / "o"),
        "--rate",
        "0",
        "--api-url",
        sandbox.url,
    ]
    runner.invoke(cli, args, env={"RDSTATION_API_KEY": API_KEY})
    result = runner.invoke(cli, args, env={"RDSTATION_API_KEY": API_KEY})
    assert result.exit_code == 1
    assert result.stdout.startswith("Imported leads.csv: 0 rows sent, 1 failed, 2 skipped (of 3)")
    assert len(sandbox.snapshot()["accepted"]) == 2


def test_validate_sends_nothing_and_says_so(runner, tmp_path, files):
    data, mapping = files
    out = tmp_path / "v"
    result = runner.invoke(
        cli, ["validate", str(data), "--mapping", str(mapping), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.stdout.startswith(
        "Checked leads.csv: 3 rows, 2 ready to send, 1 failed, 0 already sent ("
    )
    assert "Nothing was sent." in result.stdout
    assert read_summary(out)["dry_run"] is True


def test_dry_run_is_validate(runner, tmp_path, files):
    data, mapping = files
    result = runner.invoke(
        cli, ["import", str(data), "--mapping", str(mapping), "--dry-run", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("Checked leads.csv: 3 rows, 2 ready to send")


def test_without_a_key_import_exits_2_and_says_where_to_put_it(runner, files):
    data, mapping = files
    result = runner.invoke(cli, ["import", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: no API key: set RDSTATION_API_KEY or pass --api-key-file PATH "
        "(validate and --sandbox need none)\n"
    )


def test_a_header_with_no_rows_exits_2_in_one_line_and_sends_nothing(
    runner, tmp_path, sandbox, files
):
    _, mapping = files
    data = write_csv(tmp_path / "vazio.csv", ["email", "nome"], [])
    args = ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out")]
    result = runner.invoke(
        cli, [*args, "--api-url", sandbox.url], env={"RDSTATION_API_KEY": API_KEY}
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {data} has a header but no rows under it: nothing to import; "
        "export the data again with its rows\n"
    )
    assert sandbox.snapshot()["accepted"] == []


def test_the_key_is_not_a_command_line_option(runner, files):
    data, mapping = files
    result = runner.invoke(cli, ["import", str(data), "--mapping", str(mapping), "--api-key", "k"])
    assert result.exit_code == 2
    assert "the API key is never taken on the command line" in result.stderr
    assert '"k"' not in result.stderr


def test_a_mapping_with_problems_lists_them_all_with_lines_and_exits_2(runner, tmp_path, files):
    data, _ = files
    bad = write_mapping(
        tmp_path / "bad.yaml",
        'conversion_identifier: "x"\nfields:\n  email: "email"\n  nome: "nome"\n'
        '  mobile_phone: {column: "nome", transform: phone}\n',
    )
    result = runner.invoke(cli, ["validate", str(data), "--mapping", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert "line 4: unknown payload field 'nome'" in result.stderr
    assert "line 5: unknown transform 'phone' (did you mean 'phone_br'?)" in result.stderr
    assert "Traceback" not in result.output


def test_a_column_the_file_lacks_is_named_with_a_suggestion(runner, tmp_path, files):
    data, _ = files
    bad = write_mapping(tmp_path / "bad.yaml", MAPPING.replace('"nome"', '"Nomes"'))
    result = runner.invoke(cli, ["validate", str(data), "--mapping", str(bad)])
    assert result.exit_code == 2
    assert "line 4: column 'Nomes' is not in leads.csv (did you mean 'nome'?)" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "Error: missing.csv: no such file; check the path\n"),
        (
            ["{data}", "--mapping", "nope.yaml"],
            "Error: mapping file nope.yaml not found: check the --mapping path\n",
        ),
    ],
)
def test_missing_files_exit_2_with_one_line(runner, files, args, message):
    data, mapping = files
    args = [a.replace("{data}", str(data)) for a in args]
    if "--mapping" not in args:
        args += ["--mapping", str(mapping)]
    result = runner.invoke(cli, ["validate", *args])
    assert result.exit_code == 2
    assert result.stderr == message


def test_plain_http_to_another_host_is_refused_before_connecting(runner, files):
    data, mapping = files
    result = runner.invoke(
        cli,
        ["import", str(data), "--mapping", str(mapping), "--api-url", "http://example.com"],
        env={"RDSTATION_API_KEY": API_KEY},
    )
    assert result.exit_code == 2
    assert "plain http would send the API key in clear text" in result.stderr
    assert API_KEY not in result.output


def test_a_refused_key_exits_3_and_says_how_to_resume(runner, tmp_path, sandbox, files):
    data, mapping = files
    result = runner.invoke(
        cli,
        [
            "import",
            str(data),
            "--mapping",
            str(mapping),
            "--out",
            str(tmp_path / "o"),
            "--rate",
            "0",
            "--api-url",
            sandbox.url,
        ],
        env={"RDSTATION_API_KEY": "revoked"},
    )
    assert result.exit_code == 3
    assert result.stdout.startswith("Stopped: RD Station refused the API key")
    assert "Run the same command to resume." in result.stdout
    assert "revoked" not in result.output


def test_the_sample_imports_against_the_built_in_sandbox(tmp_path):
    """The README's quick start, as a new user runs it (fast: unpaced)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "importer",
            "import",
            str(SAMPLE_CSV),
            "--mapping",
            str(EXAMPLE_MAPPING),
            "--sandbox",
            "--rate",
            "0",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("Imported leads.csv: 35 rows sent, 5 failed, 0 skipped (of 40)")
    assert "Traceback" not in result.stderr
    summary = read_summary(tmp_path / "out")
    assert summary["rows"] == summary["succeeded"] + summary["failed"] + summary["skipped"] == 40


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("rd-importer, version ")


def test_mapping_init_writes_a_mapping_that_validates_as_is(runner, tmp_path):
    target = tmp_path / "m.yaml"
    result = runner.invoke(cli, ["mapping", "init", str(SAMPLE_CSV), "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"Wrote {target}: edit the conversion identifier")
    assert 'conversion_identifier: "leads"  # <- edit' in target.read_text(encoding="utf-8")
    checked = runner.invoke(
        cli, ["validate", str(SAMPLE_CSV), "--mapping", str(target), "--out", str(tmp_path / "v")]
    )
    assert checked.exit_code == 1  # the sample's deliberately bad rows
    assert checked.stdout.startswith("Checked leads.csv: 40 rows, ")

    again = runner.invoke(cli, ["mapping", "init", str(SAMPLE_CSV), "-o", str(target)])
    assert again.exit_code == 2
    assert again.stderr == (
        f"Error: {target} exists: choose another -o, or add --force to overwrite it\n"
    )


def test_mapping_init_prints_to_stdout_without_o(runner):
    result = runner.invoke(cli, ["mapping", "init", str(SAMPLE_CSV)])
    assert result.exit_code == 0
    assert 'email: "E-mail"' in result.stdout


def test_an_out_folder_under_a_file_is_one_line_and_exit_2(runner, files, tmp_path):
    data, mapping = files
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub"
    result = runner.invoke(
        cli, ["validate", str(data), "--mapping", str(mapping), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: {out}: Not a directory; fix the folder or its permissions, or choose another "
        "output folder"
    )


def test_a_bug_is_one_line_without_its_details_and_exit_3(runner, files, monkeypatch):
    import importer.cli

    def broken(*args, **kwargs):
        raise ValueError("https://api.rd.services/?api_key=secret-in-a-message")

    monkeypatch.setattr(importer.cli, "run_import", broken)
    data, mapping = files
    result = runner.invoke(cli, ["validate", str(data), "--mapping", str(mapping)])
    assert result.exit_code == 3
    assert "secret-in-a-message" not in result.output
    assert result.stderr.startswith("Stopped: unexpected error (ValueError in test_cli.py line ")


def test_without_a_terminal_progress_is_a_line_every_minute_or_5_percent(capsys):
    from importer.console import ConsoleListener

    now = [0.0]
    listener = ConsoleListener(interactive=False, clock=lambda: now[0])
    for minute, done in enumerate([0, 10, 100, 200, 210, 1000, 1000], start=0):
        now[0] = minute * 61.0
        listener.progress(done, 1000, 600.0)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [  # not at 10 rows (under 5%), nor at 210 (5% more), nor twice at the end
        "Progress: 100 rows of 1,000 (10%), 49 rows/min, about 10 min left",
        "Progress: 200 rows of 1,000 (20%), 66 rows/min, about 10 min left",
        "Progress: 1,000 rows of 1,000 (100%), 197 rows/min, about 10 min left",
    ]
    quiet = ConsoleListener(quiet=True, interactive=False, clock=lambda: now[0])
    quiet.progress(0, 10, None)
    now[0] += 120
    quiet.progress(10, 10, None)
    assert capsys.readouterr().err == ""
