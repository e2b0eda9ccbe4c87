"""A report's self-contained HTML twin: ``report.md`` → ``report.html`` beside it, with every plot inlined.

The Markdown is rendered with Python-Markdown (tables, attribute lists); every local image is embedded as a
``data:`` URI, so the one file can be mailed, attached to a ticket or opened offline. No scripts, no CDN.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f2f2f2; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
em { color: #555; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""

_IMAGE = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')


def _inline(match: re.Match[str], base: Path) -> str:
    source = match.group(2)
    if re.match(r"^[a-z]+:", source):  # already a data: or http(s): URI
        return match.group(0)
    path = (base / html.unescape(source)).resolve()
    if not path.is_file():
        return match.group(0)
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"{match.group(1)}data:{kind};base64,{data}{match.group(3)}"


def markdown_to_html(text: str, *, base: Path, title: str) -> str:
    """A whole HTML document of the Markdown ``text``, its images (relative to ``base``) inlined."""
    import markdown

    body = markdown.markdown(text, extensions=["tables", "attr_list", "sane_lists"])
    body = _IMAGE.sub(lambda m: _inline(m, base), body)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_html(report: Path, *, title: str | None = None) -> Path:
    """Write ``report.html`` beside the Markdown ``report`` (same name, ``.html``); returns its path."""
    report = Path(report)
    text = report.read_text()
    heading = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), report.stem)
    out = report.with_suffix(".html")
    out.write_text(markdown_to_html(text, base=report.parent, title=title or heading))
    return out
