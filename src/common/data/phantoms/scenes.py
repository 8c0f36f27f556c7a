"""The scenes: each maps (grid, generator, lesion style name or None, lesion scale) to a :class:`Phantom`.

CT scenes (chest, kidney) are rendered in Hounsfield units (HU), MRI (brain)
and mammography (breast) directly as intensities in [0, 1]. Every scene works
in the body frame of a randomly placed body; the chest scene works in 2D (a
slice at a random height) and 3D (z along the last axis).

A scene draws its lesion with the scale's size factor and then fades all it
painted for the lesion (the lesion itself, a necrotic core, oedema) towards the
tissue underneath by the contrast factor (:func:`~common.data.phantoms.lesions.fade`);
the anatomy is drawn before the lesion, so a scaled scene shows the same
anatomy as the unscaled one, and a contrast factor alone changes nothing but
the values the lesion painted (the scale draws nothing from the generator).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from common.data.phantoms.geometry import (
    Grid,
    Outline,
    Pose,
    body_frame,
    draw_segments,
    random_direction,
    segments_array,
    smooth_noise,
    superellipse_rho,
    unit,
    vessel_tree,
)
from common.data.phantoms.lesions import LESION_STYLES, NO_SCALE, LesionScale, fade, paint_lesion


class Phantom(NamedTuple):
    """One rendered phantom before it is written.

    Attributes:
        image: HU (CT volumes) or display intensities in [0, 1] (2D kinds), float32.
        mask: Lesion mask, bool, all False for lesion-free classes.
        region: Organ region the lesion is confined to (lungs, brain, breast,
            kidneys), bool.
    """

    image: np.ndarray
    mask: np.ndarray
    region: np.ndarray


def _scene_noise(rng, grid: Grid, image: np.ndarray, psf_px: float, noise_sd: float) -> np.ndarray:
    """Scanner blur plus slightly correlated noise."""
    sigma = [psf_px] * 2 + ([0.4] if grid.ndim == 3 else [])
    blurred = ndimage.gaussian_filter(image, sigma, truncate=3.0)
    return blurred + noise_sd * smooth_noise(rng, grid, 0.5 * grid.spacing[0])


def _paint_spine(hu: np.ndarray, yb, xb, vertebra_y: float) -> np.ndarray:
    """Vertebral body, spinal canal with neural arch, and spinous process."""
    vertebra = np.hypot(yb - vertebra_y, xb) / 0.085
    canal = np.hypot(yb - vertebra_y - 0.135, xb) / 0.045
    hu = np.where(vertebra < 1, np.where(vertebra > 0.8, 650.0, 250.0), hu)
    hu = np.where(canal < 1.6, np.where(canal < 1, 20.0, 500.0), hu)
    spinous = superellipse_rho(yb - vertebra_y - 0.24, xb, 0.06, 0.022, 2.0) < 1
    return np.where(spinous, 550.0, hu)


def _lung_scale(z):
    """Lung outline scale with height: the lungs narrow towards the apex and base."""
    return np.sqrt(np.clip(1 - (np.asarray(z) / 1.05) ** 2, 0.2, 1.0))


def chest_scene(grid: Grid, rng, lesion: str | None, scale: LesionScale = NO_SCALE) -> Phantom:
    """Chest CT in HU: body, fat, ribs, spine, heart, two lungs with vessels.

    In 2D the slice height z is drawn at random (lungs are smaller towards the
    apex, the heart is absent high up); in 3D z runs along the last axis.

    Args:
        grid: Grid of the image or volume.
        rng: Generator the scene draws from.
        lesion: Key of :data:`~common.data.phantoms.lesions.LESION_STYLES`, or
            None for a lesion-free scene.
        scale: Size and contrast factors of the lesion.

    Returns:
        The phantom, image in HU.
    """
    pose, yb, xb = body_frame(grid, rng, 0.04, 0.12)
    is_volume = grid.ndim == 3
    z = grid.axes()[2] if is_volume else rng.uniform(-0.45, 0.45)
    full = np.broadcast_shapes(np.shape(yb), np.shape(z))

    body_ry, body_rx = rng.uniform(0.56, 0.66), rng.uniform(0.80, 0.92)
    body_rho = superellipse_rho(yb, xb, body_ry, body_rx, 2.3)
    hu = np.full(full, -1000.0)
    hu = np.where(body_rho < 1, -100.0, hu)  # subcutaneous fat
    hu = np.where(body_rho < 1 - rng.uniform(0.07, 0.13), 40.0, hu)  # muscle and mediastinum
    table = (np.abs(yb - (body_ry + 0.08 + 0.12 * xb**2)) < 0.015) & (np.abs(xb) < 0.95)
    hu = np.where(table, 150.0, hu)

    lungs = [
        Outline.random(
            rng,
            body_ry * rng.uniform(-0.12, 0.0),
            side * body_rx * rng.uniform(0.42, 0.47),
            body_ry * rng.uniform(0.66, 0.76),
            body_rx * rng.uniform(0.32, 0.36),
            side * rng.uniform(-0.15, 0.15),
            wobble=0.08,
        )
        for side in (-1, 1)
    ]
    lung_rho = np.minimum(*(lung.rho(yb, xb, _lung_scale(z)) for lung in lungs))
    lung_hu = -860.0 + 25.0 * smooth_noise(rng, grid, 0.04) + 70.0 * np.clip(yb / body_ry, 0, 1)
    hu = np.where(lung_rho < 1, lung_hu, hu)

    # Mediastinum and bones overwrite the lung fields where they overlap.
    heart_scale = np.sqrt(np.clip(1 - ((np.asarray(z) + 0.25) / 0.6) ** 2, 1e-3, 1.0))
    heart = Outline.random(rng, -body_ry * 0.22, body_rx * 0.08, body_ry * 0.5, body_rx * 0.3, -0.5, wobble=0.05)
    hu = np.where(heart.rho(yb, xb, heart_scale) < 1, 45.0, hu)
    vertebra_y = body_ry * rng.uniform(0.55, 0.62)
    hu = np.where(np.hypot(yb - vertebra_y + 0.1, xb - 0.12) < 0.06, 50.0, hu)  # descending aorta
    hu = _paint_spine(hu, yb, xb, vertebra_y)
    hu = np.where(superellipse_rho(yb + body_ry * 0.86, xb, 0.035, 0.08, 2.0) < 1, 400.0, hu)  # sternum
    ribs = _rib_distance(yb, xb, z, body_ry, body_rx)
    hu = np.where(ribs < 1, np.where(ribs > 0.6, 650.0, 300.0), hu)
    trachea = (np.hypot(yb - vertebra_y + 0.2, xb) < 0.05) & (np.asarray(z) > 0.15)
    hu = np.where(trachea, -1000.0, hu)
    lung_mask = (lung_rho < 1) & (hu < -500)

    vessels = _lung_vessels(grid, rng, pose, lungs) * lung_mask

    mask = np.zeros(full, bool)
    coords = [yb, xb] + ([z] if is_volume else [])
    style = LESION_STYLES.get(lesion)
    if style is not None and style.diffuse:
        background = hu
        for _ in range(1 if rng.random() < 0.65 else 2):
            hu, patch, _ = paint_lesion(grid, rng, hu, coords, lung_mask, style, scale.size)
            mask |= patch
        hu = fade(background, hu, scale.contrast)
    hu = hu + 0.9 * vessels * (45.0 - hu)
    if style is not None and not style.diffuse:
        background = hu
        hu, mask, _ = paint_lesion(grid, rng, hu, coords, lung_mask, style, scale.size)
        hu = fade(background, hu, scale.contrast)
    hu = _scene_noise(rng, grid, hu, 0.6, rng.uniform(15.0, 45.0))
    return Phantom(hu.astype(np.float32), mask, lung_mask)


def _rib_distance(yb, xb, z, body_ry: float, body_rx: float) -> np.ndarray:
    """Distance to the nearest rib in rib radii: oval cross-sections along the chest wall, shifting with height."""
    rib_angles = np.deg2rad([-60, -35, -10, 15, 40, 65, 115, 140, 165, 190, 215, 240]) + 0.25 * np.asarray(z)[..., None]
    rib_y = body_ry * 0.88 * np.sin(rib_angles)
    rib_x = body_rx * 0.88 * np.cos(rib_angles)
    squared = [(yb - rib_y[..., k]) ** 2 + (xb - rib_x[..., k]) ** 2 for k in range(rib_y.shape[-1])]
    return np.sqrt(functools.reduce(np.minimum, squared)) / 0.032


def _lung_vessels(grid: Grid, rng, pose: Pose, lungs: list[Outline]) -> np.ndarray:
    """Vessel strength in [0, 1]: branching trees from each hilum.

    In 2D, short stubs stand for vessels the slice cuts across, which show as
    dots; in 3D the hilar roots spread over height so vessels reach every slice.

    Args:
        grid: Grid of the image or volume.
        rng: Generator.
        pose: Pose of the body in the image.
        lungs: Left and right lung outlines, body frame.

    Returns:
        Vessel strength on the grid.
    """
    is_volume = grid.ndim == 3
    segments = []
    for lung, side in zip(lungs, (-1, 1)):
        for _ in range(6 if is_volume else 3):
            hilum = np.array(
                [lung.cy, lung.cx - side * 0.45 * lung.rx] + ([rng.uniform(-0.35, 0.35)] if is_volume else [])
            )
            direction = np.array([rng.normal(0, 0.8), side * 1.0] + ([rng.normal(0, 0.7)] if is_volume else []))
            # Trunks start a little apart so they do not merge into one blob at the hilum.
            start = hilum + 0.05 * unit(direction)
            segments += vessel_tree(rng, start, direction, 5, 0.065)
        if not is_volume:
            for _ in range(rng.integers(4, 11)):
                spot = np.array([lung.cy + rng.uniform(-1, 1) * lung.ry, lung.cx + rng.uniform(-1, 1) * lung.rx])
                segments.append((spot, spot + random_direction(rng, 2) * 0.012, rng.uniform(0.4, 0.9)))
    points, widths = segments_array(segments)
    # Volumes have ~5 mm voxels: what stays visible there are the larger vessels.
    vessel_radius = 0.02 if is_volume else 0.008
    return draw_segments(grid, pose.to_image(points), widths, vessel_radius)


def brain_scene(grid: Grid, rng, lesion: str | None, scale: LesionScale = NO_SCALE) -> Phantom:
    """Axial head MRI (T1 with contrast): scalp, skull, CSF, grey/white matter, ventricles.

    Args:
        grid: Grid of the image.
        rng: Generator the scene draws from.
        lesion: Key of :data:`~common.data.phantoms.lesions.LESION_STYLES`, or
            None for a lesion-free scene.
        scale: Size and contrast factors of the lesion.

    Returns:
        The phantom, image in display intensities; the region is the brain.
    """
    _, yb, xb = body_frame(grid, rng, 0.04, 0.15)
    head = Outline.random(rng, 0.0, 0.0, rng.uniform(0.80, 0.88), rng.uniform(0.64, 0.72), wobble=0.03)
    rho = head.rho(yb, xb)
    image = np.where(rho < 1, 0.75, 0.0)  # scalp fat
    image = np.where(rho < 0.95, 0.08, image)  # skull
    image = np.where(rho < 0.9, 0.15, image)  # CSF
    folds = smooth_noise(rng, grid, 0.045)
    brain = rho < 0.88
    image = np.where(brain, 0.42 + 0.03 * folds, image)  # cortex
    image = np.where(rho + 0.06 * folds < 0.7, 0.62, image)  # white matter
    sulci = brain & (rho > 0.55) & (np.abs(smooth_noise(rng, grid, 0.03)) < 0.15)
    image = np.where(sulci, 0.18, image)
    image = np.where(brain & (np.abs(xb) < 0.012) & (np.abs(yb) > 0.3), 0.15, image)  # interhemispheric fissure
    ventricle_size = rng.uniform(0.8, 1.3)
    for side in (-1, 1):
        horn = Outline.random(
            rng,
            rng.uniform(-0.1, 0.0),
            side * 0.075,
            0.2 * ventricle_size,
            0.045 * ventricle_size,
            side * 0.25,
            wobble=0.1,
        )
        image = np.where(horn.rho(yb, xb) < 1, 0.1, image)

    mask = np.zeros(grid.shape, bool)
    if lesion is not None:
        background = image
        image, mask, lesion_rho = paint_lesion(grid, rng, image, [yb, xb], brain, LESION_STYLES[lesion], scale.size)
        if rng.random() < 0.7:  # necrotic core inside the enhancing rim
            image = np.where(mask & (lesion_rho < rng.uniform(0.45, 0.65)), rng.uniform(0.2, 0.35), image)
        edema = brain & ~mask & (lesion_rho < 1.5)
        image = np.where(edema, image * 0.8, image)
        image = fade(background, image, scale.contrast)
    image = image * (1 + 0.08 * smooth_noise(rng, grid, 0.4))  # coil bias field
    image = ndimage.gaussian_filter(image, 0.6)
    noise_sd = rng.uniform(0.015, 0.04)
    # Magnitude images have Rician noise.
    image = np.hypot(image + noise_sd * rng.standard_normal(grid.shape), noise_sd * rng.standard_normal(grid.shape))
    return Phantom(image.astype(np.float32), mask, brain)


def breast_scene(grid: Grid, rng, lesion: str | None, scale: LesionScale = NO_SCALE) -> Phantom:
    """Cranio-caudal mammogram: breast cone from the chest wall, fibroglandular texture.

    Args:
        grid: Grid of the image.
        rng: Generator the scene draws from.
        lesion: Key of :data:`~common.data.phantoms.lesions.LESION_STYLES`, or
            None for a lesion-free scene.
        scale: Size and contrast factors of the lesion.

    Returns:
        The phantom, image in display intensities; the region is the breast inside the skin.
    """
    _, yb, xb = body_frame(grid, rng, 0.03, 0.1)
    xb = xb * rng.choice([-1.0, 1.0])  # left or right breast
    outline = Outline.random(rng, 0.0, -1.05, rng.uniform(0.72, 0.9), rng.uniform(1.15, 1.45), wobble=0.04)
    rho = outline.rho(yb, xb)
    breast = rho < 1
    coarse, fine = smooth_noise(rng, grid, 0.12), smooth_noise(rng, grid, 0.03)
    density = rng.uniform(-0.3, 0.5)
    glandular = 1 / (1 + np.exp(-3 * (0.8 * coarse + 0.6 * fine + 2.0 * (0.7 - rho) - 1.0 + density)))
    # Cooper's ligaments and ducts run towards the nipple: radial streaks.
    angle = np.arctan2(yb, xb + 1.05)
    streak_profile = ndimage.gaussian_filter1d(rng.standard_normal(256), 2.0, mode="wrap")
    streaks = np.interp(angle, np.linspace(-np.pi, np.pi, 256), streak_profile / streak_profile.std())
    image = np.where(breast, 0.25 + 0.27 * glandular + 0.04 * streaks * glandular, 0.0)
    image = np.where(breast & (rho > 0.97), 0.5, image)  # skin
    region = breast & (rho <= 0.97)
    mask = np.zeros(grid.shape, bool)
    if lesion is not None:
        background = image
        image, mask, _ = paint_lesion(grid, rng, image, [yb, xb], region, LESION_STYLES[lesion], scale.size)
        image = fade(background, image, scale.contrast)
    image = ndimage.gaussian_filter(image, 0.6) + rng.uniform(0.01, 0.025) * rng.standard_normal(grid.shape)
    return Phantom(image.astype(np.float32), mask, region)


def kidney_scene(grid: Grid, rng, lesion: str | None, scale: LesionScale = NO_SCALE) -> Phantom:
    """Contrast-enhanced abdominal CT in HU at the level of both kidneys.

    Args:
        grid: Grid of the image.
        rng: Generator the scene draws from.
        lesion: Key of :data:`~common.data.phantoms.lesions.LESION_STYLES`, or
            None for a lesion-free scene.
        scale: Size and contrast factors of the lesion.

    Returns:
        The phantom, image in HU; the region is both kidneys plus the tumour.
    """
    _, yb, xb = body_frame(grid, rng, 0.04, 0.1)
    body_ry, body_rx = rng.uniform(0.58, 0.68), rng.uniform(0.82, 0.93)
    body_rho = superellipse_rho(yb, xb, body_ry, body_rx, 2.2)
    fat = rng.uniform(0.08, 0.16)
    hu = np.where(body_rho < 1, -100.0, -1000.0)
    hu = np.where(body_rho < 1 - fat, 50.0, hu)  # abdominal wall muscle
    cavity = body_rho < 1 - fat - 0.05
    hu = np.where(cavity, -90.0, hu)  # visceral fat
    liver = Outline.random(rng, -0.1 * body_ry, -0.45 * body_rx, 0.55 * body_ry, 0.4 * body_rx, 0.3, wobble=0.08)
    hu = np.where(cavity & (liver.rho(yb, xb) < 1), 60.0, hu)
    for _ in range(rng.integers(3, 8)):  # bowel loops, mostly with gas
        cy, cx, radius = rng.uniform(-0.9, 0.1) * body_ry, rng.uniform(-0.2, 0.8) * body_rx, rng.uniform(0.05, 0.09)
        loop = np.hypot(yb - cy, xb - cx) / radius
        lumen = -1000.0 if rng.random() < 0.7 else 10.0
        hu = np.where(cavity & (loop < 1), np.where(loop < 0.75, lumen, 40.0), hu)
    vertebra_y = body_ry * rng.uniform(0.5, 0.58)
    for side in (-1, 1):
        psoas = superellipse_rho(yb - vertebra_y + 0.02, xb - side * 0.15, 0.09, 0.06, 2.0) < 1
        hu = np.where(psoas, 50.0, hu)
    hu = np.where(np.hypot(yb - vertebra_y + 0.15, xb - 0.04) < 0.045, 180.0, hu)  # aorta
    hu = np.where(superellipse_rho(yb - vertebra_y + 0.14, xb + 0.1, 0.04, 0.06, 2.0) < 1, 150.0, hu)  # IVC
    hu = _paint_spine(hu, yb, xb, vertebra_y)

    region = np.zeros(grid.shape, bool)
    for side in (-1, 1):
        kidney = Outline.random(
            rng,
            vertebra_y - rng.uniform(0.04, 0.1),
            side * rng.uniform(0.38, 0.44),
            rng.uniform(0.22, 0.26),
            rng.uniform(0.15, 0.17),
            side * rng.uniform(0.3, 0.5),
            wobble=0.04,
        )
        rho = kidney.rho(yb, xb)
        # The hilum opens medially: renal sinus fat there makes the bean shape.
        sinus_x = kidney.cx - side * 0.7 * kidney.rx
        sinus = np.hypot((yb - kidney.cy) / (0.4 * kidney.ry), (xb - sinus_x) / (0.5 * kidney.rx)) < 1
        hu = np.where(rho < 1, np.where(sinus, -50.0, 170.0), hu)
        medulla = (rho < 1) & ~sinus & (rho + 0.1 * smooth_noise(rng, grid, 0.03) < 0.7)
        hu = np.where(medulla, 120.0, hu)
        region |= rho < 1
    mask = np.zeros(region.shape, bool)
    if lesion is not None:
        background = hu
        hu, mask, lesion_rho = paint_lesion(grid, rng, hu, [yb, xb], region, LESION_STYLES[lesion], scale.size)
        # Hyper-enhancing renal cell carcinoma with a necrotic centre (arterial phase look).
        hu = np.where(mask & (lesion_rho < rng.uniform(0.4, 0.6)), rng.uniform(-10.0, 20.0), hu)
        hu = fade(background, hu, scale.contrast)
        region = region | mask
    hu = _scene_noise(rng, grid, hu, 0.6, rng.uniform(8.0, 20.0))
    return Phantom(hu.astype(np.float32), mask, region)
