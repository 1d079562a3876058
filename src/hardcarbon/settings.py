"""Base of every command's validated settings: bad settings raise a one-line InputError."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hardcarbon.errors import InputError
from hardcarbon.storage import looks_like_file

M = TypeVar("M", bound=BaseModel)


class _FileBeside:
    """Marks a ``str`` setting that holds a name or a file path (e.g. ``rebo`` or a nep.txt)."""


NameOrFile = Annotated[str, _FileBeside()]
"""A setting that is a name or a path: in a config, a relative path names a file beside it."""


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

    @classmethod
    def from_yaml(cls, path: str | Path | None, /, **overrides: Any) -> Self:
        """Settings from a YAML file, then ``overrides`` (None: not given).

        A relative path in the file (a field typed ``Path``, at any depth, or a
        :data:`NameOrFile` naming a file that exists there) names a file beside the config,
        so a config works from any directory; a relative path among ``overrides`` stays
        relative to the current directory, as typed on a command line.
        """
        loaded: Any = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise InputError(f"config file {path} does not exist")
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise InputError(f"config file {path} is not valid YAML "
                                 f"({getattr(exc, 'problem', exc)})") from None
            if not isinstance(loaded, dict):
                raise InputError(f"config file {path} must hold a mapping of settings")
        given = {k: v for k, v in overrides.items() if v is not None}
        settings = cls.model_validate({**loaded, **given})
        return settings if path is None else _beside(settings, path.parent, set(given))


def _beside(settings: M, folder: Path, skip: set[str]) -> M:
    """``settings`` with its relative paths (nested too) joined onto ``folder``."""
    update: dict[str, Any] = {}
    fields = type(settings).model_fields
    for name in settings.model_fields_set - skip:
        value = getattr(settings, name)
        if isinstance(value, Path) and not value.is_absolute():
            update[name] = folder / value
        elif (isinstance(value, str) and not Path(value).is_absolute()
              and any(isinstance(m, _FileBeside) for m in fields[name].metadata)
              and _names_file_beside(value, folder)):
            update[name] = str(folder / value)
        elif isinstance(value, BaseModel):
            update[name] = _beside(value, folder, set())
    return settings.model_copy(update=update)


def _names_file_beside(value: str, folder: Path) -> bool:
    """Whether a name-or-file ``value`` in a config in ``folder`` means the file beside it.

    It does when that file exists, and also when ``value`` looks like a file (a suffix or a
    folder in it) that exists nowhere, so that the error names the folder searched.
    """
    if (folder / value).is_file():
        return True
    return looks_like_file(value) and not Path(value).exists()


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


def check_pattern(pattern: str, what: str) -> str:
    """``pattern`` if it compiles as a regular expression, else a ValueError naming ``what``
    (for field validators: the settings' one-line error then names the field too)."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{what} {pattern!r} is not a regular expression ({exc})") from None
    return pattern
