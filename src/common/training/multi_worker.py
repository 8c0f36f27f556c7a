"""Two repairs that let Keras 3's ``fit`` train under ``MultiWorkerMirroredStrategy``.

With TensorFlow 2.21 and Keras 3.15, ``model.fit`` under a
``tf.distribute.MultiWorkerMirroredStrategy`` fails before its first step, and
after it (the open report is keras-team/keras#20585; TensorFlow's
tensorflow/tensorflow#72388 dates it to Keras 3 becoming the default). Both
failures were reproduced here with two workers on the loopback interface:

1. Before training, Keras builds the model symbolically from one batch of the
   distributed dataset, and to get that batch it *all-reduces* the per-replica
   inputs (``strategy.reduce("MEAN", batch, axis=None)``), which the collective
   strategy cannot do eagerly ("Attempt to convert a value (PerReplica...)").
   Only the batch's shapes and dtypes are needed, so :func:`_symbolic_build_from_local`
   takes this worker's own replica of the batch instead.
2. After each step, Keras averages the logs (loss and metrics, scalars) over the
   workers with ``strategy.reduce("MEAN", value, axis=0)``; a scalar has no axis 0
   ("Invalid reduction dimension 0 for input with 0 dimensions").
   :func:`_reduce_per_replica` reduces such values with ``axis=None``, the mean
   over the replicas, and leaves every other case to Keras.

:func:`enable` installs both once per process; :func:`common.training.runtime.distribution_strategy`
calls it when a run asks for ``multi-worker``. Nothing changes for the other
strategies. ``tests/training/test_multi_worker.py`` runs two workers through
``camstudy run`` and checks that they train the same weights.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as keras_trainer

_KERAS_REDUCE_PER_REPLICA = keras_trainer.reduce_per_replica


def _is_multi_worker(strategy: Any) -> bool:
    return bool(keras_trainer._collective_all_reduce_multi_worker(strategy))


def _reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
    """Keras' ``reduce_per_replica``, with a multi-worker mean over replicas that also takes scalars."""
    if not (_is_multi_worker(strategy) and reduction in ("auto", "mean")):
        return _KERAS_REDUCE_PER_REPLICA(values, strategy, reduction)

    def mean_over_replicas(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues) or tf.is_tensor(value):
            return strategy.reduce("MEAN", value, axis=None)
        return value

    return tree.map_structure(mean_over_replicas, values)


def _symbolic_build_from_local(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
    """Keras' ``_maybe_symbolic_build``, reading the first batch's shapes from this worker's replica."""
    strategy = self._distribute_strategy
    if strategy is None:
        return
    if iterator is not None:
        for _, _, batches in iterator:
            data_batch = tree.map_structure(
                lambda value: (
                    strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues)
                    else value
                ),
                next(batches),
            )
            break
    with strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def enable() -> None:
    """Install both repairs in Keras' TensorFlow trainer (idempotent)."""
    keras_trainer.reduce_per_replica = _reduce_per_replica
    keras_trainer.TensorFlowTrainer._maybe_symbolic_build = _symbolic_build_from_local  # type: ignore[method-assign]
