"""The scale-down rule of config.yaml (issue 24): the default keeps every experiment's per-worker shapes of
the paper (config.paper.yaml) and shrinks only tables, rows, samples, steps and nodes; each figure's `paper:`
section names the paper's configuration that the overlay restores."""

from __future__ import annotations

import pytest
import yaml

from ecorec.workflow.configfiles import merge_config
from tests.workflow.snakemake_cli import REPO_ROOT

DEFAULT = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
OVERLAY = yaml.safe_load((REPO_ROOT / "config.paper.yaml").read_text())


PAPER = merge_config(DEFAULT, OVERLAY)


def _as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("figure", ["fig10", "fig12", "fig16"])
def test_training_figures_keep_the_papers_local_batch_and_shrink_the_rest(figure):
    here, paper = DEFAULT[figure], PAPER[figure]
    assert here["batch"] == here["paper"]["batch"] == paper["batch"]
    assert _as_list(here["paper"]["tables"]) == _as_list(paper["tables"])  # what the overlay restores
    assert max(_as_list(here["tables"])) < min(_as_list(paper["tables"]))  # tables shrink
    if "worlds" in here:
        assert here["paper"]["worlds"][: len(here["worlds"])] == paper["worlds"][: len(here["worlds"])]
        assert max(here["worlds"]) < max(paper["worlds"])
    else:
        assert here["paper"]["world"] == paper["world"] > here["world"]  # nodes shrink
    assert max(_as_list(here["tables"])) <= DEFAULT["datasets"][DEFAULT["dataset"]]["num_tables"]


def test_the_model_tt_ranks_and_optimizer_are_the_papers():
    here, paper = DEFAULT["train"], PAPER["train"]
    for key in ("kind", "embedding_dim", "interaction", "dense_arch", "over_arch"):
        assert here["model"][key] == paper["model"][key], key
    for key in ("tt_ranks", "tt_min_rows", "optimizer", "lr"):
        assert here["embeddings"][key] == paper["embeddings"][key], key
    assert here["dense_optimizer"] == paper["dense_optimizer"]
    for kernels in ("fig11", "table1"):
        assert DEFAULT[kernels]["embedding_dim"] == PAPER[kernels]["embedding_dim"] == 32
        assert DEFAULT[kernels]["tt_ranks"] == PAPER[kernels]["tt_ranks"] == 32


def test_hetgmp_keeps_its_model_and_states_what_shrank():
    here, paper = DEFAULT["hetgmp"], PAPER["hetgmp"]
    assert here["model"] == paper["model"] and here["embeddings"] == paper["embeddings"]
    assert here["dense_optimizer"] == paper["dense_optimizer"]
    # the local batch could not be kept within the budget: config.yaml says so, and by how much
    assert here["batch"] < paper["batch"]
    text = (REPO_ROOT / "config.yaml").read_text()
    assert f"local batch {paper['batch']} -> {here['batch']}" in text
    assert here["cluster"]["target_world"] == paper["world"]


def test_placement_keeps_dreamshards_device_count_and_dim():
    here, paper = DEFAULT["placement"], PAPER["placement"]
    assert here["devices"] == paper["devices"] == 4
    assert here["tasks"]["dims"] == paper["tasks"]["dims"] == [16]
