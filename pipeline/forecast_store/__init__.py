"""Forecast stores (Icechunk repositories of ensemble forecast cycles) and their queries.

Write side: :class:`ForecastStore` (``create``/``open``/``open_or_create``, ``append_cycle``, ``tag``,
``cycles``, ``snapshots``, ``dataset``). Read side: :mod:`pipeline.forecast_store.query`. HTTP:
:mod:`pipeline.forecast_store.service`. Synthetic test data: :func:`synthetic_forecast`.
"""

from pipeline.forecast_store.schema import ChunkSpec
from pipeline.forecast_store.store import (
    CycleInfo,
    CycleResult,
    ForecastStore,
    SnapshotRecord,
    StorageOptions,
)
from pipeline.forecast_store.synthetic import synthetic_forecast

__all__ = [
    "ChunkSpec", "CycleInfo", "CycleResult", "ForecastStore", "SnapshotRecord", "StorageOptions",
    "synthetic_forecast",
]
