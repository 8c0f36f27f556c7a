"""Multi-worker training, proven: two workers on the loopback interface train one model through ``camstudy run``.

Each worker is a ``camstudy run multi-organ --profile smoke -p strategy=multi-worker``
process with its own ``TF_CONFIG`` (the same cluster, its own index) and its own
results folder, as the GPU page tells users to run them on two machines. The
smoke profile trains the CNN for one epoch. Both must finish; the chief (index 0)
must write a complete run; and the two workers must end with the same weights,
which they can only do if every step's gradients were all-reduced between them
(each worker reads its own shard of every batch).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXPERIMENT = "multi-organ"
TIMEOUT_S = 600


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for handle in sockets:
            handle.bind(("127.0.0.1", 0))
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


@pytest.mark.late
def test_two_workers_train_the_same_model_and_the_chief_writes_the_run(tmp_path: Path):
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        command = [sys.executable, "-m", "common", "run", EXPERIMENT, "--profile", "smoke"]
        command += ["-p", "strategy=multi-worker", "--results-dir", str(tmp_path / f"worker-{index}"), "--no-progress"]
        log = (tmp_path / f"worker-{index}.log").open("w")
        workers.append(
            (
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, TF_CONFIG=config)),
                log,
            )
        )
    try:
        statuses = [process.wait(timeout=TIMEOUT_S) for process, _ in workers]
    finally:
        for process, log in workers:
            if process.poll() is None:
                process.kill()
            log.close()
    logs = [(tmp_path / f"worker-{index}.log").read_text() for index in range(2)]
    assert statuses == [0, 0], "\n\n".join(text[-3000:] for text in logs)
    chief = tmp_path / "worker-0" / EXPERIMENT
    metrics = json.loads((chief / "metrics.json").read_text())
    assert metrics["runtime"]["strategy"] == "CollectiveAllReduceStrategy"
    assert metrics["runtime"]["replicas"] == 2
    assert metrics["parameters"]["strategy"] == "multi-worker" and metrics["models"]
    for first, second in zip(_weights(chief), _weights(tmp_path / "worker-1" / EXPERIMENT), strict=True):
        np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
