"""Test splits sized to resolve differences: a test-only extension of the phantom sets.

A 15 % test split of a few hundred phantoms holds 40-130 images; an accuracy
measured on them has a 95 % interval about 0.2 wide, too wide to tell two models
apart. Phantoms cost nothing to generate and inference is cheap, so in the
``default`` profile (run parameter ``sized_test``) every phantom experiment adds
new phantoms to its *test* split only, until the test split holds the number of
images the registry's ``test_size`` rule asks for. The training and validation
splits are those of the phantom set as before, so training time does not change.

The extension's images come from the same generator and seed as the experiment's
phantom set, numbered after its images (``start_index = n_per_class``): image
``i`` of the extension is the phantom the set would hold as its ``i``-th image,
so none is a copy of a training image. The leakage audit sees them with the
rest; one that duplicates a training or validation image (after the grouped
split) is left out of the test split.

Real data keeps its natural split: the rule applies to phantoms only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import scipy.stats

from common.config import registry
from common.config.params import RunParams

# The value of the ``stratum`` column of the extension's rows; the phantom set's own rows hold None.
EXTENSION = "test extension"


@dataclass(frozen=True)
class SizingRule:
    """The registry's ``test_size`` rule: how many test images resolve an accuracy to ``max_half_width``.

    Attributes:
        max_half_width: The accuracy CI's half-width the test split must allow at most.
        planning_accuracy: The accuracy the size is planned for; the half-width is largest at 0.5,
            so a run more accurate than this (or less than ``1 - planning_accuracy``) gets a narrower one.
        confidence: The interval's confidence level.
    """

    max_half_width: float
    planning_accuracy: float
    confidence: float

    @classmethod
    def from_registry(cls, experiment_id: str | None = None) -> SizingRule:
        """The rule as the registry states it, for one experiment when given (its own planning accuracy)."""
        section = registry.section("test_size")
        planning = (section.get("planning_accuracy_by_experiment") or {}).get(
            experiment_id, section["planning_accuracy"]
        )
        return cls(float(section["max_half_width"]), float(planning), float(section["confidence"]))

    @property
    def n_images(self) -> int:
        """Test images needed: ``z^2 p (1 - p) / h^2``, rounded up (the normal approximation of the interval)."""
        z = scipy.stats.norm.ppf(0.5 + self.confidence / 2)
        p = self.planning_accuracy
        return math.ceil(z**2 * p * (1 - p) / self.max_half_width**2)

    def half_width(self, accuracy: float, n: int) -> float:
        """The normal-approximation half-width of an accuracy measured on ``n`` images."""
        z = scipy.stats.norm.ppf(0.5 + self.confidence / 2)
        return float(z * math.sqrt(accuracy * (1 - accuracy) / n))

    def sentence(self) -> str:
        """What the rule says, for a notebook's page (Markdown)."""
        return (
            f"The test split is sized so that an accuracy of {self.planning_accuracy:.2f} (or more) is measured "
            f"with a {self.confidence:.0%} interval at most ±{self.max_half_width:.2f} wide: "
            f"{self.n_images} images (registry `test_size`)."
        )


def applies(params: RunParams) -> bool:
    """Whether the run's test split is extended: the ``sized_test`` parameter, on 2D phantoms with a split.

    A cross-validated experiment (gradcam-3d) tests every volume once, in its fold, and has no
    held-out split to extend.
    """
    return bool(params.sized_test) and not params.data_dir and held_out_fraction(params) > 0


def extension_per_class(params: RunParams, rule: SizingRule | None = None) -> int:
    """New phantoms per phantom class that bring the test split to the rule's size (0 when it needs none).

    The phantom set's own test split holds about ``n_per_class * test fraction`` images of each
    phantom class; the extension adds the rest of ``ceil(rule.n_images / phantom classes)`` per class.
    """
    if not applies(params):
        return 0
    rule = rule or SizingRule.from_registry(params.experiment)
    n_classes = len(params.phantom_classes or params.classes)
    own_test = math.floor(params.n_per_class * held_out_fraction(params))
    return max(0, math.ceil(rule.n_images / n_classes) - own_test)


def held_out_fraction(params: RunParams) -> float:
    """The share of each class the run's split puts into its test part (the last split fraction)."""
    fractions = getattr(params, "split_fractions", None)
    return float(fractions[-1]) if fractions else 0.0


def place_extension(table: pd.DataFrame, group_col: str = "group") -> pd.DataFrame:
    """Put the extension's rows of a split table into its test split.

    ``table`` is the split of the phantom set's own rows followed by the extension's rows (``split``
    None). An extension row whose group (an exact or near duplicate, after the audit) holds a
    training or validation image stays out, so no test image has a copy on the other side.

    Args:
        table: A split sample table with a ``stratum`` column.
        group_col: Column of group ids.

    Returns:
        The table with the extension's rows in ``test``, those that would leak dropped.
    """
    extension = table["stratum"] == EXTENSION
    if not extension.any():
        return table
    result = table.copy()
    if group_col in result.columns and result[group_col].notna().any():
        fitted = result.loc[~extension & result["split"].isin(["train", "val"]), group_col].dropna()
        leaking = extension & result[group_col].isin(set(fitted))
        result = result[~leaking].copy()
        extension = result["stratum"] == EXTENSION
    result.loc[extension, "split"] = "test"
    return result


def record(table: pd.DataFrame, params: RunParams) -> dict:
    """The ``test_size`` entry of ``metrics.json``: the rule, the test split's size and its extension."""
    rule = SizingRule.from_registry(params.experiment)
    test = table[table["split"] == "test"]
    from_extension = int((test["stratum"] == EXTENSION).sum()) if "stratum" in test.columns else 0
    return {
        "applies": applies(params),
        "rule": {
            "max_half_width": rule.max_half_width,
            "planning_accuracy": rule.planning_accuracy,
            "confidence": rule.confidence,
            "n_images": rule.n_images,
        },
        "test_images": int(len(test)),
        "from_extension": from_extension,
    }


def describe(table: pd.DataFrame, params: RunParams) -> str:
    """One Markdown line on the test split's size and where it comes from, for the notebook's page."""
    found = record(table, params)
    n_test = found["test_images"]
    if found["applies"]:
        rule = SizingRule.from_registry(params.experiment)
        return (
            f"**Test split**: {n_test} images, {found['from_extension']} of them new phantoms added to the test "
            f"split only. {rule.sentence()}"
        )
    why = (
        "real data keeps its natural split"
        if params.data_dir
        else f"no test extension in the `{params.profile}` profile"
    )
    return f"**Test split**: {n_test} images ({why})."
