"""Training loop: exact resume, DDP equals one process, pickle checkpoints refused, time budget, metrics."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from models.networks import MLPDenoiser
from models.toy import EightGaussiansSource
from models.training import CheckpointError, TrainConfig, load_checkpoint, load_weights, lr_at, train
from models.training.checkpoint import list_checkpoints

pytestmark = pytest.mark.usefixtures("single_thread")

PROJECT = Path(__file__).resolve().parents[3]


def small_net() -> MLPDenoiser:
    torch.manual_seed(0)
    return MLPDenoiser(2, cond_dim=8, cfg=True, hidden=32, depth=2)


def config(**kw) -> TrainConfig:  # type: ignore[no-untyped-def]
    base = dict(
        objective="fm",
        steps=30,
        batch_size=32,
        lr=3e-3,
        warmup_steps=5,
        ema_decay=0.9,
        cond_dropout=0.2,
        log_every=10,
        checkpoint_every=15,
        keep_checkpoints=0,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def source() -> EightGaussiansSource:
    return EightGaussiansSource(batch_size=32, seed=1, conditional=True)


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    """Restarting from the mid-run checkpoint (step 15 of 30) ends with exactly the same parameters, EMA
    and optimizer state as the run that never stopped."""
    full = train(net=small_net(), data=source(), config=config(), run_dir=tmp_path / "full")
    ckpts = list_checkpoints(tmp_path / "full")
    assert [p.name for p in ckpts] == ["step_00000015", "step_00000030"]
    resumed_dir = tmp_path / "resumed" / "checkpoints"
    resumed_dir.mkdir(parents=True)
    shutil.copytree(ckpts[0], resumed_dir / ckpts[0].name)
    resumed = train(net=small_net(), data=source(), config=config(), run_dir=tmp_path / "resumed")
    assert resumed.step == full.step == 30
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "resumed")
    for part in ("model", "ema"):
        assert getattr(a, part).keys() == getattr(b, part).keys()
        for key in getattr(a, part):
            assert torch.equal(getattr(a, part)[key], getattr(b, part)[key]), (part, key)
    assert a.optimizer is not None and b.optimizer is not None
    for idx, state in a.optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b.optimizer["state"][idx][key]), (idx, key)
    # the comparison can fail: another seed ends elsewhere
    differ = train(net=small_net(), data=source(), config=config(seed=4), run_dir=tmp_path / "other")
    assert not all(torch.equal(differ.net.state_dict()[k], full.net.state_dict()[k]) for k in a.model)


def test_ddp_two_cpu_processes_match_one_process(tmp_path: Path) -> None:
    """torchrun with 2 gloo processes at the same global batch gives the parameters of one process."""
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(PROJECT)!r})
        torch.set_num_threads(1)
        from tests.models.training.test_loop import config, small_net, source
        from models.training import train
        res = train(net=small_net(), data=source(), config=config(steps=12, checkpoint_every=0),
                    run_dir=sys.argv[1])
    """)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path / "ddp"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = train(
        net=small_net(),
        data=source(),
        config=config(steps=12, checkpoint_every=0),
        run_dir=tmp_path / "single",
    )
    ddp = load_checkpoint(tmp_path / "ddp")
    assert ddp.step == 12
    moved = 0.0
    for key, value in single.net.state_dict().items():
        assert torch.allclose(ddp.model[key], value, atol=1e-5, rtol=0), key
        moved = max(moved, float((value - small_net().state_dict()[key]).abs().max()))
    assert moved > 1e-3  # training did move the weights, so the comparison means something


def test_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    """A torch.save / pickle payload, under any name, is refused with CheckpointError naming pickle."""
    pt = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pt)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(pt)
    run = tmp_path / "run"
    train(net=small_net(), data=source(), config=config(steps=2, checkpoint_every=0), run_dir=run)
    weights = list_checkpoints(run)[-1] / "weights.safetensors"
    weights.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_weights(run, small_net())
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_weights(run, small_net())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")
    assert issubclass(CheckpointError, ValueError)


