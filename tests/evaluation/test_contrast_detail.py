"""Tests of common.evaluation.contrast_detail: lesion size and contrast, binning, sensitivity per bin."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError, ParameterError
from common.evaluation.contrast_detail import PROPERTY_COLUMNS, contrast_detail, lesion_properties

Z95 = 1.959963984540054


def _manhattan_ring(shape, low, high, width):
    """Pixels whose city-block distance to the box [low, high] (inclusive) is 1..width, computed directly."""
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    distance = sum(np.maximum(0, np.maximum(lo - g, g - hi)) for g, lo, hi in zip(grids, low, high))
    return (distance >= 1) & (distance <= width)


def _square_scene(rng, shape=(40, 40), low=(10, 12), side=6, background=10.0, step=8.0, noise=2.0):
    image = background + noise * rng.standard_normal(shape)
    mask = np.zeros(shape, bool)
    box = tuple(slice(lo, lo + side) for lo in low)
    mask[box] = True
    image[box] += step
    return image, mask


# ----------------------------------------------------------------------------- lesion_properties


def test_square_lesion_has_its_area_diameter_and_contrast():
    image, mask = _square_scene(np.random.default_rng(0))
    row = lesion_properties([image], [mask], ring_px=2).iloc[0]
    assert row["size_px"] == 36
    assert row["size_fraction"] == pytest.approx(36 / 1600)
    assert row["diameter_px"] == pytest.approx(math.sqrt(4 * 36 / math.pi))  # 6.77 px
    ring = _manhattan_ring((40, 40), (10, 12), (15, 17), 2)
    assert ring.sum() == 4 * 6 * 2 + 4 * 1  # two rows of 6 on each side, plus one pixel at each corner
    expected = (image[mask].mean() - image[ring].mean()) / image[ring].std(ddof=1)
    assert row["contrast"] == pytest.approx(expected)
    assert row["background_mean"] == pytest.approx(image[ring].mean())
    assert 3.0 < row["contrast"] < 5.0  # step 8 over noise 2


def test_dark_lesion_has_a_negative_contrast_and_flat_noise_gives_the_step_over_the_sd():
    rng = np.random.default_rng(1)
    image, mask = _square_scene(rng, shape=(200, 200), low=(80, 80), side=30, step=-6.0, noise=1.5)
    (contrast,) = lesion_properties(image[None], mask[None], ring_px=8)["contrast"]
    assert contrast == pytest.approx(-4.0, abs=0.25)


def test_lesion_at_the_edge_has_its_ring_cut_there():
    rng = np.random.default_rng(2)
    image, mask = _square_scene(rng, low=(0, 0), side=5)
    ring = _manhattan_ring((40, 40), (0, 0), (4, 4), 3)
    expected = (image[mask].mean() - image[ring].mean()) / image[ring].std(ddof=1)
    assert lesion_properties([image], [mask], ring_px=3)["contrast"].iloc[0] == pytest.approx(expected)


def test_cube_lesion_in_a_volume():
    rng = np.random.default_rng(3)
    volume = 100.0 + 5.0 * rng.standard_normal((20, 20, 12))
    mask = np.zeros(volume.shape, bool)
    mask[5:9, 6:10, 3:7] = True
    volume[mask] += 50.0
    row = lesion_properties([volume], [mask.astype(np.uint8)], ring_px=2).iloc[0]
    assert row["size_px"] == 64
    assert row["size_fraction"] == pytest.approx(64 / (20 * 20 * 12))
    assert row["diameter_px"] == pytest.approx((6 * 64 / math.pi) ** (1 / 3))  # 4.96 voxels
    ring = _manhattan_ring(volume.shape, (5, 6, 3), (8, 9, 6), 2)
    assert row["contrast"] == pytest.approx((volume[mask].mean() - volume[ring].mean()) / volume[ring].std(ddof=1))


def test_stacked_arrays_empty_masks_and_labels():
    rng = np.random.default_rng(4)
    first, first_mask = _square_scene(rng)
    images = np.stack([first, first])
    masks = np.stack([first_mask, np.zeros_like(first_mask)])
    frame = lesion_properties(images, masks, ring_px=2, index=["a.png", "b.png"])
    assert list(frame.columns) == list(PROPERTY_COLUMNS)
    assert list(frame.index) == ["a.png", "b.png"]
    assert frame.loc["a.png", "size_px"] == 36
    assert frame.loc["b.png"].isna().all()  # no lesion: NaN throughout


def test_flat_ring_gives_an_undefined_contrast():
    image = np.zeros((20, 20))
    mask = np.zeros((20, 20), bool)
    mask[8:12, 8:12] = True
    image[mask] = 1.0
    row = lesion_properties([image], [mask], ring_px=2).iloc[0]
    assert row["size_px"] == 16 and math.isnan(row["contrast"])


def test_bad_inputs_are_refused():
    image, mask = _square_scene(np.random.default_rng(5))
    with pytest.raises(ParameterError, match="ring_px"):
        lesion_properties([image], [mask], ring_px=0)
    with pytest.raises(DataError, match="1 images but 2 masks"):
        lesion_properties([image], [mask, mask], ring_px=2)
    with pytest.raises(DataError, match="shape"):
        lesion_properties([image], [mask[:-1]], ring_px=2)
    with pytest.raises(DataError, match="shape"):
        lesion_properties([image[0]], [mask[0]], ring_px=2)


# ----------------------------------------------------------------------------- contrast_detail


def _properties(diameters, contrasts) -> pd.DataFrame:
    frame = pd.DataFrame(np.nan, index=range(len(diameters)), columns=list(PROPERTY_COLUMNS))
    frame["diameter_px"] = np.asarray(diameters, dtype=float)
    frame["contrast"] = np.asarray(contrasts, dtype=float)
    return frame


# Two images per size x contrast cell: sizes 2, 5, 9 px; contrasts 1, -4 (a dark lesion), 8. Then a
# lesion-free image (NaN) and a lesion whose contrast is undefined; both are left out.
SIZES = [2.0, 5.0, 9.0]
CONTRASTS = [1.0, -4.0, 8.0]
CELLS = [(i, j, copy) for i in range(3) for j in range(3) for copy in range(2)]
DIAMETERS = [SIZES[i] for i, _, _ in CELLS] + [np.nan, 3.0]
SIGNED = [CONTRASTS[j] for _, j, _ in CELLS] + [np.nan, np.nan]
# Detections per cell: (0, 0) none, (0, 1) one of two, every other cell both.
DETECTED = [not ((i, j) == (0, 0) or (i, j, copy) == (0, 1, 0)) for i, j, copy in CELLS] + [True, False]


def test_quantile_edges_put_known_images_into_known_bins():
    result = contrast_detail(_properties(DIAMETERS, SIGNED), DETECTED)
    # np.quantile (linear) of 6 x 2, 6 x 5, 6 x 9 at 1/3 and 2/3: 2 + (2/3) 3 = 4 and 5 + (1/3) 4 = 6.33.
    assert result.size_edges == pytest.approx((2.0, 4.0, 5.0 + 4 / 3, 9.0))
    # |contrast| 1, 4, 8: 1 + (2/3) 3 = 3 and 4 + (1/3) 4 = 5.33.
    assert result.contrast_edges == pytest.approx((1.0, 3.0, 4.0 + 4 / 3, 8.0))
    assert result.n == 18 and result.n_excluded == 1
    for entry in result.bins:
        assert entry.n == 2
        assert entry.median_diameter == SIZES[entry.size_bin]
    assert result.bin(0, 1).contrast_range == pytest.approx((3.0, 4.0 + 4 / 3))


def test_sensitivity_per_bin_is_the_hand_count_with_wilson_intervals():
    result = contrast_detail(_properties(DIAMETERS, SIGNED), DETECTED)
    assert result.bin(0, 0).sensitivity.value == 0.0
    assert result.bin(0, 1).sensitivity.value == 0.5
    full = result.bin(2, 2).sensitivity
    assert full.value == 1.0 and full.n == 2 and full.method == "Wilson"
    # Wilson at 2 of 2: [n / (n + z^2), 1], far from collapsing onto 1.
    assert full.low == pytest.approx(2 / (2 + Z95**2), abs=1e-9) and full.high == pytest.approx(1.0)
    assert full.low < 0.4
    empty = result.bin(0, 0).sensitivity
    assert empty.low == pytest.approx(0.0, abs=1e-12) and empty.high == pytest.approx(Z95**2 / (2 + Z95**2))
    half = result.bin(0, 1).sensitivity
    # Wilson at 1 of 2: centre 1/2, half-width z sqrt(1/8 + z^2/16) / (1 + z^2/2).
    half_width = Z95 * math.sqrt(0.25 / 2 + Z95**2 / 16) / (1 + Z95**2 / 2)
    assert half.interval == pytest.approx((0.5 - half_width, 0.5 + half_width))
    assert result.bin(0, 0).pointing_game is None


def test_pointing_game_counts_only_scored_images():
    # The first image of each cell is scored, the second not; the CAM hits in cells 0, 2, 4, 6 and 8.
    pointed = [None if copy else (i * 3 + j) % 2 == 0 for i, j, copy in CELLS] + [None, None]
    result = contrast_detail(_properties(DIAMETERS, SIGNED), DETECTED, pointed=pointed)
    for entry in result.bins:
        cell = entry.size_bin * 3 + entry.contrast_bin
        game = entry.pointing_game
        assert game is not None and game.n == 1
        assert game.value == (1.0 if cell % 2 == 0 else 0.0)
    assert result.table("pointing_game").shape == (3, 3)


def test_table_record_ceiling_and_sentence():
    result = contrast_detail(_properties(DIAMETERS, SIGNED), DETECTED)
    table = result.table()
    assert table.shape == (3, 3)
    assert list(table.index) == ["2.0–4.0 px", "4.0–6.3 px", "6.3–9.0 px"]
    assert table.iloc[0, 0] == "0.000 (0.00–0.66), n = 2"
    assert table.iloc[2, 2] == "1.000 (0.34–1.00), n = 2"
    record = json.loads(json.dumps(result.record()))
    assert record["size_edges"] == pytest.approx([2.0, 4.0, 5.0 + 4 / 3, 9.0])
    assert len(record["bins"]) == 9 and record["bins"][0]["n"] == 2
    assert record["bins"][0]["sensitivity"]["value"] == 0.0 and record["bins"][0]["pointing_game"] is None
    assert not result.at_ceiling(0.9)
    assert [(b.size_bin, b.contrast_bin) for b in result.below(0.9)] == [(0, 0), (0, 1)]
    sentence = result.limit_sentence(0.9)
    assert "below 0.90 in 2 of 9" in sentence and "diameter 2.0–4.0 px" in sentence

    everything = contrast_detail(_properties(DIAMETERS, SIGNED), [True] * len(DIAMETERS))
    assert everything.at_ceiling(0.9) and "every size × contrast bin" in everything.limit_sentence(0.9)
    assert result.at_ceiling(0.0)


def test_empty_cells_and_tied_values():
    # Size and contrast go together: off-diagonal cells hold no images and do not count against the ceiling.
    diameters = [2.0] * 3 + [5.0] * 3 + [9.0] * 3
    result = contrast_detail(_properties(diameters, [1.0] * 3 + [4.0] * 3 + [8.0] * 3), [True] * 9)
    assert [b.n for b in result.bins] == [3, 0, 0, 0, 3, 0, 0, 0, 3]
    assert math.isnan(result.bin(0, 1).sensitivity.value) and math.isnan(result.bin(0, 1).median_diameter)
    assert result.at_ceiling() and "6 of the 9 bins hold no images" in result.limit_sentence()
    assert result.table().iloc[0, 1] == "–, n = 0"
    # One diameter throughout: one size bin; tied quantiles merge.
    tied = contrast_detail(_properties([4.0] * 6, [1, 2, 3, 4, 5, 6]), [True] * 6, n_size_bins=3, n_contrast_bins=2)
    assert tied.n_size_bins == 1 and tied.n_contrast_bins == 2 and tied.size_edges == (4.0, 4.0)
    assert [b.n for b in tied.bins] == [3, 3]


def test_bad_arguments_are_refused():
    properties = _properties(DIAMETERS, SIGNED)
    with pytest.raises(DataError, match="entries"):
        contrast_detail(properties, DETECTED[:-1])
    with pytest.raises(DataError, match="detected is missing"):
        contrast_detail(properties, [None] + DETECTED[1:])
    with pytest.raises(DataError, match="True/False"):
        contrast_detail(properties, [2] * len(DETECTED))
    with pytest.raises(ParameterError, match="n_size_bins"):
        contrast_detail(properties, DETECTED, n_size_bins=0)
    with pytest.raises(DataError, match="No lesion image"):
        contrast_detail(_properties([np.nan], [np.nan]), [True])
    with pytest.raises(DataError, match="lacks the columns"):
        contrast_detail(properties.drop(columns="contrast"), DETECTED)
    with pytest.raises(ParameterError, match="pointing game"):
        contrast_detail(properties, DETECTED).table("pointing_game")
