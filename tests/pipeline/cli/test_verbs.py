"""The generic verbs: every registered domain gets its commands from its declaration, a missing field names the
flag that gives it, `run DOMAIN` prints the stages and the headline, and a bad runner name is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.domains import domains


def _fails_with(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err and len(lines) == 1 and needle in lines[0], err


def test_every_domain_verb_and_run_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`velocast VERB DOMAIN --help` exists for each declared verb, and `velocast run DOMAIN --help` for each run."""
    for domain in domains():
        for name in [v.name for v in domain.verbs] + ["run"]:
            with pytest.raises(SystemExit) as exit_info:
                main([name, domain.name, "--help"])
            assert exit_info.value.code == 0, (name, domain.name)
            assert "--config" in capsys.readouterr().out


def test_every_verb_takes_the_generic_call() -> None:
    """The generic command calls each verb's function as ``run(config, out=..., progress=...)``: every declared
    verb accepts both (a verb that did not, `evaluate weather`, failed on every call with a TypeError)."""
    import inspect

    from pipeline.cli.verbs import resolve

    for domain in domains():
        for verb in domain.verbs:
            parameters = inspect.signature(resolve(verb.run)).parameters
            assert {"out", "progress"} <= set(parameters), (domain.name, verb.name)


def test_a_missing_required_field_names_its_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(["forecast", "weather", "--out", str(tmp_path / "f.icechunk")], "give --model", capsys)


def test_a_flag_that_does_not_parse_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(["forecast", "weather", "--noise-scale", "geopotential=0.4,0.5", "--out", str(tmp_path / "f")],
                "--noise-scale: expected a number or NAME=VALUE", capsys)


def test_an_unknown_runner_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_with(["run", "toy", "--runner", "slurm", "--out", str(tmp_path / "r")], "--runner must be", capsys)


def test_run_toy_quick_in_process_prints_stages_headline_and_report(tmp_path: Path) -> None:
    """The real command: `velocast run toy --quick --runner local` (no Prefect) ends with the stage times and
    total, the headline table, every output's path and the next commands; run again, every stage is reused."""
    command = [sys.executable, "-m", "pipeline", "run", "toy", "--quick", "--runner", "local", "--no-progress",
               "--set", "train.steps=30", "--out", str(tmp_path / "toy")]
    env = {"COLUMNS": "160", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    first = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr
    for needle in ("in all (local runner)", "total", "sliced W2 to fresh data", f"outputs in {tmp_path / 'toy'}",
                   f"{tmp_path / 'toy' / 'report.md'}", "next:"):
        assert needle in first.stdout, first.stdout
    assert all("…" not in line for line in first.stdout.splitlines()), first.stdout  # nothing cut to fit
    assert "[1/3] train" in first.stderr and "[3/3] evaluate done in" in first.stderr, first.stderr
    second = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0 and second.stdout.count("cached") == 3, second.stdout
    assert "reused (cached)" in second.stderr, second.stderr
