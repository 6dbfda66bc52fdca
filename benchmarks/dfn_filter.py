"""How well a DFN filter model ranks a `curate demo --compare` pool, against the synthetic web's ground truth.

For each trusted-set size, a filter model is trained the way the compare trains its own (rule-kept pairs
whose alt text describes the image, an even spread over the uid order, the compare's schedule), then it
scores every downloaded sample. Printed per model, on the compare's rules pool: the AUC of the score
between alt texts that describe their image and those that do not, over the samples the model did not
train on, and for each kept fraction (of the scored pool, as `clip_score_top_fraction` keeps it) the pool
the compare would train on: samples and how many of them are well described. `--oracle` also counts the
rules pool cut to its well-described samples. `--export` writes each pool as a WebDataset under
CMP/dataset/export/ (`dfn<trusted>-<fraction>`, `oracle`) for `benchmarks/compare_schedule.py` to train.

    python benchmarks/dfn_filter.py CMP --trusted 150,200,300 --fractions 0.5,0.55,0.6 --oracle --export

CMP must be the output of `curate demo -o CMP --compare` with the web options given here (the web is
rebuilt, not served, to read its ground truth). The filter models train under benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib

import numpy as np
import pyarrow as pa


def _scores(run: str, shards: pa.Table) -> np.ndarray:
    """The filter model's image-text cosine per row (NaN where nothing was downloaded), as `clip` scores."""
    from curate.annotate.clip import Scorer

    scorer = Scorer(run, None, None, "cpu", "fp32", None)
    images = shards.column("image").to_pylist()
    statuses = shards.column("status").to_pylist()
    usable = np.array([s == "success" and im is not None for s, im in zip(statuses, images, strict=True)])
    return scorer.score(images, shards.column("caption").to_pylist(), usable, 64)[0]


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counting half (pools are small)."""
    above = (positive[:, None] > negative[None, :]).mean()
    return float(above + 0.5 * (positive[:, None] == negative[None, :]).mean())


def _top(scores: np.ndarray, uids: list[str], fraction: float) -> np.ndarray:
    """The rows `clip_score_top_fraction` keeps: best score first, ties by uid, ceil(fraction x scored)."""
    scored = ~np.isnan(scores)
    order = np.lexsort((np.array(uids), -np.where(scored, scores, -np.inf)))
    top = np.zeros(len(uids), bool)
    top[order[: int(np.ceil(fraction * scored.sum()))]] = True
    return top & scored


def _export(dataset: str, name: str, uids: list[str], keep: np.ndarray) -> None:
    from curate import storage
    from curate.export.stage import export
    from curate.filter import decisions_path
    from curate.schema import DECISIONS_SCHEMA

    table = pa.table(
        {"uid": uids, "keep": keep.tolist(), "reasons": [[] if k else ["benchmark_cut"] for k in keep]},
        schema=DECISIONS_SCHEMA,
    )
    storage.write_parquet_atomic(table, decisions_path(dataset, name))
    export(dataset, {"name": name, "filter": {}}, fmt="webdataset", samples_per_shard=256)


def main() -> None:
    from curate import storage
    from curate.commands.demo import COMPARE_IMAGES
    from curate.demo_compare import _pool_name, train_filter_model
    from curate.filter import decisions_path
    from curate.synthweb import SyntheticWeb
    from curate.synthweb.noise import DESCRIBES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("compare_dir", help="a `curate demo --compare` output folder")
    ap.add_argument("--trusted", default="150", help="trusted-set sizes, comma-separated")
    ap.add_argument("--fractions", default="0.5,0.6", help="kept fractions of the scored pool")
    ap.add_argument(
        "--images", type=int, default=COMPARE_IMAGES, help="the web's images: as the compare was run with"
    )
    ap.add_argument("--caption-noise", type=float, default=0.3)
    ap.add_argument("--bursts", type=float, default=0.1)
    ap.add_argument("--oracle", action="store_true", help="also the rules pool cut to its well-described")
    ap.add_argument("--export", action="store_true", help="export every pool for compare_schedule.py")
    ap.add_argument("--work", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "_work"))
    args = ap.parse_args()

    recipe = tomllib.loads(open(os.path.join(args.compare_dir, "recipe.toml"), encoding="utf-8").read())
    dataset = recipe["input"]["dataset"]
    shards = storage.read_parquet(
        storage.join(dataset, "shards"), columns=["uid", "url", "caption", "status", "image"]
    )
    uids = shards.column("uid").to_pylist()
    web = SyntheticWeb(n_images=args.images, seed=0, caption_noise=args.caption_noise, bursts=args.bursts)
    clean = np.array([web.caption_kind_of(u) == DESCRIBES for u in shards.column("url").to_pylist()])
    rules_path = decisions_path(dataset, _pool_name("rules"))  # the compare's rules pool, cut after its dedup
    decided = storage.read_parquet(rules_path, columns=["uid", "keep"]).to_pydict()
    kept_by_rules = dict(zip(decided["uid"], decided["keep"], strict=True))
    rules = np.array([bool(kept_by_rules.get(u)) for u in uids])
    describes = frozenset(u for u, c in zip(uids, clean, strict=True) if c)
    print(json.dumps({"pool": "rules", "samples": int(rules.sum()), "describes": int((rules & clean).sum())}))
    if args.oracle:
        oracle = rules & clean
        print(json.dumps({"pool": "oracle", "samples": int(oracle.sum()), "describes": int(oracle.sum())}))
        if args.export:
            _export(dataset, "oracle", uids, oracle)
    for trusted in [int(t) for t in args.trusted.split(",")]:
        name = f"dfn-trusted{trusted}"
        out = os.path.join(args.work, "dfn_filter", name)
        if os.path.isdir(out):
            raise SystemExit(f"{out} exists: remove it or give another --work")
        run, seen = train_filter_model(recipe, dataset, describes, trusted, name=name, out=out)
        scores = _scores(run, shards)
        trained_on = storage.read_parquet(decisions_path(dataset, name), columns=["uid", "keep"]).to_pydict()
        chosen = {u for u, k in zip(trained_on["uid"], trained_on["keep"], strict=True) if k}
        unseen = rules & ~np.isnan(scores) & np.array([u not in chosen for u in uids])
        line = {
            "trusted": seen,
            "auc_unseen": round(_auc(scores[unseen & clean], scores[unseen & ~clean]), 4),
            "unseen_describes_other": [int((unseen & clean).sum()), int((unseen & ~clean).sum())],
        }
        for fraction in [float(f) for f in args.fractions.split(",")]:
            pool = rules & _top(scores, uids, fraction)
            line[f"top{fraction}"] = [int(pool.sum()), int((pool & clean).sum())]
            if args.export:
                _export(dataset, f"dfn{trusted}-{fraction}", uids, pool)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
