"""What a reader must never see on a built page, checked in headless Chromium.

:func:`page_problems` opens one page of a built book and lists what a
publication would not show: log noise (tracebacks, TensorFlow's C++ and Python
log lines), the runner's temporary folders and absolute paths of the machine
that built it, and values in tables (:data:`VALUE_CELLS`: a number and its
interval, a row's name) whose text wraps onto more than :data:`MAX_CELL_LINES`
lines at the reader's window width. The smoke build of
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
    "cuda drivers",
    "absl::InitializeLog",
    ".running-",
)
# The window a reader has, and the rule: no value wraps onto more than MAX_CELL_LINES lines.
# Values are the cells of data tables (the tables notebooks print, the generated pages' value tables)
# and the first cell of every row of any table, which names the row; the other cells of a prose table
# (the introduction's "what the paper did") are sentences and wrap like sentences.
WINDOW = (1400, 900)
MAX_CELL_LINES = 2
VALUE_CELLS = ", ".join(
    f"main {table} {cell}"
    for table, cell in (
        (".cell_output table", "td"),
        (".cell_output table", "th"),
        (".value-table table", "td"),
        (".value-table table", "th"),
        ("table tr", "> :first-child"),
    )
)

# The number of text lines of each table cell in the main article: the vertical centres of its text's
# line boxes, counted once per line (centres closer than 0.6 of the font size share a line, so inline
# code with its own padding does not count as a line of its own).
_CELL_LINES_JS = """
return Array.from(document.querySelectorAll(arguments[0])).map(cell => {
  const centres = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    if (!walker.currentNode.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(walker.currentNode);
    for (const r of range.getClientRects()) if (r.width > 0) centres.push(r.top + r.height / 2);
  }
  centres.sort((a, b) => a - b);
  const gap = 0.6 * (parseFloat(getComputedStyle(cell).fontSize) || 16);
  let lines = 0, last = -Infinity;
  for (const c of centres) if (c - last > gap) { lines += 1; last = c; }
  return [cell.innerText.trim(), lines];
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
    cells = driver.execute_script(_CELL_LINES_JS, VALUE_CELLS)
    wrapped = [(cell, lines) for cell, lines in cells if lines > MAX_CELL_LINES]
    problems += [f"a table cell wraps onto {lines} lines: {cell!r}" for cell, lines in wrapped[:5]]
    if len(wrapped) > 5:
        problems.append(f"... and {len(wrapped) - 5} more wrapped cells")
    return problems
