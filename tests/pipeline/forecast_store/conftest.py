"""Forecast-store test fixtures (see fs_helpers)."""

from fs_helpers import small_store  # noqa: F401
