"""The Jinja environment the page and the plot share, with the value filters their templates use.

Every template is autoescaped: all the text comes from JSON files in the run folder, so a title
cannot inject markup. ``StrictUndefined`` turns a misspelt name in a template into an error at
test time instead of a silently empty cell.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def is_number(value: Any) -> bool:
    """A JSON number (booleans are JSON's own type, not numbers to sort or plot)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: Any) -> str:
    """A table value as text: 4 significant digits for floats, JSON for structures."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def sort_key(value: float) -> str:
    """A number's ``data-v``: its exact value, so the table sorts by it whatever the displayed
    rounding; empty for NaN and infinities, which the page's script sorts last."""
    return repr(float(value)) if math.isfinite(value) else ""


def px(value: float) -> str:
    """An SVG coordinate: a tenth of a pixel is finer than any screen shows."""
    return f"{value:.1f}"


@functools.cache
def environment() -> Environment:
    """The templates of ``experiments/report/templates``, loaded once per process."""
    env = Environment(
        loader=PackageLoader("paramviz.experiments.report"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, sort_key=sort_key, px=px)
    env.tests["numeric"] = is_number
    return env


def render(template: str, **context: Any) -> Markup:
    """A template rendered; the result is markup, so embedding it in another is not re-escaped."""
    return Markup(environment().get_template(template).render(**context))


def static_text(name: str) -> Markup:
    """A file of ``experiments/report/static`` (the page's CSS and script), inlined as it is: it
    ships with the package, and escaping would break it."""
    return Markup(resources.files(__package__).joinpath("static", name).read_text("utf-8"))
