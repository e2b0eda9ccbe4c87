"""MkDocs hook: the reference pages, generated from the code at build time (never copied by hand).

A page asks for generated content with a marker line; the hook replaces it with Markdown:

    <!-- generated: cli -->           every `velocast` command, from the Typer/Click app of pipeline.cli
    <!-- generated: config -->        every config model (runs and verbs of each domain, the ingest recipe)
    <!-- generated: http -->          the query service's endpoints, from the FastAPI app's OpenAPI schema
    <!-- generated: run-layouts -->   each domain's run: its stages and the artefacts of its run directory

The build also adds the OpenAPI schema to the site as ``reference/openapi.json``.
Run ``python docs/hooks/reference.py cli`` (or ``config``, ``http``, ``run-layouts``) to print one part.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import typing
from functools import cache
from pathlib import Path
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", flags=re.MULTILINE)


# -- MkDocs events ------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda match: generate(match.group(1)), markdown)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(openapi_schema(), indent=1)))
    return files


def generate(part: str) -> str:
    parts = {"cli": cli_markdown, "config": config_markdown, "http": http_markdown, "run-layouts": run_layouts_markdown}
    if part not in parts:
        raise ValueError(f"unknown generated part {part!r}; known: {', '.join(parts)}")
    return parts[part]()


def _cell(text: Any) -> str:
    """Text for a Markdown table cell (one line, pipes escaped)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: Any) -> str:
    return f"`{_cell(text)}`" if str(text) != "" else ""


# -- the command line ----------------------------------------------------------------------------------------


@cache
def _cli_root() -> Any:
    import typer.main

    from pipeline.cli import load_commands
    from pipeline.cli.root import app

    load_commands()
    return typer.main.get_command(app)


def _type_name(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if getattr(param, "is_flag", False):
        return "flag"
    if annotation is None:
        return ""
    names = {"str": "text", "Path": "path", "int": "integer", "float": "number"}
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (str,)
        name = getattr(item, "__name__", str(item))
        return f"{names.get(name, name)}, repeatable"
    name = getattr(annotation, "__name__", str(annotation))
    return names.get(name, name)


def _usage(path: str, command: Any) -> str:
    pieces = [path]
    if getattr(command, "commands", None):
        pieces.append("COMMAND")
    elif any(p.param_type_name == "option" for p in command.params):
        pieces.append("[OPTIONS]")
    for param in command.params:
        if param.param_type_name == "argument":
            name = param.name.upper() + ("..." if param.nargs == -1 else "")
            pieces.append(name if param.required else f"[{name}]")
    return " ".join(pieces)


def _command_markdown(path: str, command: Any, level: int) -> list[str]:
    out = [f"{'#' * level} `{path}`", "", "```text", _usage(path, command), "```", ""]
    if command.help:
        out += [command.help.strip(), ""]
    subcommands = getattr(command, "commands", None) or {}
    if subcommands:
        out += ["| command | what it does |", "|---|---|"]
        out += [f"| [`{path} {name}`](#{_anchor(path + ' ' + name)}) | {_cell(_first_paragraph(sub.help))} |"
                for name, sub in subcommands.items() if not sub.hidden]
        out.append("")
    rows = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            names = param.name.upper()
        else:
            names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        required = "yes" if param.required else ""
        default = param.default
        shown = "" if default in (None, False, [], ()) or callable(default) else _code(default)
        rows.append(f"| {names} | {_type_name(param)} | {required} | {shown} | {_cell(param.help or '')} |")
    if rows:
        out += ["| option | type | required | default | meaning |", "|---|---|---|---|---|", *rows,
                "| `-h`, `--help` | flag | | | Show the help and exit. |", ""]
    for name, sub in subcommands.items():
        if not sub.hidden:
            out += _command_markdown(f"{path} {name}", sub, min(level + 1, 4))
    return out


def _first_paragraph(text: str | None) -> str:
    return (text or "").strip().split("\n\n")[0]


def _anchor(title: str) -> str:
    """The anchor MkDocs' toc extension gives a heading ``title`` (``velocast run weather`` → velocast-run-weather)."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower())


def cli_markdown() -> str:
    root = _cli_root()
    return "\n".join(_command_markdown("velocast", root, 2))


# -- configuration -------------------------------------------------------------------------------------------


def _config_entries() -> list[tuple[str, str, type]]:
    """(title, where it is used, model) for every config model a user writes: each domain's run and verbs,
    the ingest recipe."""
    from pipeline.domains import domains, resolve
    from pipeline.weather.recipe import Recipe

    entries = []
    for domain in domains():
        spec = resolve(domain.run)
        entries.append((f"run {domain.name}", f"`velocast run {domain.name} --config FILE.yaml`", spec.config))
        for verb in domain.verbs:
            entries.append((f"{verb.name} {domain.name}", f"`velocast {verb.name} {domain.name} --config FILE.yaml`",
                            resolve(verb.config)))
    entries.append(("ingest weather (recipe)", "`velocast ingest weather RECIPE.yaml`", Recipe))
    return entries


def _type_text(annotation: Any, models: dict[type, str]) -> str:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in models:
            anchor = annotation.__name__.lower()
            while anchor in models.values():
                anchor += "-"
            models[annotation] = anchor
        return f"[{annotation.__name__}](#{models[annotation]})"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin is typing.Annotated:
        return _type_text(args[0], models)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_text(a, models) for a in args)
    if origin is not None:
        inner = ", ".join(_type_text(a, models) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default_text(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except TypeError:
        text = repr(value)
    return _code(text)


def _model_table(model: type, models: dict[type, str]) -> list[str]:
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        rows.append(f"| `{name}` | {_type_text(field.annotation, models)} | {_default_text(field)} | "
                    f"{_cell(field.description or '')} |")
    return rows


def config_markdown() -> str:
    from pipeline.domains import domains, resolve

    out: list[str] = []
    models: dict[type, str] = {}  # nested model → its anchor
    for title, usage, model in _config_entries():
        out += [f"## {title}", "", (f"`{model.__name__}` (`{model.__module__}`), read by {usage}; every field can "
                                    "also be set with `--set KEY=VALUE` (dotted keys for nested fields)."), ""]
        doc = (model.__doc__ or "").strip()
        if doc:
            out += [doc.split("\n\n")[0].replace("\n", " "), ""]
        out += _model_table(model, models)
        out.append("")
    for domain in domains():
        spec = resolve(domain.run)
        if "quick" in spec.presets:
            import yaml

            preset = yaml.safe_dump(json.loads(json.dumps(spec.presets["quick"](), default=str)), sort_keys=False)
            out += [f"## run {domain.name} --quick", "",
                    (f"The fields `--quick` sets on `velocast run {domain.name}` (then `--config` and `--set` apply "
                     "on top):"), "", "```yaml", preset.rstrip(), "```", ""]
    out += ["## Nested models", "", ("Sections of the configs above, at their class defaults (a run may set other "
                                     "defaults for a section: the table of the run shows them)."), ""]
    done: set[type] = set()
    while len(done) < len(models):
        for model in sorted(set(models) - done, key=lambda m: (m.__name__, m.__module__)):
            done.add(model)
            out += [f"### {model.__name__} {{#{models[model]}}}", "", f"`{model.__module__}.{model.__name__}`", ""]
            doc = (model.__doc__ or "").strip()
            if doc:
                out += [doc.split("\n\n")[0].replace("\n", " "), ""]
            out += _model_table(model, models)
            out.append("")
    return "\n".join(out)


# -- the HTTP API --------------------------------------------------------------------------------------------


@cache
def openapi_schema() -> dict[str, Any]:
    """The query service's OpenAPI schema (the app built on an empty forecast store)."""
    from pipeline.forecast_store.service import create_app
    from pipeline.forecast_store.store import ForecastStore

    with tempfile.TemporaryDirectory() as tmp:
        ForecastStore.open_or_create(Path(tmp) / "empty.icechunk")
        return create_app(str(Path(tmp) / "empty.icechunk")).openapi()


def _schema_type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_schema_type(s) for s in schema["anyOf"] if s.get("type") != "null")
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    kind = schema.get("type", "")
    if kind == "array":
        return f"array of {_schema_type(schema.get('items', {}))}"
    return kind


