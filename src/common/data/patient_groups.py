"""Patient (or case) groups read from file names or DICOM headers, so no patient spans two splits.

Slices of one patient look alike; a split that puts some of them in training
and others in the test set lets a model recognise the patient instead of the
disease. Class-folder releases rarely say which slices belong together, but
some name them: the CT-pneumonia/cancer set asks for cancer slices named
``<patient id>_<slice>.png``, TCIA DICOM slices carry ``PatientID``. A data
set's manifest says how, in a ``groups`` entry::

    groups:
      field: patient            # what a group is, for the page
      patterns:                  # tried in order on the path below the class folder
        - '^(?P<group>[^/]+)/'   # one sub-folder per case
        - '^(?P<group>.+)_[^_/]+$'   # <patient id>_<slice>.<suffix>
      dicom_tag: PatientID       # DICOM slices: this header names the group

A pattern is a Python regular expression with a named group ``group``, matched
(``re.match``) against the image's path relative to its class folder, in POSIX
form and without its suffix. Images that no rule names stay their own group.
The result is the sample table's ``group`` column, which
:func:`common.data.splits.split_samples` keeps whole and
:func:`common.data.audit.groups_from_audit` merges with the duplicate groups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import DataError

DICOM_SUFFIXES = {".dcm", ".dicom"}


@dataclass(frozen=True)
class GroupRule:
    """How a data set names the patient of an image (a manifest's ``groups`` entry).

    Attributes:
        field: What one group is (``patient``, ``case``), for messages and pages.
        patterns: Compiled regular expressions with a ``group`` named group, tried in order.
        dicom_tag: A DICOM header keyword naming the group of a DICOM slice, or None.
    """

    field: str
    patterns: tuple[re.Pattern[str], ...]
    dicom_tag: str | None

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> GroupRule | None:
        """The rule of a loaded manifest, or None when it names no groups.

        Raises:
            DataError: a pattern that does not compile or has no ``group`` named group.
        """
        entry = manifest.get("groups")
        if not entry:
            return None
        patterns = []
        for text in entry.get("patterns") or []:
            try:
                pattern = re.compile(text)
            except re.error as error:
                raise DataError(
                    f"Manifest {manifest.get('name')!r}: group pattern {text!r} is invalid: {error}"
                ) from error
            if "group" not in pattern.groupindex:
                raise DataError(
                    f"Manifest {manifest.get('name')!r}: group pattern {text!r} needs a named group (?P<group>...)."
                )
            patterns.append(pattern)
        return cls(entry.get("field", "patient"), tuple(patterns), entry.get("dicom_tag"))

    def group_of(self, path: Path, class_folder: Path) -> str | None:
        """The group an image belongs to, or None when no rule names one."""
        if self.dicom_tag and path.suffix.lower() in DICOM_SUFFIXES:
            value = _dicom_value(path, self.dicom_tag)
            if value:
                return value
        relative = path.relative_to(class_folder).with_suffix("").as_posix()
        for pattern in self.patterns:
            found = pattern.match(relative)
            if found and found.group("group"):
                return found.group("group")
        return None


def _dicom_value(path: Path, keyword: str) -> str | None:
    """A header value of a DICOM file as text (None when missing or unreadable)."""
    import pydicom

    try:
        value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword]).get(keyword)
    except (OSError, pydicom.errors.InvalidDicomError):
        return None
    text = "" if value is None else str(value).strip()
    return text or None


def with_patient_groups(samples: pd.DataFrame, root: str | Path, rule: GroupRule | None) -> pd.DataFrame:
    """``samples`` with the ``group`` column filled from ``rule`` (unchanged without a rule).

    Ids are not tied to a class folder: the same patient id in two class folders
    is one group, so a patient with slices of both classes never spans two splits.

    Args:
        samples: Sample table of :func:`common.data.folders.load_class_folders`
            (columns ``path`` and ``class_folder``).
        root: The data set's root (the class folders' parent).
        rule: The manifest's rule (:meth:`GroupRule.from_manifest`), or None.

    Returns:
        A copy of ``samples``; ``group`` holds ``"<field>:<id>"`` or None.
    """
    result = samples.copy()
    if rule is None:
        return result
    root = Path(root)
    result["group"] = [
        _prefixed(rule.field, rule.group_of(Path(path), root / folder))
        for path, folder in zip(result["path"], result["class_folder"], strict=True)
    ]
    return result


def _prefixed(field: str, value: str | None) -> str | None:
    return None if value is None else f"{field}:{value}"


def describe(samples: pd.DataFrame, rule: GroupRule | None) -> str:
    """One line: how many images the rule grouped into how many groups."""
    if rule is None:
        return "no patient groups: the data set's manifest names none, so each image is its own group"
    named = samples["group"].notna()
    return (
        f"{int(named.sum())} of {len(samples)} images grouped into {samples.loc[named, 'group'].nunique()} "
        f"{rule.field} groups (from file names{' and DICOM ' + rule.dicom_tag if rule.dicom_tag else ''}); "
        "the others are their own group"
    )
