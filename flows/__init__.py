"""Prefect orchestration over :mod:`pipeline`, with no domain knowledge: any domain's run as a flow (``flows/runs.py``),
any domain's operations as flows (``flows/operations.py``), their deployments (``flows/deploy.py``)."""

import os

# No outside network on compute nodes: a temporary (ephemeral) Prefect server must not try to send telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
