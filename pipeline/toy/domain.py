"""The toy domain as the CLI and the runners see it: its run and its verbs (``train``, ``sample``,
``evaluate``), declared once; :mod:`pipeline.cli.verbs` builds the commands."""

from __future__ import annotations

from typing import Any

from pipeline.base import SEED, Domain, Flag, Verb, train_verb


def sample_summary(drawn: Any, config: Any, out: Any) -> str:
    from pipeline.toy.modeling.evaluate import toy_metrics

    line = (f"{config.n} samples, {drawn.sampler} {drawn.steps} steps ({config.grid}), NFE {drawn.nfe}, "
            f"{drawn.seconds:.3f} s")
    if drawn.mode is None:
        m = toy_metrics(drawn.samples, seed=config.seed, nfe=drawn.nfe)
        line += (f"; mode weights {' '.join(f'{w:.3f}' for w in m['mode_weights'])}; sliced W2 to fresh data "
                 f"{m['sliced_w2']:.3f} (floor {m['sliced_w2_floor']:.3f})")
    return f"{line}; wrote {out}"


def evaluate_summary(m: dict, config: Any, out: Any) -> str:
    return (f"sliced W2 to fresh data {m['sliced_w2']:.4f} (floor {m['sliced_w2_floor']:.4f}), largest mode-weight "
            f"error {m['mode_weight_error']:.4f}, NFE {m['nfe']}; wrote {out}/metrics.json and {out}/report.md")


DOMAIN = Domain(
    name="toy",
    help="the 8-Gaussian mixture: train → sample → evaluate",
    run="pipeline.toy.run:RUN",
    verbs=(
        train_verb("Train the MLP denoiser on the 2-D mixture of 8 Gaussians with the core training loop (example "
                   "config: pipeline/toy/toy.yaml).",
                   config="pipeline.toy.modeling.train:ToyTrainConfig", run="pipeline.toy.modeling.train:train_toy",
                   objectives="Objective preset, e.g. fm, edm, eps-cosine, v-sigmoid.", flags=()),
        Verb("sample", "Sample a trained toy model; prints NFE, time, mixture weights and sliced-Wasserstein to "
                       "fresh data.",
             config="pipeline.toy.modeling.generate:SampleConfig", run="pipeline.toy.modeling.generate:sample_toy",
             summary="pipeline.toy.domain:sample_summary",
             out="Output file: .npz (samples) or .png (scatter plot over the data).",
             flags=(Flag("--model", "model", str, "Run directory written by `velocast train toy` (or a checkpoint "
                                                  "dir)."),
                    Flag("--n", "n", int, "Number of samples."),
                    Flag("--sampler", "sampler", str, "euler | heun | midpoint | dpmpp_2s | churn."),
                    Flag("--steps", "steps", int, "Integration steps (any number, whatever the training)."),
                    Flag("--grid", "grid", str, "Time grid: auto (uniform for flow matching, karras for the "
                                                "others), uniform or karras."),
                    Flag("--guidance", "guidance", float, "CFG scale (conditional models; 1 = conditional)."),
                    Flag("--mode", "mode", int, "Mode index 0-7 to condition on (conditional models)."), SEED,
                    Flag("--raw", "raw", bool, "Use the raw weights instead of the EMA weights.", value=True))),
        Verb("evaluate", "Score toy samples against the mixture: sliced W2 (and its floor), mode weights.",
             config="pipeline.toy.modeling.evaluate:EvaluateConfig", run="pipeline.toy.modeling.evaluate:evaluate_toy",
             summary="pipeline.toy.domain:evaluate_summary",
             out="Report directory (metrics.json, report.md, samples.png).",
             flags=(Flag("--samples", "samples", str, "Samples (.npz) from `velocast sample toy`."),
                    Flag("--seed", "seed", int, "Seed of the reference draws."))),
    ),
)
