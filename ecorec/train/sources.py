"""The run's data source: the metadata and batch loaders of ``dataset.source`` (``parquet`` or ``random``).

Both loaders yield :class:`ecorec.data.Batch` with the same sample-to-rank assignment and resumable position,
so the loop treats them alike.
"""

from __future__ import annotations

from typing import Any

from ecorec.train.config import RunConfig, random_source_config

__all__ = ["dataset_metadata", "make_loader", "verify_run_data"]

#: The run record's note (``metrics.config_warnings``) when ``dataset.verify`` is false.
UNVERIFIED_WARNING = (
    "dataset.verify is false: the dataset's files were not checked against metadata.json (sizes, sha256); "
    "a file changed after the dataset was written would train silently"
)


def dataset_metadata(cfg: RunConfig) -> Any:
    """``DatasetMetadata`` of the run's data: the Parquet folder's ``metadata.json``, or the random source's
    in-memory equivalent (``source == "random"``, no files)."""
    if cfg.dataset.source == "random":
        from ecorec.data.random_source import random_metadata

        return random_metadata(random_source_config(cfg))
    from ecorec.data import read_metadata

    return read_metadata(cfg.dataset.path)


def verify_run_data(cfg: RunConfig, metadata: Any, features: Any) -> dict[str, Any]:
    """Check the files this run reads (label, dense and ``features`` columns) against ``metadata.json``
    before training (``ecorec.data.verify``: sizes always, sha256 once per file), unless ``dataset.verify`` is
    false. Returns the run record's ``metrics.dataset_verification``; a bad file raises ``DataFormatError``
    naming it."""
    if cfg.dataset.source == "random":
        return {"verified": None, "reason": "dataset.source is random: no files"}
    if not cfg.dataset.verify:
        return {"verified": False, "reason": "dataset.verify: false"}
    from ecorec.data.parquet import DENSE, LABEL
    from ecorec.data.verify import verify_files

    columns = [
        *((LABEL,) if metadata.has_labels else ()),
        *((DENSE,) if metadata.num_dense else ()),
        *features,
    ]
    return {"verified": True, **verify_files(metadata, columns).as_dict()}


def make_loader(
    cfg: RunConfig,
    split: str,
    *,
    rank: int,
    world_size: int,
    features: Any,
    layout: str,
    shuffle: bool,
    drop_last: bool = True,
    pad_last: bool = False,
) -> Any:
    """A loader of ``split`` for one rank (``ParquetBatchLoader`` or ``RandomBatchLoader``), with the run's
    global batch, seed, prefetch and ``train.pin_memory``; ``pad_last`` (evaluation, Parquet only) pads the
    last partial batch with masked samples."""
    common: dict[str, Any] = {
        "split": split,
        "global_batch_size": cfg.train.global_batch_size,
        "rank": rank,
        "world_size": world_size,
        "features": features,
        "layout": layout,
        "shuffle": shuffle,
        "seed": cfg.run.seed,
        "prefetch": cfg.dataset.prefetch,
        "drop_last": drop_last,
        "pin_memory": cfg.train.pin_memory,
    }
    if cfg.dataset.source == "random":
        from ecorec.data.random_source import RandomBatchLoader

        # random data has nothing worth scoring in a padded tail: its evaluation drops the partial batch
        return RandomBatchLoader(random_source_config(cfg), **{**common, "drop_last": drop_last or pad_last})
    from ecorec.data import ParquetBatchLoader

    return ParquetBatchLoader(cfg.dataset.path, **common, pad_last=pad_last, verify=cfg.dataset.verify)
