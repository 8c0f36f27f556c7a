"""The value type of every estimated number the study reports: a value with its interval.

A metric, a localisation score or a cross-validation mean is reported as an
:class:`Estimate`. Its JSON record (:meth:`Estimate.to_record`) is the shape
``metrics.json`` has always held::

    {"value": v, "ci95": [low, high]}                  # always
    ... "n": 120                                       # when the count is recorded
    ... "ci_method": "Wilson"                          # when the method is recorded
    ... "folds": [0.81, 0.84, 0.79]                     # when folds were averaged

The key stays ``"ci95"`` whatever the confidence level (the level is a run
parameter, recorded with the run), so the level is not part of the record and
:meth:`Estimate.from_record` takes it as an argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NAN = float("nan")


def _number(value: Any) -> float:
    """A record's number as a float; JSON's null (an undefined number) is NaN."""
    return NAN if value is None else float(value)


@dataclass(frozen=True)
class Estimate:
    """An estimated number with its confidence interval.

    Attributes:
        value: The point estimate (NaN when undefined, e.g. no images to score).
        low: Lower end of the interval (NaN when no interval could be made).
        high: Upper end of the interval.
        confidence: Confidence level of the interval, e.g. 0.95.
        n: Number of units the estimate was made from, when it is recorded.
        method: How the interval was made (e.g. ``"Wilson"``), when it is
            recorded with the estimate rather than beside it.
        folds: The per-fold values a cross-validation mean was taken over.
    """

    value: float
    low: float
    high: float
    confidence: float = 0.95
    n: int | None = None
    method: str | None = None
    folds: tuple[float, ...] | None = None

    @classmethod
    def undefined(cls, confidence: float = 0.95, n: int | None = None, method: str | None = None) -> Estimate:
        """An estimate with no value and no interval (NaN throughout)."""
        return cls(NAN, NAN, NAN, confidence=confidence, n=n, method=method)

    @classmethod
    def without_interval(
        cls, value: float, confidence: float = 0.95, n: int | None = None, method: str | None = None
    ) -> Estimate:
        """A value whose interval cannot be made (e.g. a single observation): NaN bounds."""
        return cls(float(value), NAN, NAN, confidence=confidence, n=n, method=method)

    @property
    def interval(self) -> tuple[float, float]:
        """The interval as ``(low, high)``."""
        return (self.low, self.high)

    @property
    def is_defined(self) -> bool:
        """Whether the value is a finite number."""
        return math.isfinite(self.value)

    def contains(self, number: float) -> bool:
        """Whether ``number`` lies inside the closed interval (False when it is undefined)."""
        return bool(self.low <= number <= self.high)

    def with_count(self, n: int) -> Estimate:
        """The same estimate with the number of units ``n`` recorded."""
        return Estimate(self.value, self.low, self.high, self.confidence, int(n), self.method, self.folds)

    def to_record(self) -> dict[str, Any]:
        """The JSON record: ``{"value", "ci95": [low, high]}`` then ``n``, ``ci_method``, ``folds`` when set."""
        record: dict[str, Any] = {"value": float(self.value), "ci95": [float(self.low), float(self.high)]}
        if self.n is not None:
            record["n"] = int(self.n)
        if self.method is not None:
            record["ci_method"] = self.method
        if self.folds is not None:
            record["folds"] = [float(v) for v in self.folds]
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], confidence: float = 0.95) -> Estimate:
        """Read a record back (e.g. from ``metrics.json``); JSON nulls become NaN.

        Args:
            record: A mapping with ``value`` and ``ci95``, and optionally ``n``,
                ``ci_method`` and ``folds``. Other keys are ignored.
            confidence: The level the record's interval was made at.
        """
        low, high = record["ci95"]
        folds: Iterable[Any] | None = record.get("folds")
        n = record.get("n")
        return cls(
            value=_number(record["value"]),
            low=_number(low),
            high=_number(high),
            confidence=confidence,
            n=None if n is None else int(n),
            method=record.get("ci_method"),
            folds=None if folds is None else tuple(_number(v) for v in folds),
        )
