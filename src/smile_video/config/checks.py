"""The config error and the value checks every section's `validate` uses."""

from __future__ import annotations

import difflib

__all__ = ["ConfigError", "check_choice", "check_range"]


class ConfigError(ValueError):
    """A configuration problem, with a message that names the offending key."""


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}{extra}")


def check_range(key: str, value: float, low: float, high: float, inclusive_high: bool = True) -> None:
    ok = low <= value <= high if inclusive_high else low <= value < high
    if not ok:
        bracket = "]" if inclusive_high else ")"
        raise ConfigError(f"{key}={value} is outside [{low}, {high}{bracket}")
