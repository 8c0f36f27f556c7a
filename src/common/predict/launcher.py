"""Starting the Streamlit app (``camstudy app``) and the results folder it lists."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common.report.results import results_root

# `camstudy app --results-dir` reaches the Streamlit script through this variable.
RESULTS_DIR_ENV = "CAMSTUDY_APP_RESULTS"
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8501


def app_results_dir() -> Path:
    """Results folder the app lists: ``$CAMSTUDY_APP_RESULTS`` or ``results/``."""
    configured = os.environ.get(RESULTS_DIR_ENV)
    return Path(configured) if configured else results_root()


def app_script() -> Path:
    """Path of the Streamlit script (:mod:`common.app`)."""
    return Path(__file__).parent.parent / "app.py"


def streamlit_command(port: int = DEFAULT_PORT, address: str = DEFAULT_ADDRESS) -> list[str]:
    """The command that serves the app headless (no browser opened, no usage statistics).

    Args:
        port: Port to listen on.
        address: Interface to listen on.

    Returns:
        The command's arguments, starting with this Python interpreter.
    """
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_script()),
        "--server.headless",
        "true",
        "--server.address",
        address,
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",  # no "Deploy" button on a research page
        "--client.showErrorDetails",
        "none",  # the page shows the study's one-line errors; tracebacks go to the console and camstudy.log
    ]
