"""Predict and explain new images with a model a run saved (``camstudy predict`` and the app).

A run leaves ``results/<id>/model.keras`` and, beside it, ``model_card.json``
(:meth:`common.report.results.RunRecorder.write_model_card`), which records how the
model's inputs were made. Everything here follows that card rather than
guessing, so a file predicted here gets the probabilities the notebook's model
gave it.

Modules:
    card: the saved model and its card (:class:`RunModel`, :func:`load_run_model`,
        :func:`read_model_card`, :func:`model_banner`).
    inputs: one image file or DICOM series made the run's way (:func:`load_input`).
    prediction: probabilities, the CAM of the predicted class, its overlay and
        contour map (:class:`Prediction`, :func:`predict_loaded`, :func:`png_bytes`).
    outputs: many files predicted in batches, each one's JSON and PNGs written
        (:func:`predict_paths`, :func:`write_prediction`, :func:`probability_table`).
    volume_views: a volume's montage of slices and CAM projections at readable size.
    uploads: the app's uploaded files (:func:`predict_uploads`).
    launcher: the Streamlit command and the results folder the app lists.

The command line and the Streamlit page (:mod:`common.app`) call only this
package, so both behave the same. Importing it does not import TensorFlow;
:func:`cam_methods` reads the CAM methods' names (from :data:`common.explain.methods.METHODS`,
which imports it) when called.
"""

from __future__ import annotations

from common.predict.card import (
    CARD_FIELDS,
    CARD_FILE,
    INPUT_KINDS,
    MODEL_FILE,
    VOLUME_CARD_FIELDS,
    RunModel,
    expected_input_shape,
    experiments_with_models,
    load_run_model,
    model_banner,
    model_stamp,
    read_model_card,
    run_dir,
)
from common.predict.inputs import INPUT_LOADERS, LoadedInput, load_input
from common.predict.launcher import (
    DEFAULT_ADDRESS,
    DEFAULT_PORT,
    RESULTS_DIR_ENV,
    app_results_dir,
    app_script,
    streamlit_command,
)
from common.predict.outputs import predict_paths, probability_table, write_prediction
from common.predict.prediction import (
    CONTOUR_FRACTION,
    SCORECAM_MAX_CHANNELS,
    Prediction,
    cam_methods,
    check_layer,
    check_method,
    png_bytes,
    predict_loaded,
)
from common.predict.uploads import predict_uploads

__all__ = [
    "CARD_FIELDS",
    "CARD_FILE",
    "CONTOUR_FRACTION",
    "DEFAULT_ADDRESS",
    "DEFAULT_PORT",
    "INPUT_KINDS",
    "INPUT_LOADERS",
    "MODEL_FILE",
    "RESULTS_DIR_ENV",
    "SCORECAM_MAX_CHANNELS",
    "VOLUME_CARD_FIELDS",
    "LoadedInput",
    "Prediction",
    "RunModel",
    "app_results_dir",
    "app_script",
    "cam_methods",
    "check_layer",
    "check_method",
    "expected_input_shape",
    "experiments_with_models",
    "load_input",
    "load_run_model",
    "model_banner",
    "model_stamp",
    "png_bytes",
    "predict_loaded",
    "predict_paths",
    "predict_uploads",
    "probability_table",
    "read_model_card",
    "run_dir",
    "streamlit_command",
    "write_prediction",
]
