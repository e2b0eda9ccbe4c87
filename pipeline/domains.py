"""The registry of domains, and what a domain declares: its run and its verbs.

A domain (``weather``, ``protein``, ``toy``) is a folder in ``pipeline/`` whose ``domain.py`` holds one
:class:`Domain`: where its :class:`~pipeline.runs.RunSpec` is, and its verbs (``train``, ``sample``,
``forecast``, ``calibrate``, ``distill``, ``evaluate``), each a config model, the function that does the work
and the flags that set config fields. :mod:`pipeline.cli.verbs` turns every registered domain into
``velocast VERB DOMAIN`` and ``velocast run DOMAIN`` commands; nothing else needs to know the domain.

Declarations name their config models and functions as ``"module:attribute"`` strings, imported only
when a command runs, so ``velocast --help`` never imports torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

VerbName = Literal["train", "sample", "forecast", "calibrate", "distill", "evaluate"]
VERB_NAMES: tuple[VerbName, ...] = ("train", "sample", "forecast", "calibrate", "distill", "evaluate")


def resolve(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Flag:
    """A command-line option that sets one config field (dotted path, e.g. ``train.steps``).

    ``type`` is the option's type (``str``, ``int``, ``float``, ``bool`` or ``list[str]``); ``parse`` turns the
    option's value into the field's (e.g. comma-separated numbers). An option spelled ``--a/--b`` is a
    pair of switches (True / False). ``value`` makes a single switch: when given, the field gets ``value``.
    """

    option: str
    field: str
    type: Any = str
    help: str = ""
    parse: Callable[[Any], Any] | None = None
    value: Any = None
    short: str | None = None


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


@dataclass(frozen=True)
class Domain:
    """A domain: its name, one line of help, its run (a ``RunSpec`` reference) and its verbs."""

    name: str
    help: str
    run: str
    verbs: tuple[Verb, ...] = ()

    def verb(self, name: str) -> Verb | None:
        return next((v for v in self.verbs if v.name == name), None)


#: The registered domains: name → the module that defines ``DOMAIN``. Add a domain here.
DOMAIN_MODULES: dict[str, str] = {
    "weather": "pipeline.weather.domain",
    "protein": "pipeline.protein.domain",
    "toy": "pipeline.toy.domain",
}


def get_domain(name: str) -> Domain:
    """The registered domain ``name``; KeyError naming the registered ones otherwise."""
    if name not in DOMAIN_MODULES:
        raise KeyError(f"no domain {name!r}; registered: {', '.join(DOMAIN_MODULES)}")
    domain = importlib.import_module(DOMAIN_MODULES[name]).DOMAIN
    if not isinstance(domain, Domain) or domain.name != name:
        raise TypeError(f"{DOMAIN_MODULES[name]}.DOMAIN must be a Domain named {name!r}")
    return domain


def domains() -> list[Domain]:
    """Every registered domain."""
    return [get_domain(name) for name in DOMAIN_MODULES]