def http_markdown() -> str:
    schema = openapi_schema()
    info = schema["info"]
    out = [f"Version {info.get('version', '')} of *{info['title']}*: {info.get('description', '')}", ""]
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            out += [f"### `{method.upper()} {path}`", ""]
            text = operation.get("description") or operation.get("summary") or ""
            if text:
                out += [text.strip(), ""]
            params = operation.get("parameters", [])
            if params:
                out += ["| parameter | in | type | required | default | meaning |", "|---|---|---|---|---|---|"]
                for p in params:
                    s = p.get("schema", {})
                    default = _code(json.dumps(s["default"])) if "default" in s else ""
                    out.append(f"| `{p['name']}` | {p.get('in', '')} | {_schema_type(s)} | "
                               f"{'yes' if p.get('required') else ''} | {default} | "
                               f"{_cell(p.get('description') or s.get('description') or '')} |")
                out.append("")
            responses = operation.get("responses", {})
            if responses:
                out += ["Responses: " + "; ".join(f"`{code}` {_cell(r.get('description', ''))}"
                                                  for code, r in responses.items()), ""]
    return "\n".join(out)


# -- run directories -----------------------------------------------------------------------------------------


def run_layouts_markdown() -> str:
    from pipeline.domains import domains, resolve

    out: list[str] = []
    for domain in domains():
        spec = resolve(domain.run)
        out += [f"### `velocast run {domain.name} --out RUN`", "", spec.description.strip(), "",
                "| path in `RUN/` | kind | what it holds |", "|---|---|---|"]
        for artefact in spec.layout.artefacts().values():
            out.append(f"| `{artefact.path}` | {artefact.kind} | {_cell(artefact.description)} |")
        out += ["| `run.json` | file | each stage's cache key, output fingerprints, result and wall time |",
                "| `run_config.json` | file | the config the run used |", "",
                "| stage | what it does | reads | writes |", "|---|---|---|---|"]
        for stage in spec.stages:
            out.append(f"| `{stage.name}` | {_cell(stage.description)} | {', '.join(stage.inputs)} | "
                       f"{', '.join(stage.outputs)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(generate(sys.argv[1] if len(sys.argv) > 1 else "cli"))
