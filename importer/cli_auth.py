"""``rd-importer auth login | status | logout``: the user's own RD Station app, signed in once.

The commands parse flags and call ``importer.oauth``; ``cli._Cli`` turns what they raise into
one line and an exit status: 2 for a setting (no client id or secret, an unusable token file),
3 when RD Station's auth endpoints refused or could not be used. ``auth status`` exits 1 when
nobody is signed in; ``auth logout`` exits 1 when RD Station could not be told (the file is
deleted all the same).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

import click

from importer import oauth
from importer.client import check_api_url
from importer.console import err
from importer.errors import InputError
from importer.pipeline import DEFAULT_API_URL


def _refuse_secret_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise click.UsageError(
            "the client secret is never taken on the command line, where ps and shell history "
            "would show it: set RDSTATION_CLIENT_SECRET or use --client-file PATH",
            ctx,
        )


def _local(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def _read_pasted() -> str | None:
    line = sys.stdin.readline()
    return line or None


@click.group("auth")
def auth_group() -> None:
    """Sign in with your own RD Station app (OAuth), for imports with --auth oauth."""


@auth_group.command("login")
@click.option(
    "--no-browser",
    is_flag=True,
    help="No browser here: paste the address the browser is sent to, instead of catching it.",
)
@click.option(
    "--redirect-uri",
    envvar="RDSTATION_REDIRECT_URI",
    default=oauth.DEFAULT_REDIRECT_URI,
    show_default=True,
    help="The callback URL registered with the app (env RDSTATION_REDIRECT_URI).",
)
@click.option(
    "--api-url",
    envvar="RDSTATION_API_URL",
    default=DEFAULT_API_URL,
    show_default=True,
    help="RD Station API address (env RDSTATION_API_URL); the auth endpoints are under it.",
)
@click.option(
    "--client-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File (mode 0600) with lines RDSTATION_CLIENT_ID=... and RDSTATION_CLIENT_SECRET=... "
    "[default: those environment variables].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=oauth.login.WAIT,
    show_default=True,
    help="Seconds to wait for the browser to come back.",
)
@click.option("--client-secret", hidden=True, expose_value=False, callback=_refuse_secret_argument)
def login_command(
    no_browser: bool, redirect_uri: str, api_url: str, client_file: Path | None, timeout: float
) -> None:
    """Sign your RD Station app in, and keep its tokens for imports with --auth oauth."""
    client = oauth.client_credentials(client_file)
    api_url = check_api_url(api_url)
    store = oauth.TokenFile()
    try:
        tokens = asyncio.run(
            oauth.sign_in(
                client,
                api_url=api_url,
                store=store,
                say=err,
                redirect_uri=redirect_uri,
                paste=_read_pasted if no_browser else None,
                open_browser=None if no_browser else oauth.open_in_browser,
                timeout=timeout,
            )
        )
    except KeyboardInterrupt:
        err("Stopped: interrupted; nothing was saved.")
        sys.exit(3)
    click.echo(
        f"Signed in: app {tokens.client_id} on {tokens.api_url}. The tokens are in {store.path} "
        f"(readable by you only); the access token is valid until {_local(tokens.expires_at)} "
        "and imports renew it."
    )
    click.echo("Import with: rd-importer import FILE --mapping MAPPING.yaml --auth oauth")


@auth_group.command("status")
def status_command() -> None:
    """Say who is signed in, and until when the access token is valid (never the tokens)."""
    store = oauth.TokenFile()
    if not store.exists():
        click.echo("Not signed in: run `rd-importer auth login`.")
        sys.exit(1)
    tokens = store.load()
    click.echo(
        f"Signed in: app {tokens.client_id} on {tokens.api_url}, since "
        f"{_local(tokens.signed_in_at)}."
    )
    if tokens.expires_at > datetime.now().timestamp():
        click.echo(
            f"The access token is valid until {_local(tokens.expires_at)}; imports renew it."
        )
    else:
        click.echo(
            f"The access token expired at {_local(tokens.expires_at)}; the next import renews it."
        )
    click.echo(f"Tokens in {store.path} (readable by you only).")


@auth_group.command("logout")
def logout_command() -> None:
    """Revoke the app's tokens at RD Station and delete them here."""
    store = oauth.TokenFile()
    if not store.exists():
        click.echo("Not signed in: nothing to do.")
        return
    try:
        tokens = store.load()
    except InputError as exc:
        problem: str | None = f"the token file could not be read ({exc})"
    else:
        problem = asyncio.run(oauth.sign_out(tokens))
    try:
        store.delete()
    except OSError as exc:
        raise InputError(f"{store.path}: cannot be deleted ({exc.strerror})") from None
    if problem is None:
        click.echo(f"Signed out: RD Station revoked the app's tokens, and {store.path} is deleted.")
        return
    click.echo(f"Signed out here: {store.path} is deleted.")
    err(
        f"Warning: RD Station could not be told ({problem}), so the app's tokens may still be "
        "valid. To revoke them, remove the app from your RD Station account (App Store area: "
        "your private app, then uninstall or delete it)."
    )
    sys.exit(1)
