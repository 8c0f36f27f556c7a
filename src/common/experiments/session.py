"""The first step of every notebook: parameters, recorder, seed and runtime of one run.

Example:
    >>> from common.experiments import session
    >>> S = session.start("iqoth", "smoke")
    >>> S.params.epochs
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from common.config import provenance, registry
from common.config.params import RunParams
from common.report.executed import shown_path
from common.report.results import RunRecorder
from common.training import runtime
from common.training.runtime import Runtime

# Parameters too long for the notebook's parameter table (they are in metrics.json).
TABLE_HIDDEN = ("label_map", "cam_layers")
# Folders the table shows relative to the project, or by their name: no machine path on a page.
TABLE_FOLDERS = ("data_dir", "annotations")


@dataclass(frozen=True)
class Session:
    """One run: its typed parameters, the recorder that writes its results, its runtime."""

    params: RunParams
    recorder: RunRecorder
    runtime: Runtime

    def provenance(self) -> provenance.Provenance:
        """Where each of the experiment's paper-profile settings comes from, beside this run's values."""
        return provenance.of(self.params)

    def parameters_table(self) -> Styler:
        """Every parameter of the run, one row each (long maps left out, no machine paths).

        Columns: this run's ``value``; for the registry's parameters also the ``paper`` profile's
        value, its ``source`` (the paper, the authors' code or chosen here) and ``where / why``
        (:mod:`common.config.provenance`); the run's own fields (experiment, profile, data) have none.
        Values are written as in the registry (``null``).

        Returns:
            The table styled for a page: notes in full and left-aligned (a plain DataFrame's page
            would cut them at 50 characters); the DataFrame itself is its ``data``.
        """
        values = {name: value for name, value in self.params.as_dict().items() if name not in TABLE_HIDDEN}
        for name in TABLE_FOLDERS:
            if values.get(name):
                values[name] = shown_path(values[name], Path(values[name]).name)
        table = pd.Series({name: provenance.shown(value) for name, value in values.items()}).to_frame("value")
        settings = {setting.name: setting for setting in self.provenance().settings}
        known = [settings.get(name) for name in table.index]
        table["paper profile"] = [provenance.shown(s.paper_value) if s else "" for s in known]
        table["source"] = [provenance.SOURCES[s.source] if s else "" for s in known]
        table["where / why"] = [s.note if s else "" for s in known]
        return table.style.set_properties(subset=["where / why"], **{"text-align": "left"})


def start(
    experiment_id: str,
    profile: str = "default",
    overrides: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> Session:
    """Resolve the run's parameters, seed everything, choose the runtime and open the recorder.

    Args:
        experiment_id: One of :func:`common.config.registry.experiment_ids`.
        profile: ``smoke``, ``default`` or ``paper``.
        overrides: Single parameters to change (papermill's ``overrides``).
        data_dir: A real data set's root; ``None`` means the embedded phantoms.
        output_dir: Where the run writes; ``None`` means ``results/<experiment>``.

    Returns:
        The run's :class:`Session`. The seed is set before the runtime is chosen,
        and the runtime before any model is built (its precision policy applies to new layers).
    """
    params = registry.resolve(experiment_id, profile, overrides, data_dir)
    recorder = RunRecorder(params, output_dir)
    runtime.set_seed(params.seed)
    return Session(params, recorder, runtime.for_run(params))
