"""The flags several commands share, defined once: how a table is read, where reports go,
how rows are sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from importer.pipeline import DEFAULT_API_URL

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _decorators(*options: Decorator) -> list[Decorator]:
    return list(options)


def table_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How a spreadsheet is read: shared by import, validate and watch (for every file)."""
    for option in reversed(
        _decorators(
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
            click.option(
                "--skip-hidden-rows",
                is_flag=True,
                help="Leave out the rows an Excel file hides (by a filter or by hand) "
                "[default: import them, with a warning].",
            ),
        )
    ):
        func = option(func)
    return func


def reading_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        _decorators(
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
            table_options,
            click.option("--quiet", "-q", is_flag=True, help="Only the final summary."),
        )
    ):
        func = option(func)
    return func


in_flight_option = click.option(
    "--in-flight",
    type=click.Choice(["resend", "skip"]),
    default=None,
    help="Rows that may have been recorded (in flight when an earlier run was killed, or "
    "unanswered): send again, or leave as failed [default: resend, except rows an earlier "
    "--in-flight skip left unsent].",
)


def changed_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What to do with rows sent earlier whose payload changed (a changed mapping, an edited
    row): --keep-sent or --resend-changed, passed on as ``changed``."""
    for option in reversed(
        _decorators(
            click.option(
                "--keep-sent",
                is_flag=True,
                help="Rows sent earlier that now give another payload stay as sent; send only "
                "rows never sent.",
            ),
            click.option(
                "--resend-changed",
                is_flag=True,
                help="Send again rows sent earlier that now give another payload (RD Station "
                "updates the lead and records another conversion).",
            ),
        )
    ):
        func = option(func)
    return func


def changed_choice(keep_sent: bool, resend_changed: bool) -> str | None:
    if keep_sent and resend_changed:
        raise click.UsageError("--keep-sent and --resend-changed exclude each other: choose one")
    return "keep" if keep_sent else "resend" if resend_changed else None


def _refuse_key_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "the API key is never taken on the command line, where ps and shell history would "
            "show it: set RDSTATION_API_KEY or use --api-key-file PATH",
            ctx,
        )


api_url_option = click.option(
    "--api-url",
    envvar="RDSTATION_API_URL",
    default=DEFAULT_API_URL,
    show_default=True,
    help="RD Station API address (env RDSTATION_API_URL).",
)


def account_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Where ``validate`` and ``mapping init`` read the account's fields with ``--auth oauth``:
    the API signed in to, or a built-in sandbox (which they sign in to by themselves)."""
    for option in reversed(
        _decorators(
            api_url_option,
            click.option(
                "--sandbox",
                is_flag=True,
                help="With --auth oauth: read the fields of a built-in stand-in for RD Station.",
            ),
        )
    ):
        func = option(func)
    return func


def sending_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags of the commands that send: pace, concurrency, where, and the key's source."""
    for option in reversed(
        _decorators(
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
            api_url_option,
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
        )
    ):
        func = option(func)
    return func


auth_option = click.option(
    "--auth",
    type=click.Choice(["apikey", "oauth"]),
    default="apikey",
    show_default=True,
    help="Sign requests with the API key (RDSTATION_API_KEY), or with the app signed in by "
    "`rd-importer auth login` (OAuth).",
)


as_option = click.option(
    "--as",
    "send_as",
    type=click.Choice(["conversions", "contacts"]),
    default="conversions",
    show_default=True,
    help="Record each row as a conversion, or upsert its contact without one (no "
    "conversion-triggered automations; needs --auth oauth).",
)


def auth_choice(auth: str, api_key_file: Path | None) -> str:
    """``--auth``, refused beside an API key file it would not use (the user meant one of them)."""
    if auth == "oauth" and api_key_file is not None:
        raise click.UsageError(
            "--api-key-file goes with --auth apikey; --auth oauth signs requests with the app "
            "signed in by `rd-importer auth login`"
        )
    return auth


batch_option = click.option(
    "--batch",
    type=click.IntRange(min=1),
    metavar="N",
    help="Send N rows a request as event batches (with --auth oauth; at most 500, and 0.2 MB "
    "a request). RD Station's budget per batch is learnt from its answers.",
)


def _row_range(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    first, dash, last = value.strip().partition("-")
    try:
        start = int(first)
        end = int(last) if last.strip() else (1 << 62) if dash else start
    except ValueError:
        raise click.BadParameter(
            "use FIRST-LAST, e.g. 2-11 (rows as the spreadsheet numbers them)"
        ) from None
    if not 1 <= start <= end:
        raise click.BadParameter(f"{value}: use FIRST-LAST with FIRST <= LAST, e.g. 2-11")
    return (start, end)


def rehearsal_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Only some rows: a rehearsal into the same ledger, so the full run afterwards skips them."""
    for option in reversed(
        _decorators(
            click.option(
                "--limit",
                type=click.IntRange(min=1),
                help="Only the first N data rows (a rehearsal; the full run skips them later).",
            ),
            click.option(
                "--rows",
                "row_range",
                metavar="FIRST-LAST",
                callback=_row_range,
                help="Only these rows, numbered as the spreadsheet shows them (e.g. 2-11).",
            ),
        )
    ):
        func = option(func)
    return func


show_option = click.option(
    "--show",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Print the exact request of the first N valid rows beside their cells (and of every "
    "row a warning names); a dry run's payloads.jsonl has them all.",
)
