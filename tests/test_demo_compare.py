"""`curate demo --compare` end to end at a tiny budget: the noisy synthetic web is crawled, downloaded and
curated, the filter model is trained on trusted samples only, and every pool is cut, trained with every
seed and evaluated. Whether DFN beats the rules is an experiment (docs/PERFORMANCE.md), not a test: two
training steps teach nothing."""

from __future__ import annotations

import statistics

import pytest

from curate import storage
from curate.synthweb import SyntheticWeb
from curate.synthweb.noise import DESCRIBES


@pytest.mark.slow
def test_compare_trains_and_evaluates_every_pool_with_every_seed(tmp_path):
    from curate.demo import run_demo
    from curate.demo_compare import TRUSTED_NAME, _pool_name
    from curate.filter import decisions_path

    summary = run_demo(
        str(tmp_path / "cmp"),
        n_images=80,
        steps=2,
        batch_size=8,
        workers=1,
        compare={
            "caption_noise": 0.3,
            "bursts": 0.1,
            "seeds": [0, 1],
            "trusted": 16,
            "top_fraction": 0.5,
            "eps": 0.002,
            "benchmark_images": 30,
        },
    )
    compared = summary["headline"]["compare"]
    pools = compared["pools"]
    assert set(pools) == {"raw", "rules", "rules+dfn", "rules+sem"}
    for name, pool in pools.items():
        accuracies = pool["zero_shot_top1"]
        assert len(accuracies) == 2, name
        assert all(0.0 <= a <= 1.0 for a in accuracies), name
        assert pool["mean"] == pytest.approx(statistics.fmean(accuracies), abs=1e-4)
        assert pool["sd"] == pytest.approx(statistics.stdev(accuracies), abs=1e-4)
    # each curated pool is cut from the one before it: rules from raw, then CLIP score or semantic dedup
    assert pools["raw"]["samples"] > pools["rules"]["samples"] > pools["rules+dfn"]["samples"] > 0
    assert pools["rules"]["samples"] >= pools["rules+sem"]["samples"] > 0
    _assert_side_by_side_equals_alone(tmp_path / "cmp", summary["outputs"]["dataset"])

    # the filter model saw only trusted samples: rule-kept pairs whose alt text describes the image
    dataset = summary["outputs"]["dataset"]
    trusted = storage.read_parquet(decisions_path(dataset, TRUSTED_NAME), columns=["uid", "keep"]).to_pylist()
    chosen = {row["uid"] for row in trusted if row["keep"]}
    assert len(chosen) == compared["filter_model"]["trusted_samples"] == 16
    rules = storage.read_parquet(decisions_path(dataset, "demo"), columns=["uid", "keep"]).to_pylist()
    assert chosen <= {row["uid"] for row in rules if row["keep"]}
    # the same web, not served: its specs hold each image's path and whether its alt text describes it
    web = SyntheticWeb(n_images=80, seed=0, faults=True, caption_noise=0.3, bursts=0.1)
    assert {spec.caption_kind for spec in web.specs} - {DESCRIBES}, "the compare web must be noisy"
    shards = storage.read_parquet(storage.join(dataset, "shards"), columns=["uid", "url"]).to_pylist()
    url_by_uid = {row["uid"]: row["url"] for row in shards}
    assert {web.caption_kind_of(url_by_uid[u]) for u in chosen} == {DESCRIBES}
    # each pool reports how many of its alt texts describe their image, counted against the same truth
    for name, pool in pools.items():
        decided = storage.read_parquet(decisions_path(dataset, _pool_name(name)), columns=["uid", "keep"])
        kept = [row["uid"] for row in decided.to_pylist() if row["keep"]]
        assert pool["describes"] == sum(web.caption_kind_of(url_by_uid[u]) == DESCRIBES for u in kept)
    assert pools["raw"]["describes"] < pools["raw"]["samples"]


def test_a_pool_equal_to_an_earlier_one_is_not_trained_again():
    from curate.demo_compare import first_equal_pool

    kept = {"raw": {1, 2, 3}, "rules": {1, 2}, "rules+dfn": {1}, "rules+sem": {2, 1}}
    same = first_equal_pool({name: frozenset(uids) for name, uids in kept.items()})
    assert same == {"raw": "raw", "rules": "rules", "rules+dfn": "rules+dfn", "rules+sem": "rules"}


def test_a_failed_pool_training_names_the_pool_and_seed(tmp_path):
    from curate.demo_compare import _train_pools
    from curate.errors import CurateError

    recipe = {
        "train": {
            "model": "tiny",
            "steps": 1,
            "batch_size": 2,
            "threads": 1,
            "out_dir": str(tmp_path / "run"),
        }
    }
    with pytest.raises(CurateError, match=r"compare training failed: raw/0: .*no-such-export") as failed:
        _train_pools(
            recipe,
            str(tmp_path / "dataset"),
            tmp_path / "bench",
            {"raw": str(tmp_path / "no-such-export")},
            (0,),
        )
    assert "Traceback" not in str(failed.value)  # the reason, not the worker's stack


def _assert_side_by_side_equals_alone(root, dataset: str) -> None:
    """The pools train side by side in worker processes; each run must equal the same run trained alone."""
    import json

    import torch

    from curate.run import train_from_table

    side = root / "run-compare-rules-seed1"
    spec = json.loads((side / "config.json").read_text())["train_config"]
    keep = ("model", "steps", "batch_size", "warmup_steps", "lr", "workers", "threads", "seed")
    alone = train_from_table({k: spec[k] for k in keep}, spec["data"], str(root / "alone"))
    ours = torch.load(next((side / "checkpoints").glob("*.pt")), weights_only=False)["state_dict"]
    theirs = torch.load(alone["checkpoint"], weights_only=False)["state_dict"]
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert json.loads((side / "compare.json").read_text())["final_loss"] == alone["loss"]
