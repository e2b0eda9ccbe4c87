"""Prefect flows: thin orchestration over :mod:`pipeline` (see ``flows/weather.py``, ``flows/protein.py``)."""

import os

# No outside network on compute nodes: a temporary (ephemeral) Prefect server must not try to send telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
