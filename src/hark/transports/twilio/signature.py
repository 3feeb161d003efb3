"""Twilio's request signature (``X-Twilio-Signature``), as its "Webhooks security" guide defines
it: base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted by name)).

The URL is the one Twilio requested, with its query string: behind a proxy or a tunnel that is the
public URL (``twilio.public_url``), not the address hark sees. Like Twilio's own helper
libraries, the check accepts the URL with or without the default port (Twilio signs whichever
form it was given).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"https": 443, "http": 80, "wss": 443, "ws": 80}


def compute(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The signature Twilio sends for a request to ``url`` with these form parameters. A name
    given more than once contributes each of its values, sorted (as Twilio's libraries do)."""
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        by_name.setdefault(name, []).append(value)
    data = url + "".join(name + value for name in sorted(by_name) for value in sorted(by_name[name]))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """``url`` as given, without its default port and with it."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    variants = [url]
    if default is None:
        return variants
    try:
        port = parts.port
    except ValueError:
        return variants
    if port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    elif port == default:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


def valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str | None) -> bool:
    """Whether ``signature`` is Twilio's for this request (compared in constant time)."""
    if not signature:
        return False
    params = list(params)
    expected = signature.strip().encode("ascii", "replace")
    return any(
        hmac.compare_digest(compute(auth_token, candidate, params).encode("ascii"), expected)
        for candidate in url_variants(url)
    )
