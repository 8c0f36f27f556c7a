"""Tests of common.data.annotations: VOC boxes of the chest-volume phantoms' lesions, read back as masks."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.data import annotations, folders, volume_sets
from common.errors import DataError
from tests.data.voc_files import box_mask, slice_headers, write_series_voc, write_voc
from tests.data.volume_phantoms import INPUT_SHAPE, LABEL_MAP, N_PER_CLASS, PHANTOM_SHAPE

pytest_plugins = ["tests.data.volume_fixtures"]  # phantom_dir, samples


@pytest.fixture(scope="module")
def shuffled(phantom_dir, tmp_path_factory):
    """The phantom series copied with their files renamed in reverse slice order, and their VOC files.

    Returns:
        ``(series root, VOC folder, lesion masks by series folder)``.
    """
    root = tmp_path_factory.mktemp("shuffled")
    voc = root / "voc"
    lesions = {}
    for source in sorted((phantom_dir / "series").glob("*/*")):
        target = root / "series" / source.parent.name / source.name
        target.mkdir(parents=True)
        headers = slice_headers(source)
        for index, (_, path) in headers.items():
            # Names that sort against the slice order: file order must not matter.
            shutil.copy(path, target / f"s{len(headers) - index:03d}.dcm")
        lesions[str(target)] = volume_sets.read_mask(phantom_dir / "masks" / source.parent.name / f"{source.name}.npz")
        write_series_voc(target, lesions[str(target)], voc / source.name)  # one sub-folder per case
    return root / "series", voc, lesions


def test_series_mask_is_the_lesion_boxes_slice_by_slice(shuffled):
    series_root, voc, lesions = shuffled
    matcher = annotations.MaskMatcher(annotations.read_annotations(voc))
    tumours = 0
    for folder, lesion in lesions.items():
        mask = matcher.series_mask(folder)
        assert mask.shape == PHANTOM_SHAPE
        np.testing.assert_array_equal(mask, box_mask(lesion), err_msg=folder)
        assert (mask >= lesion).all()  # a box covers its lesion, on the same slices
        tumours += bool(lesion.any())
    assert tumours == N_PER_CLASS
    assert matcher.finish(series_root) == ()


def test_series_masks_are_files_the_volume_reader_reads(shuffled, tmp_path):
    series_root, voc, lesions = shuffled
    table = volume_sets.load_volume_samples(series_root, LABEL_MAP)
    masks = annotations.series_masks(table, series_root, annotations.read_annotations(voc), tmp_path / "masks")
    assert masks.annotated == tuple(table["label"] == "tumor") and masks.n_annotated == N_PER_CLASS
    for folder, path in zip(table["path"], masks.paths, strict=True):
        np.testing.assert_array_equal(volume_sets.read_mask(path), box_mask(lesions[folder]))
    # Every normal series shares one empty mask of its shape.
    assert {p for p, a in zip(masks.paths, masks.annotated, strict=True) if not a} == {
        str(tmp_path / "masks" / f"empty-{'x'.join(map(str, PHANTOM_SHAPE))}.npz")
    }
    on_grid = volume_sets.load_masks(table.assign(mask_path=list(masks.paths)), INPUT_SHAPE)
    assert on_grid[table["label"] == "tumor"].any(axis=(1, 2, 3)).all()


def test_dicom_and_png_slices_match_by_uid(shuffled, tmp_path):
    """A 2D data set: DICOM slices by their header's UID, PNG exports by their file stem."""
    series_root, voc, lesions = shuffled
    folder, lesion = next((f, m) for f, m in lesions.items() if m.any())
    root = tmp_path / "slices"
    (root / "tumor").mkdir(parents=True)
    (root / "normal").mkdir()
    expected = {}
    for index, (uid, path) in slice_headers(Path(folder)).items():
        target = root / "tumor" / (f"{index:02d}.dcm" if index % 2 else f"{uid}.png")
        if target.suffix == ".dcm":
            shutil.copy(path, target)
        else:
            Image.fromarray(np.full(PHANTOM_SHAPE[:2], 100, np.uint8)).save(target)
        expected[str(target)] = box_mask(lesion)[..., index]
    Image.fromarray(np.zeros(PHANTOM_SHAPE[:2], np.uint8)).save(root / "normal" / "plain.png")
    samples, _ = folders.load_class_folders(root, {"normal": "normal", "tumor": "tumor"})
    # Only this series' files: the others' UIDs match no slice here and are skipped and recorded.
    found = annotations.read_annotations(voc, on_bad_file="skip")
    masks = annotations.image_masks(samples, root, found, tmp_path / "masks")
    for path, mask_path in zip(samples["path"], masks.paths, strict=True):
        with Image.open(mask_path) as image:
            np.testing.assert_array_equal(np.asarray(image) > 127, expected.get(path, np.zeros(PHANTOM_SHAPE[:2])))
    assert masks.n_annotated == int(box_mask(lesion).any(axis=(0, 1)).sum())
    assert len(masks.skipped) == len(list(voc.rglob("*.xml"))) - masks.n_annotated
    assert all("has SOP Instance UID" in entry["reason"] for entry in masks.skipped)


