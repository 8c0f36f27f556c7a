"""Render the book's page templates: Jinja2 templates of MyST Markdown in ``templates/``.

The templates hold the pages' prose; Python computes the values and rows and
passes them in. Whitespace follows the template text: a line holding only a
``{% ... %}`` tag leaves no line behind (``trim_blocks``, ``lstrip_blocks``), and
an undefined name is an error rather than an empty string.

The filters every template can use turn values into table-cell text:
``cell`` (any value; a dash for None), ``number`` (a float with ``digits``
decimals; a dash for anything else), ``fixed3`` (a fraction with three
decimals; a dash for None) and ``one_line`` (a YAML text as one line of Markdown).

Example:
    >>> from common.report.render import render
    >>> render("missing.md.j2", title="ResNet50", experiment_id="resnet50-gradcam")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import jinja2

from common.evaluation.tables import MISSING

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def cell(value: object) -> str:
    """Return a value as the text of one Markdown table cell (``|`` escaped, a dash for None).

    Args:
        value: Any value; None for a missing one.
    """
    return MISSING if value is None else str(value).replace("|", "\\|")


def number(value: object, digits: int = 2) -> str:
    """Return a number with ``digits`` decimals, or a dash for a non-number or NaN.

    Args:
        value: The value; anything but an int or float (or a NaN) gives a dash.
        digits: Decimals shown.
    """
    if not isinstance(value, (int, float)) or math.isnan(value):
        return MISSING
    return f"{value:.{digits}f}"


def fixed3(value: float | None) -> str:
    """Return a fraction with three decimals (0.982), or a dash for None.

    Args:
        value: The fraction, or None.
    """
    return MISSING if value is None else f"{value:.3f}"


def one_line(text: object) -> str:
    """Collapse a YAML value to one line of Markdown text (list items need one line).

    Angle brackets outside code spans are escaped, so a placeholder such as
    ``<data dir>`` is shown rather than read as an HTML tag.

    Args:
        text: The value; empty or None gives a dash.
    """
    if not text:
        return MISSING
    pieces = " ".join(str(text).split()).split("`")
    # Even pieces lie outside code spans.
    for index in range(0, len(pieces), 2):
        pieces[index] = pieces[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(pieces)


@cache
def environment() -> jinja2.Environment:
    """Return the Jinja2 environment of the book's templates, with the filters above."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(cell=cell, number=number, fixed3=fixed3, one_line=one_line)
    return env


def render(template: str, **values: object) -> str:
    """Render one template of ``templates/`` with the given values.

    Args:
        template: File name in ``templates/`` (e.g. ``"overview.md.j2"``).
        **values: The names the template uses.

    Returns:
        The rendered MyST Markdown.

    Raises:
        jinja2.UndefinedError: when the template uses a name not given.
    """
    return environment().get_template(template).render(**values)
