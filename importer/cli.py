"""The command line: parse flags, call the library, draw progress, map errors to exit statuses.

Exit statuses (``ExitStatus``): 0 every row sent; 1 the run finished and some rows failed; 2 a
usage, mapping or input error found before anything was sent; 3 the run was aborted and can be
resumed. Every exception a command raises becomes its status and one line in ``_Cli.invoke``,
the one place that maps them.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from importer import __version__, flags
from importer.cli_auth import auth_group
from importer.console import ConsoleListener, err
from importer.errors import AbortError, ExitStatus, ImporterError, InputError, printable
from importer.pipeline import ImportConfig, run_import
from importer.report import console_summary, shown_text
from importer.sending import RunControl
from importer.watch import WatchConfig, run_watch

# The flag of each setting the library names in its messages, where it is not "--" + its name.
_FLAGS = {"out_dir": "--out"}


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
            err(f"Warning: {shown} can be read or changed by other users; run 'chmod 600 {shown}'")
        if not key:
            raise InputError(f"--api-key-file {shown}: the file is empty")
        return key
    return os.environ.get("RDSTATION_API_KEY", "").strip() or None


def _api_key(api_key_file: Path | None, *, needed: bool) -> str | None:
    return read_api_key(api_key_file) if needed else None


def _run(config: ImportConfig, quiet: bool) -> ExitStatus:
    listener = ConsoleListener(quiet=quiet)
    try:
        report = run_import(config, listener, RunControl(handle_signals=True))
    finally:
        listener.finished()
    if report.shown:
        click.echo(shown_text(report.shown) + "\n")
    click.echo(console_summary(report, config.input_path.name))
    return report.exit_status


def _flagged(exc: InputError, command: str | None) -> str:
    """The library's message in the CLI's words: the setting it names shown as its flag."""
    text = str(exc)
    setting = exc.setting
    if setting is None:
        return text
    # "header_row 3" at the start of the message or after "use": the setting as a value given
    flag = _FLAGS.get(setting, "--" + setting.replace("_", "-"))
    text = re.sub(rf"(?:^|(?<=\buse ))\b{re.escape(setting)}(?=[ )])", flag, text)
    if setting == "changed":
        text += (
            ": add --keep-sent to leave them as sent and send only rows never sent, or "
            "--resend-changed to send them again (RD Station updates each lead and records "
            "another conversion)"
        )
    if setting == "batch":
        text = text.replace("auth oauth", "--auth oauth").replace("batch out", "--batch out")
    if setting == "api_key":
        needs_none = (
            "--sandbox needs none" if command == "watch" else ("validate and --sandbox need none")
        )
        text += f" or pass --api-key-file PATH ({needs_none})"
    return text


def _outcome(exc: BaseException, command: str | None) -> tuple[ExitStatus, str]:
    """The exit status and the one line for an exception a command raised."""
    if isinstance(exc, InputError):
        return ExitStatus.INPUT, f"Error: {_flagged(exc, command)}"
    if isinstance(exc, AbortError):
        return ExitStatus.ABORTED, f"Stopped: {exc}"
    if isinstance(exc, ImporterError):
        return ExitStatus.ABORTED, f"Error: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.ABORTED, "Stopped: interrupted. Run the same command to resume."
    # A bug. Its text and traceback may quote a URL or a setting, and with it the API key:
    # show only its type and where it happened.
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" in {Path(last[0].filename).name} line {last[0].lineno}" if last else ""
    return ExitStatus.ABORTED, (
        f"Stopped: unexpected error ({type(exc).__name__}{where}); its details are not "
        "shown, as they may hold the API key. Run the same command to resume, and please "
        "report this error."
    )


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2), --help, exit statuses
        except Exception as exc:
            status, line = _outcome(exc, ctx.invoked_subcommand)
        except KeyboardInterrupt as exc:
            status, line = _outcome(exc, ctx.invoked_subcommand)
        err(line)
        ctx.exit(int(status))


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rd-importer")
def cli() -> None:
    """Import lead spreadsheets (CSV, XLSX) into RD Station Marketing conversions."""


@cli.command("import")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@flags.reading_options
@flags.sending_options
@click.option("--dry-run", is_flag=True, help="Read, map and validate; send nothing.")
@click.option("--sandbox", is_flag=True, help="Send to a built-in stand-in for RD Station.")
@flags.in_flight_option
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="Send again rows RD Station rejected in an earlier run (after fixing the cause there).",
)
@flags.changed_options
@flags.rehearsal_options
@flags.show_option
@flags.auth_option
@flags.as_option
@flags.batch_option
def import_command(
    input_path: Path,
    mapping_path: Path,
    out_dir: Path | None,
    sheet: str | None,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    skip_hidden_rows: bool,
    quiet: bool,
    rate: float,
    concurrency: int,
    api_url: str,
    api_key_file: Path | None,
    dry_run: bool,
    sandbox: bool,
    in_flight: str | None,
    retry_rejected: bool,
    keep_sent: bool,
    resend_changed: bool,
    limit: int | None,
    row_range: tuple[int, int] | None,
    show: int,
    auth: str,
    send_as: str = "conversions",
    batch: int | None = None,
) -> None:
    """Send every row of INPUT to RD Station as a conversion."""
    auth = flags.auth_choice(auth, api_key_file)
    config = ImportConfig(
        input_path=input_path,
        mapping_path=mapping_path,
        out_dir=out_dir,
        api_url=api_url,
        api_key=_api_key(api_key_file, needed=auth == "apikey" and not (dry_run or sandbox)),
        auth=auth,  # type: ignore[arg-type]
        send_as=send_as,  # type: ignore[arg-type]
        batch=batch,
        rate=rate,
        concurrency=concurrency,
        dry_run=dry_run,
        sandbox=sandbox,
        sheet=sheet,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        skip_hidden_rows=skip_hidden_rows,
        in_flight=in_flight,  # type: ignore[arg-type]
        retry_rejected=retry_rejected,
        changed=flags.changed_choice(keep_sent, resend_changed),  # type: ignore[arg-type]
        limit=limit,
        rows=row_range,
        show=show,
    )
    sys.exit(int(_run(config, quiet)))


@cli.command("validate")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path, dir_okay=False))
@flags.reading_options
@flags.rehearsal_options
@flags.show_option
@flags.auth_option
@flags.account_options
@click.pass_context
def validate_command(ctx: click.Context, /, **options: Any) -> None:
    """Read, map and validate every row of INPUT and write the reports; send nothing. With
    --auth oauth, the mapping's custom fields and each row's values are checked against the
    account's fields (signed in with `rd-importer auth login`, or --sandbox)."""
    _sandbox_needs_oauth(options["sandbox"], options["auth"])
    # Exactly `import --dry-run`, by construction: one path builds the run.
    ctx.invoke(import_command, dry_run=True, **options)


