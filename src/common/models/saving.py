"""Reading saved models safely: Keras safe mode, with errors that say what to do."""

from __future__ import annotations

import pathlib
import zipfile

import keras

from common.errors import DataError


def load_model_safe(path: str | pathlib.Path) -> keras.Model:
    """Load a ``.keras`` model file, refusing any that would run stored code.

    Args:
        path: A ``.keras`` file.

    Returns:
        The model.

    Raises:
        DataError: The file is missing or not a Keras model, or holds a Lambda
            layer or other serialized Python code (which ``safe_mode`` will not execute).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"Model file {path} does not exist.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        # h5py's OSError names no file; a zip without config.json raises KeyError.
        raise DataError(
            f"{path}: not a readable Keras model ({type(error).__name__}: {error}); pass a .keras file saved by "
            "common.training.fit.fit (or a legacy .h5 model)."
        ) from error
    except ValueError as error:
        if "safe_mode" not in str(error) and "Lambda" not in str(error):
            raise DataError(
                f"{path}: not a readable Keras model ({error}); pass a .keras file saved by "
                "common.training.fit.fit (or a legacy .h5 model)."
            ) from error
        raise DataError(
            f"Refusing to load {path}: it contains a Lambda layer or other stored Python code, "
            "which could run arbitrary code. Rebuild the model with common.models and load only "
            "its weights, or, if you made the file yourself and trust it, load it with "
            "keras.saving.load_model(path, safe_mode=False)."
        ) from error
