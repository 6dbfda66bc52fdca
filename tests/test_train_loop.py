"""The training loop.

Learning, exact resume, DDP (2 gloo processes) and accumulation equal to one big batch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from train_data import one_thread, samples, write_parquet_shards  # noqa: F401  (one_thread: autouse fixture)

from curate.errors import CurateError
from curate.train.model import CLIP, get_config
from curate.train.train import TrainConfig, checkpoint_paths, train, train_step


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_parquet_shards(tmp_path_factory.mktemp("shards"), samples(64, size=40), n_shards=4)


def _config(shards, out, **kw) -> TrainConfig:
    base = {
        "data": shards,
        "out_dir": str(out),
        "model": "tiny",
        "image_size": 32,
        "vocab_size": 300,
        "batch_size": 16,
        "lr": 5e-4,
        "warmup_steps": 2,
        "workers": 0,
        "shuffle_buffer": 8,
        "log_every": 1,
        "save_every": 3,
        "keep_checkpoints": 5,
        "progress": False,
    }
    return TrainConfig(**{**base, **kw})


def _metrics(run) -> list[dict]:
    return [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]


@pytest.mark.slow
def test_loss_falls_and_run_dir_describes_itself(tmp_path, shards):
    result = train(_config(shards, tmp_path / "run", steps=20, save_every=10))
    rows = _metrics(tmp_path / "run")
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < 0.75 * first
    assert result["checkpoint"].endswith("step_0000020.pt") and result["step"] == 20
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train_config"]["model"] == "tiny" and cfg["model_config"]["vocab_size"] == 300
    assert (tmp_path / "run" / "tokenizer.json").exists()
    ckpt = torch.load(result["checkpoint"], weights_only=False)
    assert ckpt["config"]["steps"] == 20 and ckpt["tokenizer"]["kind"] == "bpe"
    assert set(ckpt["state_dict"]) == set(CLIP(get_config("tiny", vocab_size=300)).state_dict())
    with pytest.raises(CurateError, match="--resume"):
        train(_config(shards, tmp_path / "run", steps=20))


def test_epochs_become_steps_from_parquet_row_counts(tmp_path, shards):
    result = train(_config(shards, tmp_path / "run", steps=None, epochs=0.5))  # 64 rows x 0.5 / 16 per step
    assert result["step"] == 2
    with pytest.raises(CurateError, match="--steps"):
        train(_config(shards, tmp_path / "run2", steps=None))


@pytest.mark.slow
def test_resume_gives_the_same_next_batches_and_losses(tmp_path, shards):
    full = tmp_path / "full"
    train(_config(shards, full, steps=6, workers=2))  # two loader processes: exercises the worker rotation
    # Simulate a crash right after the step-3 checkpoint: later checkpoints and metric rows are lost.
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)
    for path in checkpoint_paths(crashed):
        if not path.name.endswith("0003.pt"):
            path.unlink()
    with open(crashed / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 4, "loss": -1.0}) + "\n")  # a row logged after the checkpoint
    train(_config(shards, crashed, steps=6, workers=2, resume=True))
    a, b = _metrics(full), _metrics(crashed)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a[3:], b[3:], strict=False):
        assert ra["batch_sha1"] == rb["batch_sha1"]
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-6, abs=1e-7)
    with pytest.raises(CurateError, match="batch_size"):
        train(_config(shards, crashed, steps=8, workers=2, batch_size=8, resume=True))


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_end_to_end(tmp_path, shards):
    """`torchrun -m curate train` with 2 gloo processes.

    One report, both ranks' data positions checkpointed.
    """
    run = tmp_path / "ddp-run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "curate",
        "train",
        *shards,
        "-o",
        str(run),
        "--image-size",
        "32",
        "--vocab-size",
        "300",
        "--batch-size",
        "16",
        "--steps",
        "4",
        "--workers",
        "1",
        "--save-every",
        "2",
        "--log-every",
        "1",
        "--warmup-steps",
        "1",
    ]
    proc = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=400,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"checkpoint"') == 1
    ckpt = torch.load(run / "checkpoints" / "step_0000004.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["data"]) == 2
    # 4 steps x 8 samples per rank, one loader worker each reading 2 of the 4 shards (32 records an epoch)
    assert [s["positions"][0][0] * 32 + s["positions"][0][1] for s in ckpt["data"]] == [32, 32]
    assert json.loads((run / "config.json").read_text())["micro_batch"] == 8
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
        4,
    ]


def _fixed_batch(n=8):
    g = torch.Generator().manual_seed(5)
    images = torch.randn(n, 3, 32, 32, generator=g)
    texts = torch.zeros(n, 77, dtype=torch.long)
    for i in range(n):
        length = 3 + i % 4
        texts[i, :length] = torch.randint(1, 98, (length,), generator=g)
        texts[i, length] = 99  # end token: the highest id
    return images, texts


def _model(loss: str):
    torch.manual_seed(0)
    return CLIP(get_config("tiny", vocab_size=100, image_size=32, siglip=loss == "siglip"))


def _steps(model, micro_of_step, loss, wrapped=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = [train_step(wrapped or model, model, micro_of_step(s), opt, loss) for s in range(2)]
    return losses, torch.cat([p.detach().flatten() for p in model.parameters()])


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        images, texts = _fixed_batch()
        per = len(images) // world
        mine = [(images[rank * per : (rank + 1) * per], texts[rank * per : (rank + 1) * per])]
        results = {}
        for loss in ("clip", "siglip"):
            model = _model(loss)
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            results[loss] = _steps(model, lambda s: mine, loss, wrapped=ddp)
        if rank == 0:
            torch.save(results, out)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_gloo_processes_equal_one_process(tmp_path):
    """Per-rank halves of a fixed batch under DDP.

    They give the single-process losses and SGD updates (both losses).
    """
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out)
    images, texts = _fixed_batch()
    for loss in ("clip", "siglip"):
        single_losses, single = _steps(_model(loss), lambda s: [(images, texts)], loss)
        ddp_losses, ddp_params = ddp[loss]
        assert ddp_losses == pytest.approx(single_losses, rel=1e-5)
        assert torch.allclose(ddp_params, single, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(
            single, torch.cat([p.flatten() for p in _model(loss).parameters()])
        )  # it moved


def test_accumulation_equals_the_full_batch():
    images, texts = _fixed_batch()
    full_losses, full = _steps(_model("clip"), lambda s: [(images, texts)], "clip")
    micro = [(images[i : i + 2], texts[i : i + 2]) for i in range(0, 8, 2)]
    acc_losses, acc = _steps(_model("clip"), lambda s: micro, "clip")
    assert acc_losses == pytest.approx(full_losses, rel=1e-5)
    assert torch.allclose(acc, full, rtol=1e-4, atol=1e-6)
