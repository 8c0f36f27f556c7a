"""Errors a user of the study can meet, each naming its cause, and the log of the others.

Every error the study raises on purpose derives from :class:`StudyError`, so the
CLI and the app can show its message without a traceback. Any other exception
is a failure: :func:`log_traceback` appends its traceback to ``camstudy.log`` in
the results folder and :func:`failure_line` is the one line a user sees.
"""

from __future__ import annotations

from pathlib import Path

# The log of unexpected failures' tracebacks, in the results folder.
LOG_FILE = "camstudy.log"


class StudyError(Exception):
    """Base class for errors the study raises deliberately."""


class DataError(StudyError, ValueError):
    """Bad input data: the message names the file or folder and what to do."""


class ParameterError(StudyError, ValueError):
    """An unknown experiment, profile or parameter, or a value of the wrong type."""


class StudyWarning(UserWarning):
    """Something left out with a reason the user should see (an unreadable run record, ...).

    The CLI prints each as one line, ``camstudy: warning: <message>``.
    """


def log_traceback(exc: BaseException, context: str) -> Path:
    """Append ``exc``'s traceback to ``camstudy.log`` in the results folder and return the log's path.

    Args:
        exc: The exception.
        context: What was running (the command line, ``camstudy app``), written above the traceback.

    Returns:
        The log file; a temporary folder's when the results folder is not writable.
    """
    import tempfile
    import time
    import traceback

    from common.report.results import results_root

    text = f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {context}\n" + "".join(traceback.format_exception(exc))
    for folder in (results_root(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / LOG_FILE).open("a", encoding="utf-8") as handle:
                handle.write(text)
            return folder / LOG_FILE
        except OSError:
            continue
    return Path(tempfile.gettempdir()) / LOG_FILE


def failure_line(exc: BaseException, log: Path) -> str:
    """The one line of an unexpected failure: its type, its message's first line and where the traceback is."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line} (the traceback is in {log})"
