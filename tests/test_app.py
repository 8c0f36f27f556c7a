"""Tests of the Streamlit page (common.app) through AppTest, and one screenshot in headless Chromium.

AppTest in Streamlit 1.67 uploads files itself (``file_uploader[0].upload(name, bytes, mime)``),
so the page is driven exactly as a person would use it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from common import predict
from common.errors import LOG_FILE
from common.report.results import project_root
from tests.browser import headless_chromium
from tests.data.test_dicom import write_series
from tests.predict.helpers import CLASSES, EXPERIMENT, VOLUME_EXPERIMENT, save_tiny_run, save_tiny_volume_run

APP_TIMEOUT_S = 120  # loading TensorFlow and the model on a busy machine
SCREENSHOT = project_root() / "_build" / "screenshots" / "app.png"


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> dict:
    return save_tiny_run(tmp_path_factory.mktemp("app_run"))


@pytest.fixture
def app(tiny_results, monkeypatch) -> AppTest:
    monkeypatch.setenv(predict.RESULTS_DIR_ENV, str(tiny_results["results_dir"]))
    page = AppTest.from_file(str(predict.app_script()), default_timeout=APP_TIMEOUT_S)
    page.run()
    assert not page.exception
    return page


def upload(page: AppTest, *files: tuple[str, bytes]) -> AppTest:
    for name, content in files:
        page.file_uploader[0].upload(name, content, "image/png")
    page.run()
    assert not page.exception
    return page


def phantom(tiny_results, position: int = 0) -> tuple[str, bytes]:
    path = Path(tiny_results["samples"]["path"].iloc[position])
    return path.name, path.read_bytes()


def test_page_names_the_model_and_says_research_use_only(app):
    assert app.selectbox[0].options == [EXPERIMENT]
    banner = app.warning[0].value
    assert "Research use only" in banner and "not a medical device" in banner
    assert "phantom" in banner and "profile smoke" in banner
    assert app.selectbox[1].options == list(predict.cam_methods())
    assert app.selectbox[2].value == "conv2d_2"  # the last convolution, the run's CAM layer


def test_an_uploaded_phantom_is_predicted_and_explained(app, tiny_results):
    name, content = phantom(tiny_results)
    upload(app, (name, content))
    assert not app.error
    expected = predict.predict_uploads(
        predict.load_run_model(EXPERIMENT, results_dir=tiny_results["results_dir"]), [(name, content)]
    )[0][0]
    assert app.subheader[0].value.startswith(f"{name}: {expected.predicted} (p = ")
    table = app.table[0].value
    assert list(table["class"]) == CLASSES
    assert [float(p) for p in table["probability"]] == pytest.approx(list(expected.probabilities.values()), abs=1e-4)
    captions = [caption for image in app.image for caption in image.captions]
    assert captions[0] == "original" and captions[1] == "gradcam at conv2d_2" and captions[2].startswith("region")
    assert all(url for image in app.image for url in image.value)


def test_garbage_shows_an_error_and_the_page_keeps_working(app, tiny_results):
    upload(app, ("garbage.png", b"not an image at all"), phantom(tiny_results, 1))
    assert len(app.error) == 1 and app.error[0].value.startswith("garbage.png: not a readable image")
    assert len(app.subheader) == 1  # the good upload is still shown
    app.selectbox[1].set_value("gradcam++").run()
    assert not app.exception and len(app.error) == 1
    assert "gradcam++ at conv2d_2" in [c for image in app.image for c in image.captions]


def test_an_uploaded_series_shows_its_montage_and_projections(tmp_path, monkeypatch):
    results_dir = save_tiny_volume_run(tmp_path)
    series = write_series(tmp_path / "series")
    monkeypatch.setenv(predict.RESULTS_DIR_ENV, str(results_dir))
    page = AppTest.from_file(str(predict.app_script()), default_timeout=APP_TIMEOUT_S).run()
    assert page.selectbox[0].options == [VOLUME_EXPERIMENT]
    upload(page, *[(path.name, path.read_bytes()) for path in sorted(series.iterdir())])
    assert not page.error and len(page.subheader) == 1
    captions = [caption for image in page.image for caption in image.captions]
    assert any(caption.startswith("slices with their CAM; framed: slice ") for caption in captions)
    assert "maximum-intensity projections of the CAM" in captions
    assert {"Download montage PNG", "Download mip PNG"} <= {button.label for button in page.get("download_button")}


def test_an_unexpected_failure_is_one_line_naming_the_log(app, tiny_results, tmp_path, monkeypatch):
    monkeypatch.setenv("CAMSTUDY_HOME", str(tmp_path))

    def fails(*args, **kwargs):
        raise RuntimeError("the CAM layer vanished\nsecond line")

    monkeypatch.setattr(predict, "predict_uploads", fails)
    upload(app, phantom(tiny_results))
    log = tmp_path / "results" / LOG_FILE
    assert [error.value for error in app.error] == [f"RuntimeError: the CAM layer vanished (the traceback is in {log})"]
    assert "Traceback" in log.read_text() and "camstudy app" in log.read_text()


def test_without_saved_models_the_page_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv(predict.RESULTS_DIR_ENV, str(tmp_path))
    page = AppTest.from_file(str(predict.app_script()), default_timeout=APP_TIMEOUT_S).run()
    assert not page.exception
    assert "camstudy run" in page.warning[0].value and not page.file_uploader


def test_camstudy_app_serves_the_page_headless_on_localhost(monkeypatch, tmp_path, capsys):
    from common import cli

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, env: calls.append((command, env)) or 0)
    assert cli.main(["app", "--port", "8765", "--results-dir", str(tmp_path)]) == 0
    command, env = calls[0]
    assert command[1:4] == ["-m", "streamlit", "run"] and Path(command[4]) == predict.app_script()
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "8765"
    assert command[command.index("--server.headless") + 1] == "true"
    assert env[predict.RESULTS_DIR_ENV] == str(tmp_path)
    assert "http://127.0.0.1:8765" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_health(url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}: {server.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"streamlit did not answer {url} within {timeout_s} s")


@pytest.mark.browser
def test_screenshot_of_the_app_in_headless_chromium(tiny_results, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as conditions
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    env = {**os.environ, predict.RESULTS_DIR_ENV: str(tiny_results["results_dir"]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = subprocess.Popen(
        predict.streamlit_command(port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    browser = None
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/_stcore/health", server, APP_TIMEOUT_S)
        browser = headless_chromium(tmp_path / "chromium-profile", "1400x1500")
        browser.get(f"http://127.0.0.1:{port}")
        wait = WebDriverWait(browser, APP_TIMEOUT_S)
        wait.until(conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), "Research use only"))
        phantom_path = tiny_results["samples"]["path"].iloc[0]
        file_input = wait.until(conditions.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
        file_input.send_keys(str(phantom_path))
        wait.until(conditions.text_to_be_present_in_element((By.TAG_NAME, "body"), "Download contours PNG"))
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "[data-testid=stImage] img")) >= 3)
        time.sleep(1)  # let the images finish painting
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.quit()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
