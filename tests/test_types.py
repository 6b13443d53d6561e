"""The closed vocabularies of ecorec.types against the config schema, argparse and the one alias."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ecorec.types import Algorithm, BenchVariant, IndexSource, ParallelMode, ShardingMethod

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml").read_text())


def _values(enum_cls) -> list[str]:
    return sorted(m.value for m in enum_cls)


def test_schema_lists_exactly_the_enum_values():
    props = SCHEMA["properties"]
    system = props["systems"]["additionalProperties"]["properties"]
    assert sorted(system["mode"]["enum"]) == _values(ParallelMode)
    assert sorted(system["sharding"]["enum"]) == _values(ShardingMethod)
    assert sorted(system["algorithm"]["enum"]) == _values(Algorithm)
    run = props["train"]["properties"]["runs"]["items"]["properties"]
    assert sorted(run["algorithm"]["enum"]) == _values(Algorithm)
    report = props["planner"]["properties"]["report"]["properties"]
    assert sorted(report["algorithm"]["enum"]) == sorted(a.value for a in Algorithm.tt())
    variants = SCHEMA["$defs"]["kernel_bench"]["properties"]["variants"]["items"]
    assert sorted(variants["enum"]) == _values(BenchVariant)


def test_uncompressed_is_an_alias_of_none_only_when_parsed():
    assert Algorithm.parse("uncompressed") is Algorithm.NONE
    assert Algorithm.parse("none") is Algorithm.NONE
    assert Algorithm.parse(Algorithm.FBTT) is Algorithm.FBTT
    assert "uncompressed" not in [a.value for a in Algorithm]
    with pytest.raises(ValueError, match="'ttrec'"):
        Algorithm.parse("ttrec")
    assert Algorithm.tt() == (Algorithm.ECOREC, Algorithm.FBTT, Algorithm.ELREC)
    assert BenchVariant.NN_EMBEDDING_BAG.algorithm is Algorithm.NONE
    assert BenchVariant.ECOREC_CUDA.algorithm is Algorithm.ECOREC


def test_cli_choices_come_from_the_enums():
    from ecorec.bench.tt import build_parser

    actions = {a.dest: a for a in build_parser()._actions}
    assert actions["algorithms"].choices == [v.value for v in BenchVariant]
    assert actions["indices"].choices == [s.value for s in IndexSource]


def test_run_config_and_factories_share_the_vocabulary():
    from ecorec.models.tables import TableSettings
    from ecorec.planner import ShardingMethod as PlannerMethod
    from ecorec.train.config import ALGORITHMS, MODES, SHARDING_METHODS

    assert MODES == tuple(_ordered(ParallelMode))
    assert SHARDING_METHODS == tuple(_ordered(ShardingMethod))
    assert ALGORITHMS == tuple(_ordered(Algorithm))
    assert PlannerMethod is ShardingMethod
    with pytest.raises(ValueError, match="must be one of"):
        TableSettings(algorithm="uncompressed")  # runs spell it "none"; the alias is for reading files only


def _ordered(enum_cls) -> list[str]:
    return [m.value for m in enum_cls]
