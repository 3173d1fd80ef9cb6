"""Loading, checking and overriding: YAML files and ``section.key=value`` overrides into a typed job config."""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .checks import ConfigError
from .sections import MODEL_PRESETS
from .unused import check_unused

__all__ = ["load_config", "apply_overrides", "to_dict", "to_yaml", "save_config"]

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return f"list[{_type_name(arg)}]"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotated type `tp`, converting only where it is lossless (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is list:
        (arg,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
        return [_coerce(f"{key}[{i}]", v, arg) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - every field type is one of the above
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _unknown_key(key: str, valid: list[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    prefix = key[: -len(leaf)]
    hint = difflib.get_close_matches(leaf, valid, n=1, cutoff=0.5)
    suggestion = f"; did you mean {prefix}{hint[0]!r}?".replace("'", "") if hint else ""
    return ConfigError(f"unknown config key {key!r}{suggestion} (valid keys here: {', '.join(sorted(valid))})")


def _merge(obj: Any, data: dict[str, Any], prefix: str = "") -> None:
    """Apply a nested dict onto dataclass `obj` in place, checking keys and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise _unknown_key(full, list(fields))
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(full, value, hints[key]))


def _parse_value(text: str) -> Any:
    """Parse an override's value as YAML (so 3 -> int, 1.0e-3 -> float, [1,2] -> list, abc -> str)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _overrides_to_dict(overrides: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = _parse_value(text)
    return tree


def _read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def apply_overrides(cfg: T, data: dict[str, Any]) -> T:
    """Apply a nested dict of values to a config, expanding `model.preset` first, and validate every section."""
    data = json.loads(json.dumps(data))  # a private deep copy
    preset = (data.get("model") or {}).get("preset") if isinstance(data.get("model"), dict) else None
    if hasattr(cfg, "model") and preset is not None:
        if preset not in MODEL_PRESETS:
            raise _unknown_key(f"model.preset={preset}", list(MODEL_PRESETS)) from None
        _merge(cfg.model, dict(MODEL_PRESETS[preset]), "model.")
    _merge(cfg, data)
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if hasattr(section, "validate"):
            section.validate()
    check_unused(cfg)  # a key the job's own choices ignore (e.g. train.epochs under progressive) is an error
    return cfg


def load_config(job: type[T], files: list[str] | tuple[str, ...] = (),
                overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Resolve a job config from YAML files and ``section.key=value`` overrides (later wins)."""
    data: dict[str, Any] = {}
    for path in files:
        _deep_update(data, _read_yaml(path))
    _deep_update(data, _overrides_to_dict(list(overrides)))
    return apply_overrides(job(), data)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML, in field order; `load_config(job, [file])` reads it back to an equal config."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_yaml(cfg))
    tmp.replace(path)
