"""Every config group's options, read from the configs themselves: `stance config options`, and the lists in README.md
and docs/experiments.md (between `<!-- options:... -->` markers), which `make docs` rewrites and a test keeps true."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import yaml

from stance.config import CONF_MODULE

# Groups in the order a reader meets them; others follow alphabetically.
ORDER = ("data", "features", "classifier", "task", "experiment", "hypotheses", "hydra/launcher")
_SENTENCE = re.compile(r"^(.+?\.)(?:\s|$)")
_MARKERS = re.compile(r"(<!-- options:(?P<style>\w+) -->\n)(.*?)(<!-- /options -->)", re.S)


def conf_root() -> Path:
    """The folder of the installed configs (the checkout's `conf/` in an editable install)."""
    return Path(str(importlib.resources.files(CONF_MODULE)))


def summary(path: Path) -> str:
    """The first sentence of a config's leading comment, else of its corpus description."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    if not text:
        node = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        text = " ".join(str((node.get("corpus") or {}).get("description", "")).split())
    found = _SENTENCE.match(text)
    first = found.group(1) if found else text
    return first if len(first) <= 160 else first[:157].rsplit(" ", 1)[0] + " ..."


def config_options() -> dict[str, dict[str, str]]:
    """Config group -> {option: summary}, for every YAML file under `conf/` but the top-level config."""
    root = conf_root()
    groups: dict[str, dict[str, str]] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.parent != root:
            groups.setdefault(path.parent.relative_to(root).as_posix(), {})[path.stem] = summary(path)
    ranked = [g for g in ORDER if g in groups] + sorted(set(groups) - set(ORDER))
    return {group: groups[group] for group in ranked}


def render(style: str) -> str:
    """`groups`: one line per group with its options; `table`: a Markdown table of every option with its summary."""
    options = config_options()
    if style == "groups":
        return "".join(f"- `{g}`: {', '.join(f'`{o}`' for o in names)}\n" for g, names in options.items())
    if style == "table":
        rows = [
            f"| `{g}={o}` | {text.replace('|', '/')} |\n" for g, names in options.items() for o, text in names.items()
        ]
        return "| option | what it is (from the first line of its YAML file) |\n|---|---|\n" + "".join(rows)
    raise ValueError(f"Unknown options style {style!r}; use groups or table.")


def rewrite(path: Path) -> bool:
    """Regenerate every `<!-- options:STYLE -->` block of a Markdown file; whether it changed."""
    text = path.read_text(encoding="utf-8")
    new = _MARKERS.sub(lambda m: m.group(1) + render(m.group("style")) + m.group(4), text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
