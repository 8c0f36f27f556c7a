"""Streamlit page: predict and explain uploaded images with a model a run saved.

Start it with ``camstudy app`` (``streamlit run src/common/app.py``). The page
only lays things out; reading the model, making inputs the run's way,
predicting and drawing the CAMs is :mod:`common.predict`, shared with
``camstudy predict``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from common import predict
from common.data.folders import IMAGE_SUFFIXES
from common.errors import StudyError, failure_line, log_traceback

st.set_page_config(page_title="camstudy: predict and explain", layout="wide")
st.title("Predict and explain an image")


@st.cache_resource(show_spinner="Loading the model...")
def cached_run_model(experiment: str, results_dir: str, stamp: float) -> predict.RunModel:
    """One loaded model per experiment and model file version (``stamp``)."""
    return predict.load_run_model(experiment, results_dir=results_dir)


def png_download(container, kind: str, image, stem: str, number: int) -> None:
    """A button in ``container`` (the page or a column) that downloads ``image`` as ``<stem>_<kind>.png``."""
    container.download_button(
        f"Download {kind} PNG",
        predict.png_bytes(image),
        file_name=f"{stem}_{kind}.png",
        mime="image/png",
        on_click="ignore",
        key=f"download-{number}-{kind}",
    )


results_dir = predict.app_results_dir()
experiments = predict.experiments_with_models(results_dir)
if not experiments:
    st.warning(
        f"No run in {results_dir} has saved a model with its model card yet. "
        "Run an experiment first, e.g. `camstudy run resnet50-gradcam --profile smoke`."
    )
    st.stop()

experiment = st.selectbox("Experiment (runs whose model was saved)", experiments)
try:
    run_model = cached_run_model(experiment, str(results_dir), predict.model_stamp(experiment, results_dir))
except StudyError as exc:
    st.error(str(exc))
    st.stop()

st.warning(predict.model_banner(run_model.card))

method_column, layer_column = st.columns(2)
method = method_column.selectbox("CAM method", predict.cam_methods())
layers = run_model.cam_layers()
layer = layer_column.selectbox("CAM layer", layers, index=layers.index(run_model.default_layer))

is_volume = run_model.input_kind == "volume"
uploads = st.file_uploader(
    "Slice files of one DICOM series" if is_volume else "Images (PNG, JPEG, DICOM slice, ...)",
    # Slices of a series often have no suffix at all.
    type=None if is_volume else sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES),
    accept_multiple_files=True,
)
if not uploads:
    st.info("Upload one or more images to see the prediction and its class activation map.")
    st.stop()

try:
    with st.spinner("Predicting and computing the CAMs..."):
        predictions, errors = predict.predict_uploads(
            run_model, [(upload.name, upload.getvalue()) for upload in uploads], method, layer
        )
except StudyError as exc:
    predictions, errors = [], [str(exc)]
except Exception as exc:  # noqa: BLE001 - the page's error boundary: one line here, the traceback in the log
    predictions, errors = [], [failure_line(exc, log_traceback(exc, "camstudy app"))]
for message in errors:
    st.error(message)

for number, prediction in enumerate(predictions):
    stem = Path(prediction.source).stem or f"input_{number}"
    st.subheader(
        f"{prediction.source}: {prediction.predicted} (p = {prediction.probabilities[prediction.predicted]:.3f})"
    )
    st.table(
        pd.DataFrame(
            {
                "class": list(prediction.probabilities),
                "probability": [f"{p:.4f}" for p in prediction.probabilities.values()],
            }
        )
    )
    where = f", slice {prediction.slice_index}" if prediction.slice_index is not None else ""
    figures = {
        "original": (prediction.image, f"original{where}"),
        "overlay": (prediction.overlay, f"{prediction.method} at {prediction.layer}"),
        "contours": (prediction.contours, f"region >= {predict.CONTOUR_FRACTION:g} x peak"),
    }
    for column, (kind, (image, caption)) in zip(st.columns(len(figures)), figures.items()):
        column.image(image, caption=caption, clamp=True, width="stretch")
        png_download(column, kind, image, stem, number)
    volume_figures = {
        "montage": f"slices with their CAM; framed: slice {prediction.cam_max_slice}, the CAM maximum",
        "mip": "maximum-intensity projections of the CAM",
    }
    for kind, caption in volume_figures.items():
        image = prediction.images().get(kind)
        if image is None:
            continue
        st.image(image, caption=caption, width="stretch")
        png_download(st, kind, image, stem, number)
    st.download_button(
        "Download probabilities (JSON)",
        json.dumps(prediction.record(), indent=2),
        file_name=f"{stem}.json",
        mime="application/json",
        on_click="ignore",
        key=f"download-{number}-json",
    )
