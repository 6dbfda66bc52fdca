"""On a real `curate demo` run (synthetic web on 127.0.0.1, every stage but training): the inspect
commands agree with the files the real stages wrote, and the notebooks run top to bottom (nbclient)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.dataset import sidecar, stats_files
from curate.inspect import sql
from curate.inspect.stats import compute_stats

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A `curate demo` output folder (./curate-demo layout) without the training step."""
    from curate.demo import run_demo

    base = tmp_path_factory.mktemp("demo-run")
    run_demo(str(base / "curate-demo"), n_images=60, train=False)
    return base


def _run(name: str, cwd: Path, monkeypatch) -> list[str]:
    """Execute notebooks/NAME.ipynb in `cwd`; returns every output: a stream's text, or "mime:" and the
    MIME types of a display or result output."""
    monkeypatch.delenv("CURATE_DATASET", raising=False)  # the notebooks find ./curate-demo themselves
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit notebooks without outputs"
    )
    nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{name}: {out.get('ename')}: {out.get('evalue')}"
            texts.append(
                out.get("text", "")
                if out["output_type"] == "stream"
                else "mime:" + ",".join(out.get("data", {}))
            )
    return texts


@pytest.mark.slow
def test_views_and_stats_agree_with_the_real_stages_files(demo):
    dataset = demo / "curate-demo" / "dataset"
    markers = [json.loads(p.read_text()) for p in map(Path, stats_files(str(dataset / "shards")))]
    decided = pq.read_table(dataset / "decisions/demo.parquet").to_pylist()
    con = sql.connect(str(dataset))
    try:
        assert con.execute("SELECT count(*) FROM samples").fetchall()[0][0] == sum(m["rows"] for m in markers)
        assert con.execute("SELECT count(*) FROM manifest").fetchall()[0][0] == sum(
            m["rows"] for m in markers
        )
        status = dict(con.execute("SELECT status, count(*) FROM samples GROUP BY 1").fetchall())
        summed: dict[str, int] = {}
        for m in markers:
            for key, n in m["status"].items():
                summed[key] = summed.get(key, 0) + n
        assert status == {k: v for k, v in summed.items() if v}
        assert con.execute(
            "SELECT count(*) FILTER (WHERE keep) FROM decisions WHERE recipe = 'demo'"
        ).fetchall()[0][0] == sum(d["keep"] for d in decided)
    finally:
        sql.close(con)
    stats = compute_stats(str(dataset), "demo")
    overlap = json.loads(Path(sidecar(str(dataset / "signals/overlap"), "summary.json")).read_text())
    for bench, entry in overlap.items():
        assert stats["overlap"][bench]["eval_images"] == entry["eval_images"]
        assert stats["overlap"][bench]["eval_images_matched"] == entry["eval_overlapping"]
    dedup = json.loads(Path(sidecar(str(dataset / "signals/dedup"), "summary.json")).read_text())
    assert stats["duplicates"]["duplicates"] == dedup["duplicates"]
    assert stats["recipes"]["demo"]["kept"] == sum(d["keep"] for d in decided)
    assert stats["language"]["backends"] == {"fasttext": stats["language"]["samples"]}


@pytest.mark.slow
def test_notebooks_run_top_to_bottom_after_curate_demo(demo, monkeypatch):
    explore = _run("01_explore_with_duckdb", demo, monkeypatch)
    text = "\n".join(explore)
    assert "decisions(recipe, uid, keep, reasons)" in text and "127.0.0.1" in text
    # the size histogram and the image strip (printed text may name image/png too: a PNG's content type)
    assert sum(t.startswith("mime:") and "image/png" in t for t in explore) == 2

    tune = "\n".join(_run("02_tune_a_recipe", demo, monkeypatch))
    # The demo recipe was tuned and applied; the filter agreed with the SQL prediction
    # (the notebook asserts it).
    assert (demo / "curate-demo/dataset/decisions/demo_tuned.parquet").exists()
    assert "demo_tuned: kept" in tune and "the SQL curve predicted" in tune


@pytest.mark.slow
def test_train_and_evaluate_notebook_runs_after_curate_demo(demo, monkeypatch):
    monkeypatch.delenv("CURATE_DEMO", raising=False)
    text = "\n".join(_run("03_train_and_evaluate", demo, monkeypatch))
    assert (demo / "curate-demo/run-notebook/metrics.jsonl").exists()  # it trained, since the demo did not
    assert "zero-shot top-1" in text and "'n_overlap'" in text
    assert "rank   score" in text  # the search table
