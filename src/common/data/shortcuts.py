"""Shortcut audit: can the class be told from how images were acquired, not from what they show?

Public data sets often assemble their classes from different sources: in
IQ-OTH/NCCD 60 of the 61 images that are not 512 x 512 are malignant; a
pneumonia/cancer set may hold cropped journal figures (PNG, JPEG) against TCIA
DICOM exports. A network then separates the classes by source, and its test
score says nothing about lesions. The audit looks for such shortcuts in three
parts, reported separately because they mean different things:

* **Acquisition metadata** (:mod:`common.data.shortcut_features`: format,
  mode, bit depth, size, DICOM scanner and reconstruction tags): a small
  cross-validated classifier's balanced accuracy well above chance means the
  classes differ in how they were acquired or exported: a shortcut, warned about.
* **File size** alone and **global intensity statistics** (mean, spread,
  border and corners, saturated pixels): the same classifiers, but a high score
  *may be real signal* (a large tumour changes the mean and how an image
  compresses; the multi-organ phantoms' organs differ in size on disk), so it is
  reported as a note, not warned about.
* **Pure subgroups**: every metadata value shared by at least
  ``min_subgroup_size`` samples of which at least ``subgroup_purity`` belong to
  one class (IQ-OTH/NCCD: the 623 x 512 and 801 x 512 images, all malignant).

Each feature set is scored by a random forest and by a logistic regression
(one-hot categories, standardised numbers), with out-of-fold predictions of a
stratified k-fold, grouped by the sample table's ``group`` column when it has
groups, so duplicates or one patient's images never sit on both sides. The
balanced accuracy (mean recall over the classes; chance 1/K) gets a percentile
bootstrap interval over the same units (:mod:`common.evaluation.intervals`);
the top features are ranked by permutation importance on the held-out folds.
Every threshold and size is in the ``shortcut_audit`` section of ``registry.yaml``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.config import registry
from common.data import shortcut_features, shortcut_models
from common.data.shortcut_models import CLASSIFIERS, ClassifierScore
from common.errors import DataError
from common.evaluation.estimate import Estimate

# The parts scored separately. File size is its own part: it follows how an image was stored and also what it
# shows (a textured lesion compresses less; a multi-organ phantom set's organs differ in size on disk), so
# like intensity it is reported as a note, never as a shortcut warning.
FEATURE_SETS = ("metadata", "file_size", "intensity")
FILE_SIZE = ("file_kb",)
INTENSITY_CAVEAT = (
    "Intensity statistics and file size may be real signal (a large tumour changes the mean and how an image "
    "compresses), not only a shortcut: read them beside the metadata results."
)
# Why a part well above chance is a note, not a warning.
NOTE_REASONS = {
    "file_size": "File size follows both how images were exported and what they show (texture compresses less).",
    "intensity": "This may be real signal (a large tumour changes the mean) or a difference in export or windowing.",
}
PART_NAMES = {"file_size": "File size alone predicts", "intensity": "Global intensity statistics predict"}


@dataclass(frozen=True)
class Subgroup:
    """A metadata value shared by many samples that nearly all belong to one class.

    Attributes:
        feature: Metadata feature, e.g. ``"size"``.
        value: Its value, e.g. ``"623x512"`` (width x height).
        n: Samples with the value.
        label: The class most of them belong to.
        purity: Share of the ``n`` samples in ``label``.
        class_share: Share of ``label`` among all samples, for comparison.
    """

    feature: str
    value: str
    n: int
    label: str
    purity: float
    class_share: float

    def sentence(self) -> str:
        """E.g. ``"31 images at 623 x 512: 100% malignant (the class is 45.7% of all images)"``."""
        size = self.value.replace("x", " x ")
        where = f"at {size}" if self.feature == "size" else f"with {self.feature} {self.value}"
        share = f"the class is {self.class_share:.1%} of all images"
        return f"{self.n} images {where}: {self.purity:.0%} {self.label} ({share})"

    def record(self) -> dict:
        """JSON-ready fields, with the sentence."""
        return {
            "feature": self.feature,
            "value": self.value,
            "n": self.n,
            "label": self.label,
            "purity": round(self.purity, 4),
            "class_share": round(self.class_share, 4),
            "sentence": self.sentence(),
        }


@dataclass(frozen=True)
class ShortcutAudit:
    """The shortcut audit of one sample table (:func:`audit_samples`).

    Attributes:
        n_samples: Samples audited.
        classes: Class labels, sorted.
        grouped: Whether folds and bootstrap followed the table's groups.
        scores: One :class:`ClassifierScore` per feature set and classifier.
        subgroups: Pure subgroups, largest first.
        margin: How far above chance a metadata lower bound must lie to warn (registry).
        runtime_s: Wall time of the audit, in seconds.
    """

    n_samples: int
    classes: tuple[str, ...]
    grouped: bool
    scores: tuple[ClassifierScore, ...]
    subgroups: tuple[Subgroup, ...]
    margin: float
    runtime_s: float

    @property
    def chance(self) -> float:
        """Balanced accuracy of guessing: 1/K."""
        return 1 / len(self.classes)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Plain-English warnings: the metadata classifier well above chance, and each pure subgroup."""
        flagged = [score for score in self.scores if score.feature_set == "metadata" and score.exceeds(self.level)]
        found = []
        if flagged:
            best = max(flagged, key=lambda score: score.balanced_accuracy.value)
            found.append(
                f"Acquisition metadata alone predicts the class: {_describe(best)}, chance {self.chance:.2f}. "
                "The classes differ in how they were acquired or exported; a model can learn that shortcut."
            )
        found += [f"Pure subgroup: {subgroup.sentence()}." for subgroup in self.subgroups]
        return tuple(found)

    @property
    def notes(self) -> tuple[str, ...]:
        """File-size and intensity results well above chance, phrased as possibly real signal."""
        found = []
        for part, reason in NOTE_REASONS.items():
            above = [score for score in self.scores if score.feature_set == part and score.exceeds(self.level)]
            if above:
                best = max(above, key=lambda score: score.balanced_accuracy.value)
                found.append(f"{PART_NAMES[part]} the class: {_describe(best)}, chance {self.chance:.2f}. {reason}")
        return tuple(found)

    @property
    def level(self) -> float:
        """The lower interval bound above which a classifier counts as predicting the class."""
        return self.chance + self.margin

    @property
    def flagged(self) -> bool:
        """Whether the audit found a shortcut (any warning)."""
        return bool(self.warnings)

    def record(self) -> dict:
        """JSON-ready dict for ``metrics.json["shortcut_audit"]`` and ``audit.json["shortcut"]``."""
        parts = {
            part: {_key(score.classifier): score.record() for score in self.scores if score.feature_set == part}
            for part in FEATURE_SETS
        }
        return {
            "n_samples": self.n_samples,
            "classes": list(self.classes),
            "chance": self.chance,
            "grouped": self.grouped,
            **parts,
            "intensity_caveat": INTENSITY_CAVEAT,
            "subgroups": [subgroup.record() for subgroup in self.subgroups],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "flagged": self.flagged,
            "warning_level": self.level,
            "runtime_s": round(self.runtime_s, 2),
        }

    def table(self) -> pd.DataFrame:
        """One row per feature set and classifier (the index): balanced accuracy [CI], chance, top features, status."""
        rows = [
            {
                "features": score.feature_set,
                "classifier": score.classifier,
                "balanced accuracy [95% CI]": _value_text(score),
                "chance": round(self.chance, 2),
                "top features": ", ".join(name for name, _ in score.top_features),
                "status": score.status,
            }
            for score in self.scores
        ]
        return pd.DataFrame(rows).set_index(["features", "classifier"])

    def verdict(self) -> str:
        """Markdown for the page: every warning in bold, or that nothing was flagged; then the intensity notes."""
        unit = "groups" if self.grouped else "images"
        if self.flagged:
            lines = [f"**Warning: possible shortcut.** {warning}" for warning in self.warnings]
        else:
            lines = [
                f"No shortcut found: no metadata classifier's interval lies above {self.level:.2f} "
                f"(chance {self.chance:.2f} plus the registry's margin) and no pure subgroup; "
                f"{self.n_samples} samples, folds over {unit}."
            ]
        return "\n\n".join(lines + [f"*Note:* {note}" for note in self.notes])

    def subgroups_table(self) -> pd.DataFrame:
        """One row per pure subgroup: feature, value, images, class, purity, the class's overall share."""
        columns = ["feature", "value", "n", "label", "purity", "class_share"]
        return pd.DataFrame([[getattr(group, name) for name in columns] for group in self.subgroups], columns=columns)


