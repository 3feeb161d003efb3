"""What the guard reads from and leaves in the ASGI scope: the path, the client's address and
the principal it admitted (``scope["state"]["hark_principal"]``)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.types import Scope

from hark.security.auth import ANONYMOUS, Principal

STATE_KEY = "hark_principal"


def principal_of(scope: MutableMapping[str, Any]) -> Principal | None:
    """The principal the guard admitted this connection as (None: no guard in front)."""
    state = scope.get("state") or {}
    principal = state.get(STATE_KEY)
    return principal if isinstance(principal, Principal) else None


def owner_of(scope: MutableMapping[str, Any]) -> str:
    """The tenant that owns what this request creates: ``anonymous`` when auth is off."""
    principal = principal_of(scope)
    return principal.owner if principal is not None else ANONYMOUS.owner


def with_principal(scope: Scope, principal: Principal) -> Scope:
    return {**scope, "state": {**(scope.get("state") or {}), STATE_KEY: principal}}


def route_path(scope: Scope) -> str:
    path: str = scope.get("path", "/")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
