"""`curate demo` option defaults: --compare runs on a larger web and trains longer at a lower rate unless
--images, --steps or --lr say otherwise.

The demo itself is replaced by a recorder here: a real --compare run trains 10 models (about 30 minutes
on 2 cores; docs/PERFORMANCE.md), and what is tested is only which web size and schedule the command asks
for.
"""

from __future__ import annotations

import pytest

from curate import cli, demo
from curate.commands.demo import (
    COMPARE_IMAGES,
    COMPARE_LR,
    COMPARE_STEPS,
    DEMO_IMAGES,
    DEMO_LR,
    DEMO_STEPS,
)


@pytest.mark.parametrize(
    ("argv", "images", "steps", "lr"),
    [
        ([], DEMO_IMAGES, DEMO_STEPS, DEMO_LR),
        (["--compare"], COMPARE_IMAGES, COMPARE_STEPS, COMPARE_LR),
        (["--compare", "--images", "300", "--steps", "40", "--lr", "0.002"], 300, 40, 0.002),
        (["--images", "900", "--steps", "200"], 900, 200, DEMO_LR),
    ],
)
def test_web_size_and_schedule_follow_the_experiment(monkeypatch, tmp_path, capsys, argv, images, steps, lr):
    asked = {}

    def record(out, **options):
        asked.update(options)
        outputs = {"dataset": f"{out}/dataset", "report": f"{out}/report.html"}
        return {"outputs": outputs, "headline": {}, "total_seconds": 0.0, "seconds": {}}

    monkeypatch.setattr(demo, "run_demo", record)
    assert cli.main(["demo", "-o", str(tmp_path / "d"), *argv]) == 0
    assert (asked["n_images"], asked["steps"], asked["lr"]) == (images, steps, lr)
    assert (asked["compare"] is not None) == ("--compare" in argv)
    assert "curate demo: done" in capsys.readouterr().out
