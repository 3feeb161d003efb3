"""What every settings section shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def checked_url(value: str | None, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
        raise ValueError("must start with " + " or ".join(f"{scheme}://" for scheme in schemes))
    return value.rstrip("/")