def _sandbox_needs_oauth(sandbox: bool, auth: str) -> None:
    # validate and mapping init ask a server only for the account's fields, which only OAuth
    # reads: --sandbox alone would change nothing, and the check asked for would not be made.
    if sandbox and auth != "oauth":
        raise InputError(
            "--sandbox stands in for your account's fields, which only --auth oauth reads: "
            "add --auth oauth"
        )


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
@click.option(
    "--token-lifetime",
    type=click.FloatRange(min=0.001),
    default=86_400,
    show_default=True,
    help="Seconds an OAuth access token lives (shorten it to see imports renew it).",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    help="An e-mail of the account's users, whom a funnel may name as owner (repeatable; "
    "default: a few @empresa.com.br users).",
)
@click.option(
    "--fields",
    "fields_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON file of the account's fields, as GET /platform/contacts/fields answers them "
    "[default: standard fields and a few custom ones].",
)
@click.option(
    "--batch-cost",
    type=click.Choice(["per_request", "per_event"]),
    default="per_request",
    show_default=True,
    help="What an event batch costs at the gateway: one POST, or one per event.",
)
@click.option(
    "--batch-rejects",
    type=click.Choice(["indexed", "unindexed"]),
    default="indexed",
    show_default=True,
    help="A batch with bad events is refused naming each bad event's index, or without.",
)
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
    token_lifetime: float,
    users: tuple[str, ...],
    fields_file: Path | None,
    batch_cost: str = "per_request",
    batch_rejects: str = "indexed",
) -> None:
    """Serve a local stand-in for the RD Station conversions API until stopped."""
    from importer.sandbox import SandboxConfig, serve
    from importer.sandbox.fields import load_fields_file

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
        token_lifetime=token_lifetime,
        fields=load_fields_file(fields_file) if fields_file is not None else None,
        **({"users": frozenset(users)} if users else {}),  # type: ignore[arg-type]
        batch_cost=batch_cost,
        batch_rejects=batch_rejects,
    )

    def ready(url: str) -> None:
        err(f"Sandbox for RD Station conversions at {url} (use --api-url {url}); Ctrl-C to stop")

    serve(host, port, config, on_ready=ready)


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
@click.option(
    "--each-file-new",
    is_flag=True,
    help="Each file its own ledger: a row sent from an earlier file is sent again (drops that "
    "are incremental by design). Default: rows sent from any earlier file are skipped.",
)
@flags.changed_options
@flags.sending_options
@flags.table_options
@flags.in_flight_option
@click.option("--sandbox", is_flag=True, help="Send to a built-in stand-in for RD Station.")
@click.option("--quiet", "-q", is_flag=True, help="Only one line per file.")
@flags.auth_option
@flags.as_option
@flags.batch_option
def watch_command(
    inbox: Path,
    mapping_path: Path,
    out_root: Path,
    once: bool,
    interval: float,
    settle: float,
    wait_lock: bool,
    each_file_new: bool,
    keep_sent: bool,
    resend_changed: bool,
    rate: float,
    concurrency: int,
    api_url: str,
    api_key_file: Path | None,
    sheet: str | None,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    skip_hidden_rows: bool,
    in_flight: str,
    sandbox: bool,
    quiet: bool,
    auth: str,
    send_as: str,
    batch: int | None,
) -> None:
    """Import every spreadsheet dropped into INBOX, oldest first; move each to INBOX/processed/
    (or INBOX/rejected/ when it cannot be read). Rows sent from an earlier file are not sent
    again (one ledger per mapping in OUT); rows edited since are kept as sent unless
    --resend-changed.

    Exit status with --once: 0 every file imported with every row sent, 1 some rows or files
    failed, 2 a usage, mapping or setting error, 3 a run was aborted (resumed by the next run).
    """
    auth = flags.auth_choice(auth, api_key_file)
    template = ImportConfig(
        input_path=inbox,
        mapping_path=mapping_path,
        api_url=api_url,
        api_key=_api_key(api_key_file, needed=auth == "apikey" and not sandbox),
        auth=auth,  # type: ignore[arg-type]
        send_as=send_as,  # type: ignore[arg-type]
        batch=batch,
        rate=rate,
        concurrency=concurrency,
        sandbox=sandbox,
        sheet=sheet,
        encoding=encoding,
        delimiter=delimiter,
        header_row=header_row,
        skip_hidden_rows=skip_hidden_rows,
        in_flight=in_flight,  # type: ignore[arg-type]
        changed=flags.changed_choice(keep_sent, resend_changed) or "keep",  # type: ignore[arg-type]
    )
    config = WatchConfig(
        inbox=inbox,
        out_root=out_root,
        template=template,
        once=once,
        interval=interval,
        settle=settle,
        wait_lock=wait_lock,
        each_file_new=each_file_new,
        handle_signals=True,
    )
    result = run_watch(config, ConsoleListener(quiet=quiet), echo=err)
    if result.stopped:
        err(f"Stopped: {result.stopped}.")
    sys.exit(int(result.exit_status))


