"""Named model presets: the configurations users of the two trainer seeds know by name.

A run selects one with ``model.preset: <name>``; every key given beside it in the ``model`` section overrides
the preset's value (``ecorec.train.config`` merges them). A preset also carries its dataset shape (table
sizes, dense count), which the ``random`` source uses when ``dataset.random.num_embeddings_per_feature`` is
empty.

- ``mlperf_dlrm``: MLPerf Training **v0.7** DLRM, the ``official_config.json`` of the MLPerf-style model zoo
  (NVIDIA's v0.7 reference as ported by DeepSparkHub): 13 dense, 26 sparse features with the published Criteo
  Terabyte table sizes (4,057,300 rows, indices hashed into them), embedding dim **64** (the v0.7 value; later
  rounds, v1.0 onwards, use 128 with a 512-256-128 bottom MLP: override ``embedding_dim`` and ``dense_arch``),
  bottom MLP 512-256-64, top MLP 512-512-256-1, dot interaction.
- ``torchrec_dlrm``: the defaults of TorchRec's DLRM example (``dlrm_main.py``): ``--embedding_dim 64``,
  ``--dense_arch_layer_sizes 512,256,64``, ``--over_arch_layer_sizes 512,512,256,1``, the original (dot)
  interaction, and ``--num_embeddings 100000`` rows for each of the 26 Criteo features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecorec.data.sources import MLPERF_DLRM_NUM_EMBEDDINGS

__all__ = ["MODEL_PRESETS", "ModelPreset", "model_preset"]


def _dlrm_64_dot() -> dict[str, Any]:
    """The model both presets define (a fresh dict each): DLRM, dim 64, dot interaction, bottom MLP
    512-256-64, top MLP 512-512-256-1."""
    return {
        "kind": "dlrm",
        "embedding_dim": 64,
        "interaction": "dot",
        "dense_arch": [512, 256, 64],
        "over_arch": [512, 512, 256, 1],
    }


@dataclass(frozen=True)
class ModelPreset:
    """A named model configuration.

    Attributes:
        name: what ``model.preset`` says.
        model: values of the run config's ``model`` section.
        num_embeddings_per_feature: table sizes of the data it is defined for (26 Criteo features).
        num_dense: dense features of that data.
        source: where the values come from.
    """

    name: str
    model: dict[str, Any]
    num_embeddings_per_feature: tuple[int, ...]
    num_dense: int
    source: str
    notes: dict[str, Any] = field(default_factory=dict)


MODEL_PRESETS: dict[str, ModelPreset] = {
    "mlperf_dlrm": ModelPreset(
        name="mlperf_dlrm",
        model=_dlrm_64_dot(),
        num_embeddings_per_feature=MLPERF_DLRM_NUM_EMBEDDINGS,
        num_dense=13,
        source="MLPerf Training v0.7 DLRM official_config.json (DeepSparkHub recommendation/ctr/dlrm)",
        notes={"hash_indices": True, "mlperf_round": "v0.7", "embedding_dim_later_rounds": 128},
    ),
    "torchrec_dlrm": ModelPreset(
        name="torchrec_dlrm",
        model=_dlrm_64_dot(),
        num_embeddings_per_feature=(100000,) * 26,
        num_dense=13,
        source="TorchRec DLRM example dlrm_main.py defaults (facebookresearch/dlrm torchrec_dlrm)",
    ),
}


def model_preset(name: str) -> ModelPreset:
    """The preset called ``name``; ``KeyError`` naming the known ones."""
    if name not in MODEL_PRESETS:
        raise KeyError(f"unknown model preset {name!r} (known: {', '.join(sorted(MODEL_PRESETS))})")
    return MODEL_PRESETS[name]
