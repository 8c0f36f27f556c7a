"""Model builders of the study: ImageNet backbones with data-defined heads, and
the papers' own small CNNs.

Every model is a *functional* ``keras.Model`` (tf-keras-vis cannot explain a
``Sequential`` one) ending with the same softmax layer named ``predictions``
(binary tasks use two units, so metrics and CAMs treat all tasks alike).
Layer stacks are data (see :mod:`common.models.layers`).

Modules:
    layers: :data:`LAYER_TYPES`, applying a layer spec, the softmax output,
        head-layer test and weight counts.
    heads: the plain GAP head, the nine-models paper's heads and per-model
        settings (read from the registry's ``nine_models`` section).
    backbones: the ``keras.applications`` table (read from the registry's
        ``backbones`` section), flat transfer models, freezing, weight files
        and zero-initialised residual branches.
    cnns: the papers' custom 2D and 3D CNNs.
    resnets: residual networks of basic blocks from their published
        definitions (ResNet-18, ResNet-32, a 3D ResNet-18; seed 000's Table I).

The names other code uses are re-exported here, so ``from common import models``
followed by ``models.build_backbone_model(...)`` works as before the split; the
rest (e.g. :class:`~common.models.backbones.Backbone`,
:class:`~common.models.heads.NineModelSetting`) are imported from their module.
"""

from common.models.backbones import (
    BACKBONES,
    backbone_spec,
    build_backbone_model,
    min_input_size,
    zero_init_residual_branches,
)
from common.models.cnns import build_cnn3d, build_multi_organ_cnn, build_plain_cnn
from common.models.heads import NINE_MODEL_SETTINGS, gap_head
from common.models.layers import LAYER_TYPES, count_params, is_head_layer

__all__ = [
    "BACKBONES",
    "LAYER_TYPES",
    "NINE_MODEL_SETTINGS",
    "backbone_spec",
    "build_backbone_model",
    "build_cnn3d",
    "build_multi_organ_cnn",
    "build_plain_cnn",
    "count_params",
    "gap_head",
    "is_head_layer",
    "min_input_size",
    "zero_init_residual_branches",
]
