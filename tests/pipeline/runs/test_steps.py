"""LocalSteps: a step runs inline, a failing step is retried with backoff and then named by its operation, step
and input (a user error stays one line), a map runs one step per item."""

from __future__ import annotations

import pytest

from pipeline.errors import UserError
from pipeline.runs import steps as steps_module
from pipeline.runs.steps import LocalSteps, StepFailed


def test_retries_then_names_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps_module, "BACKOFF_S", 0.0)
    calls: list[int] = []

    def flaky(*, n: int) -> int:
        calls.append(n)
        if len(calls) < 3:
            raise OSError("store busy")
        return n

    steps = LocalSteps("cycle")
    assert steps.run("fetch", flaky, n=4, label="x", retries=2) == 4 and len(calls) == 3
    assert steps.timings[-1]["status"] == "ok"

    def bad_input() -> None:
        raise UserError("no current model; promote one")

    with pytest.raises(UserError, match=r"^cycle: step 'resolve' \(store\) failed: no current model"):
        steps.run("resolve", bad_input, label="store", retries=1)

    def bug() -> None:
        raise KeyError("x")

    with pytest.raises(StepFailed, match=r"cycle: step 'score' failed: KeyError"):
        steps.run("score", bug)


def test_map_is_one_step_per_item_and_progress_is_a_keyword() -> None:
    steps = LocalSteps("verify")
    assert steps.map("square", lambda x, *, k: x * x + k, [1, 2, 3], k=1) == [2, 5, 10]
    assert [t["step"] for t in steps.timings] == ["square-1", "square-2", "square-3"]
    assert steps.run("train", lambda *, on_progress: on_progress(0.5) or "done", progress=True) == "done"
