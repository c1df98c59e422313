"""score-quality on synthetic-persons: the combined score tells degraded samples from clean ones.

The manifest's degradation record (`info.degradation`) is read here, by the check
only; the scorers never see it.
"""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from xmd_cli.console import Output
from xmd_cli.data.manifest import read_manifest
from xmd_cli.recipe import load_recipe
from xmd_cli.shards import ShardReader
from xmd_cli.stages.prepare import run_prepare
from xmd_cli.stages.quality import run_quality

# Generates speech and faces and scores them.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def persons(tmp_path_factory):
    work = tmp_path_factory.mktemp("persons")
    # Large enough for a stable AUC (about 20 degraded samples a modality), small enough to score quickly.
    recipe = load_recipe(None, [], {"data": {"adapter": "synthetic-persons", "seed": 3,
                                             "persons": {"identities": 12, "per_identity": 8}}})
    run_prepare(recipe, work)
    return recipe, work


@pytest.mark.parametrize("modality, key", [("face", "face"), ("speech", "speech")])
def test_combined_score_separates_degraded_from_clean(persons, modality, key):
    recipe, work = persons
    summary = run_quality(recipe, work, modality=modality, device="cpu", out=Output(verbosity=0))
    manifest = read_manifest(work)
    ids = [s.id for s in manifest.samples]
    scores = ShardReader(summary["store"]).get(ids)[:, 0]
    degraded = np.array([bool((s.info.get("degradation") or {}).get(key)) for s in manifest.samples])
    assert 10 <= degraded.sum() <= len(ids) - 10
    auc = roc_auc_score(~degraded, scores)  # clean samples should score higher
    assert auc >= 0.9, f"{modality}: ROC AUC {auc:.3f}"
    assert summary["histogram"].endswith(".png")
    assert set(summary["percentiles"]) >= {"score"}


def test_rerun_is_resumed_not_recomputed(persons):
    recipe, work = persons
    first = run_quality(recipe, work, modality="speech", device="cpu", out=Output(verbosity=0))
    shards = sorted(p.stat().st_mtime_ns for p in (work / "quality").glob("*/shard-*.safetensors"))
    again = run_quality(recipe, work, modality="speech", device="cpu", out=Output(verbosity=0))
    assert again["store"] == first["store"]
    assert sorted(p.stat().st_mtime_ns for p in (work / "quality").glob("*/shard-*.safetensors")) == shards
    reasons = (work / "quality" / first["store"].split("/")[-1] / "reasons.jsonl").read_text()
    assert all(json.loads(line)["reason"] for line in reasons.splitlines())
