"""A volume's CAM at readable size: a montage of its slices and maximum-intensity projections.

``camstudy predict`` shows a 3D prediction by one slice at the model's input
size (48 px in the smoke profile). These views show the whole volume instead,
at least :data:`READABLE_WIDTH` pixels wide: :func:`slice_montage` a grid of
slices, each with its CAM overlaid and labelled with its index, the slice
holding the CAM's maximum framed in :data:`MAX_COLOUR`; :func:`projections`
the CAM's maximum-intensity projections along the three axes over the
volume's. Both draw with :func:`common.explain.overlays.overlay` (so the
colours are those of every other overlay) and Pillow, and return RGB uint8
arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common.errors import DataError
from common.explain import overlays

# Narrowest figure a person reads without zooming (the "readable size").
READABLE_WIDTH = 512
# At most this many slices in a montage (evenly spaced, always with the CAM maximum's slice), in rows of
# at most MONTAGE_COLUMNS tiles.
MONTAGE_MAX_TILES = 32
MONTAGE_COLUMNS = 8
# A montage tile's long side: at least TILE_MIN_SIDE (upscaled), at most TILE_MAX_SIDE (downscaled).
TILE_MIN_SIDE, TILE_MAX_SIDE = 128, 256
# Magenta marks the CAM maximum: neither a grey image nor a jet overlay holds it.
MAX_COLOUR = (255, 0, 255)
BACKGROUND = (20, 20, 20)
TEXT_COLOUR = (235, 235, 235)
FONT_SIZE = 14
LINE_HEIGHT = 20  # one text line: a tile label, a title line or the colour key's caption
GAP = 8  # around every tile; the frame of the maximum's tile lies in it
FRAME_WIDTH = 3
KEY_SIZE = (256, 12)  # width and height of the CAM colour key


def cam_max_slice(cam: np.ndarray) -> int:
    """The slice (last axis) holding the maximum of an (H, W, D) CAM."""
    cam = _volume(cam, "cam")
    return int(np.unravel_index(int(cam.argmax()), cam.shape)[2])


def montage_slices(depth: int, peak: int, max_tiles: int = MONTAGE_MAX_TILES) -> list[int]:
    """The slices a montage shows: all of them, or ``max_tiles`` evenly spaced ones including ``peak``.

    Args:
        depth: Slices in the volume.
        peak: A slice that must be shown (the CAM maximum's); it replaces the nearest evenly spaced one.
        max_tiles: Most slices shown.

    Returns:
        Slice indices, ascending.
    """
    if depth <= max_tiles:
        return list(range(depth))
    chosen = np.linspace(0, depth - 1, max_tiles).round().astype(int)
    chosen[np.abs(chosen - peak).argmin()] = peak
    return sorted(int(z) for z in chosen)


def resize_for_display(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An image resized to height x width: bilinear when enlarging, pixel-area averaging when shrinking."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def slice_montage(volume: np.ndarray, cam: np.ndarray, title: str) -> np.ndarray:
    """A grid of the volume's slices with their CAM, the CAM maximum's slice framed.

    Args:
        volume: (H, W, D) image volume in [0, 1] (as shown, e.g. windowed CT).
        cam: (H, W, D) CAM in [0, 1], the volume's size.
        title: First line of the figure's heading (the input and its prediction).

    Returns:
        RGB uint8 image at least :data:`READABLE_WIDTH` pixels wide.
    """
    volume, cam = _volume_and_cam(volume, cam)
    height, width, depth = volume.shape
    peak = cam_max_slice(cam)
    slices = montage_slices(depth, peak)
    columns = min(MONTAGE_COLUMNS, len(slices))
    scale = max(READABLE_WIDTH / (columns * width), TILE_MIN_SIDE / max(height, width))
    scale = max(scale, min(1.0, TILE_MAX_SIDE / max(height, width)))
    tile_height, tile_width = math.ceil(height * scale), math.ceil(width * scale)
    cell_width, cell_height = tile_width + 2 * GAP, LINE_HEIGHT + tile_height + 2 * GAP
    heading = [title, f"{len(slices)} of {depth} slices; framed: slice {peak}, which holds the CAM maximum"]
    rows = math.ceil(len(slices) / columns)
    canvas, top = _canvas(columns * cell_width, rows * cell_height, heading)
    draw = ImageDraw.Draw(canvas)
    for number, z in enumerate(slices):
        x = (number % columns) * cell_width + GAP
        y = top + (number // columns) * cell_height + GAP
        tile = overlays.overlay(resize_for_display(volume[..., z], tile_height, tile_width), cam[..., z])
        canvas.paste(Image.fromarray(tile), (x, y + LINE_HEIGHT))
        marked = z == peak
        _text(draw, (x, y), f"slice {z}" + ("  max" if marked else ""), MAX_COLOUR if marked else TEXT_COLOUR)
        if marked:
            _frame(draw, (x, y + LINE_HEIGHT, x + tile_width - 1, y + LINE_HEIGHT + tile_height - 1))
    return np.asarray(canvas)


def projections(volume: np.ndarray, cam: np.ndarray, title: str) -> np.ndarray:
    """The CAM's maximum-intensity projections (axial, coronal, sagittal) over the volume's.

    The axial view is :data:`READABLE_WIDTH` pixels wide and the other two share its scale
    (slices running down); a circle marks the CAM maximum in each.

    Args:
        volume: (H, W, D) image volume in [0, 1].
        cam: (H, W, D) CAM in [0, 1], the volume's size.
        title: First line of the figure's heading.

    Returns:
        RGB uint8 image.
    """
    from common.report.figures.volumes import orthogonal_views

    volume, cam = _volume_and_cam(volume, cam)
    row, column, z = np.unravel_index(int(cam.argmax()), cam.shape)
    image_views, cam_views = orthogonal_views(volume, "max"), orthogonal_views(cam, "max")
    peaks = {"axial": (row, column), "coronal": (z, column), "sagittal": (z, row)}
    axes = {"axial": "over slices", "coronal": "over rows, slices down", "sagittal": "over columns, slices down"}
    scale = READABLE_WIDTH / volume.shape[1]
    sizes = {view: [math.ceil(side * scale) for side in image_views[view].shape] for view in image_views}
    width = sum(size[1] + 2 * GAP for size in sizes.values())
    height = LINE_HEIGHT + max(size[0] for size in sizes.values()) + 2 * GAP
    heading = [title, "maximum-intensity projections of the CAM over those of the volume; circled: the CAM maximum"]
    canvas, top = _canvas(width, height, heading)
    draw = ImageDraw.Draw(canvas)
    x, view_top = GAP, top + GAP + LINE_HEIGHT
    for view, (view_height, view_width) in sizes.items():
        shown = overlays.overlay(resize_for_display(image_views[view], view_height, view_width), cam_views[view])
        canvas.paste(Image.fromarray(shown), (x, view_top))
        _text(draw, (x, top + GAP), f"{view}: max {axes[view]}", TEXT_COLOUR)
        centre_x, centre_y = x + (peaks[view][1] + 0.5) * scale, view_top + (peaks[view][0] + 0.5) * scale
        radius = max(6.0, scale)
        box = (centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius)
        draw.ellipse(box, outline=MAX_COLOUR, width=2)
        x += view_width + 2 * GAP
    return np.asarray(canvas)


def _volume(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 3 or 0 in array.shape:
        raise DataError(f"{name} must be an (H, W, D) volume; got shape {array.shape}.")
    return array


def _volume_and_cam(volume: np.ndarray, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    volume, cam = _volume(volume, "volume"), _volume(cam, "cam")
    if volume.shape != cam.shape:
        raise DataError(f"The CAM's shape {cam.shape} differs from the volume's {volume.shape}.")
    return volume, cam


@functools.cache
def _font() -> ImageFont.FreeTypeFont:
    """Pillow's own font (so the figures look the same on every machine), loaded once."""
    return ImageFont.load_default(size=FONT_SIZE)


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour: tuple[int, int, int]) -> None:
    draw.text(xy, text, fill=colour, font=_font())


