"""Python entry point for the embedded atmosphere: :func:`simulate_training_store` → a training store (as
``velocast ingest weather`` writes) from the cached canonical simulation, with the restartable ``model_state``
group, ready for :func:`~pipeline.weather.simulate.ensemble.perfect_model_ensemble`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from pipeline.weather.simulate.cache import cache_path, simulate
from pipeline.weather.simulate.model import AtmosphereConfig

LEVEL_VARIABLES = ("temperature", "geopotential", "u_component_of_wind", "v_component_of_wind")


def atmosphere_config(
    *, days: float = 365.0, seed: int = 0, spinup_days: float = 300.0, levels: Sequence[int] = (250, 500, 850),
    **extra: object,
) -> AtmosphereConfig:
    return AtmosphereConfig(days=days, seed=seed, spinup_days=spinup_days, levels=tuple(levels), **extra)  # type: ignore[arg-type]


def builtin_source(config: AtmosphereConfig) -> str:
    """The ``builtin:held-suarez?…`` source string of ``config`` (non-default fields only)."""
    defaults = AtmosphereConfig()
    params = {}
    for key, value in config.model_dump().items():
        if value != getattr(defaults, key):
            params[key] = ",".join(map(str, value)) if isinstance(value, tuple) else value
    query = urlencode(params, safe=",:")
    return "builtin:held-suarez" + (f"?{query}" if query else "")


def simulate_training_store(
    *, out: str | Path, days: float = 365.0, seed: int = 0, spinup_days: float = 300.0,
    levels: Sequence[int] = (250, 500, 850), compile: bool | None = None, progress: bool = True,
    overwrite: bool = False, time_chunk: int = 4,
) -> tuple[Path, str]:
    """Simulate (or reuse the cache) and write a training store at ``out``. Returns (path, a summary line)."""
    import time

    import zarr

    from pipeline.weather.ingest import ingest
    from pipeline.weather.recipe import Recipe

    cfg = atmosphere_config(days=days, seed=seed, spinup_days=spinup_days, levels=levels)
    modes = (True, False) if compile is None else (compile,)
    was_cached = any(cache_path(cfg, compiled=mode).exists() for mode in modes)
    t0 = time.perf_counter()
    store = simulate(cfg, compile=compile, progress=progress)
    elapsed = time.perf_counter() - t0
    prov = dict(zarr.open_group(str(store), mode="r").attrs.get("provenance", {}))
    recipe = Recipe.model_validate(
        {
            "name": "held-suarez",
            "sources": [{"path": builtin_source(cfg)}],
            "variables": {**{v: {"levels": list(levels)} for v in LEVEL_VARIABLES}, "surface_pressure": {}},
            "chunks": {"time": time_chunk},
        }
    )
    path = ingest(recipe, out, progress=progress, overwrite=overwrite)
    if not was_cached:
        info = (
            f"simulated {spinup_days + days:g} days (spin-up {spinup_days:g}) in "
            f"{prov.get('integration_seconds', elapsed):.1f} s: "
            f"{prov.get('simulated_days_per_second', 0):.2f} simulated days per second"
        )
    else:
        info = f"reused the cached simulation {store}"
    return path, info
