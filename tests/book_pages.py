"""What a reader must never see on a built page, checked in headless Chromium.

:func:`page_problems` opens one page of a built book and lists what a
publication would not show: log noise (tracebacks, TensorFlow's C++ and Python
log lines), the runner's temporary folders and absolute paths of the machine
that built it, and table cells holding a value (a number and its interval, a
name) whose text wraps onto more than :data:`MAX_CELL_LINES` lines at the
reader's window width. The smoke build of
``tests/runs/test_book.py`` and a full ``make book`` build are checked with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

# Text that is log noise or a machine detail wherever it appears on a page.
FORBIDDEN = (
    "Traceback",
    "E0000",
    "I0000",
    "W0000",
    "WARNING:tensorflow",
    "node_def_util",
    "cuInit",
    "absl::InitializeLog",
    ".running-",
)
# The window a reader has, and the rule: no table cell wraps its value onto more lines than
# MAX_CELL_LINES. A value is a cell of at most VALUE_CHARACTERS characters (a number with its interval,
# a name, a setting); longer cells are prose (a data set's description) and may wrap like prose.
WINDOW = (1400, 900)
MAX_CELL_LINES = 2
VALUE_CHARACTERS = 60

# The number of text lines of each table cell in the main article: distinct tops of its text's line boxes.
_CELL_LINES_JS = """
return Array.from(document.querySelectorAll('main table td, main table th')).map(cell => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = new Set(Array.from(range.getClientRects()).filter(r => r.width > 0).map(r => Math.round(r.top)));
  return [cell.innerText.trim(), tops.size];
});
"""


def load(driver, page: Path) -> None:
    """Open ``page`` and wait until it has loaded (30 s at most)."""
    driver.get(page.as_uri())
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, f"{page} did not finish loading"
        time.sleep(0.2)


def page_problems(driver, page: Path, machine_paths: Iterable[str | Path]) -> list[str]:
    """What is wrong with one built page, as a reader sees it at :data:`WINDOW`; empty when nothing is.

    Args:
        driver: A selenium Chromium driver.
        page: A built HTML page.
        machine_paths: Absolute paths of the machine that must not appear (the project, the results).
    """
    driver.set_window_size(*WINDOW)
    load(driver, page)
    text = driver.execute_script("return document.querySelector('main').innerText")
    problems = [f"shows {word!r}" for word in FORBIDDEN if word in text]
    problems += [f"shows the machine path {path}" for path in map(str, machine_paths) if path in text]
    cells = driver.execute_script(_CELL_LINES_JS)
    wrapped = [(cell, lines) for cell, lines in cells if lines > MAX_CELL_LINES and len(cell) <= VALUE_CHARACTERS]
    problems += [f"a table cell wraps onto {lines} lines: {cell!r}" for cell, lines in wrapped[:5]]
    if len(wrapped) > 5:
        problems.append(f"... and {len(wrapped) - 5} more wrapped cells")
    return problems
