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
import time
from pathlib import Path

import numpy as np
import pytest

EXPERIMENT = "multi-organ"
TIMEOUT_S = 600


def _ports_below_the_ephemeral_range(count: int) -> list[int]:
    """Free loopback ports for ``TF_CONFIG`` that no process binding port 0 can be given meanwhile.

    The ports are released before TensorFlow binds them, 10-20 s later. A port from the ephemeral
    range (what binding port 0 returns) may in that time go to one of the workers' Jupyter kernels,
    which pick their sockets so; a kernel that then cannot bind fails its run ("Address already in
    use"), and the other worker waits for its peer until the timeout. Below the range the kernel never
    picks them.
    """
    range_file = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(range_file.read_text().split()[0]) if range_file.exists() else 32768
    ports: list[int] = []
    for port in range(int(np.random.default_rng().integers(low // 2, low - 100)), 1024, -1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as handle:
            try:
                handle.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free loopback port below the ephemeral range")


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()


@pytest.mark.late
def test_two_workers_train_the_same_model_and_the_chief_writes_the_run(tmp_path: Path):
    cluster = {"worker": [f"localhost:{port}" for port in _ports_below_the_ephemeral_range(2)]}
    workers = []
    for index in range(2):
        if index:
            # Jupyter picks a kernel's ports by binding port 0 and releasing them before the kernel binds
            # them: two workers starting their kernels at the same moment may be handed the same port.
            time.sleep(5)
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
        deadline = time.monotonic() + TIMEOUT_S
        # A worker that fails leaves its peer waiting for it until the timeout: stop as soon as one fails.
        while time.monotonic() < deadline and any(process.poll() is None for process, _ in workers):
            if any(process.poll() not in (None, 0) for process, _ in workers):
                break
            time.sleep(1)
        statuses = [process.poll() for process, _ in workers]
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