def test_coordinates_are_one_based_inclusive_and_clipped(tmp_path):
    path = write_voc(tmp_path / "1.2.3.xml", [(1, 1, 4, 2), (9, 7, 40, 30)], (10, 10))
    annotation = annotations.read_annotation(path)
    assert annotation.uid == "1.2.3" and annotation.size == (10, 10) and len(annotation.boxes) == 2
    mask = annotation.mask((10, 10))
    expected = np.zeros((10, 10), bool)
    expected[0:2, 0:4] = True  # rows 1-2, columns 1-4
    expected[6:10, 8:10] = True  # clipped at the image's edge
    np.testing.assert_array_equal(mask, expected)


BAD_FILES = {
    "malformed XML": ("<annotation><object><bndbox><xmin>1</xmin>", "not a readable Pascal VOC XML file"),
    "missing field": (
        "<annotation><object><name>A</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>3</xmax></bndbox>"
        "</object></annotation>",
        "lacks ymax",
    ),
    "box outside the image": (
        "<annotation><object><name>A</name><bndbox><xmin>60</xmin><ymin>2</ymin><xmax>70</xmax><ymax>9</ymax>"
        "</bndbox></object></annotation>",
        "lies outside",
    ),
}


def _series_with_bad_file(shuffled, tmp_path, text: str | None):
    """A tumour series' VOC folder plus one bad file: ``text`` for one of its slices, or None for an unknown UID."""
    series_root, voc, lesions = shuffled
    folder = next(f for f, m in lesions.items() if m.any())
    case = Path(folder).name
    bad_voc = tmp_path / "voc"
    shutil.copytree(voc / case, bad_voc / case)
    annotated = {p.stem for p in bad_voc.rglob("*.xml")}
    if text is None:
        bad = write_voc(bad_voc / "1.2.826.0.1.999.xml", [(2, 2, 5, 5)], PHANTOM_SHAPE[:2])
    else:
        uid = next(uid for uid, _ in slice_headers(Path(folder)).values() if uid not in annotated)
        bad = bad_voc / f"{uid}.xml"
        bad.write_text(text)
    table = pd.DataFrame({"path": [folder]})
    return table, series_root, bad_voc, bad, lesions[folder]


@pytest.mark.parametrize("case", [*BAD_FILES, "UID with no slice"])
def test_bad_files_are_named_or_skipped_and_recorded(shuffled, tmp_path, case):
    text, message = BAD_FILES.get(case, (None, "no slice of"))
    table, series_root, voc, bad, lesion = _series_with_bad_file(shuffled, tmp_path, text)
    with pytest.raises(DataError, match=message) as raised:
        annotations.series_masks(table, series_root, annotations.read_annotations(voc), tmp_path / "masks")
    assert str(bad) in str(raised.value) and "on_bad_file='skip'" in str(raised.value)

    skipped = annotations.read_annotations(voc, on_bad_file="skip")
    masks = annotations.series_masks(table, series_root, skipped, tmp_path / "masks")
    assert [entry["path"] for entry in masks.skipped] == [str(bad)]
    assert message in masks.skipped[0]["reason"]
    # The good files still give the lesion's boxes.
    np.testing.assert_array_equal(volume_sets.read_mask(masks.paths[0]), box_mask(lesion))


def test_a_folder_without_voc_files_is_refused(tmp_path):
    with pytest.raises(DataError, match="no Pascal VOC files"):
        annotations.read_annotations(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        annotations.read_annotations(tmp_path / "missing")


def test_a_2d_run_scores_exactly_the_annotated_images(tmp_path, monkeypatch):
    """iqoth on exported slices named by UID: box masks for the annotated ones, empty masks for the rest."""
    from common.config import registry
    from common.experiments import explaining, loading

    monkeypatch.setenv("CAMSTUDY_HOME", str(tmp_path))  # the mask folder goes under the project's data/
    data, voc = tmp_path / "iqoth", tmp_path / "voc"
    params = registry.resolve("iqoth", "smoke", {}, data)  # the real data set's folders and smoke settings
    annotated = []
    for index, folder in enumerate(n for n in params.label_map if n != "Normal cases"):
        for image in range(3):
            uid = f"1.2.826.0.1.{index}.{image}"
            (data / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 24), 90, np.uint8)).save(data / folder / f"{uid}.png")
            if image:  # the first image of each class has no box
                write_voc(voc / f"{uid}.xml", [(3, 4, 10, 12)], (20, 24))
                annotated.append(str(data / folder / f"{uid}.png"))
    (data / "Normal cases").mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(data / "Normal cases" / "normal.png")

    loaded = loading.load_samples(registry.resolve("iqoth", "smoke", {"annotations": str(voc)}, data))
    assert loaded.mask_source == loading.BOXES and loaded.has_masks and loaded.box_masks.n_annotated == 4
    assert all(Path(p).is_relative_to(tmp_path / "data" / "annotation_masks") for p in loaded.samples["mask_path"])
    probabilities = np.full((len(loaded.samples), 3), 1 / 3)
    positions, masks = explaining.lesion_subset(params, loaded.samples, probabilities, 32)
    assert sorted(loaded.samples["path"].iloc[positions]) == sorted(annotated) and masks.any(axis=(1, 2)).all()
    assert loaded.mask_record() == {"source": "boxes", "n_annotated": 4, "n_samples": 7}
    assert "pointing game" in loaded.mask_note() and "4 of 7" in loaded.mask_note()
    plain = loading.load_samples(params)
    assert plain.mask_source is None and plain.mask_note() is None and not plain.has_masks
