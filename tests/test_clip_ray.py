"""GPU-aware jobs on Ray: clip jobs ask for a GPU share, Ray grants it, a cluster without GPUs uses CPUs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annotate_data import make_dataset

from curate.annotate.options import Options
from curate.annotate.stage import plan
from curate.dataset import Dataset
from curate.executor import Job, execute
from curate.executor.ray import task_options

TESTS = Path(__file__).resolve().parent


def assigned_resources(job: Job) -> dict:
    """Executor job run inside a Ray task: report what Ray gave it."""
    import ray

    return {"assigned": ray.get_runtime_context().get_assigned_resources()}


@pytest.mark.parametrize(
    ("model", "device", "expected"),
    [
        ("ViT-B-32", "auto", {"num_gpus": 0.25}),
        ("ViT-L-14-quickgelu", "cuda", {"num_gpus": 0.5}),
        ("ViT-H-14", "auto", {"num_gpus": 1.0}),
        ("ViT-B-32", "cpu", None),
    ],
)
def test_clip_jobs_ask_for_a_gpu_share_by_model_size(tmp_path, model, device, expected):
    make_dataset(str(tmp_path / "ds"), shards=2, rows=10)
    opts = Options(clip_model=model, clip_checkpoint="weights.pt", clip_device=device)
    jobs = plan(Dataset(str(tmp_path / "ds")), ["caption", "clip"], opts)
    assert [j.resources for j in jobs if j.key.startswith("clip/")] == [expected, expected]
    assert all(j.resources is None for j in jobs if j.key.startswith("caption/"))


def test_gpu_request_is_dropped_where_the_cluster_has_no_gpu():
    assert task_options({"num_gpus": 0.25, "num_cpus": 1}, cluster_gpus=0) == {"num_cpus": 1}
    assert task_options({"num_gpus": 0.25}, cluster_gpus=2) == {"num_gpus": 0.25}
    assert task_options(None, cluster_gpus=2) == {}


@pytest.mark.slow
def test_ray_grants_the_requested_gpu_share(tmp_path):
    ray = pytest.importorskip("ray")
    # A cluster that declares one GPU: Ray schedules by declared resources, so the grant is observable here.
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}},
    )
    try:
        jobs = [
            Job("gpu", str(tmp_path / "gpu.json"), resources={"num_gpus": 0.5}),
            Job("cpu", str(tmp_path / "cpu.json")),
        ]
        summary = execute(assigned_resources, jobs, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert summary.done == 2 and not summary.failed
    gpu = json.loads((tmp_path / "gpu.json").read_text())["assigned"]
    cpu = json.loads((tmp_path / "cpu.json").read_text())["assigned"]
    assert gpu.get("GPU") == 0.5 and "GPU" not in cpu
