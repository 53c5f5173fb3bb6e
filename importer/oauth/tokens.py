"""A sign-in as plain values, where RD Station's auth endpoints are, and where a sign-in is kept.

    Tokens              the app's client id and secret and the tokens RD Station granted it
    AuthEndpoints       the dialog, token and revoke URLs: under the API address, each one
                        overridable (RDSTATION_AUTH_DIALOG_URL, _TOKEN_URL, _REVOKE_URL)
    TokenFile           the sign-in on disk: $XDG_CONFIG_HOME/rd-importer/oauth.json (else
                        ~/.config/...), 0600, written atomically, refused when others can read it
    MemoryTokens        a sign-in that lives as long as the process (``import --sandbox``)

Secrets (the client secret and both tokens) are in no repr and in no message.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import math
import os
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from importer.client import check_api_url
from importer.client.redaction import check_address
from importer.client.redaction import is_loopback as is_loopback
from importer.errors import ImporterError, InputError

FILE_VERSION = 1
RENEW_AHEAD = 300.0  # seconds before it expires that an access token is renewed...
RENEW_SHARE = 0.1  # ...or this share of its life, when that is shorter (a sandbox's short tokens)
LOCK_WAIT = 120.0  # seconds to wait for another process that renews the same sign-in
LOGIN_AGAIN = "run `rd-importer auth login` again"


class SignInError(ImporterError):
    """RD Station's auth endpoints refused or failed. ``refused``: RD Station said no (the
    client secret, the code or the refresh token): only a new sign-in helps. Otherwise they
    could not be used (unreachable, HTTP 5xx, an answer that is not RD Station's): try later."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class ClientCredentials:
    """The private app's client id and secret, from RD Station's App Store area."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class AuthEndpoints:
    """Where the authorisation dialog, the token and the revoke endpoints are."""

    dialog: str
    token: str
    revoke: str

    @classmethod
    def for_api(cls, api_url: str, environ: Mapping[str, str] | None = None) -> AuthEndpoints:
        """``{api}/auth/dialog``, ``{api}/auth/token``, ``{api}/auth/revoke``, unless
        RDSTATION_AUTH_DIALOG_URL, RDSTATION_AUTH_TOKEN_URL or RDSTATION_AUTH_REVOKE_URL set one
        (RD Station's newer products use other token URLs)."""
        env = os.environ if environ is None else environ
        api = check_api_url(api_url)
        urls = {}
        for name in ("dialog", "token", "revoke"):
            variable = f"RDSTATION_AUTH_{name.upper()}_URL"
            given = env.get(variable, "").strip()
            urls[name] = check_endpoint(given, variable) if given else f"{api}/auth/{name}"
        return cls(**urls)


def check_endpoint(url: str, setting: str) -> str:
    """An auth endpoint's URL, or InputError: https (or http to this computer only: the client
    secret and the tokens travel there), no user name, no query, no fragment."""
    return check_address(
        url,
        setting,
        shown=url,
        example="https://api.rd.services/...",
        carried="the app's secret and tokens",
    )


@dataclass(frozen=True)
class Tokens:
    """One sign-in: who (the app, on which API) and the tokens RD Station granted it.

    The client secret is kept beside the tokens because renewing them needs it. ``expires_at``
    is when the access token expires (epoch seconds), ``lifetime`` how long it was granted for.
    """

    api_url: str
    client_id: str
    client_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    lifetime: float
    token_url: str
    revoke_url: str
    signed_in_at: float

    @property
    def renew_at(self) -> float:
        """When to renew the access token: shortly before it expires, never after."""
        return self.expires_at - min(RENEW_AHEAD, self.lifetime * RENEW_SHARE)

    @property
    def secrets(self) -> tuple[str, str, str]:
        return (self.client_secret, self.access_token, self.refresh_token)

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                "version": FILE_VERSION,
                "api_url": self.api_url,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": _iso(self.expires_at),
                "expires_in": self.lifetime,
                "token_url": self.token_url,
                "revoke_url": self.revoke_url,
                "signed_in_at": _iso(self.signed_in_at),
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def from_json(cls, raw: bytes, where: Path) -> Tokens:
        """Tokens from a token file's bytes; InputError when they are not a sign-in's."""
        broken = InputError(f"{where}: not a sign-in rd-importer can use; {LOGIN_AGAIN}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise broken from None
        if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
            raise broken
        try:
            return cls(
                api_url=_text(data, "api_url"),
                client_id=_text(data, "client_id"),
                client_secret=_text(data, "client_secret"),
                access_token=token_text(data.get("access_token")) or "",
                refresh_token=token_text(data.get("refresh_token")) or "",
                expires_at=datetime.fromisoformat(_text(data, "expires_at")).timestamp(),
                lifetime=float(data["expires_in"]),
                token_url=_text(data, "token_url"),
                revoke_url=_text(data, "revoke_url"),
                signed_in_at=datetime.fromisoformat(_text(data, "signed_in_at")).timestamp(),
            )._checked(broken)
        except (KeyError, TypeError, ValueError):
            raise broken from None

    def _checked(self, broken: InputError) -> Tokens:
        if not (self.access_token and self.refresh_token and self.client_id):
            raise broken
        if not (math.isfinite(self.lifetime) and self.lifetime > 0):
            raise broken
        return self


def token_text(value: Any) -> str | None:
    """A token as RD Station's answer or the file holds it, or None when it cannot be one: it
    goes into a header, where a line break would start another."""
    usable = isinstance(value, str) and 0 < len(value) <= 4096 and value.isprintable()
    return value if usable and " " not in value else None


def _text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not value:
        raise ValueError(name)
    return value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class TokenStore(Protocol):
    """Where a sign-in is kept; the renewing task reads and writes it."""

    def load(self) -> Tokens: ...

    def save(self, tokens: Tokens) -> None: ...

    def renewing(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while renewing: another process renewing the same sign-in waits."""
        ...


class MemoryTokens:
    """A sign-in held in memory only: a run signed in to its own sandbox."""

    def __init__(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def __repr__(self) -> str:
        return "MemoryTokens(...)"

    def load(self) -> Tokens:
        return self._tokens

    def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        yield


def default_token_file() -> Path:
    """$XDG_CONFIG_HOME/rd-importer/oauth.json, else ~/.config/rd-importer/oauth.json (a relative
    XDG_CONFIG_HOME is ignored, as the XDG specification says)."""
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "rd-importer" / "oauth.json"


class TokenFile:
    """The sign-in on disk, readable and writable by its owner only.

    ``load`` refuses a file that others could read or change (it holds the app's secret, and
    its ``api_url`` says where the secret is sent). ``save`` writes a new file beside it and
    renames it over the old one, so a crash leaves the old sign-in or the new, never half.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_token_file()

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Tokens:
        path = self.path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise InputError("not signed in: run `rd-importer auth login`") from None
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror}; fix it or {LOGIN_AGAIN}") from None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid():
                raise InputError(f"{path} belongs to another user; {LOGIN_AGAIN}")
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise InputError(
                    f"{path} can be read or changed by other users, and it holds the app's "
                    f"secret and tokens: run 'chmod 600 {path}' (and think about who could "
                    f"read it), or {LOGIN_AGAIN}"
                )
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read(1 << 20)
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror}; fix it or {LOGIN_AGAIN}") from None
        finally:
            os.close(fd)
        return Tokens.from_json(raw, path)

    def save(self, tokens: Tokens) -> None:
        """Write the sign-in atomically, 0600 in a 0700 folder. OSError on a disk problem."""
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".oauth-", suffix=".tmp", dir=folder)  # 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(tokens.as_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _sync_folder(folder)

    def delete(self) -> bool:
        """Remove the sign-in (and its lock file); False when there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            self._lock_path().unlink()
        _sync_folder(self.path.parent)
        return True

    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """One process at a time renews this sign-in: RD Station may retire a refresh token
        once it is used, so two processes renewing at once would leave one with a dead one."""
        fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    if time.monotonic() > deadline:
                        raise SignInError(
                            f"another rd-importer has been renewing the sign-in in {self.path} "
                            f"for {LOCK_WAIT:g} s; try again later",
                            refused=False,
                        ) from None
                    await asyncio.sleep(0.05)  # polled: a task waiting here can be cancelled
            yield
        finally:
            os.close(fd)


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is: a crash could otherwise bring
    # back the old file, with a refresh token RD Station has retired.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
