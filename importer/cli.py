"""The command line: parse flags, call the library, draw progress, map errors to exit statuses.

Exit statuses: 0 every row sent; 1 the run finished and some rows failed; 2 a usage, mapping or
input error found before anything was sent; 3 the run was aborted and can be resumed.
"""

from __future__ import annotations

import os
import stat
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from importer import __version__
from importer.errors import AbortError, ImporterError, InputError
from importer.loader import printable
from importer.pipeline import DEFAULT_API_URL, ImportConfig, Listener, RunReport, run_import
from importer.report import format_duration
from importer.watch import WatchConfig, run_watch

EXIT_OK, EXIT_FAILED_ROWS, EXIT_INPUT, EXIT_ABORTED = 0, 1, 2, 3


def _err(message: str) -> None:
    # Escaped: a message may name a file, and a file's name must not drive the terminal. Line
    # breaks stay: a mapping's problems are listed one a line.
    click.echo("\n".join(map(printable, message.split("\n"))), err=True)


class ConsoleListener(Listener):
    """Messages on stderr; a tqdm bar when stderr is a terminal."""

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.bar: Any = None
        self.interactive = sys.stderr.isatty() and not quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(message)

    def warning(self, message: str) -> None:
        self._write(f"Warning: {message}")

    def _write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(printable(message), file=sys.stderr)
        else:
            _err(printable(message))

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None:
        if not self.interactive:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)
        bar = self.bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        if eta_s is not None:
            bar.set_postfix_str(f"paced ETA {format_duration(eta_s)}", refresh=False)
        bar.refresh()

    def finished(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


API_KEY_FILE_BYTES = 4096  # a key is ~40 characters; a bigger file is not a key file


def read_api_key(api_key_file: Path | None) -> str | None:
    """The key from --api-key-file or RDSTATION_API_KEY; never from the command line. The file
    must be a regular file (a FIFO would block, /dev/zero never ends) and is read to a bound."""
    if api_key_file is not None:
        shown = printable(str(api_key_file))
        try:
            fd = os.open(api_key_file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    what = "a folder" if stat.S_ISDIR(st.st_mode) else "a pipe or a device"
                    raise InputError(
                        f"--api-key-file {shown} is {what}, not a file: put the key in a file"
                    )
                data = os.read(fd, API_KEY_FILE_BYTES + 1)
            finally:
                os.close(fd)
        except OSError as exc:
            raise InputError(f"--api-key-file {shown}: {exc.strerror}") from None
        if len(data) > API_KEY_FILE_BYTES:
            raise InputError(
                f"--api-key-file {shown} holds more than {API_KEY_FILE_BYTES:,} bytes: it "
                "should hold only the API key"
            )
        try:
            key = data.decode("utf-8-sig").strip()  # Notepad adds a BOM
        except UnicodeDecodeError:
            raise InputError(
                f"--api-key-file {shown} is not UTF-8 text: it should hold only the API key"
            ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            _err(f"Warning: {shown} can be read or changed by other users; run 'chmod 600 {shown}'")
        if not key:
            raise InputError(f"--api-key-file {shown}: the file is empty")
        return key
    return os.environ.get("RDSTATION_API_KEY", "").strip() or None


def _api_key_or_exit(api_key_file: Path | None, *, needed: bool) -> str | None:
    if not needed:
        return None
    try:
        return read_api_key(api_key_file)
    except InputError as exc:
        _err(f"Error: {exc}")
        sys.exit(EXIT_INPUT)


def print_report(report: RunReport, input_path: Path) -> None:
    name = printable(input_path.name)
    aborted = printable(report.aborted or "")
    if report.dry_run:
        if report.aborted:
            click.echo(f"Stopped: {aborted}. The rows below were checked before it.")
        click.echo(
            f"Checked {name}: {report.rows:,} rows, {report.succeeded:,} ready to send, "
            f"{report.failed:,} failed, {report.skipped:,} already sent "
            f"({format_duration(report.duration_s)}). Nothing was sent."
        )
    elif report.aborted:
        click.echo(
            f"Stopped: {aborted}.\n"
            f"{report.succeeded:,} rows sent, {report.failed:,} failed, "
            f"{report.left_to_send:,} left to send. Run the same command to resume."
        )
    else:
        click.echo(
            f"Imported {name}: {report.succeeded:,} rows sent, "
            f"{report.failed:,} failed, {report.skipped:,} skipped (of {report.rows:,}) in "
            f"{format_duration(report.duration_s)}."
        )
    if report.in_flight_found:
        click.echo(
            f"{report.in_flight_found:,} rows were in flight when an earlier run stopped "
            "(they may have been recorded by RD Station)."
        )
    if report.failure_types:
        kinds = ", ".join(f"{k} {v:,}" for k, v in report.failure_types.items())
        click.echo(f"Failures by type: {kinds}")
    click.echo(
        f"Reports: {printable(str(report.out_dir))}/ (successes.csv, failures.csv, summary.json)"
    )


def _run(config: ImportConfig, quiet: bool) -> int:
    listener = ConsoleListener(quiet=quiet)
    try:
        report = run_import(config, listener)
    except InputError as exc:
        listener.finished()
        _err(f"Error: {exc}")
        return EXIT_INPUT
    except AbortError as exc:
        listener.finished()
        _err(f"Stopped: {exc}")
        return EXIT_ABORTED
    except ImporterError as exc:
        listener.finished()
        _err(f"Error: {exc}")
        return EXIT_ABORTED
    except KeyboardInterrupt:
        listener.finished()
        _err("Stopped: interrupted. Run the same command to resume.")
        return EXIT_ABORTED
    print_report(report, config.input_path)
    return report.exit_code


def _table_options(func):
    """How a spreadsheet is read: shared by import, validate and watch (for every file)."""
    for option in reversed(
        [
            click.option("--sheet", help="Worksheet name (Excel files) [default: the first]."),
            click.option("--encoding", help="Text encoding of a CSV [default: detected]."),
            click.option("--delimiter", help="CSV delimiter [default: detected]."),
            click.option(
                "--header-row",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Row number of the header.",
            ),
        ]
    ):
        func = option(func)
    return func


def _reading_options(func):
    for option in reversed(
        [
            click.option(
                "--mapping",
                "mapping_path",
                required=True,
                type=click.Path(path_type=Path, dir_okay=False),
                help="YAML column mapping.",
            ),
            click.option(
                "--out",
                "out_dir",
                type=click.Path(path_type=Path, file_okay=False),
                help="Reports folder [default: ./rd-import-out/<input stem>/].",
            ),
            _table_options,
            click.option("--quiet", "-q", is_flag=True, help="Only the final summary."),
        ]
    ):
        func = option(func)
    return func


_in_flight_option = click.option(
    "--in-flight",
    type=click.Choice(["resend", "skip"]),
    default="resend",
    show_default=True,
    help="Rows in flight when an earlier run was killed: send again, or leave as failed.",
)


def _refuse_key_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "the API key is never taken on the command line, where ps and shell history would "
            "show it: set RDSTATION_API_KEY or use --api-key-file PATH",
            ctx,
        )


def _sending_options(func):
    """Flags of the commands that send: pace, concurrency, where, and the key's source."""
    for option in reversed(
        [
            click.option(
                "--rate",
                type=click.FloatRange(min=0),
                default=120,
                show_default=True,
                help="Requests per minute at most; 0 for unpaced.",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(min=1, max=256),
                default=8,
                show_default=True,
                help="Requests in flight at once.",
            ),
            click.option(
                "--api-url",
                envvar="RDSTATION_API_URL",
                default=DEFAULT_API_URL,
                show_default=True,
                help="RD Station API address (env RDSTATION_API_URL).",
            ),
            click.option(
                "--api-key-file",
                type=click.Path(path_type=Path, dir_okay=False),
                help="File holding the API key [default: env RDSTATION_API_KEY].",
            ),
            click.option(
                "--api-key",
                hidden=True,
                expose_value=False,
                callback=_refuse_key_argument,
            ),
        ]
    ):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rd-importer")
def cli() -> None:
    """Import lead spreadsheets (CSV, XLSX) into RD Station Marketing conversions."""


@cli.command("import")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@_reading_options
@_sending_options
@click.option("--dry-run", is_flag=True, help="Read, map and validate; send nothing.")
@click.option("--sandbox", is_flag=True, help="Send to a built-in stand-in for RD Station.")
@_in_flight_option
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="Send again rows RD Station rejected in an earlier run (after fixing the cause there).",
)
def import_command(
    input_path: Path,
    mapping_path: Path,
    out_dir: Path | None,
    sheet: str | None,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    quiet: bool,
    rate: float,
    concurrency: int,
    api_url: str,
    api_key_file: Path | None,
    dry_run: bool,
    sandbox: bool,
    in_flight: str,
    retry_rejected: bool,
) -> None:
    """Send every row of INPUT to RD Station as a conversion."""
    api_key = _api_key_or_exit(api_key_file, needed=not (dry_run or sandbox))
    config = ImportConfig(
        input_path=input_path,
        mapping_path=mapping_path,
        out_dir=out_dir,
        api_url=api_url,
        api_key=api_key,
        rate=rate,
        concurrency=concurrency,
        dry_run=dry_run,
        sandbox=sandbox,
        sheet=sheet,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        in_flight=in_flight,  # type: ignore[arg-type]
        retry_rejected=retry_rejected,
        handle_signals=True,
    )
    sys.exit(_run(config, quiet))


@cli.command("validate")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@_reading_options
@click.pass_context
def validate_command(ctx: click.Context, **options: Any) -> None:
    """Read, map and validate every row of INPUT and write the reports; send nothing."""
    # Exactly `import --dry-run`, by construction: one path builds the run.
    ctx.invoke(import_command, dry_run=True, **options)


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--rate-limit", type=click.IntRange(min=1), help="Gateway limit: POSTs per window.")
@click.option("--rate-window", type=click.FloatRange(min=0.001), default=60.0, show_default=True)
@click.option("--lead-limit", type=click.IntRange(min=1), help="Conversions per email per 24 h.")
@click.option("--fail-ratio", type=click.FloatRange(0, 1), default=0.0, help="Share of 5xx.")
@click.option("--drop-ratio", type=click.FloatRange(0, 1), default=0.0, help="Share of drops.")
@click.option(
    "--accept-then-drop-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share recorded, then dropped before the answer.",
)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds per answer.")
@click.option("--key", "keys", multiple=True, help="Accept only this API key (repeatable).")
@click.option("--seed", type=int, help="Seed for reproducible faults.")
def sandbox_command(
    host: str,
    port: int,
    rate_limit: int | None,
    rate_window: float,
    lead_limit: int | None,
    fail_ratio: float,
    drop_ratio: float,
    accept_then_drop_ratio: float,
    latency: float,
    keys: tuple[str, ...],
    seed: int | None,
) -> None:
    """Serve a local stand-in for the RD Station conversions API until stopped."""
    from importer.sandbox import SandboxConfig, serve

    try:
        config = SandboxConfig(
            api_keys=frozenset(keys) or None,
            rate_limit=rate_limit,
            rate_window=rate_window,
            lead_limit=lead_limit,
            fail_ratio=fail_ratio,
            drop_ratio=drop_ratio,
            accept_then_drop_ratio=accept_then_drop_ratio,
            latency=latency,
            seed=seed,
        )
    except InputError as exc:
        _err(f"Error: {exc}")
        sys.exit(EXIT_INPUT)

    def ready(url: str) -> None:
        _err(f"Sandbox for RD Station conversions at {url} (use --api-url {url}); Ctrl-C to stop")

    try:
        serve(host, port, config, on_ready=ready)
    except InputError as exc:
        _err(f"Error: {exc}")
        sys.exit(EXIT_INPUT)


@cli.command("watch")
@click.argument("inbox", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--mapping",
    "mapping_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML column mapping, used for every file.",
)
@click.option(
    "--out",
    "out_root",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Reports root: each file's reports go to OUT/<file stem>/; watch.log is here.",
)
@click.option("--once", is_flag=True, help="Import what is in INBOX now, then exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=30,
    show_default=True,
    help="Seconds between looks at INBOX (without --once).",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=5,
    show_default=True,
    help="A file changed more recently than this many seconds is still being written.",
)
@click.option("--wait-lock", is_flag=True, help="Another watcher holds INBOX: wait, not skip.")
@_sending_options
@_table_options
@_in_flight_option
@click.option("--sandbox", is_flag=True, help="Send to a built-in stand-in for RD Station.")
@click.option("--quiet", "-q", is_flag=True, help="Only one line per file.")
def watch_command(
    inbox: Path,
    mapping_path: Path,
    out_root: Path,
    once: bool,
    interval: float,
    settle: float,
    wait_lock: bool,
    rate: float,
    concurrency: int,
    api_url: str,
    api_key_file: Path | None,
    sheet: str | None,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    in_flight: str,
    sandbox: bool,
    quiet: bool,
) -> None:
    """Import every spreadsheet dropped into INBOX, oldest first; move each to INBOX/processed/
    (or INBOX/rejected/ when it cannot be read).

    Exit status with --once: 0 every file imported with every row sent, 1 some rows or files
    failed, 2 a usage, mapping or setting error, 3 a run was aborted (resumed by the next run).
    """
    api_key = _api_key_or_exit(api_key_file, needed=not sandbox)
    template = ImportConfig(
        input_path=inbox,
        mapping_path=mapping_path,
        api_url=api_url,
        api_key=api_key,
        rate=rate,
        concurrency=concurrency,
        sandbox=sandbox,
        sheet=sheet,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        in_flight=in_flight,  # type: ignore[arg-type]
    )
    config = WatchConfig(
        inbox=inbox,
        out_root=out_root,
        template=template,
        once=once,
        interval=interval,
        settle=settle,
        wait_lock=wait_lock,
        handle_signals=True,
    )
    try:
        result = run_watch(config, ConsoleListener(quiet=quiet), echo=_err)
    except InputError as exc:
        _err(f"Error: {exc}")
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        _err("Stopped: interrupted. Run the same command to resume.")
        sys.exit(EXIT_ABORTED)
    if result.stopped:
        _err(f"Stopped: {result.stopped}.")
    sys.exit(result.exit_code)


@cli.group("mapping")
def mapping_group() -> None:
    """Write and check column mappings."""


@mapping_group.command("init")
@click.argument("input_path", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the mapping here [default: print it].",
)
@click.option("--sheet", help="Worksheet name (Excel files) [default: the first].")
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
def mapping_init_command(
    input_path: Path, output: Path | None, sheet: str | None, force: bool
) -> None:
    """Write a first mapping for FILE from its header and a sample of its rows."""
    from importer.scaffold import scaffold_mapping

    try:
        text = scaffold_mapping(input_path, sheet=sheet)
    except InputError as exc:
        _err(f"Error: {exc}")
        sys.exit(EXIT_INPUT)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with output.open("w" if force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        _err(f"Error: {output} exists: choose another -o, or add --force to overwrite it")
        sys.exit(EXIT_INPUT)
    except OSError as exc:
        _err(f"Error: cannot write {output}: {exc.strerror}")
        sys.exit(EXIT_INPUT)
    _err(
        f'Wrote {output}: edit the conversion identifier (marked "# <- edit"), then check it '
        f"with: rd-importer validate {input_path} --mapping {output}"
    )


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        _err("Stopped: interrupted.")
        sys.exit(EXIT_ABORTED)
    except Exception as exc:
        # A bug. Its text and traceback may quote a URL or a setting, and with it the API key:
        # show only its type and where it happened.
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" in {Path(last[0].filename).name} line {last[0].lineno}" if last else ""
        _err(
            f"Stopped: unexpected error ({type(exc).__name__}{where}); its details are not "
            "shown, as they may hold the API key. Run the same command to resume, and please "
            "report this error."
        )
        sys.exit(EXIT_ABORTED)
