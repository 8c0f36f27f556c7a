"""The template environment and the cell filters of common.report.render."""

from __future__ import annotations

import jinja2
import pytest

from common.report import render


def test_cell_escapes_pipes_and_dashes_none():
    assert render.cell("a|b") == "a\\|b"
    assert render.cell(None) == "–"
    assert render.cell(0) == "0"


@pytest.mark.parametrize(
    "value, digits, text",
    [
        (7.345, 2, "7.34"),
        (880.25, 1, "880.2"),
        (41.3, 0, "41"),
        (float("nan"), 2, "–"),
        ("7", 2, "–"),
        (None, 1, "–"),
    ],
)
def test_number_formats_numbers_only(value, digits, text):
    assert render.number(value, digits) == text


def test_fixed3_and_one_line():
    assert render.fixed3(0.982) == "0.982" and render.fixed3(None) == "–"
    assert render.one_line("a\n  b <data dir> `x <y>`") == "a b &lt;data dir&gt; `x <y>`"
    assert render.one_line("") == "–"


def test_every_template_renders_and_an_unknown_name_is_an_error():
    assert sorted(p.name for p in render.TEMPLATE_DIR.iterdir()) == [
        "banner.md.j2",
        "datasets.md.j2",
        "missing.md.j2",
        "overview.md.j2",
        "performance.md.j2",
        "real_banner.md.j2",
        "real_scans.md.j2",
        "which_cam.md.j2",
    ]
    assert render.render("missing.md.j2", title="T", experiment_id="x").startswith("# T\n\nThis experiment")
    with pytest.raises(jinja2.UndefinedError):
        render.render("missing.md.j2", title="T")
