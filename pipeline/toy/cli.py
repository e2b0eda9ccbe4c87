"""``velocast train toy`` and ``velocast sample toy``: the generative core on the 8-Gaussian mixture."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from pipeline.cli.root import group
from pipeline.errors import UserError

log = logging.getLogger(__name__)


@group("train").command("toy")
def train_toy(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Run directory (checkpoints, metrics.jsonl, config.yaml); resumed if it has a checkpoint.",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML config (default: the packaged pipeline/toy/toy.yaml)."
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Total training steps (overrides train.steps)."
    ),
    objective: str | None = typer.Option(
        None, "--objective", help="Objective preset, e.g. fm, edm, eps-cosine, v-sigmoid."
    ),
    sets: list[str] = typer.Option(
        [], "--set", help="Override any config key: --set train.lr=1e-3 (repeatable)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train the MLP denoiser on the 2-D mixture of 8 Gaussians with the core training loop."""
    from pipeline.config import dump_config, load_config
    from pipeline.console import console
    from pipeline.toy.config import DEFAULT_CONFIG, ToyConfig

    flags: dict = {}
    if steps is not None:
        flags.setdefault("train", {})["steps"] = steps
    if objective is not None:
        flags.setdefault("train", {})["objective"] = objective
    cfg = load_config(ToyConfig, config or DEFAULT_CONFIG, sets=sets, overrides=flags)

    import torch

    from models.networks import MLPDenoiser
    from models.objectives import make_objective
    from models.toy import EightGaussiansSource
    from models.training import CheckpointError, train

    torch.set_num_threads(1)  # a 2-D MLP gains nothing from intra-op threads; they only contend for cores

    try:
        obj = make_objective(cfg.train.objective)
    except ValueError as exc:
        raise UserError(f"train.objective: {exc}") from None
    if out.exists() and not out.is_dir():
        raise UserError("--out must be a directory", path=out)
    out.mkdir(parents=True, exist_ok=True)
    net_args = {
        "dim": 2,
        "cond_dim": 8 if cfg.conditional else 0,
        "cfg": cfg.conditional,
        **cfg.network.model_dump(),
    }
    net = MLPDenoiser(**net_args)
    tmp = out / ".config.yaml.tmp"
    dump_config(cfg, tmp)
    tmp.replace(out / "config.yaml")
    source = EightGaussiansSource(
        batch_size=cfg.train.batch_size, seed=cfg.data_seed, conditional=cfg.conditional
    )
    start = time.monotonic()
    try:
        result = train(
            net=net,
            data=source,
            config=cfg.train,
            run_dir=out,
            objective=obj,
            progress=progress,
            extra={
                "toy": {
                    "network": net_args,
                    "objective": obj.name,
                    "objective_spec": cfg.model_dump(mode="json")["train"]["objective"],
                }
            },
        )
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(f"invalid training setup: {exc}") from None
    loss = result.metrics.get("loss")
    console.print(
        f"trained toy model [bold]{obj.name}[/]: step {result.step}/{cfg.train.steps} ({result.stopped})"
        + (f", loss {loss:.4f}" if loss is not None else "")
        + f", {time.monotonic() - start:.1f} s; checkpoint {result.checkpoint}"
    )


@group("sample").command("toy")
def sample_toy(
    model: Path = typer.Option(
        ..., "--model", help="Run directory written by `velocast train toy` (or a checkpoint dir)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output file: .npz (samples) or .png (scatter plot over the data)."
    ),
    n: int = typer.Option(2000, "--n", min=1, help="Number of samples (ensemble members)."),
    sampler: str = typer.Option("heun", "--sampler", help="euler | heun | midpoint | dpmpp_2s | churn."),
    steps: int = typer.Option(
        32, "--steps", min=1, help="Integration steps (any number, whatever the training)."
    ),
    grid: str = typer.Option(
        "auto", "--grid",
        help="Time grid: auto (uniform for flow matching, karras for the others), uniform (in t) or karras "
        "(EDM rho-spaced).",
    ),
    guidance: float | None = typer.Option(
        None, "--guidance", help="CFG scale (conditional models; 1 = conditional)."
    ),
    mode: int | None = typer.Option(
        None, "--mode", min=0, max=7, help="Mode index 0-7 to condition on (conditional models)."
    ),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    raw: bool = typer.Option(False, "--raw", help="Use the raw weights instead of the EMA weights."),
) -> None:
    """Sample a trained toy model; prints NFE, time, mixture weights and sliced-Wasserstein to fresh data."""
    from models.samplers import SAMPLERS

    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of {', '.join(sorted(SAMPLERS))}")
    if grid not in ("auto", "uniform", "karras"):
        raise UserError(f"unknown grid {grid!r}; choose auto, uniform or karras")
    if out.suffix not in (".npz", ".png"):
        raise UserError("--out must end in .npz or .png", path=out)
    if not model.exists():
        raise UserError(
            "model run directory not found; train one with `velocast train toy --out DIR`", path=model
        )

    import numpy as np
    import torch

    from models.networks import MLPDenoiser
    from models.objectives import make_objective
    from models.samplers import Denoiser, sample
    from models.toy import eight_gaussians, mixture_weights, sliced_wasserstein
    from models.training import CheckpointError, load_checkpoint
    from pipeline.console import console

    torch.set_num_threads(1)
    try:
        ckpt = load_checkpoint(model)
        info = ckpt.extra.get("toy")
        if not isinstance(info, dict):
            raise UserError(
                "checkpoint has no toy model metadata (was it written by `velocast train toy`?)",
                path=ckpt.path,
            )
        net = MLPDenoiser(**info["network"])
        net.load_state_dict(ckpt.model if raw or not ckpt.ema else ckpt.ema)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    net.eval()
    obj = make_objective(info["objective_spec"])
    condition = None
    if info["network"].get("cond_dim"):
        labels = torch.full((n,), mode) if mode is not None else torch.arange(n) % 8
        condition = torch.nn.functional.one_hot(labels, 8).float()
    elif mode is not None or guidance is not None:
        raise UserError("--mode/--guidance need a conditional model (train with conditional: true)")
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    den = Denoiser(net, obj, condition=condition, guidance=guidance)
    start = time.perf_counter()
    with torch.no_grad():
        res = sample(
            den,
            noise,
            sampler=sampler,
            steps=steps,
            grid=grid,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(seed + 1),
        )
    elapsed = time.perf_counter() - start
    x = res.samples.float()
    ref, _ = eight_gaussians(n, generator=torch.Generator().manual_seed(seed + 12345))
    weights = mixture_weights(x)
    sw = (
        sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(0))
        if mode is None
        else float("nan")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    if out.suffix == ".npz":
        with open(tmp, "wb") as fh:
            np.savez(fh, samples=x.numpy(), nfe=res.nfe, grid=res.grid.numpy())
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(ref[:, 0], ref[:, 1], s=2, alpha=0.3, color="0.6", label="data")
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.6, color="C0", label=f"{sampler}, {steps} steps")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", markerscale=4)
        ax.set_title(f"{obj.name}: NFE {res.nfe}")
        fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    tmp.replace(out)
    console.print(
        f"{n} samples, {sampler} {steps} steps ({grid}), NFE {res.nfe}, {elapsed:.3f} s; "
        f"mode weights {' '.join(f'{w:.3f}' for w in weights.tolist())}; "
        + (f"sliced W2 to fresh data {sw:.3f}; " if mode is None else "")
        + f"wrote {out}"
    )
