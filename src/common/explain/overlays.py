"""Showing a CAM on its image: colour overlay, the region it highlights, and that region's contours.

All functions take one 2D map (take a slice of a 3D CAM) and a greyscale or
RGB image, and return RGB uint8 images; a map whose size differs from the
image's is resized bilinearly.
"""

from __future__ import annotations

import cv2
import matplotlib
import numpy as np

from common.errors import DataError, ParameterError


def rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Greyscale or RGB image -> RGB uint8; floats with maximum <= 1 are taken as [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise DataError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.copy()
    image = image.astype(np.float32)
    if image.max(initial=0.0) <= 1.0:
        image = image * 255.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _cam_at(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2D CAM resized (bilinear) to height x width."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise DataError(f"cam must be a 2D map (H, W), got shape {cam.shape}; take a slice of a 3D CAM")
    if cam.shape != (height, width):
        cam = cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR)
    return cam


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped CAM over an image.

    Args:
        image: Greyscale (H, W) / (H, W, 1) or RGB (H, W, 3); uint8, float in
            [0, 255], or float in [0, 1] (any float image with maximum <= 1).
        cam: 2D map in [0, 1]; resized to the image when sizes differ.
        alpha: Weight of the heatmap (0 = image only, 1 = heatmap only).
        colormap: Any matplotlib colormap name.

    Returns:
        RGB uint8 array (H, W, 3).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = rgb_uint8(image).astype(np.float32)
    cam = np.clip(_cam_at(cam, *rgb.shape[:2]), 0.0, 1.0)
    heat = matplotlib.colormaps[colormap](cam)[..., :3] * 255.0
    blended = (1.0 - alpha) * rgb + alpha * heat
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def cam_region(cam: np.ndarray, fraction: float = 0.5) -> tuple[list[np.ndarray], tuple[int, int, int, int] | None]:
    """Outline the region where a 2D CAM reaches a fraction of its peak.

    Args:
        cam: 2D map.
        fraction: Threshold as a fraction of the map's maximum (cam >= fraction * max).

    Returns:
        (contours, box): the outer contours of the thresholded map
        (cv2.findContours) and the bounding box (x0, y0, x1, y1), inclusive
        pixel coordinates, of the largest contour; ``([], None)`` for a map
        without a positive peak.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise DataError(f"cam must be a 2D map (H, W), got shape {cam.shape}")
    peak = float(cam.max(initial=0.0))
    if peak <= 0.0:
        return [], None
    region = (cam >= fraction * peak).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # Rank by enclosed area, then by box area: a one-pixel-wide region encloses no area.
    largest = max(contours, key=lambda c: (cv2.contourArea(c), np.prod(cv2.boundingRect(c)[2:])))
    x, y, w, h = cv2.boundingRect(largest)
    return list(contours), (x, y, x + w - 1, y + h - 1)


def draw_contours(
    image: np.ndarray,
    cam: np.ndarray,
    fraction: float = 0.5,
    color: tuple[int, int, int] = (0, 255, 0),
) -> np.ndarray:
    """Draw the CAM's region contours and the largest region's box on the image.

    The contour map of the multi-organ paper: the outline of the highlighted
    region and its bounding box in green, beside the Grad-CAM heatmap.

    Args:
        image: Greyscale or RGB image (see :func:`overlay`).
        cam: 2D map; resized to the image when sizes differ.
        fraction: Threshold of :func:`cam_region`.
        color: RGB colour of contour and box.

    Returns:
        RGB uint8 array (H, W, 3).
    """
    rgb = rgb_uint8(image)
    contours, box = cam_region(_cam_at(cam, *rgb.shape[:2]), fraction)
    if box is not None:
        cv2.drawContours(rgb, contours, -1, color, thickness=1)
        cv2.rectangle(rgb, box[:2], box[2:], color, thickness=1)
    return rgb
