"""Configuration: pydantic models loaded from YAML (a ``yaml.SafeLoader``) and overridden from the CLI.

Dates and times in YAML stay strings (``end: 2020-12-31`` is the text the config fields parse), rather than
YAML's own date objects, and only ``true``/``false`` are booleans (YAML 1.2): ``amp: off`` or
``--set train.amp=off`` is the option ``"off"``, not ``False`` (a boolean field still takes yes/no/on/off).

Precedence, lowest to highest: the model's defaults, a preset (``--quick``), the YAML file,
``--set dotted.key=value`` pairs, then explicit CLI flags. Any validation problem becomes one
:class:`~pipeline.errors.UserError` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.errors import UserError

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class TextDatesLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the timestamp resolver (``2020-01-01`` loads as the string) and with YAML 1.2
    booleans (``off``, ``no``, ``on``, ``yes`` load as strings)."""


TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
TextDatesLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml_text(text: str) -> Any:
    """Parse YAML safely (no Python objects), dates kept as text."""
    return yaml.load(text, Loader=TextDatesLoader)


class StrictModel(BaseModel):
    """Base for every velocast config: unknown keys are errors (a typo should never pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; a missing, unreadable or non-mapping file is a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError("is a directory, not a YAML file", path=path)
    if not path.is_file():
        raise UserError("config file not found", path=path)
    try:
        data = load_yaml_text(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config: {exc}", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"expected a mapping at the top level, found {type(data).__name__}", path=path)
    return data


def parse_set_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``["train.lr=1e-3", "members=8"]`` into a nested dict; values are parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            value = load_yaml_text(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        cursor = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
            if not isinstance(cursor, dict):
                raise UserError(f"--set {key}: {part!r} is not a section")
        cursor[parts[-1]] = value
    return nested


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (mappings merge, everything else replaces). A
    mapping of list indices merges into a list item by item: ``--set sources.0.path=x.nc`` changes the first
    source's path and keeps the rest of it."""
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        elif isinstance(value, Mapping) and isinstance(current, list) and value and all(
                str(k).isdigit() for k in value):
            items = list(current)
            for index, item in value.items():
                i = int(index)
                if i >= len(items):
                    raise UserError(f"--set {key}.{index}: {key} has {len(items)} item(s), numbered from 0")
                items[i] = deep_merge(items[i], item) if isinstance(item, Mapping) and isinstance(
                    items[i], Mapping) else item
            merged[key] = items
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError, *, flags: Mapping[str, str] | None = None) -> str:
    """One line: ``field.path: message; other.field: message``. A missing field that a command-line flag
    sets (``flags``: field path → flag) says which flag gives it."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(config)"
        if err.get("type") == "missing" and flags and loc in flags:
            parts.append(f"{loc}: missing; give {flags[loc]} (or {loc}: in the --config file)")
        else:
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def load_config(
    model: type[ConfigT],
    path: str | Path | None = None,
    *,
    sets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    base: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
) -> ConfigT:
    """Build ``model`` from defaults < ``base`` (a preset such as ``--quick``) < YAML file < ``--set`` pairs
    < explicit flag ``overrides``.

    ``overrides`` entries whose value is ``None`` are ignored (flags the user did not give); ``flags`` maps
    field paths to the flags that set them, for the error message of a missing field.
    """
    layers = [base or {}, read_yaml(path) if path is not None else {}, parse_set_overrides(sets),
              {k: v for k, v in (overrides or {}).items() if v is not None}]
    return build_config(model, *layers, where=f"{path}: " if path is not None else "", flags=flags)


def with_defaults(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each nested-model field it sets in part completed from the *model's* default for that field
    (not the nested model's own class defaults): ``--set train.steps=10`` keeps the run's other ``train`` values."""
    out = dict(data)
    for name, field in model.model_fields.items():
        default = field.default
        if isinstance(default, BaseModel) and isinstance(out.get(name), Mapping):
            out[name] = deep_merge(default.model_dump(mode="json"), with_defaults(type(default), out[name]))
    return out


def build_config(model: type[ConfigT], *layers: Mapping[str, Any], where: str = "",
                 flags: Mapping[str, str] | None = None) -> ConfigT:
    """``model`` from its defaults and ``layers`` merged in order (later wins; see :func:`with_defaults`); a
    validation problem is one UserError line (``where`` prefixes it)."""
    data: dict[str, Any] = {}
    for layer in layers:
        data = deep_merge(data, layer)
    try:
        return model.model_validate(with_defaults(model, data))
    except ValidationError as exc:
        raise UserError(f"{where}invalid configuration: {format_validation_error(exc, flags=flags)}") from None


def set_fields(config: BaseModel) -> dict[str, Any]:
    """The fields ``config`` was given (each in full, nested models included), as JSON: a preset."""
    full = config.model_dump(mode="json")
    return {name: full[name] for name in config.model_fields_set}


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write a config as YAML that :func:`load_config` reads back to an equal model."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
