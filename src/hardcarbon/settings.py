"""Base of every command's validated settings: bad settings raise a one-line InputError."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from hardcarbon.errors import InputError


class Settings(BaseModel):
    """A pydantic model whose unknown or invalid fields raise :class:`InputError`.

    Every command keeps its options in one such model (built from YAML plus command-line
    options), so the same message reaches a Python user and a CLI user.
    """

    model_config = ConfigDict(extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InputError(describe(exc, type(self))) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Build from a mapping (e.g. parsed YAML), raising :class:`InputError` on bad input."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise InputError(describe(exc, cls)) from None


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first error of ``exc`` as one line that names the setting and the problem."""
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown setting '{name}': the settings are {', '.join(model.model_fields)}"
    if not name:
        return message
    return f"setting {name}={error.get('input')!r} is invalid: {message}"
