"""OAuth: the second way to sign requests, beside the API key (which stays the default).

The user signs their own private RD Station app in once (``rd-importer auth login``); runs with
``--auth oauth`` then post each row to ``/platform/events?event_type=conversion`` with the
app's access token, renewed as it nears its end. Pacing, retries, the ledger, resume and the
reports do not change: the run's ``Sender`` gets another transport.

    tokens      Tokens, ClientCredentials, AuthEndpoints; the token file (0600, atomic) and a
                sign-in kept in memory
    endpoint    HTTP to the auth endpoints: exchange a code, renew, revoke (SignInError)
    keeper      TokenKeeper (one renewal at a time, saved before use) and OAuthTransport
    login       sign_in (loopback callback server, or a pasted address), sign_in_headless
                (the sandbox), sign_out

Errors: ``InputError`` (exit 2) when there is no usable sign-in or a setting is wrong;
``SignInError`` (exit 3) when RD Station's auth endpoints refused (``refused``: sign in again)
or could not be used. In a run neither is raised: the transport answers a ``Failed`` that stops
the run, resumably.
"""

from importer.oauth.endpoint import exchange_code, renew_tokens, revoke_tokens
from importer.oauth.keeper import OAuthTransport, TokenKeeper
from importer.oauth.login import (
    CALLBACK_PORT,
    DEFAULT_REDIRECT_URI,
    CallbackServer,
    client_credentials,
    code_from_redirect,
    open_in_browser,
    sign_in,
    sign_in_headless,
    sign_out,
)
from importer.oauth.tokens import (
    AuthEndpoints,
    ClientCredentials,
    MemoryTokens,
    SignInError,
    TokenFile,
    Tokens,
    TokenStore,
    default_token_file,
)

__all__ = [
    "CALLBACK_PORT",
    "DEFAULT_REDIRECT_URI",
    "AuthEndpoints",
    "CallbackServer",
    "ClientCredentials",
    "MemoryTokens",
    "OAuthTransport",
    "SignInError",
    "TokenFile",
    "TokenKeeper",
    "TokenStore",
    "Tokens",
    "check_signed_in",
    "client_credentials",
    "code_from_redirect",
    "default_token_file",
    "exchange_code",
    "open_in_browser",
    "renew_tokens",
    "revoke_tokens",
    "sign_in",
    "sign_in_headless",
    "sign_out",
]


def check_signed_in(api_url: str, store: TokenFile | None = None) -> Tokens:
    """The sign-in a run with ``--auth oauth`` would use, or InputError (exit 2): none, a token
    file others can read, or a sign-in to another API address than ``api_url``."""
    keeper = TokenKeeper(store or TokenFile(), api_url)
    return keeper.current()
