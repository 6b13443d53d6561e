"""Small helpers shared by every layer: atomic writes, environment records, source hashes, logging, strict
YAML."""

from ecorec.utils.atomic import (
    DiskFullError,
    atomic_path,
    atomic_write,
    dumps_strict,
    read_json,
    strict_json,
    write_json_atomic,
)
from ecorec.utils.environment import environment_record
from ecorec.utils.hashing import file_sha256, source_hash
from ecorec.utils.logs import setup_logging
from ecorec.utils.yamlfile import YamlFileError, load_yaml

__all__ = [
    "DiskFullError",
    "YamlFileError",
    "atomic_path",
    "atomic_write",
    "dumps_strict",
    "environment_record",
    "file_sha256",
    "load_yaml",
    "read_json",
    "setup_logging",
    "source_hash",
    "strict_json",
    "write_json_atomic",
]
