"""Each domain fills the shared roles of pipeline/base.py: its codec, its loaded model, its store and its
evaluator have the shape the generic code types against."""

from __future__ import annotations

import inspect

import numpy as np

from pipeline.base import Codec, Evaluator, Generator, Report, Store
from pipeline.domains import domains, resolve


def test_codecs_round_trip_and_are_codecs() -> None:
    from pipeline.protein.modeling.data import Standardiser
    from pipeline.weather.modeling.data import Normalisation

    rng = np.random.default_rng(0)
    states = rng.normal(280, 5, size=(6, 2, 3, 4)).astype(np.float32)
    weather = Normalisation(("a", "b"), states.mean(axis=(0, 2, 3)), states.std(axis=(0, 2, 3)), np.ones(2))
    protein = Standardiser.fit(rng.normal(size=(20, 5, 3)))
    assert isinstance(weather, Codec) and isinstance(protein, Codec)
    assert np.allclose(weather.decode(weather.encode(states)), states, atol=1e-3)
    z = protein.encode(rng.normal(size=(3, 5, 3)))  # frames → aligned features: decode then encode is exact
    assert np.allclose(protein.encode(protein.decode(z)), z, atol=1e-4)
    assert weather.to_json() and protein.to_json()


def test_loaded_models_are_generators(tmp_path) -> None:
    from models.objectives import make_objective
    from models.toy import EightGaussiansSource
    from models.training import TrainConfig, train
    from pipeline.toy.modeling.model import ToyNetwork, build_network, load_toy_model

    net = build_network(ToyNetwork(hidden=8, depth=1, time_dim=8), conditional=False)
    train(net=net, data=EightGaussiansSource(batch_size=8), config=TrainConfig(steps=1, batch_size=8),
          run_dir=tmp_path, objective=make_objective("fm"),
          extra={"domain": "toy", "network": {"hidden": 8, "depth": 1, "time_dim": 8}, "conditional": False,
                 "objective": "fm"})
    assert isinstance(load_toy_model(tmp_path), Generator)
    from pipeline.protein.modeling.model import ProteinModel
    from pipeline.weather.modeling.rollout import Forecaster

    for cls in (Forecaster, ProteinModel):  # dataclasses: the role's fields are theirs
        assert {"net", "objective", "metadata"} <= set(inspect.signature(cls).parameters)


def test_stores_are_stores_and_summaries_reports(tmp_path) -> None:
    import mdtraj

    from pipeline.forecast_store import ForecastStore, synthetic_forecast
    from pipeline.protein.store import open_structure_store, write_structure_store
    from pipeline.runs import RunSummary
    from tests.pipeline.forecast_store.fs_helpers import PROV

    forecast = ForecastStore.open_or_create(tmp_path / "f.icechunk")
    forecast.append_cycle(synthetic_forecast("2020-01-01T00", members=2, leads=2, grid=(8, 5)), provenance=PROV)
    topology = mdtraj.Topology()
    topology.add_atom("CA", mdtraj.element.carbon, topology.add_residue("GLY", topology.add_chain()))
    structures = open_structure_store(write_structure_store(tmp_path / "s.zarr", coordinates=np.zeros((2, 1, 3)),
                                                            topology=topology))
    for store in (ForecastStore.open(tmp_path / "f.icechunk"), structures):
        assert isinstance(store, Store) and store.location.endswith((".icechunk", ".zarr"))
    assert set(Report.__annotations__) == {"title", "headline", "lines", "report", "plots"}
    assert set(Report.__annotations__) <= set(RunSummary.__dataclass_fields__)


def test_every_domains_evaluate_verb_is_an_evaluator() -> None:
    """``evaluate(config, *, out, ...) -> metrics``: the shape of :class:`pipeline.base.Evaluator`."""
    expected = list(inspect.signature(Evaluator.__call__).parameters)[1:3]
    for domain in domains():
        verb = domain.verb("evaluate")
        assert verb is not None, domain.name
        parameters = inspect.signature(resolve(verb.run)).parameters
        assert list(parameters)[:2] == expected and parameters["out"].kind is inspect.Parameter.KEYWORD_ONLY
