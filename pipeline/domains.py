"""The registry of domains: name → the module whose ``DOMAIN`` (a :class:`~pipeline.base.Domain`) declares it.

A domain (``weather``, ``protein``, ``toy``) is a folder in ``pipeline/`` whose ``domain.py`` holds one
:class:`~pipeline.base.Domain`; :mod:`pipeline.cli.verbs` turns every registered domain into ``velocast VERB
DOMAIN`` and ``velocast run DOMAIN`` commands, and the runners find its run here. Nothing else needs to know
the domain.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.base import Domain

#: The registered domains: name → the module that defines ``DOMAIN``. Add a domain here.
DOMAIN_MODULES: dict[str, str] = {
    "weather": "pipeline.weather.domain",
    "protein": "pipeline.protein.domain",
    "toy": "pipeline.toy.domain",
}


def resolve(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


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


def run_operation(domain: str, operation: str, parameters: dict[str, Any]) -> Any:
    """Run ``domain``'s ``operation`` in this process (:class:`~pipeline.runs.steps.LocalSteps`)."""
    from pipeline.runs.steps import LocalSteps

    return resolve(get_domain(domain).operations[operation])(LocalSteps(operation), **parameters)