def _key(name: str) -> str:
    return name.replace(" ", "_")


def _value_text(score: ClassifierScore) -> str:
    estimate = score.balanced_accuracy
    if not estimate.is_defined:
        return score.status
    return f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]"


def _describe(score: ClassifierScore) -> str:
    features = ", ".join(name for name, _ in score.top_features[:3])
    return f"{score.classifier} balanced accuracy {_value_text(score)} (top features: {features})"


def summary_lines(record: dict) -> list[str]:
    """Console lines of a :meth:`ShortcutAudit.record`: both parts' scores, then warnings and notes."""
    lines = [f"shortcut audit of {record['n_samples']} samples (chance {record['chance']:.2f}):"]
    for part in FEATURE_SETS:
        for classifier, result in record[part].items():
            estimate = Estimate.from_record(result["balanced_accuracy"])
            value = f"{estimate.value:.2f} [{estimate.low:.2f}, {estimate.high:.2f}]" if estimate.is_defined else ""
            top = ", ".join(item["feature"] for item in result["top_features"][:3])
            detail = f"balanced accuracy {value}, top: {top}" if value else result["status"]
            lines.append(f"  {part} / {classifier.replace('_', ' ')}: {detail}")
    lines += [f"  WARNING: {text}" for text in record["warnings"]]
    lines += [f"  note: {text}" for text in record["notes"]]
    if not record["flagged"]:
        lines.append("  no shortcut found")
    return lines


