"""Predict loaded inputs and explain each by the CAM of its predicted class.

For each input the :class:`Prediction` holds the class probabilities, the CAM
of the predicted class (a method of :data:`common.explain.methods.METHODS`),
its overlay on the image and the contour map of its strongest region
(:mod:`common.explain.overlays`), drawn at display size (long side at most
:data:`DISPLAY_MAX_SIDE`). A volume is shown by its slice with the most CAM
mass, and as a whole by a montage of its slices and the CAM's maximum-intensity
projections (:mod:`common.predict.volume_views`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import ParameterError
from common.predict.card import RunModel
from common.predict.inputs import LoadedInput

# Score-CAM runs one forward pass per channel; the default profile's cap keeps it interactive.
SCORECAM_MAX_CHANNELS = 64
# The CAM region outlined on the contour map: where the CAM reaches half its peak (as in the runs).
CONTOUR_FRACTION = 0.5
# Long side of a shown 2D image: a larger file's overlay and contour map are drawn shrunk to it, not at full size
# (a 50 M pixel image, the input limit, would need several gigabytes of float copies).
DISPLAY_MAX_SIDE = 1024


@dataclass
class Prediction:
    """The probabilities and explanation of one input."""

    source: str
    probabilities: dict[str, float]
    predicted: str
    method: str
    layer: str
    image: np.ndarray  # shown image (H, W) in [0, 1] at display size; a volume's chosen slice
    cam: np.ndarray  # CAM of the predicted class, (H, W) at the model input size
    overlay: np.ndarray  # RGB uint8
    contours: np.ndarray  # RGB uint8
    slice_index: int | None = None  # a volume's shown slice: the one with the most CAM mass
    cam_max_slice: int | None = None  # a volume's slice holding the CAM maximum
    montage: np.ndarray | None = None  # a volume's slices with their CAM, RGB uint8
    mip: np.ndarray | None = None  # a volume's CAM maximum-intensity projections, RGB uint8
    files: dict[str, str] = field(default_factory=dict)

    def images(self) -> dict[str, np.ndarray]:
        """The images shown for this input by kind: overlay and contours, and a volume's montage and mip."""
        kinds = {"overlay": self.overlay, "contours": self.contours, "montage": self.montage, "mip": self.mip}
        return {kind: image for kind, image in kinds.items() if image is not None}

    def record(self) -> dict:
        """The JSON record of this prediction."""
        record = {
            "source": self.source,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "cam_method": self.method,
            "cam_layer": self.layer,
        }
        if self.slice_index is not None:
            record["slice_index"] = self.slice_index
        if self.cam_max_slice is not None:
            record["cam_max_slice"] = self.cam_max_slice
        if self.files:
            record["files"] = self.files
        return record


def cam_methods() -> tuple[str, ...]:
    """Names of the CAM methods, in the order of :data:`common.explain.methods.METHODS`, without the baselines.

    Read on call: the methods' module imports TensorFlow, which the command
    line does not load until a prediction needs it.
    """
    from common.explain.methods import METHODS

    return tuple(name for name, method in METHODS.items() if not method.baseline)


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :func:`cam_methods`.

    Raises:
        ParameterError: unknown method.
    """
    if method not in cam_methods():
        raise ParameterError(f"Unknown CAM method {method!r}; choose one of {', '.join(cam_methods())}.")
    return method


def check_layer(run_model: RunModel, layer: str | None) -> str:
    """Return the CAM layer to use: ``layer``, or the run's own when None.

    Raises:
        ParameterError: ``layer`` is not one of :meth:`RunModel.cam_layers`.
    """
    layer = layer or run_model.default_layer
    if layer not in run_model.cam_layers():
        raise ParameterError(
            f"Layer {layer!r} is not a spatial feature map of {run_model.model.name}; "
            f"choose one of {', '.join(run_model.cam_layers()[-5:])} (last five shown)."
        )
    return layer


def predict_loaded(
    run_model: RunModel, inputs: Sequence[LoadedInput], method: str = "gradcam", layer: str | None = None
) -> list[Prediction]:
    """Predict a batch of loaded inputs and explain each by the CAM of its predicted class.

    Args:
        run_model: The run's model and card.
        inputs: Inputs from :func:`common.predict.inputs.load_input`.
        method: One of :func:`cam_methods`.
        layer: CAM layer; None -> the run's own (:attr:`RunModel.default_layer`).

    Returns:
        One :class:`Prediction` per input, in order.
    """
    from common.explain import cams
    from common.training import fit

    check_method(method)
    layer = check_layer(run_model, layer)
    if not inputs:
        return []
    batch = np.concatenate([loaded.model_input for loaded in inputs], axis=0)
    probabilities = fit.predict_proba(run_model.model, batch)
    predicted = probabilities.argmax(axis=1)
    maps = cams.compute_cam(
        run_model.model,
        batch,
        predicted,
        method=method,
        layer=layer,
        max_channels=SCORECAM_MAX_CHANNELS if method == "scorecam" else None,
    )
    return [
        _explained(loaded, dict(zip(run_model.classes, probs)), run_model.classes[int(index)], method, layer, cam)
        for loaded, probs, index, cam in zip(inputs, probabilities, predicted, maps)
    ]


def _explained(
    loaded: LoadedInput, probabilities: dict, predicted: str, method: str, layer: str, cam: np.ndarray
) -> Prediction:
    """One input's :class:`Prediction`: its CAM over the shown image (a volume's strongest slice and views)."""
    from common.explain import overlays

    image, volume = loaded.display, {}
    if cam.ndim == 3:
        volume = _volume_views(image, cam, f"{Path(loaded.source).name}: {predicted}, {method} at {layer}")
        image, cam = image[..., volume["slice_index"]], cam[..., volume["slice_index"]]
    else:
        image = display_image(image)
    return Prediction(
        source=loaded.source,
        probabilities={name: float(p) for name, p in probabilities.items()},
        predicted=predicted,
        method=method,
        layer=layer,
        image=image,
        cam=cam,
        overlay=overlays.overlay(image, cam),
        contours=overlays.draw_contours(image, cam, CONTOUR_FRACTION),
        **volume,
    )


def _volume_views(volume: np.ndarray, cam: np.ndarray, title: str) -> dict:
    """A volume's shown slice (the one with the most CAM mass), its CAM maximum's slice, montage and MIP."""
    from common.predict import volume_views

    return {
        "slice_index": int(cam.sum(axis=(0, 1)).argmax()),
        "cam_max_slice": volume_views.cam_max_slice(cam),
        "montage": volume_views.slice_montage(volume, cam, title),
        "mip": volume_views.projections(volume, cam, title),
    }


def display_image(image: np.ndarray) -> np.ndarray:
    """A 2D image shrunk (aspect kept) to a long side of :data:`DISPLAY_MAX_SIDE`; a smaller one as it is."""
    from common.predict.volume_views import resize_for_display

    height, width = image.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(height, width)
    if scale >= 1.0:
        return image
    return resize_for_display(image, max(1, round(height * scale)), max(1, round(width * scale)))


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 or [0, 1] greyscale image as PNG bytes."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
