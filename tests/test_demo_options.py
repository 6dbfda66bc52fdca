"""`curate demo` option defaults: --compare runs on a larger web unless --images is given.

The demo itself is replaced by a recorder here: a real --compare run trains 13 models (about 30 minutes
on 2 cores; docs/PERFORMANCE.md), and what is tested is only which web size the command asks for.
"""

from __future__ import annotations

import pytest

from curate import cli, demo
from curate.commands.demo import COMPARE_IMAGES, DEMO_IMAGES


@pytest.mark.parametrize(
    ("argv", "images"),
    [
        ([], DEMO_IMAGES),
        (["--compare"], COMPARE_IMAGES),
        (["--compare", "--images", "300"], 300),
        (["--images", "900"], 900),
    ],
)
def test_web_size_follows_the_experiment(monkeypatch, tmp_path, capsys, argv, images):
    asked = {}

    def record(out, **options):
        asked.update(options)
        outputs = {"dataset": f"{out}/dataset", "report": f"{out}/report.html"}
        return {"outputs": outputs, "headline": {}, "total_seconds": 0.0, "seconds": {}}

    monkeypatch.setattr(demo, "run_demo", record)
    assert cli.main(["demo", "-o", str(tmp_path / "d"), *argv]) == 0
    assert asked["n_images"] == images
    assert (asked["compare"] is not None) == ("--compare" in argv)
    assert "curate demo: done" in capsys.readouterr().out
