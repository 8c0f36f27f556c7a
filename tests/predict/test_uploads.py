"""Tests of common.predict.uploads: the app's uploaded files are predicted and named by their upload names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common import predict
from tests.predict.helpers import IMAGE_SIZE


def test_uploads_name_the_bad_file_not_the_temporary_copy(tiny_run):
    good = Path(tiny_run["samples"]["path"].iloc[0])
    predictions, errors = predict.predict_uploads(
        tiny_run["run_model"],
        [(good.name, good.read_bytes()), ("scan.png", b"\x89PNG\r\n\x1a\n broken")],
    )
    assert [p.source for p in predictions] == [good.name]
    assert errors and errors[0].startswith("scan.png: not a readable image") and "camstudy-upload" not in errors[0]
    prediction = predictions[0]
    assert prediction.overlay.dtype == np.uint8 and prediction.overlay.shape[-1] == 3
    assert prediction.cam.shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert predict.png_bytes(prediction.image).startswith(b"\x89PNG")
