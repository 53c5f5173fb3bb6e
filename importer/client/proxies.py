"""The proxy for a request, from HTTPS_PROXY / HTTP_PROXY / NO_PROXY as curl reads them."""

from __future__ import annotations

import urllib.request

import aiohttp
from yarl import URL

from importer.client.redaction import is_loopback
from importer.errors import InputError


def _proxy_for(url: URL) -> tuple[URL | None, dict[str, str] | None, str | None]:
    """(proxy URL, headers for it, ``host:port`` to show) from the environment for ``url``.

    ``HTTPS_PROXY`` / ``HTTP_PROXY`` (or lower case) less ``NO_PROXY``, read as curl and
    ``requests`` read them. Never for loopback: the sandbox is on this machine, and a proxy
    would reach its own loopback instead. Through a proxy, an https request is a CONNECT tunnel:
    the proxy sees ``host:443``, never the URL and its API key.
    """
    host = url.host or ""
    if is_loopback(host):
        return None, None, None
    address = urllib.request.getproxies().get(url.scheme)
    if not address or urllib.request.proxy_bypass(host):
        return None, None, None
    variable = f"{url.scheme.upper()}_PROXY"
    if "://" not in address:
        address = "http://" + address  # "proxy:3128", as curl reads it
    try:
        proxy = URL(address)
        port = proxy.port
    except ValueError:
        proxy, port = None, None
    if proxy is None or not proxy.host or port is None:
        raise InputError(f"{variable}: not a proxy address; give one like http://proxy:3128")
    shown = f"{proxy.host}:{port}"
    if proxy.scheme != "http":
        raise InputError(
            f"{variable}={proxy.scheme}://{shown}: only http:// proxies are supported; give "
            f"http://{shown} (requests to RD Station stay encrypted inside the tunnel)"
        )
    # Sent to the proxy only (in CONNECT), never with the request inside the tunnel.
    auth = None
    if proxy.user:
        auth = {"Proxy-Authorization": aiohttp.encode_basic_auth(proxy.user, proxy.password or "")}
    return proxy.with_user(None), auth, shown
