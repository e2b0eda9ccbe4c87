"""Deployments of the operational loop: the forecast cycle every 6 h and verification daily.

Two ways to run them:

* **work pool** (:func:`register`): deployments on a ``process`` work pool, code pulled from this
  checkout; a ``prefect worker start --pool POOL`` process runs them (``velocast deploy``, or
  ``prefect deploy --all`` with ``infra/prefect.yaml``);
* **serve** (:func:`serve`): ``flow.serve``-style, no work pool or worker, this process runs them
  (``velocast deploy --serve``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CYCLE_ENTRYPOINT = "flows/operations.py:forecast_cycle"
VERIFY_ENTRYPOINT = "flows/operations.py:verify"
CYCLE_DEPLOYMENT = "velocast-cycle"
VERIFY_DEPLOYMENT = "velocast-verify"


@dataclass
class DeploySettings:
    """What the deployments run on and when (cron in UTC)."""

    analysis: str
    store: str
    registry: str
    work_pool: str = "velocast"
    cycle_cron: str = "0 */6 * * *"
    verify_cron: str = "30 0 * * *"
    members: int = 10
    lead: str = "5d"
    sampler: str = "heun"
    sampler_steps: int = 4
    extend_hours: float = 0.0
    tags: list[str] = field(default_factory=lambda: ["velocast", "weather"])
    paused: bool = False

    def cycle_parameters(self) -> dict[str, Any]:
        return {"analysis": self.analysis, "store": self.store, "registry": self.registry,
                "members": self.members, "lead": self.lead, "sampler": self.sampler,
                "sampler_steps": self.sampler_steps, "extend_hours": self.extend_hours}

    def verify_parameters(self) -> dict[str, Any]:
        return {"analysis": self.analysis, "store": self.store}


def _absolute(settings: DeploySettings) -> DeploySettings:
    """Paths made absolute: the worker runs flows from the repository root."""
    values = asdict(settings)
    for key in ("analysis", "store", "registry"):
        if "://" not in values[key]:
            values[key] = str(Path(values[key]).resolve())
    return DeploySettings(**values)


def ensure_work_pool(name: str) -> None:
    """Create the ``process`` work pool ``name`` unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(work_pool=WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def register(settings: DeploySettings) -> dict[str, str]:
    """Register both deployments on the work pool; returns ``{"flow/deployment": id}``. Re-registering
    updates them in place."""
    from prefect import flow

    settings = _absolute(settings)
    ensure_work_pool(settings.work_pool)
    out: dict[str, str] = {}
    for entrypoint, name, cron, params, description in (
        (CYCLE_ENTRYPOINT, CYCLE_DEPLOYMENT, settings.cycle_cron, settings.cycle_parameters(),
         "Operational forecast cycle: ingest, forecast the newest analysis with the current model, verify."),
        (VERIFY_ENTRYPOINT, VERIFY_DEPLOYMENT, settings.verify_cron, settings.verify_parameters(),
         "Verify every cycle whose truth has arrived; append to the store's verification table."),
    ):
        remote = flow.from_source(source=str(REPO_ROOT), entrypoint=entrypoint)
        deployment_id = remote.deploy(
            name=name, work_pool_name=settings.work_pool, cron=cron, parameters=params, build=False, push=False,
            tags=settings.tags, description=description, paused=settings.paused, print_next_steps=False,
            ignore_warnings=True,
        )
        out[f"{remote.name}/{name}"] = str(deployment_id)
    return out


def serve(settings: DeploySettings, *, limit: int | None = None) -> None:
    """Serve both deployments from this process (no work pool, no worker); blocks until interrupted."""
    from prefect import serve as prefect_serve

    from flows.operations import forecast_cycle, verify

    settings = _absolute(settings)
    cycle = forecast_cycle.to_deployment(name=CYCLE_DEPLOYMENT, cron=settings.cycle_cron,
                                         parameters=settings.cycle_parameters(), tags=settings.tags,
                                         paused=settings.paused)
    check = verify.to_deployment(name=VERIFY_DEPLOYMENT, cron=settings.verify_cron,
                                 parameters=settings.verify_parameters(), tags=settings.tags, paused=settings.paused)
    prefect_serve(cycle, check, limit=limit, print_starting_message=True)
