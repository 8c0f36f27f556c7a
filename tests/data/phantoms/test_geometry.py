"""Tests of common.data.phantoms.geometry: grid, outlines, poses and drawn vessels."""

import numpy as np

from common.data.phantoms.geometry import (
    VOLUME_Z_SPAN,
    Grid,
    Outline,
    Pose,
    draw_segments,
    segments_array,
    smooth_noise,
    vessel_tree,
)


def test_grid_spans_the_width_and_volume_depth():
    grid = Grid.for_shape((20, 40, 6))
    assert grid.ndim == 3 and grid.shape == (20, 40, 6)
    assert np.allclose(grid.spacing, (0.05, 0.05, VOLUME_Z_SPAN / 6))
    y, x, z = grid.axes()
    assert y.shape == (20, 1, 1) and x.shape == (1, 40, 1) and z.shape == (1, 1, 6)
    assert np.isclose(x.min(), -1 + 0.025) and np.isclose(x.max(), 1 - 0.025)
    assert np.allclose(z.ravel() + z.ravel()[::-1], 0)  # centred on 0
    assert np.allclose(grid.pixels(0.1), (2, 2, 0.5))


def test_outline_without_wobble_is_a_rotated_ellipse():
    outline = Outline(0.1, -0.2, 0.3, 0.5, angle=np.pi / 2)
    # Rotated by 90 degrees, the x radius lies along y.
    assert np.isclose(outline.rho(0.1 + 0.5, -0.2), 1.0)
    assert np.isclose(outline.rho(0.1, -0.2 + 0.3), 1.0)
    assert np.isclose(outline.rho(0.1, -0.2 + 0.15, scale=0.5), 1.0)
    wobbly = Outline.random(np.random.default_rng(0), 0.0, 0.0, 0.4, 0.4, wobble=0.2)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radii = 0.4 / wobbly.rho(0.4 * np.sin(angles), 0.4 * np.cos(angles))
    assert radii.std() > 0.01 and np.all(np.abs(radii / 0.4 - 1) < 0.25)


def test_pose_maps_body_points_back_to_the_image():
    pose = Pose(0.05, -0.03, 0.2)
    points = np.array([[0.3, -0.1], [-0.4, 0.25]])
    body = np.stack(pose.to_body(points[:, 0], points[:, 1]), axis=-1)
    assert np.allclose(pose.to_image(body), points)


def test_smooth_noise_has_unit_deviation():
    field = smooth_noise(np.random.default_rng(1), Grid.for_shape((64, 64)), 0.05)
    assert np.isclose(field.std(), 1.0) and abs(field.mean()) < 0.5


def test_drawn_tube_peaks_at_one_along_the_segment_only():
    grid = Grid.for_shape((65, 65))  # odd: a pixel row at y = 0
    segments = np.array([[[0.0, -0.5], [0.0, 0.5]]])
    strength = draw_segments(grid, segments, np.array([1.0]), 0.05)
    assert strength.shape == grid.shape and strength.max() <= 1.0
    y, x = (axis.ravel() for axis in grid.axes())
    centre_row = strength[np.argmin(np.abs(y))]
    assert np.all(np.abs(centre_row[np.abs(x) < 0.3] - 1) < 0.05)
    assert centre_row[np.abs(x) > 0.8].max() < 1e-3  # nothing past the segment's ends
    assert strength[np.abs(y) > 0.4].max() < 1e-3  # nothing far from the line


def test_vessel_tree_branches_from_its_root():
    root = np.array([0.0, 0.0, 0.0])
    segments = vessel_tree(np.random.default_rng(2), root, np.array([0.0, 1.0, 0.0]), 4, 0.1)
    points, widths = segments_array(segments)
    assert points.shape == (len(segments), 2, 3) and 4 <= len(segments) <= 15
    assert np.array_equal(points[0, 0], root)  # the trunk comes first
    assert widths.max() == 0.7 and np.isclose(widths.min(), 0.7 * 0.72**3)
