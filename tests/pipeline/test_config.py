"""Config loading: YAML < --set < flags, unknown keys refused, every problem a one-line UserError."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import StrictModel, dump_config, load_config, parse_set_overrides
from pipeline.errors import UserError


class Inner(StrictModel):
    lr: float = 1e-3
    steps: int = 100


class Outer(StrictModel):
    name: str = "run"
    train: Inner = Inner()


def test_precedence_defaults_yaml_set_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: from-yaml\ntrain:\n  lr: 0.01\n  steps: 5\n")
    loaded = load_config(Outer, cfg, sets=["train.steps=7"], overrides={"name": "from-flag", "train": None})
    assert loaded.name == "from-flag"
    assert loaded.train.lr == 0.01
    assert loaded.train.steps == 7


def test_unknown_key_is_a_user_error_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"train\.learning_rate"):
        load_config(Outer, cfg)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(UserError, match=r"bad\.yaml: not valid YAML at line"):
        load_config(Outer, cfg)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError):
        load_config(Outer, cfg)


def test_dump_then_load_round_trips(tmp_path: Path) -> None:
    original = Outer(name="x", train=Inner(lr=0.5, steps=3))
    dump_config(original, tmp_path / "o.yaml")
    assert load_config(Outer, tmp_path / "o.yaml") == original


def test_set_override_rejects_missing_equals() -> None:
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_set_overrides(["train.lr"])


def test_set_on_a_nested_section_keeps_the_models_own_defaults_for_it(tmp_path: Path) -> None:
    """`--set train.steps=7` on a run whose default `train` differs from TrainConfig's class defaults changes
    steps only: the run's lr, batch size and time budget stay (a partial section never resets the rest)."""
    from pipeline.weather.run import RUN

    default = RUN.config().train
    cfg = load_config(RUN.config, sets=["train.steps=7"])
    assert cfg.train.steps == 7
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.max_minutes) == (default.lr, default.batch_size,
                                                                          default.max_minutes)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("train:\n  lr: 0.002\n")
    from_yaml = load_config(RUN.config, yaml_file)
    assert from_yaml.train.lr == 0.002 and from_yaml.train.max_minutes == default.max_minutes


def test_quick_preset_composes_with_config_and_set(tmp_path: Path) -> None:
    """`--quick --config F --set K=V`: the preset's values, then the file's, then the pair's; the rest of each
    preset section stays the preset's."""
    from pipeline.weather.run import RUN

    quick = RUN.configure("quick")
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("members: 6\ntrain:\n  steps: 11\n")
    cfg = load_config(RUN.config, yaml_file, sets=["lead_days=0.5"], base=RUN.presets["quick"]())
    assert (cfg.members, cfg.train.steps, cfg.lead_days) == (6, 11, 0.5)
    assert cfg.train.batch_size == quick.train.batch_size and cfg.network == quick.network
    assert cfg.train_days == quick.train_days != RUN.config().train_days


def test_dates_in_yaml_and_set_stay_the_text_written(tmp_path: Path) -> None:
    """``end: 2020-12-31`` unquoted (file or --set) reaches a string field as that text, not YAML's date."""

    class Window(StrictModel):
        start: str
        end: str | None = None

    path = tmp_path / "w.yaml"
    path.write_text("start: 2020-01-01\nend: 2020-12-31T18:00\n")
    assert load_config(Window, path) == Window(start="2020-01-01", end="2020-12-31T18:00")
    assert parse_set_overrides(["time.end=2020-01-20"]) == {"time": {"end": "2020-01-20"}}


def test_set_reaches_into_a_list_by_index(tmp_path: Path) -> None:
    """`--set sources.0.path=x.nc` changes the first source's path and keeps its other fields; an index past
    the end is one line saying how many there are."""
    from pipeline.weather.recipe import Recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("sources:\n  - {path: a.nc, member: 1}\n  - {path: b.nc}\nvariables: {2m_temperature: {}}\n")
    loaded = load_config(Recipe, recipe, sets=["sources.0.path=x.nc"])
    assert [s.path for s in loaded.sources] == ["x.nc", "b.nc"] and loaded.sources[0].member == 1
    with pytest.raises(UserError, match="has 2 item"):
        load_config(Recipe, recipe, sets=["sources.5.path=x.nc"])


def test_off_and_no_are_option_words_and_boolean_fields_still_take_them(tmp_path: Path) -> None:
    """YAML 1.2 booleans: ``amp: off`` (file or --set) reaches a Literal option as "off" rather than False, while a
    boolean field still reads true/false/yes/no/on/off."""
    from typing import Literal

    class Train(StrictModel):
        amp: Literal["auto", "bf16", "off"] = "auto"
        tensorboard: bool = True
        progress: bool = False

    path = tmp_path / "t.yaml"
    path.write_text("amp: off\ntensorboard: no\nprogress: true\n")
    assert load_config(Train, path) == Train(amp="off", tensorboard=False, progress=True)
    assert load_config(Train, sets=["amp=off", "tensorboard=off", "progress=on"]) == Train(
        amp="off", tensorboard=False, progress=True)
