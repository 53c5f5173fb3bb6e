"""Where a conversion is posted and how the request proves who sends it (API key or OAuth)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from yarl import URL

from importer.client.redaction import REDACTED
from importer.errors import InputError

CONVERSIONS_PATH = "/platform/conversions"
EVENTS_PATH = "/platform/events"  # the OAuth twin of CONVERSIONS_PATH: the same body and answers


class RequestAuth(Protocol):
    """Where a conversion is posted and how the request proves who sends it."""

    @property
    def secret(self) -> str:
        """What no message may show: it is masked in every one the client builds."""
        ...

    def url(self, api_url: str) -> URL:
        """The endpoint, under ``api_url`` (checked, no trailing ``/``)."""
        ...

    def headers(self) -> dict[str, str]:
        """Headers beside the content type."""
        ...

    def signed_url(self, api_url: str, path: str, query: Mapping[str, str] | None) -> URL:
        """Any endpoint under ``api_url`` (``path`` starts with ``/``), signed as this auth
        signs requests (the API key's query parameter; a bearer token travels in a header)."""
        ...


class ApiKeyAuth:
    """The API key, in the query string of ``/platform/conversions``, as RD Station requires."""

    __slots__ = ("secret",)

    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise InputError("the API key is empty; set RDSTATION_API_KEY")
        self.secret = api_key

    def __repr__(self) -> str:
        return f"ApiKeyAuth({REDACTED!r})"

    def url(self, api_url: str) -> URL:
        return URL(api_url + CONVERSIONS_PATH).with_query(api_key=self.secret)

    def signed_url(self, api_url: str, path: str, query: Mapping[str, str] | None) -> URL:
        return URL(api_url + path).with_query({**(query or {}), "api_key": self.secret})

    def headers(self) -> dict[str, str]:
        return {}


class BearerAuth:
    """An OAuth access token, in the ``Authorization`` header of the events endpoint."""

    __slots__ = ("secret",)

    def __init__(self, access_token: str) -> None:
        # A token is one header value: a line break in one would end the header (and an empty
        # one would only be refused). ``importer.oauth`` checks what the token endpoint answers.
        if not access_token or not access_token.isprintable() or " " in access_token:
            raise InputError("the OAuth access token is not usable; run rd-importer auth login")
        self.secret = access_token

    def __repr__(self) -> str:
        return f"BearerAuth({REDACTED!r})"

    def url(self, api_url: str) -> URL:
        return URL(api_url + EVENTS_PATH).with_query(event_type="conversion")

    def signed_url(self, api_url: str, path: str, query: Mapping[str, str] | None) -> URL:
        url = URL(api_url + path)
        return url.with_query(query) if query else url

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}
