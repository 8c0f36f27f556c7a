"""Predict loaded inputs and explain each by the CAM of its predicted class.

For each input the :class:`Prediction` holds the class probabilities, the CAM
of the predicted class (a method of :data:`common.explain.methods.METHODS`),
its overlay on the image and the contour map of its strongest region
(:mod:`common.explain.overlays`). A volume is shown by its slice with the most
CAM mass.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from common.errors import ParameterError
from common.predict.card import RunModel
from common.predict.inputs import LoadedInput

# Score-CAM runs one forward pass per channel; the default profile's cap keeps it interactive.
SCORECAM_MAX_CHANNELS = 64
# The CAM region outlined on the contour map: where the CAM reaches half its peak (as in the runs).
CONTOUR_FRACTION = 0.5


@dataclass
class Prediction:
    """The probabilities and explanation of one input."""

    source: str
    probabilities: dict[str, float]
    predicted: str
    method: str
    layer: str
    image: np.ndarray  # shown image (H, W) in [0, 1]; a volume's chosen slice
    cam: np.ndarray  # CAM of the predicted class, (H, W) at the model input size
    overlay: np.ndarray  # RGB uint8
    contours: np.ndarray  # RGB uint8
    slice_index: int | None = None
    files: dict[str, str] = field(default_factory=dict)

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
        if self.files:
            record["files"] = self.files
        return record


def cam_methods() -> tuple[str, ...]:
    """Names of the CAM methods, in the order of :data:`common.explain.methods.METHODS`.

    Read on call: the methods' module imports TensorFlow, which the command
    line does not load until a prediction needs it.
    """
    from common.explain.methods import METHODS

    return tuple(METHODS)


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
    """One input's :class:`Prediction`: its CAM over the shown image (a volume's strongest slice)."""
    from common.explain import overlays

    image, slice_index = loaded.display, None
    if cam.ndim == 3:
        # A volume is shown by the slice where its CAM is strongest.
        slice_index = int(cam.sum(axis=(0, 1)).argmax())
        image, cam = image[..., slice_index], cam[..., slice_index]
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
        slice_index=slice_index,
    )


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an RGB uint8 or [0, 1] greyscale image as PNG bytes."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