def audit_samples(samples: pd.DataFrame, *, group_col: str = "group", seed: int = 42) -> ShortcutAudit:
    """Audit a sample table for shortcuts: metadata and intensity classifiers, pure subgroups.

    Args:
        samples: Sample table with ``path`` (an image file, or a DICOM series
            folder) and ``label`` columns, and optionally ``group_col``.
        group_col: Column of group ids (duplicate groups, patients, cases); a
            missing id makes a sample its own group. Without the column, or
            with no id in it, folds and bootstrap run over single samples.
        seed: Seed of the folds, the forest, the permutations and the bootstrap.

    Returns:
        The audit; thresholds and sizes come from the registry's ``shortcut_audit``.

    Raises:
        DataError: An empty table, missing columns, a single class, or an
            unreadable sample (the message names the file).
    """
    missing = [column for column in ("path", "label") if column not in samples.columns]
    if samples.empty or missing:
        raise DataError(f"the shortcut audit needs a non-empty sample table with path and label; missing {missing}.")
    labels = samples["label"].astype(str).to_numpy()
    if np.unique(labels).size < 2:
        raise DataError(f"the shortcut audit needs at least two classes; every sample is {labels[0]!r}.")
    started = time.perf_counter()
    settings = registry.section("shortcut_audit")
    grouped = group_col in samples.columns and bool(samples[group_col].notna().any())
    groups = samples[group_col].to_numpy(dtype=object) if grouped else None
    features = shortcut_features.sample_features(samples["path"])
    tables = {
        "metadata": features.metadata.drop(columns=list(FILE_SIZE)),
        "file_size": features.metadata[list(FILE_SIZE)],
        "intensity": features.intensity,
    }
    scores = tuple(
        shortcut_models.score(part, classifier, tables[part], labels, groups, settings, seed)
        for part in FEATURE_SETS
        for classifier in CLASSIFIERS
    )
    subgroups = find_subgroups(
        features.metadata[list(shortcut_features.CATEGORICAL)],
        labels,
        settings["min_subgroup_size"],
        settings["subgroup_purity"],
    )
    return ShortcutAudit(
        n_samples=len(labels),
        classes=tuple(sorted(set(labels))),
        grouped=grouped,
        scores=scores,
        subgroups=subgroups,
        margin=settings["warning_margin"],
        runtime_s=time.perf_counter() - started,
    )


def find_subgroups(table: pd.DataFrame, labels: np.ndarray, min_size: int, purity: float) -> tuple[Subgroup, ...]:
    """Every value of every column shared by at least ``min_size`` rows, ``purity`` of them one class.

    A value shared by every row is left out: it separates nothing.

    Args:
        table: Categorical features, one row per sample.
        labels: Class label per row.
        min_size: Smallest number of rows sharing the value.
        purity: Smallest share of those rows in their most frequent class.

    Returns:
        The subgroups, largest first (ties: by feature, then value).
    """
    labels = np.asarray(labels, dtype=str)
    found = []
    for feature in table.columns:
        for value, rows in table.groupby(feature, sort=True).indices.items():
            if len(rows) < min_size or len(rows) == len(labels):
                continue
            names, counts = np.unique(labels[rows], return_counts=True)
            top = int(np.argmax(counts))
            if counts[top] / len(rows) >= purity:
                label = str(names[top])
                share = float(np.mean(labels == label))
                found.append(Subgroup(str(feature), str(value), len(rows), label, counts[top] / len(rows), share))
    return tuple(sorted(found, key=lambda group: (-group.n, group.feature, group.value)))
