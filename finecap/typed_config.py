"""Strict construction of dataclass configs from plain dicts (parsed YAML).

Why our own: every error must be one line that names the dotted key (`source.shard_sise`),
unknown keys must fail (with a suggestion), and ranges live next to the field they bound
(`field(metadata={"min": 1})`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from finecap.errors import UserError

_YAML11_EXPONENT = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+")  # 1e-3, 2E5: numbers YAML 1.1 calls strings


class ConfigError(UserError, ValueError):
    """A configuration problem; its message is one line naming the key."""

    label = "config error"


def build(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from `data`, raising ConfigError at the first bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean {_join(path, near[0])!r}?)" if near else ""
            raise ConfigError(f"unknown key {_join(path, str(key))!r}{hint}")
    values = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name in data:
            values[name] = _coerce(hints[name], data[name], key)
            _check_range(f, values[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {key!r}")
    return cls(**values)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_range(f: dataclasses.Field, value: Any, key: str) -> None:
    if value is None:
        return
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        raise ConfigError(f"{key}: must be >= {low} (got {value!r})")
    if high is not None and value > high:
        raise ConfigError(f"{key}: must be <= {high} (got {value!r})")


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} does not fit {hint}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, args))} (got {value!r})")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], item, f"{key}.{i}") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return {str(k): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build(hint, value, key)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; a user means the number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint}")


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (for hashing, manifests and shipping to workers)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """Apply one `--set a.b.c=value` override to the raw dict (list items by index: `a.0.b`)."""
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _list_item(node, part, ".".join(parts[: i + 1]))
            continue
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[: i + 1])!r} is not a section")
    last = parts[-1]
    if isinstance(node, list):
        index = int(last) if last.isdigit() else -1
        if not 0 <= index < len(node):
            raise ConfigError(f"--set {dotted}: no list item {last!r}")
        node[index] = value
    else:
        node[last] = value


def _list_item(node: list, part: str, key: str) -> Any:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set: {key!r} is not an item of the list")
    return node[int(part)]


def parse_override(text: str) -> tuple[str, object]:
    """`key=value` with a YAML-typed value (`3`, `true`, `[a, b]`, `null`)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {exc.__class__.__name__}") from None
    return key.strip(), value


def load_yaml(cls: type, path: str | Path, overrides: list[str] = (), direct: dict | None = None) -> Any:
    """Read a YAML file, apply `--set` overrides and dotted `direct` values, build `cls`.

    `direct` carries dedicated CLI flags (`{"source.uri": ...}`); None values are skipped.
    `base_dir` (the file's folder, for relative paths in the config) is set here, never by the file.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    raw = copy.deepcopy(raw)
    if "base_dir" in raw:
        raise ConfigError("unknown key 'base_dir' (it is set from the file's location)")
    for text in overrides:
        set_dotted(raw, *parse_override(text))
    for key, value in (direct or {}).items():
        if value is not None:
            set_dotted(raw, key, value)
    raw["base_dir"] = str(path.resolve().parent)
    return build(cls, raw)