def test_checkpoint_is_safetensors_plus_json_and_loads_ema(tmp_path: Path) -> None:
    """The checkpoint holds model, EMA, optimizer and RNG tensors in safetensors and JSON state; metrics go
    to metrics.jsonl; load_weights loads the EMA weights by default."""
    res = train(net=small_net(), data=source(), config=config(steps=20, checkpoint_every=0), run_dir=tmp_path)
    ckpt_dir = list_checkpoints(tmp_path)[-1]
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["state.json", "weights.safetensors"]
    state = json.loads((ckpt_dir / "state.json").read_text())
    assert state["step"] == 20 and state["config"]["objective"] == "fm"
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.rng["torch_cpu"].dtype == torch.uint8 and ckpt.optimizer is not None
    net = small_net()
    load_weights(tmp_path, net)
    for key, value in res.ema_net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [10, 20] and all(x["loss"] > 0 for x in lines)


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    """A zero-minute budget stops before the first step and still leaves a resumable checkpoint."""
    res = train(net=small_net(), data=source(), config=config(steps=1000, max_minutes=0.0), run_dir=tmp_path)
    assert res.stopped == "time_budget" and res.step == 0
    assert load_checkpoint(tmp_path).step == 0


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_validation_callback_sees_the_ema_network_and_is_logged(tmp_path: Path) -> None:
    """validate(step, ema_net) runs every validate_every steps; its numbers land in metrics.jsonl."""
    seen: list[int] = []

    def validate(step: int, ema_net: torch.nn.Module) -> dict[str, float]:
        seen.append(step)
        assert not ema_net.training
        return {"score": float(step)}

    train(
        net=small_net(),
        data=source(),
        config=config(steps=20, validate_every=10, checkpoint_every=0),
        run_dir=tmp_path,
        validate=validate,
    )
    assert seen == [10, 20]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["val/score"] for x in lines if "val/score" in x] == [10.0, 20.0]


def test_bf16_autocast_path_trains(tmp_path: Path) -> None:
    """amp='bf16' (the CUDA default, exercised here on CPU) trains with a finite loss and float32 weights."""
    res = train(net=small_net(), data=source(), config=config(steps=5, amp="bf16", checkpoint_every=0))
    assert res.step == 5 and torch.isfinite(torch.tensor(res.metrics.get("loss", 0.0)))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in res.net.parameters())


def test_learning_rate_anneals_over_the_time_budget_when_it_ends_first() -> None:
    """Half-way through the wall-clock budget the LR is at the cosine's middle, whatever the step count;
    at the end of the budget it has reached the floor."""
    cfg = TrainConfig(steps=10_000, warmup_steps=10, lr=1.0, min_lr_ratio=0.0, max_minutes=1.0)
    assert lr_at(20, cfg) == pytest.approx(1.0, abs=1e-2)
    assert lr_at(20, cfg, budget_fraction=0.5) == pytest.approx(0.5, abs=1e-2)
    assert lr_at(20, cfg, budget_fraction=1.0) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(9_000, cfg, budget_fraction=0.1) == pytest.approx(lr_at(9_000, cfg), abs=1e-12)


@pytest.mark.parametrize("native", [True, False])
def test_amp_native_trains_in_bf16_only_on_a_cpu_that_computes_it(tmp_path: Path, native: bool, monkeypatch,
                                                                   caplog) -> None:
    """``amp: native`` on the CPU: bf16 autocast where the CPU has bf16 instructions (the loss differs from
    float32's), float32 otherwise (the same losses as ``amp: off``, bit for bit); ``auto`` stays float32."""
    import logging

    from models.training import loop

    monkeypatch.setattr(loop, "cpu_computes_bf16", lambda: native)
    with caplog.at_level(logging.INFO, logger="models.training.loop"):
        result = train(net=small_net(), data=source(), config=config(amp="native", steps=5), run_dir=None)
    plain = train(net=small_net(), data=source(), config=config(amp="off", steps=5), run_dir=None)
    auto = train(net=small_net(), data=source(), config=config(amp="auto", steps=5), run_dir=None)
    assert ("bf16 autocast on the CPU" in caplog.text) == native
    assert (result.metrics["loss"] != plain.metrics["loss"]) == native
    assert auto.metrics["loss"] == plain.metrics["loss"]