def _frame(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """A :data:`MAX_COLOUR` frame just outside the box (inclusive pixel corners), in the gap around it."""
    x0, y0, x1, y1 = box
    outer = (x0 - FRAME_WIDTH, y0 - FRAME_WIDTH, x1 + FRAME_WIDTH, y1 + FRAME_WIDTH)
    draw.rectangle(outer, outline=MAX_COLOUR, width=FRAME_WIDTH)


def _canvas(width: int, height: int, heading: Sequence[str]) -> tuple[Image.Image, int]:
    """A figure canvas: heading lines on top, ``height`` free pixels, then the CAM colour key.

    Returns:
        The canvas (at least :data:`READABLE_WIDTH` wide) and the top of its free area.
    """
    width = max(width, READABLE_WIDTH)
    top = GAP + LINE_HEIGHT * len(heading)
    canvas = Image.new("RGB", (width, top + height + KEY_SIZE[1] + LINE_HEIGHT + GAP), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(heading):
        _text(draw, (GAP, GAP + number * LINE_HEIGHT), _fitted(line, width - 2 * GAP), TEXT_COLOUR)
    key_width, key_height = KEY_SIZE
    # The colour key is the overlay itself drawn at full heatmap weight over a 0 -> 1 ramp.
    ramp = np.tile(np.linspace(0.0, 1.0, key_width, dtype=np.float32), (key_height, 1))
    key = overlays.overlay(np.zeros_like(ramp), ramp, alpha=1.0)
    key_top = top + height
    _text(draw, (GAP, key_top), "CAM 0", TEXT_COLOUR)
    key_left = GAP + int(_font().getlength("CAM 0 ")) + 4
    canvas.paste(Image.fromarray(key), (key_left, key_top + 3))
    _text(draw, (key_left + key_width + 6, key_top), "1", TEXT_COLOUR)
    return canvas, top


def _fitted(text: str, width: int) -> str:
    """``text``, cut short with an ellipsis if wider than ``width`` pixels."""
    font = _font()
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."
