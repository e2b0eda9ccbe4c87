"""A run declared as data: its stages (what each reads, writes and keys its cache on) over a layout.

A domain declares its end-to-end run once, as a :class:`RunSpec`: the run's config model, its
:class:`~pipeline.runs.layout.Layout` and the ordered :class:`Stage` list. Every runner — the in-process
one (:mod:`pipeline.runs.local`) and the Prefect flow built by ``flows`` — executes that list the same
way: a stage is skipped when its cache key matches the one recorded for it in ``RUN/run.json`` and its
outputs are unchanged since (see :mod:`pipeline.runs.record`).

The cache key of a stage is a digest of the domain, the stage's name, the run directory, the values of
the config fields the stage declares it reads, and the fingerprints of its input artefacts. A stage
must therefore declare every config field its work depends on; :meth:`RunSpec.validate` checks that
the names exist, that every input is produced by an earlier stage and that no two stages write the
same artefact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from pipeline.runs.layout import Layout

ConfigT = TypeVar("ConfigT", bound=BaseModel)
LayoutT = TypeVar("LayoutT", bound=Layout)


@dataclass
class StageContext:
    """What a runner hands a stage: whether to draw progress bars, and where to report progress
    (``report(done, total)``; an orchestrator mirrors it, e.g. as a Prefect progress artifact)."""

    progress: bool = True
    on_progress: Callable[[float], None] = field(default=lambda fraction: None)

    def report(self, done: float, total: float) -> None:
        """Report ``done`` of ``total`` units of this stage's work."""
        if total > 0:
            self.on_progress(min(1.0, max(0.0, done / total)))


StageFn = Callable[[ConfigT, LayoutT, StageContext], Mapping[str, Any] | None]
"""A stage's work: reads its inputs from the layout, writes its outputs there, returns a small JSON-able
summary (paths, counts, scores; never arrays)."""


@dataclass(frozen=True)
class Stage(Generic[ConfigT, LayoutT]):
    """One step of a run: its work, the artefacts it reads and writes, and the config fields it reads."""

    name: str
    run: StageFn[ConfigT, LayoutT]
    description: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    retries: int = 0  # transient failures (I/O on stores) retried by the runner


@dataclass(frozen=True)
class RunSummary:
    """What a finished run shows: headline rows (the first key labels a row), one-line facts, the
    Markdown report (and its self-contained HTML twin), the plots, and the commands worth trying next."""

    title: str
    headline: list[dict[str, Any]]
    lines: list[str] = field(default_factory=list)
    report: Path | None = None
    plots: list[Path] = field(default_factory=list)
    html: Path | None = None
    next_commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunSpec(Generic[ConfigT, LayoutT]):
    """A domain's end-to-end run: its config model, layout, ordered stages and the summary of a finished
    run. ``presets`` are named partial configs (``quick``) that ``--config`` and ``--set`` compose onto."""

    domain: str
    description: str
    config: type[ConfigT]
    layout: type[LayoutT]
    stages: tuple[Stage[ConfigT, LayoutT], ...]
    summary: Callable[[LayoutT], RunSummary]
    presets: Mapping[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError unless the declaration is consistent (see the module doc)."""
        artefacts = self.layout.artefacts()
        fields = set(self.config.model_fields)
        produced: dict[str, str] = {}
        names: set[str] = set()
        for stage in self.stages:
            if stage.name in names:
                raise ValueError(f"{self.domain}: two stages are named {stage.name!r}")
            names.add(stage.name)
            for name in (*stage.inputs, *stage.outputs):
                if name not in artefacts:
                    raise ValueError(f"{self.domain}/{stage.name}: {name!r} is not an artefact of "
                                     f"{self.layout.__name__}")
            for name in stage.inputs:
                if name not in produced:
                    raise ValueError(f"{self.domain}/{stage.name}: input {name!r} is not written by an earlier stage")
            for name in stage.outputs:
                if name in produced:
                    raise ValueError(f"{self.domain}/{stage.name}: {name!r} is already written by {produced[name]!r}")
                produced[name] = stage.name
            unknown = set(stage.config) - fields
            if unknown:
                raise ValueError(f"{self.domain}/{stage.name}: no config field {sorted(unknown)} in "
                                 f"{self.config.__name__}")

    def configure(self, preset: str | None = None, values: Mapping[str, Any] | None = None) -> ConfigT:
        """The run config of ``preset`` (e.g. ``quick``; None: the defaults) with ``values`` merged on top."""
        from pipeline.config import build_config

        return build_config(self.config, self.presets[preset]() if preset else {}, values or {})

    def stage(self, name: str) -> Stage[ConfigT, LayoutT]:
        """The stage called ``name``."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.domain} has no stage {name!r}")

    def stage_key(self, stage: Stage[ConfigT, LayoutT], config: ConfigT, layout: LayoutT) -> str:
        """The cache key of ``stage`` for ``config`` in the run directory of ``layout``."""
        values = config.model_dump(mode="json")
        parts = {
            "domain": self.domain,
            "stage": stage.name,
            "root": str(layout.root.resolve()),
            "config": {name: values[name] for name in stage.config},
            "inputs": {name: layout.fingerprint(name) for name in stage.inputs},
        }
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]
