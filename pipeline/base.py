"""The roles that every domain fills, and the declaration a domain hands the CLI and the runners.

Roles (``typing.Protocol``, in the spirit of earth2studio's ``base.py``); each domain's classes satisfy
them (``tests/pipeline/test_base.py`` checks):

* :class:`Codec` — how a domain sample becomes the core's tensor and back (weather: the per-channel
  :class:`~pipeline.weather.modeling.data.Normalisation`; protein: a featuriser);
* :class:`DataSource` — training batches for the core loop (:class:`models.training.BatchSource`);
* :class:`Generator` — a trained model loaded from a run: network, objective, metadata, checkpoint;
* :class:`Store` — where a domain's generated data go (a forecast store, a structure store);
* :class:`Evaluator` — ``evaluate(config, *, out) -> metrics`` writing ``metrics.json`` and a report;
* :class:`Report` — a finished run's summary (:class:`~pipeline.runs.RunSummary`).

The declaration: a :class:`Domain` names its run (a :class:`~pipeline.runs.RunSpec`) and its verbs, each a
:class:`Verb` with :class:`Flag` s; :mod:`pipeline.domains` registers domains, :mod:`pipeline.cli.verbs`
builds their commands. Config models and functions are named as ``"module:attribute"`` strings, imported
only when a command runs, so ``velocast --help`` never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable


def __getattr__(name: str) -> Any:
    # DataSource is the core's BatchSource, re-exported lazily: importing this module must not import torch.
    if name == "DataSource":
        from models.training.data import BatchSource

        return BatchSource
    raise AttributeError(name)


@runtime_checkable
class Codec(Protocol):
    """A domain sample ↔ the core's array: ``decode(encode(x)) ≈ x``; ``to_json`` is what a checkpoint stores to
    rebuild it."""

    def encode(self, samples: Any) -> Any: ...

    def decode(self, z: Any) -> Any: ...

    def to_json(self) -> Any: ...


@runtime_checkable
class Generator(Protocol):
    """A trained generative model as loaded from a run: everything needed to sample it."""

    net: Any
    objective: Any
    metadata: dict


@runtime_checkable
class Store(Protocol):
    """Where a domain's generated data are kept (a forecast store, a structure store): written atomically, read
    without the writer, opened from its ``location``."""

    @property
    def location(self) -> str: ...


class Evaluator(Protocol):
    """Scores generated data against the truth and writes ``OUT/metrics.json`` and a report; returns the metrics."""

    def __call__(self, config: Any, *, out: str | Path, progress: bool = True) -> dict[str, Any]: ...


class Report(Protocol):
    """The summary of a finished run: its headline rows, one-line facts, the report and the plots."""

    title: str
    headline: list[dict[str, Any]]
    lines: list[str]
    report: Path | None
    plots: list[Path]


VerbName = Literal["train", "sample", "forecast", "calibrate", "distill", "evaluate", "export"]
VERB_NAMES: tuple[VerbName, ...] = ("train", "sample", "forecast", "calibrate", "distill", "evaluate", "export")


@dataclass(frozen=True)
class Flag:
    """A command-line option that sets one config field (dotted path, e.g. ``train.steps``).

    ``type`` is the option's type (``str``, ``int``, ``float``, ``bool`` or ``list[str]``); ``parse`` turns the
    option's value into the field's (e.g. comma-separated numbers). An option spelled ``--a/--b`` is a
    pair of switches (True / False). ``value`` makes a single switch: when given, the field gets ``value``.
    ``positional``: a required argument (``option`` is its metavar, e.g. ``STORE``), in declaration order.
    """

    option: str
    field: str
    type: Any = str
    help: str = ""
    parse: Callable[[Any], Any] | None = None
    value: Any = None
    short: str | None = None
    positional: bool = False


def comma_list(text: str | list[str]) -> list[str]:
    """``"a,b"`` (or several such options) → ``["a", "b"]``."""
    items = [text] if isinstance(text, str) else text
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def comma_floats(text: str) -> list[float]:
    """``"0.45,0.6"`` → ``[0.45, 0.6]``; a ValueError names what is not a number."""
    try:
        return [float(part) for part in comma_list(text)]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


@dataclass(frozen=True)
class Verb:
    """``velocast NAME DOMAIN``: build ``config`` (defaults < ``--config`` YAML < ``--set`` < flags), call
    ``run(config, out=..., progress=...)`` and print ``summary(result, config, out)``.

    ``out`` is the help of ``--out`` (None: the verb takes no ``--out`` and ``run`` gets ``out=None``).
    """

    name: VerbName
    help: str
    config: str
    run: str
    summary: str
    flags: tuple[Flag, ...] = ()
    out: str | None = "Output directory."


def train_summary(result: Any, config: Any, out: Any) -> str:
    """The summary of every domain's ``train`` verb (a :class:`~models.training.TrainResult`)."""
    loss = result.metrics.get("loss")
    return (f"trained to step {result.step}/{config.train.steps} ({result.stopped})"
            + (f", loss {loss:.4f}" if loss is not None else "") + f"; checkpoints in {out}/checkpoints")


