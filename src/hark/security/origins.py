"""Which web pages may open a WebSocket: the Origin policy.

Starlette's CORS middleware does not look at WebSocket upgrades, so without this any web page
could drive a local hark from its visitor's browser.
"""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]``, lowercase, default port dropped; None for ``null`` or junk."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if not scheme or not host or parts.path not in ("", "/") or parts.query or parts.username:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """No Origin (not a browser): allowed. With an allow-list: only the origins on it (``*`` is
    any). Without one: only the page's own host, i.e. Origin's host[:port] equals Host."""
    if origin is None:
        return True
    if allowed:
        if "*" in allowed:
            return True
        if origin.strip() == "null":
            return "null" in allowed
        normal = normalize_origin(origin)
        return normal is not None and normal in {normalize_origin(a) for a in allowed}
    normal = normalize_origin(origin)
    if normal is None or not host:
        return False
    scheme, _, netloc = normal.partition("://")
    host_origin = normalize_origin(f"{scheme}://{host.strip()}")
    return host_origin is not None and host_origin.partition("://")[2] == netloc