cli.add_command(auth_group)


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
@click.option(
    "--header-row",
    type=click.IntRange(min=1),
    help="Row number of the header [default: found, past any title rows].",
)
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
@flags.auth_option
@flags.account_options
def mapping_init_command(
    input_path: Path,
    output: Path | None,
    sheet: str | None,
    header_row: int | None,
    force: bool,
    auth: str,
    api_url: str,
    sandbox: bool,
) -> None:
    """Write a first mapping for FILE from its header and a sample of its rows. With --auth
    oauth, a column named like one of the account's custom fields is mapped to it."""
    from importer.account_fields import read_account
    from importer.scaffold import scaffold_mapping

    _sandbox_needs_oauth(sandbox, auth)
    account = None
    if auth == "oauth":
        account = read_account(api_url, sandbox=sandbox)
        err(f"RD Station account: {account.summary()}")
    text = scaffold_mapping(input_path, sheet=sheet, header_row=header_row, account=account)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        with output.open("w" if force else "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise InputError(
            f"{output} exists: choose another -o, or add --force to overwrite it"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from None
    err(
        f'Wrote {output}: edit the conversion identifier (marked "# <- edit"), then check it '
        f"with: rd-importer validate {input_path} --mapping {output}"
    )


def main() -> None:
    cli()
