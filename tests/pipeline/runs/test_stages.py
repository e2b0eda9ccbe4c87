"""The stage machinery on a small synthetic run: declarations are checked, stages are cached on their key and
their outputs, outputs made under another key are removed before a re-run, a killed run resumes at the first
unfinished stage, and two runs on one directory are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import Field

from pipeline.config import StrictModel
from pipeline.errors import UserError
from pipeline.runs import Layout, RunSpec, RunSummary, Stage, StageContext, artefact, execute_stage, run_local
from pipeline.runs.record import run_lock

CALLS: list[str] = []


class Config(StrictModel):
    words: int = Field(3, description="words written by the first stage")
    upper: bool = False


class Files(Layout):
    text = artefact("text.txt", "file", "some words")
    shout = artefact("out/shout.txt", "file", "the words, maybe upper-cased")


def write(config: Config, layout: Files, context: StageContext) -> dict:
    CALLS.append(f"write (text {'present' if layout.text.exists() else 'absent'})")
    layout.text.write_text(" ".join(["word"] * config.words))
    return {"words": config.words}


def shout(config: Config, layout: Files, context: StageContext) -> dict:
    text = layout.text.read_text()
    layout.shout.parent.mkdir(exist_ok=True)
    layout.shout.write_text(text.upper() if config.upper else text)
    return {"length": len(text)}


def summary(layout: Files) -> RunSummary:
    return RunSummary(title="words", headline=[{"file": "shout", "text": layout.shout.read_text()}])


SPEC = RunSpec(domain="words", description="write, then shout", config=Config, layout=Files,
               stages=(Stage("write", write, "write words", outputs=("text",), config=("words",)),
                       Stage("shout", shout, "shout them", inputs=("text",), outputs=("shout",), config=("upper",))),
               summary=summary)


def _ran(result) -> list[str]:
    return [o.name for o in result.outcomes if not o.cached]


def test_a_stage_is_cached_on_its_config_fields_and_input_fingerprints(tmp_path: Path) -> None:
    CALLS.clear()
    assert _ran(run_local(SPEC, Config(), tmp_path / "run", progress=False)) == ["write", "shout"]
    again = run_local(SPEC, Config(), tmp_path / "run", progress=False)
    assert _ran(again) == [] and again.outcomes[1].result == {"length": 14}
    # a field only `shout` reads re-runs shout alone; `write` keeps its cached result
    assert _ran(run_local(SPEC, Config(upper=True), tmp_path / "run", progress=False)) == ["shout"]
    assert (tmp_path / "run/out/shout.txt").read_text() == "WORD WORD WORD"
    # a field `write` reads changes its output, hence `shout`'s input: both run, and write's old output is
    # removed before it runs (nothing made under another key is reused)
    CALLS.clear()
    assert _ran(run_local(SPEC, Config(words=1, upper=True), tmp_path / "run", progress=False)) == ["write", "shout"]
    assert CALLS == ["write (text absent)"]
    record = json.loads((tmp_path / "run/run.json").read_text())
    assert set(record["stages"]) == {"write", "shout"} and record["stages"]["shout"]["result"] == {"length": 4}
    assert json.loads((tmp_path / "run/run_config.json").read_text()) == {"words": 1, "upper": True}


def test_a_deleted_or_edited_output_is_recomputed(tmp_path: Path) -> None:
    run_local(SPEC, Config(), tmp_path / "run", progress=False)
    (tmp_path / "run/out/shout.txt").write_text("edited")
    assert _ran(run_local(SPEC, Config(), tmp_path / "run", progress=False)) == ["shout"]
    (tmp_path / "run/text.txt").unlink()
    assert _ran(run_local(SPEC, Config(), tmp_path / "run", progress=False)) == ["write"]  # same text: shout cached


def test_refresh_recomputes_every_stage(tmp_path: Path) -> None:
    run_local(SPEC, Config(), tmp_path / "run", progress=False)
    assert _ran(run_local(SPEC, Config(), tmp_path / "run", refresh=True, progress=False)) == ["write", "shout"]


def test_a_killed_run_resumes_at_the_first_unfinished_stage(tmp_path: Path) -> None:
    """A stage that dies leaves no record; the next run reuses the finished stage and runs the rest."""
    layout = Files(tmp_path / "run")
    layout.root.mkdir()
    execute_stage(SPEC, SPEC.stage("write"), Config(), layout)
    assert _ran(run_local(SPEC, Config(), tmp_path / "run", progress=False)) == ["shout"]


def test_a_user_error_in_a_stage_names_the_run_and_the_stage(tmp_path: Path) -> None:
    def broken(config: Config, layout: Files, context: StageContext) -> dict:
        raise UserError("the input is bad", path="x.nc")

    spec = RunSpec(domain="words", description="", config=Config, layout=Files,
                   stages=(Stage("write", broken, "fails", outputs=("text",)),), summary=summary)
    with pytest.raises(UserError, match=r"words run: stage 'write' failed: x.nc: the input is bad"):
        run_local(spec, Config(), tmp_path / "run", progress=False)


def test_declarations_are_checked_when_made() -> None:
    def stage(name: str, **kw) -> Stage:
        return Stage(name, write, "", **kw)

    with pytest.raises(ValueError, match="not written by an earlier stage"):
        RunSpec(domain="d", description="", config=Config, layout=Files, summary=summary,
                stages=(stage("b", inputs=("text",), outputs=("shout",)), stage("a", outputs=("text",))))
    with pytest.raises(ValueError, match="no config field"):
        RunSpec(domain="d", description="", config=Config, layout=Files, summary=summary,
                stages=(stage("a", outputs=("text",), config=("wordz",)),))
    with pytest.raises(ValueError, match="already written"):
        RunSpec(domain="d", description="", config=Config, layout=Files, summary=summary,
                stages=(stage("a", outputs=("text",)), stage("b", outputs=("text",))))
    with pytest.raises(ValueError, match="not an artefact"):
        RunSpec(domain="d", description="", config=Config, layout=Files, summary=summary,
                stages=(stage("a", outputs=("nope",)),))
    with pytest.raises(ValueError, match="inside the run directory"):
        artefact("../escape", "file", "")


def test_two_runs_on_one_directory_are_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with run_lock(tmp_path / "run"):
        with pytest.raises(UserError, match="another velocast run"):
            run_local(SPEC, Config(), tmp_path / "run", progress=False)


def test_a_damaged_record_costs_a_recomputation_not_a_crash(tmp_path: Path) -> None:
    run_local(SPEC, Config(), tmp_path / "run", progress=False)
    (tmp_path / "run/run.json").write_text("{not json")
    assert _ran(run_local(SPEC, Config(), tmp_path / "run", progress=False)) == ["write", "shout"]


def test_out_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="must be a directory"):
        run_local(SPEC, Config(), tmp_path / "file", progress=False)
