"""``velocast run toy``: train → sample → evaluate on the 2-D mixture of 8 Gaussians, declared once.

The smallest domain, through exactly the machinery of weather and protein (stages, cache, Prefect flow,
report): a run of seconds that shows the generative core end to end.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from models.training import TrainConfig
from pipeline.config import StrictModel, set_fields
from pipeline.console import shown_path
from pipeline.runs import Layout, RunSpec, RunSummary, Stage, StageContext, artefact
from pipeline.toy.modeling.model import ToyNetwork


class RunToyConfig(StrictModel):
    """Sizes of the toy run (defaults: about a minute on one core)."""

    seed: int = Field(0, description="noise seed of the samples and the evaluation")
    data_seed: int = Field(0, description="seed of the training batches")
    network: ToyNetwork = ToyNetwork()
    train: TrainConfig = TrainConfig(steps=2000, batch_size=256, lr=3e-3, warmup_steps=50, ema_decay=0.99,
                                     log_every=100, checkpoint_every=500)
    samples: int = Field(4000, ge=1, description="samples drawn and scored")
    sampler: str = Field("heun", description="euler, heun, midpoint, dpmpp_2s or churn")
    sampler_steps: int = Field(16, ge=1, description="sampler steps")


def quick_preset() -> dict[str, Any]:
    """``--quick``: a few seconds; the fields it sets are complete."""
    return set_fields(RunToyConfig(train=TrainConfig(steps=200, batch_size=256, lr=3e-3, warmup_steps=20,
                                                     ema_decay=0.99, log_every=50, checkpoint_every=200),
                                   samples=1000, sampler_steps=8))


class ToyRunLayout(Layout):
    """The artefacts of ``velocast run toy --out DIR``."""

    model = artefact("model", "run", "the MLP denoiser's run: checkpoints, metrics.jsonl, train_config.json")
    samples = artefact("samples.npz", "file", "the drawn samples (and the network calls per sample)")
    metrics = artefact("metrics.json", "file", "sliced W2 to the mixture, mode weights")
    report = artefact("report.md", "file", "the report with the scatter plot beside it")


def train(config: RunToyConfig, layout: ToyRunLayout, context: StageContext) -> dict:
    """Train the MLP denoiser on the mixture."""
    from pipeline.toy.modeling.train import ToyTrainConfig, train_toy

    result = train_toy(ToyTrainConfig(data_seed=config.data_seed, network=config.network, train=config.train),
                       out=layout.model, progress=context.progress,
                       on_step=lambda step: context.report(step, config.train.steps))
    return {"run": str(layout.model), "step": result.step, "stopped": result.stopped}


def sample(config: RunToyConfig, layout: ToyRunLayout, context: StageContext) -> dict:
    """Draw the samples."""
    from pipeline.toy.modeling.generate import SampleConfig, sample_toy

    drawn = sample_toy(SampleConfig(model=str(layout.model), n=config.samples, sampler=config.sampler,
                                    steps=config.sampler_steps, seed=config.seed), out=layout.samples)
    return {"samples": str(layout.samples), "nfe": drawn.nfe}


def evaluate(config: RunToyConfig, layout: ToyRunLayout, context: StageContext) -> dict:
    """Score the samples against the mixture; write the report."""
    from pipeline.toy.modeling.evaluate import EvaluateConfig, evaluate_toy

    metrics = evaluate_toy(EvaluateConfig(samples=str(layout.samples), seed=config.seed), out=layout.root)
    return {"metrics": str(layout.metrics), "sliced_w2": metrics["sliced_w2"]}


STAGES: tuple[Stage[RunToyConfig, ToyRunLayout], ...] = (
    Stage("train", train, "train the MLP denoiser on the 8-Gaussian mixture", outputs=("model",),
          config=("data_seed", "network", "train")),
    Stage("sample", sample, "draw samples", inputs=("model",), outputs=("samples",),
          config=("seed", "samples", "sampler", "sampler_steps")),
    Stage("evaluate", evaluate, "score the samples against the mixture", inputs=("samples",),
          outputs=("metrics", "report"), config=("seed",)),
)


def summary(layout: ToyRunLayout) -> RunSummary:
    """Sliced W2 against its floor, the mode weights, and the report."""
    m = json.loads(layout.metrics.read_text())
    rows = [{"metric": "sliced W2 to fresh data", "value": m["sliced_w2"]},
            {"metric": "sliced W2 floor (two fresh draws)", "value": m["sliced_w2_floor"]},
            {"metric": "largest mode-weight error", "value": m["mode_weight_error"]},
            {"metric": "network calls per sample", "value": m["nfe"]}]
    return RunSummary(title="8-Gaussian mixture (lower is better)", headline=rows, report=layout.report,
                      html=layout.report.with_suffix(".html"),
                      plots=[layout.root / "samples.png"],
                      next_commands=[(f"velocast sample toy --model {shown_path(layout.model)} --n 5000 --steps 4 "
                                      f"--out samples.png   # fewer sampler steps, plotted over the data")])


RUN = RunSpec(domain="toy", description="the 8-Gaussian mixture: train → sample → evaluate", config=RunToyConfig,
              layout=ToyRunLayout, stages=STAGES, summary=summary, presets={"quick": quick_preset})
