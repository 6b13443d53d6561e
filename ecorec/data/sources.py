"""Facts about the data sources and the packaged files that carry them (stdlib only: the workflow imports it).

Packaged in ``ecorec/data/resources/`` (from https://github.com/facebookresearch/dlrm_datasets, MIT licence in
``dlrm_datasets_LICENSE``):

- ``dlrm_datasets_lfs_objects.tsv``: path, sha256 and size of every Git LFS object of ``dlrm_datasets``;
- ``dlrm_datasets_2022_locality_stats.txt``: the published index-locality statistics of the 2022 release.
"""

from __future__ import annotations

import csv
import importlib.resources
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ecorec.data.errors import DataFormatError

LFS_OBJECTS_FILE = "dlrm_datasets_lfs_objects.tsv"
LOCALITY_STATS_2022_FILE = "dlrm_datasets_2022_locality_stats.txt"
#: Git LFS media store of the dlrm_datasets repository (``<base>/<path>`` serves the object itself).
META_DLRM_BASE_URL = "https://media.githubusercontent.com/media/facebookresearch/dlrm_datasets/main"


@dataclass(frozen=True)
class MetaDlrmRelease:
    """Shape of the ``.pt.gz`` files of a Meta release: lengths ``[T, B]``, offsets ``[T*B+1]``."""

    source: str
    num_tables: int
    batch_size: int


META_DLRM_RELEASES = {
    "meta_dlrm_2021": MetaDlrmRelease("meta_dlrm_2021", num_tables=856, batch_size=65536),
    "meta_dlrm_2022": MetaDlrmRelease("meta_dlrm_2022", num_tables=788, batch_size=131072),
}

CRITEO_NUM_DENSE = 13
CRITEO_NUM_SPARSE = 26
#: Column names as in ``torchrec.datasets.criteo`` (``DEFAULT_INT_NAMES`` / ``DEFAULT_CAT_NAMES``).
CRITEO_DENSE_NAMES = tuple(f"int_{i}" for i in range(CRITEO_NUM_DENSE))
CRITEO_SPARSE_NAMES = tuple(f"cat_{i}" for i in range(CRITEO_NUM_SPARSE))
#: Hashing caps of TorchRec's DLRM example: ``--num_embeddings_per_feature`` for Criteo 1TB (its default) ...
CRITEO_1TB_NUM_EMBEDDINGS = (
    45833188, 36746, 17245, 7413, 20243, 3, 7114, 1441, 62, 29275261, 1572176, 345138, 10, 2209, 11267, 128,
    4, 974, 14, 48937457, 11316796, 40094537, 452104, 12606, 104, 35,
)  # fmt: skip
#: ... and for Criteo Kaggle (the per-feature cardinalities of its train.txt).
CRITEO_KAGGLE_NUM_EMBEDDINGS = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10,
    5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
#: ``categorical_feature_sizes`` of MLPerf DLRM's ``official_config.json`` (NVIDIA MLPerf Training v0.7 as in
#: DeepSparkHub; 4,057,300 rows in all): the hashing caps of the 3-day Terabyte subset.
MLPERF_DLRM_NUM_EMBEDDINGS = (
    932209, 18814, 13624, 6862, 18488, 3, 6242, 1229, 49, 654428, 96850, 69004, 10, 2134, 7345, 60, 4, 918,
    14, 984280, 320932, 838408, 76380, 8906, 74, 33,
)  # fmt: skip


@dataclass(frozen=True)
class LfsObject:
    """One Git LFS object of ``dlrm_datasets``: its repository path, sha256 and size in bytes."""

    path: str
    sha256: str
    size: int


def resource_path(name: str) -> Path:
    """Path of a packaged resource file (``ecorec/data/resources/<name>``)."""
    path = Path(str(importlib.resources.files("ecorec.data") / "resources" / name))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: packaged resource missing (broken ecorec install?)")
    return path


def default_locality_stats_path() -> Path:
    """The packaged 2022 locality statistics, the default target of the synthetic generator."""
    return resource_path(LOCALITY_STATS_2022_FILE)


@cache
def lfs_objects() -> dict[str, LfsObject]:
    """``{path: LfsObject}`` from the packaged TSV (columns ``path``, ``sha256``, ``size_bytes``)."""
    file = resource_path(LFS_OBJECTS_FILE)
    objects: dict[str, LfsObject] = {}
    with open(file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if reader.fieldnames != ["path", "sha256", "size_bytes"]:
            raise DataFormatError(
                f"{file}:1: expected columns path, sha256, size_bytes; got {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            try:
                objects[row["path"]] = LfsObject(row["path"], row["sha256"].lower(), int(row["size_bytes"]))
            except (TypeError, ValueError):
                raise DataFormatError(f"{file}:{line}: malformed row {row}") from None
    return objects


def lfs_object(path: str) -> LfsObject:
    """The LFS object at repository ``path`` (e.g. ``embedding_bag/2022/fbgemm_t788_bs131072_0.pt.gz``)."""
    objects = lfs_objects()
    if path not in objects:
        raise KeyError(f"{path!r} is not a dlrm_datasets file; known files: {sorted(objects)}")
    return objects[path]


def join_url(base_url: str, path: str) -> str:
    """``base_url`` and a relative ``path`` joined by exactly one slash."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


def meta_dlrm_files(source: str) -> list[str]:
    """Repository paths of a release's files (``meta_dlrm_2021`` / ``meta_dlrm_2022``), sorted by suffix."""
    release = META_DLRM_RELEASES[source]
    prefix = f"embedding_bag/{source[-4:]}/fbgemm_t{release.num_tables}_bs{release.batch_size}"

    def order(path: str) -> int:
        stem = path[len(prefix) :].removesuffix(".pt.gz")
        return int(stem.lstrip("_")) if stem else -1

    return sorted((p for p in lfs_objects() if p.startswith(prefix)), key=order)