# -- what several domains' verbs share ---------------------------------------------------------------------

SEED = Flag("--seed", "seed", int, "Noise seed.")
STEPS = Flag("--steps", "train.steps", int, "Training steps.")
MAX_MINUTES = Flag("--max-minutes", "train.max_minutes", float, "Stop cleanly (with a checkpoint) after this.")


def sampler_flag(default: str = "heun") -> Flag:
    """``--sampler``, defaulting to a distilled student's own sampler, else ``default``."""
    return Flag("--sampler", "sampler", str, "euler, heun, midpoint, dpmpp_2s or churn (default: the model's own, "
                                            f"e.g. a distilled student's, else {default}).")


def train_verb(help: str, *, config: str, run: str, flags: tuple[Flag, ...], objectives: str) -> Verb:
    """``velocast train DOMAIN``: the core training loop into a run directory (resumed when it has a checkpoint);
    ``--objective``, ``--steps`` and ``--max-minutes`` set ``train.*``."""
    return Verb("train", help, config=config, run=run, summary="pipeline.base:train_summary",
                out="Run directory (checkpoints, metrics.jsonl, train_config.json); resumes if present.",
                flags=(*flags, Flag("--objective", "train.objective", str, objectives), STEPS, MAX_MINUTES))


def distill_verb(help: str, *, config: str, run: str, summary: str, calls: str, data: str,
                 flags: tuple[Flag, ...] = ()) -> Verb:
    """``velocast distill DOMAIN``: a few-step student of a trained model (``reflow.*`` set by the flags)."""
    return Verb("distill", help, config=config, run=run, summary=summary,
                out="New run directory for the student (must not exist or be empty).",
                flags=(Flag("--model", "model", str, "Teacher run directory (newest checkpoint) or checkpoint "
                                                     "directory."),
                       Flag("--method", "reflow.method", str, "reflow (straight paths through teacher samples), crps "
                                                              "(a fair-CRPS fine-tune on the data, FGN-style) or energy "
                                                              "(the same with the fair energy score of whole samples)."),
                       Flag("--members", "reflow.members", int, "crps / energy: ensemble members per condition."),
                       Flag("--steps", "reflow.student_steps", int, f"Euler steps ({calls}) the student is made for."),
                       Flag("--data", "data", str, data),
                       Flag("--pairs", "reflow.pairs", int, "Teacher (noise, sample) pairs to generate."),
                       Flag("--train-steps", "reflow.steps", int, "Student optimisation steps."),
                       Flag("--teacher-sampler", "reflow.teacher_sampler", str, "Teacher sampler."),
                       Flag("--teacher-steps", "reflow.teacher_steps", int, "Teacher sampler steps per pair."), *flags))


@dataclass(frozen=True)
class Domain:
    """A domain: its name, one line of help, its run (a ``RunSpec`` reference), its verbs and its operations
    (name → ``"module:function"`` of a workflow over :class:`~pipeline.runs.steps.Steps`, such as the forecast
    cycle that deployments schedule)."""

    name: str
    help: str
    run: str
    verbs: tuple[Verb, ...] = ()
    operations: Mapping[str, str] = field(default_factory=dict)

    def verb(self, name: str) -> Verb | None:
        return next((v for v in self.verbs if v.name == name), None)


