"""Building one of a registry's choices by name: paths, time samplers, samplers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def choose(registry: Mapping[str, Callable[..., Any]], name: str, *, what: str, **options: Any) -> Any:
    """``registry[name](**options)``; a ValueError naming the choices for an unknown ``name``."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(registry)}")
    return registry[name](**options)
