"""Config dataclasses to and from plain dicts: the one strict loader of the project.

Training configs (``training/config.py``, from YAML and ``--set``) and the configs stored in model
bundles (``models/bundle.py``, from JSON) are read by the same ``from_dict``: a key the dataclass
does not know is an error naming it and the keys it knows, never a silently ignored setting, and
a key that belongs in a section (``backbone`` at the top of a re-id config) is pointed there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config", base: T | None = None) -> T:
    """Build dataclass ``cls`` from a dict over ``base`` (default: the class defaults), refusing
    unknown keys (typos, or settings of another section) with their names. Nested dataclass
    settings merge key by key; lists become tuples."""
    if not isinstance(data, dict):
        raise ValueError(
            f"{where}: expected a mapping of {cls.__name__} settings, found {type(data).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        sections = {name: _value(fields[name], base) for name in fields}
        moved = [
            f"{key} -> {name}.{key}"
            for key in unknown
            for name, current in sections.items()
            if dataclasses.is_dataclass(current) and key in {f.name for f in dataclasses.fields(current)}
        ]
        hint = f" (settings of a section: {', '.join(moved)})" if moved else ""
        raise ValueError(f"{where}: unknown setting(s) {unknown}{hint}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        current = _value(fields[name], base)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            nested = cast("DataclassInstance", current)  # a field value: an instance, never a class
            value = from_dict(type(nested), value, f"{where}.{name}", base=nested)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from err


def _value(f: dataclasses.Field[Any], base: Any) -> Any:
    """The field's value in ``base``, or its default."""
    if base is not None:
        return getattr(base, f.name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def to_dict(config: Any) -> dict[str, Any]:
    """A YAML/JSON-safe dict of a config dataclass (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return cast("dict[str, Any]", plain(dataclasses.asdict(config)))
