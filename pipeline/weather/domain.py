"""The weather domain as the CLI and the runners see it: its run and its verbs (``train``, ``calibrate``,
``forecast``, ``evaluate``, ``distill``), declared once; :mod:`pipeline.cli.verbs` builds the commands."""

from __future__ import annotations

from typing import Any

from pipeline.base import SEED, Domain, Flag, Verb, comma_floats, comma_list, distill_verb, sampler_flag, train_verb


def parse_noise_scale(text: str) -> float | dict[str, float]:
    """``--noise-scale``: ``0.6`` → 0.6; ``geopotential=0.45,temperature=0.6`` → a mapping."""
    try:
        if "=" not in text:
            return float(text)
        pairs = [part.split("=") for part in text.split(",") if part.strip()]
        return {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise ValueError(f"expected a number or NAME=VALUE pairs separated by commas, got {text!r}") from None


NOISE_SCALE_HELP = ("Size λ of the sampler noise: one number, or VARIABLE=λ pairs such as "
                    "geopotential=0.45,temperature=0.6 (a channel name like temperature_850 also works; default: "
                    "the run's calibration.json from `velocast calibrate weather`, else 1).")
TEACHER_NOISE_HELP = ("Teacher's sampler noise size λ (default: the teacher's calibration.json, else 1); the "
                      "student inherits it.")
INIT_TIMES_HELP = "Init times: ISO (comma-separated or repeated) or START/END/STEP."


def calibrate_summary(record: dict, config: Any, out: Any) -> str:
    import numpy as np

    from pipeline.weather.modeling.rollout import describe_noise_scale

    lines = [f"  λ {describe_noise_scale(h['noise_scale'])}, ρ {h['noise_memory']:.2f}: CRPS {h['crps']:.5f}, "
             f"spread/skill {h['ssr']:.3f} (max |log SSR| {h['max_abs_log_ssr']:.3f})" for h in record["history"]]
    by_lead = np.concatenate([np.asarray(v) for v in record["validation_ssr_by_lead"].values()])
    lines.append(f"noise scale λ {describe_noise_scale(record['noise_scale'])}, memory ρ {record['noise_memory']:.2f} "
                 f"(validation spread/skill {by_lead.min():.2f} … {by_lead.max():.2f} over variables and leads) "
                 f"-> {config.model}/calibration.json")
    factors = record.get("spread_factors")
    if factors:
        by_lead = np.concatenate([np.asarray(v) for v in factors["validation_ssr_by_lead"].values()])
        alphas = np.concatenate([np.asarray(v) for v in factors["channels"].values()])
        lines.append(f"spread factors {alphas.min():.2f} … {alphas.max():.2f}: validation CRPS "
                     f"{record['validation_crps']:.5f} -> {factors['validation_crps']:.5f}, spread/skill "
                     f"{by_lead.min():.2f} … {by_lead.max():.2f}")
    return "\n".join(lines)


def forecast_summary(summary: Any, config: Any, out: Any) -> str:
    return (f"{len(summary.written)} cycles written, {len(summary.skipped)} already present; {summary.members} "
            f"members x {summary.lead_steps} steps, {summary.nfe_per_step} network calls per step, "
            f"{summary.seconds:.1f} s -> {out}")


def evaluate_summary(metrics: dict, config: Any, out: Any) -> Any:
    from rich.console import Group

    from pipeline.console import rows_table
    from pipeline.weather.report import headline_rows

    return Group(rows_table(headline_rows(metrics), title="fair CRPS by lead (lower is better)"),
                 f"report: {out}/report.md")


def distill_summary(summary: dict, config: Any, out: Any) -> str:
    from pipeline.weather.modeling.rollout import describe_noise_scale

    loss = summary.get("loss")
    k = summary["student_steps"]
    made = (f"{summary['pairs']} teacher pairs at {summary['teacher_nfe']} calls each" if summary["method"] == "reflow"
            else f"a {summary['method']} fine-tune on the training windows")
    return (f"distilled {config.model} -> {out}: {made}, {summary['steps']} student steps"
            + (f", loss {loss:.4f}" if loss is not None else "")
            + f"; forecasts default to euler x{k} ({k} network calls per step) from the teacher's noise "
            f"λ {describe_noise_scale(summary['noise_scale'])}, ρ {summary['noise_memory']}")


def calibrate(config: Any, *, out: Any = None, progress: bool = True) -> dict:
    """``velocast calibrate weather`` writes into the model's run directory; it takes no ``--out``."""
    from pipeline.weather.modeling.calibrate import calibrate_spread

    return calibrate_spread(config)


DOMAIN = Domain(
    name="weather",
    help="the Held–Suarez atmosphere: simulate → train → calibrate → forecast → evaluate",
    run="pipeline.weather.run:RUN",
    operations={"ingest": "pipeline.weather.operations:ingest", "train": "pipeline.weather.operations:train",
                "forecast-cycle": "pipeline.weather.operations:forecast_cycle",
                "verify": "pipeline.weather.operations:verify"},
    verbs=(
        train_verb("Train the conditional flow-matching weather model (or the deterministic baseline with "
                   "--objective mse). Several GPUs or CPU processes: `torchrun --nproc-per-node N -m pipeline train "
                   "weather ...`.",
                   config="pipeline.weather.modeling.train:WeatherTrainConfig",
                   run="pipeline.weather.modeling.train:train_weather",
                   objectives="fm (default), another core preset, or mse.",
                   flags=(Flag("--data", "data", str, "Training store from `velocast ingest weather`."),
                          Flag("--batch-size", "train.batch_size", int, "Global batch size."),
                          Flag("--architecture", "network.architecture", str,
                               "unet (CPU default), transformer or sfno (global grids)."),
                          Flag("--device", "train.device", str, "auto, cpu or cuda."))),
        Verb("calibrate", "Fit the sampler noise's size λ and step-to-step memory ρ on validation init times (the "
                          "(λ, ρ) of the grid with the lowest CRPS, then λ per variable, then the spread factor per "
                          "channel and lead). Writes MODEL/calibration.json, which `velocast forecast weather` then "
                          "uses by default.",
             config="pipeline.weather.modeling.calibrate:CalibrateConfig", run="pipeline.weather.domain:calibrate",
             summary="pipeline.weather.domain:calibrate_summary", out=None,
             flags=(Flag("--model", "model", str, "Run directory of a flow-matching weather model."),
                    Flag("--data", "data", str, "Store with the validation analyses and their truth."),
                    Flag("--init-times", "init_times", list[str], "Validation init times: ISO (comma-separated) or "
                                                                 "START/END/STEP. Never the period you verify on."),
                    Flag("--members", "members", int, "Ensemble members of each calibration rollout."),
                    Flag("--lead-hours", "lead_hours", float, "Longest lead scored."),
                    Flag("--min-lead-hours", "min_lead_hours", float, "Shortest lead scored."),
                    Flag("--noise-scales", "noise_scales", str, "Noise sizes λ of the CRPS grid, comma-separated.",
                         parse=comma_floats),
                    Flag("--noise-memories", "noise_memories", str, "Noise memories ρ of the CRPS grid, "
                                                                   "comma-separated, each in [0, 1).",
                         parse=comma_floats),
                    Flag("--per-variable/--one-scale", "per_variable", bool, "Then λ per variable at each "
                                                                             "variable's own CRPS minimum (one more "
                                                                             "rollout)."),
                    Flag("--spread-factors/--no-spread-factors", "spread_factors", bool,
                         "Then fit the spread factor per channel and lead: the members' deviations from the "
                         "ensemble mean scaled so that the validation spread/skill ratio is 1."),
                    sampler_flag(), Flag("--steps", "sampler_steps", int, "Sampler steps per forecast step."))),
        Verb("forecast", "Roll a trained weather model out as an ensemble; one Icechunk commit per init time.",
             config="pipeline.weather.modeling.generate:ForecastConfig",
             run="pipeline.weather.modeling.generate:forecast_weather",
             summary="pipeline.weather.domain:forecast_summary",
             out="Forecast store (Icechunk); existing cycles are kept.",
             flags=(Flag("--model", "model", str, "Run directory (newest checkpoint) or checkpoint directory."),
                    Flag("--data", "data", str, "Store holding the analyses at and before each init time."),
                    Flag("--init-times", "init_times", list[str], INIT_TIMES_HELP),
                    Flag("--members", "members", int, "Ensemble members (1 for a deterministic model)."),
                    Flag("--lead", "lead", str, "Forecast length, e.g. 5d or 120h."),
                    sampler_flag(),
                    Flag("--steps", "sampler_steps", int, "Sampler steps per forecast step (default: the model's "
                                                          "own, else 8)."),
                    Flag("--guidance", "guidance", float, "Classifier-free guidance scale."),
                    Flag("--noise-scale", "noise_scale", str, NOISE_SCALE_HELP, parse=parse_noise_scale),
                    Flag("--noise-memory", "noise_memory", float, "Correlate each member's sampler noise from one "
                                                                  "step to the next by this factor in [0, 1) (default: "
                                                                  "the run's calibration.json, else 0)."),
                    Flag("--raw-spread", "spread_factors", bool, "Store the raw rollout: skip the calibrated spread "
                                                                 "factors of calibration.json.", value=False),
                    SEED, Flag("--batch-size", "batch_size", int, "Samples per network batch."),
                    Flag("--device", "device", str, "cpu or cuda."))),
        Verb("evaluate", "Score velocast and the baselines (fair CRPS, debiased RMSE, spread/skill, rank "
                         "histograms, ACC) and write the report.",
             config="pipeline.weather.modeling.evaluate:EvaluateConfig",
             run="pipeline.weather.modeling.evaluate:evaluate_weather",
             summary="pipeline.weather.domain:evaluate_summary",
             out="Report directory (metrics.json, report.md, PNG plots).",
             flags=(Flag("--forecast", "forecast", str, "velocast forecast store."),
                    Flag("--truth", "truth", str, "Truth / analysis store covering the valid times."),
                    Flag("--deterministic", "deterministic", str, "Forecast store of the mse model."),
                    Flag("--perfect-model", "perfect_model", str, "Perfect-model ensemble store."),
                    Flag("--variables", "variables", str, "Comma-separated variables to score.", parse=comma_list))),
        Verb("export", "Export a forecast store in another tool's layout: `--to wb2` writes WeatherBench2's forecast "
                       "Zarr (time, prediction_timedelta, realization; valid_time; CF names).",
             config="pipeline.weather.export:ExportConfig", run="pipeline.weather.export:export_weather",
             summary="pipeline.weather.export:export_summary", out=None,
             flags=(Flag("STORE", "store", str, "Forecast store: a local path or s3://BUCKET/PREFIX.", positional=True),
                    Flag("OUT", "out", str, "Output Zarr directory.", positional=True),
                    Flag("--to", "to", str, "Target layout: wb2 (WeatherBench2's forecast Zarr)."),
                    Flag("--snapshot", "snapshot", str, "Export the store as of this snapshot (default: latest)."),
                    Flag("--zarr-format", "zarr_format", int, "Zarr format of the output: 2 (default) or 3."),
                    Flag("--overwrite", "overwrite", bool, "Replace an existing output.", value=True))),
        distill_verb("Distil a weather model into a few-step student (reflow); forecast with it via `velocast "
                     "forecast weather --model OUT`.",
                     config="pipeline.weather.modeling.distill:DistillWeatherConfig",
                     run="pipeline.weather.modeling.distill:distill_weather",
                     summary="pipeline.weather.domain:distill_summary", calls="= network calls per forecast step",
                     data="Training store (default: the teacher's).",
                     flags=(Flag("--noise-scale", "noise_scale", str, TEACHER_NOISE_HELP, parse=parse_noise_scale),
                            Flag("--noise-memory", "noise_memory", float,
                                 "Noise memory ρ the student's forecasts use (default: the teacher's)."),
                            Flag("--max-minutes", "reflow.max_minutes", float,
                                 "Stop the student's training after this (still saves)."))),
    ),
)
