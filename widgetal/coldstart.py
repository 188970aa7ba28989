"""Cold start: what to label before there is a model, and boosts that bring chosen texts forward.

Until a model can train, the queue would be served in import order, which is a poor sample: a
file sorted by date or by source serves one topic for hours and rare classes last. Instead the
orchestrator clusters the unlabelled texts in the project's feature space and serves one text per
cluster per round (:func:`diversity_scores`): small clusters first, each cluster's text nearest
its centre first. A user can also *boost* texts that match a keyword query (:func:`parse_query`)
or resemble a few example texts (:func:`similar_rows`), so a class they know to be rare shows up
early. The first trained model's uncertainty order replaces all of this.

The ranking functions are pure (feature matrices in, scores out); the functions after them read
the stored boost and apply it to a queue (:func:`apply_boost`, :func:`order_queue`).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from . import features, project, sql
from .errors import InvalidInput

log = logging.getLogger(__name__)

#: At most this many clusters: sqrt(n) grows past what a first round of labelling covers.
MAX_CLUSTERS = 100
#: Sparse features (TF-IDF) are reduced to this many dimensions before clustering (LSA), so
#: clustering costs the same whatever the vocabulary size.
SVD_DIMS = 100
#: The SVD is fitted on at most this many texts (then applied to all).
SVD_SAMPLE = 20_000
#: ``--like``: the texts most similar to each example that are boosted.
LIKE_TOP = 20
#: Texts read per batch when a boost scans the queue.
BATCH = 20_000
#: The project setting holding the active boost.
BOOST_SETTING = "boost"
#: The ``strategy`` a cold-start run records.
COLD_START = "cold-start"


# -- diversity: one text per cluster, rare clusters first --------------------------------------


@dataclass
class Diversity:
    """What :func:`diversity_scores` found: scores (higher = serve sooner), each row's cluster,
    and the cluster sizes."""

    scores: np.ndarray
    clusters: np.ndarray
    sizes: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.sizes.size)


def choose_k(n: int, max_clusters: int = MAX_CLUSTERS) -> int:
    """About sqrt(n) clusters, at least 1, at most ``max_clusters`` and ``n``.

    >>> choose_k(400), choose_k(100_000), choose_k(3)
    (20, 100, 2)
    """
    return int(max(1, min(round(np.sqrt(n)), max_clusters, n)))


def diversity_scores(
    X: Any,
    X_seen: Any = None,
    n_clusters: int | None = None,
    max_clusters: int = MAX_CLUSTERS,
    dims: int = SVD_DIMS,
    random_state: int = 0,
) -> Diversity:
    """Order texts so that every cluster of the features is served once before any twice.

    The rows of ``X`` are clustered with mini-batch k-means (sparse features are first reduced
    to ``dims`` dimensions with a truncated SVD; rows are scaled to unit length, so distances
    follow cosine similarity). Round r serves the r-th nearest text to each cluster's centre,
    small clusters before large ones: a cluster is a topic, and a small one is where a rare
    class hides. A cluster that already holds labelled texts (``X_seen``, assigned to the
    nearest centre) starts that many rounds later.

    Parameters
    ----------
    X : array or sparse matrix (n, d)
        Features of the texts to order.
    X_seen : array or sparse matrix (m, d), optional
        Features of texts already labelled, in the same space.
    n_clusters : int, optional
        Default :func:`choose_k`.

    Returns
    -------
    Diversity
        ``scores`` in (0, 1], distinct, higher = serve sooner.

    Examples
    --------
    >>> X = np.array([[1, 0]] * 6 + [[0, 1]] * 2, dtype=float)
    >>> d = diversity_scores(X, n_clusters=2)
    >>> int(np.argmax(d.scores)) in (6, 7)  # the small cluster's text comes first
    True
    """
    n = X.shape[0]
    if n == 0:
        return Diversity(np.zeros(0), np.zeros(0, dtype=int), np.zeros(0, dtype=int))
    k = min(n_clusters or choose_k(n, max_clusters), n)
    Z, Z_seen = _reduce(X, X_seen, dims, random_state)
    with warnings.catch_warnings():  # fewer distinct texts than clusters: a warning, not a fault
        warnings.simplefilter("ignore")
        # No reassignment: mini-batch k-means moves the centres of clusters with few texts to
        # random texts, which would break up exactly the small clusters we look for.
        km = MiniBatchKMeans(n_clusters=k, batch_size=2048, n_init=3, reassignment_ratio=0.0,
                             random_state=random_state).fit(Z)
    clusters = km.labels_.astype(np.int64)
    distance = ((Z - km.cluster_centers_[clusters]) ** 2).sum(axis=1)
    sizes = np.bincount(clusters, minlength=k)
    seen = np.zeros(k, dtype=np.int64)
    if Z_seen is not None and Z_seen.shape[0]:
        seen = np.bincount(km.predict(Z_seen), minlength=k)
    # each row's rank inside its cluster, nearest to the centre first
    by_cluster = np.lexsort((distance, clusters))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    within = np.empty(n, dtype=np.int64)
    within[by_cluster] = np.arange(n) - starts[clusters[by_cluster]]
    rounds = within + seen[clusters]
    size_rank = np.empty(k, dtype=np.int64)
    size_rank[np.argsort(sizes, kind="stable")] = np.arange(k)
    served = np.lexsort((size_rank[clusters], rounds))  # by round, then smallest cluster
    scores = np.empty(n, dtype=np.float64)
    scores[served] = 1.0 - np.arange(n) / n
    return Diversity(scores, clusters, sizes)


def _reduce(X: Any, X_seen: Any, dims: int, random_state: int) -> tuple[np.ndarray, Any]:
    """Dense unit-length rows: LSA for sparse features, embeddings as they are."""
    if sp.issparse(X):
        n_components = min(dims, X.shape[1] - 1, X.shape[0] - 1)
        if n_components >= 2:
            # Fitted on a sample: at 100,000 texts this costs a third of a fit on all of them
            # (measured), and the leading directions of a large sample are the pool's.
            rows = np.arange(X.shape[0])
            if X.shape[0] > SVD_SAMPLE:
                rows = np.random.default_rng(random_state).choice(X.shape[0], SVD_SAMPLE,
                                                                  replace=False)
            svd = TruncatedSVD(n_components=n_components, n_iter=4, random_state=random_state)
            svd.fit(X[np.sort(rows)])
            Z = svd.transform(X)
            Z_seen = svd.transform(X_seen) if X_seen is not None else None
        else:  # a handful of texts or terms: nothing to reduce
            Z = X.toarray()
            Z_seen = X_seen.toarray() if X_seen is not None else None
    else:
        Z = np.asarray(X)
        Z_seen = np.asarray(X_seen) if X_seen is not None else None
    Z = normalize(np.asarray(Z, dtype=np.float64))
    if Z_seen is not None:
        Z_seen = normalize(np.asarray(Z_seen, dtype=np.float64))
    return Z, Z_seen


# -- boosts: keyword queries and example texts -----------------------------------------------


@dataclass(frozen=True)
class Query:
    """A parsed keyword query: any one of ``alternatives`` matches when all its terms do."""

    text: str
    alternatives: tuple[tuple[re.Pattern, ...], ...]

    def matches(self, texts: Sequence[str]) -> np.ndarray:
        """Whether each text matches (case-insensitive, terms at word boundaries)."""
        alts = self.alternatives
        return np.fromiter(
            (any(all(p.search(t) for p in alt) for alt in alts) for t in _texts(texts)),
            dtype=bool, count=len(texts),
        )


QUERY_SYNTAX = (
    'Query syntax: words and "quoted phrases" match case-insensitively as whole words; '
    "a trailing * matches any ending (refund* matches refunds, refunded); terms side by side "
    "must all match; OR (upper case) separates alternatives, e.g. "
    '`refund OR chargeback OR "money back"`.'
)

_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


def parse_query(text: str) -> Query:
    """Parse a boost query (see :data:`QUERY_SYNTAX`).

    Raises
    ------
    InvalidInput
        For an empty query, an unbalanced quote, an empty phrase, ``OR`` without a term on
        each side, parentheses, or a term with no letter or digit (outside quotes).

    Examples
    --------
    >>> q = parse_query('refund OR "money back" OR late deliver*')
    >>> q.matches(["REFUND please", "I want my money back", "delivered late", "art"]).tolist()
    [True, True, True, False]
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"The boost query is empty. {QUERY_SYNTAX}")
    if text.count('"') % 2:
        raise InvalidInput(f"The boost query {text!r} has an unbalanced quote. {QUERY_SYNTAX}")
    alternatives: list[list[re.Pattern]] = [[]]
    for m in _TOKEN.finditer(text):
        phrase, word = m.group(1), m.group(2)
        if word == "OR":
            if not alternatives[-1]:
                raise InvalidInput(
                    f"The boost query {text!r} has OR without a term before it. {QUERY_SYNTAX}")
            alternatives.append([])
            continue
        if phrase is not None:
            if not phrase.strip():
                raise InvalidInput(f"The boost query {text!r} has an empty phrase \"\".")
            alternatives[-1].append(_term(phrase.strip(), prefix=False))
            continue
        if any(c in word for c in "()"):
            raise InvalidInput(
                f"The boost query {text!r} has parentheses, which it does not support: list "
                f"alternatives with OR, or quote the text. {QUERY_SYNTAX}")
        prefix = word.endswith("*")
        core = word.rstrip("*") if prefix else word
        if not re.search(r"\w", core):
            raise InvalidInput(
                f"The boost query {text!r} has the term {word!r} with no letter or digit; "
                f"quote it to match it as written. {QUERY_SYNTAX}")
        alternatives[-1].append(_term(core, prefix=prefix))
    if not alternatives[-1]:
        raise InvalidInput(
            f"The boost query {text!r} ends with OR: add a term after it. {QUERY_SYNTAX}")
    return Query(text.strip(), tuple(tuple(a) for a in alternatives))


def _term(term: str, prefix: bool) -> re.Pattern:
    body = r"\s+".join(re.escape(w) for w in term.split())
    start = r"(?<!\w)" if re.match(r"\w", term) else ""
    end = r"\w*" if prefix else (r"(?!\w)" if re.search(r"\w$", term) else "")
    return re.compile(start + body + end, re.IGNORECASE)


def similar_rows(X: Any, X_examples: Any, top: int = LIKE_TOP) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``X`` most like each example (cosine similarity, above zero).

    Returns ``(rows, similarity)``: for each example its ``top`` most similar rows, merged
    (a row similar to two examples counts once, with its best similarity), best first.
    """
    if X.shape[0] == 0 or X_examples.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return _best_rows(_cosine(X, X_examples), top)


def _best_rows(sim: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a similarity matrix, its ``top`` rows above zero; merged, best first."""
    top = min(top, sim.shape[0])
    best: dict[int, float] = {}
    for j in range(sim.shape[1]):
        col = sim[:, j]
        rows = np.argpartition(-col, top - 1)[:top]
        for r in rows[col[rows] > 0].tolist():
            best[r] = max(best.get(r, 0.0), float(col[r]))
    rows = np.array(sorted(best, key=lambda r: (-best[r], r)), dtype=np.int64)
    return rows, np.array([best[r] for r in rows.tolist()])


def _cosine(X: Any, E: Any) -> np.ndarray:
    X = normalize(X) if sp.issparse(X) else normalize(np.asarray(X, dtype=np.float64))
    E = normalize(E) if sp.issparse(E) else normalize(np.asarray(E, dtype=np.float64))
    sim = X @ E.T
    return np.asarray(sim.todense() if sp.issparse(sim) else sim, dtype=np.float64)


# -- the stored boost ---------------------------------------------------------------------------


@dataclass
class Boost:
    """The project's active boost: keyword queries and example texts (``--like``)."""

    queries: list[str] = field(default_factory=list)
    like: list[str] = field(default_factory=list)
    top: int = LIKE_TOP

    def __bool__(self) -> bool:
        return bool(self.queries or self.like)

    def to_json(self) -> dict:
        return {"queries": self.queries, "like": self.like, "top": self.top}

    def describe(self) -> str:
        parts = [f"query {q!r}" for q in self.queries]
        parts += [f"the {self.top} texts most like {t!r}" for t in self.like]
        return "; ".join(parts) or "none"


def read_boost(queue: Any) -> Boost:
    """The boost stored in the project (empty when none)."""
    with queue.db.read() as conn:
        value = project.read_setting(conn, BOOST_SETTING, None) or {}
    return Boost(list(value.get("queries", [])), list(value.get("like", [])),
                 int(value.get("top", LIKE_TOP)))


def add_boost(
    queue: Any,
    queries: Sequence[str] = (),
    like: Sequence[str] = (),
    top: int = LIKE_TOP,
    featurizer: str = features.DEFAULT_FEATURIZER,
) -> tuple[Boost, int]:
    """Check, store and apply a boost; returns the project's boost and how many texts it moved
    to the front now.

    Every query is parsed and every example checked before anything is stored, so a bad one
    changes nothing. The boost adds to those already active (``clear_boost`` ends them).
    """
    parsed = [parse_query(q) for q in queries]
    like = [str(t) for t in like]
    if any(not t.strip() for t in like):
        raise InvalidInput("An example text for --like is empty; nothing was changed.")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidInput(f"--top must be a whole number of texts, at least 1 (got {top!r}); "
                           "nothing was changed.")
    if not parsed and not like:
        raise InvalidInput(f"Give a query or --like \"an example text\". {QUERY_SYNTAX}")
    features.make_featurizer(featurizer)  # a bad spec fails before anything is stored
    current = read_boost(queue)
    boost = Boost(
        current.queries + [q.text for q in parsed if q.text not in current.queries],
        current.like + [t for t in like if t not in current.like],
        top if like else current.top,  # a query alone leaves --like's --top as it was
    )
    moved = boost_now(queue, parsed, like, top, featurizer)
    with queue.db.write() as conn:
        project.write_setting(conn, BOOST_SETTING, boost.to_json())
    return boost, moved


def clear_boost(queue: Any) -> Boost:
    """End every boost; returns what was active. The queue keeps its order until the next run."""
    before = read_boost(queue)
    with queue.db.write() as conn:
        conn.execute(sql.delete_setting, {"key": BOOST_SETTING})
    return before


def boost_now(
    queue: Any, queries: Sequence[Query], like: Sequence[str], top: int, featurizer: str
) -> int:
    """Move the texts a boost selects ahead of every other unlabelled text, now.

    Matches keep the order they had among themselves (the cold-start or the model's order) and
    their guesses and run; the rest of the queue is not touched. One set-based reorder.
    """
    chosen: set[int] = set()
    top_priority = -np.inf
    for batch in _undone_batches(queue):
        top_priority = max(top_priority, max(r.priority for r in batch))
        texts = [r.text for r in batch]
        hit = np.zeros(len(batch), dtype=bool)
        for q in queries:
            hit |= q.matches(texts)
        chosen.update(r.id for r, h in zip(batch, hit) if h)
    if like:
        chosen.update(_like_ids(queue, like, top, featurizer))
    if not chosen:
        return 0
    rows = [r for r in queue.items(sorted(chosen))]
    rows.sort(key=lambda r: (-r.priority, r.item_id))
    n = len(rows)
    moved = 0
    # one reorder per run that ranked them (almost always one), keeping the published guesses
    for ranked_by in {r.ranked_by for r in rows}:
        group = [(k, r) for k, r in enumerate(rows) if r.ranked_by == ranked_by]
        scores = [top_priority + 1.0 + (n - k) / n for k, _ in group]
        guesses = None
        if all(r.guess_label is not None for _, r in group):
            guesses = ([r.guess_label for _, r in group], [r.guess_proba for _, r in group])
        moved += queue.reorder([r.item_id for _, r in group], scores, ranked_by=ranked_by,
                               guesses=guesses)
    return moved


def _like_ids(queue: Any, like: Sequence[str], top: int, featurizer: str) -> list[int]:
    """The ``top`` unlabelled texts most similar to each example, read in batches.

    TF-IDF is fitted on up to the first ``5 * BATCH`` unlabelled texts and the examples;
    transformer embeddings come from the feature cache (computed once, as the orchestrator's).
    """
    if features.is_cacheable(featurizer):
        embed = features.make_featurizer(featurizer)
        E = embed.transform(list(like))
        transform = None
    else:
        sample: list[str] = []
        for batch in _undone_batches(queue):
            sample.extend(r.text for r in batch)
            if len(sample) >= 5 * BATCH:
                break
        vectorizer = _fitted_tfidf(featurizer, sample + list(like))
        E = vectorizer.transform(list(like))
        transform = vectorizer.transform
    ids: list[int] = []
    sims: list[np.ndarray] = []
    for batch in _undone_batches(queue):
        batch_ids = [r.id for r in batch]
        if transform is None:
            X = features.embed_cached(queue, featurizer, batch_ids, [r.text for r in batch],
                                      embedder=embed)
        else:
            X = transform([r.text for r in batch])
        sim = _cosine(X, E)
        rows, _ = _best_rows(sim, top)  # the pool's best are among the batches' best
        ids.extend(batch_ids[r] for r in rows.tolist())
        sims.append(sim[rows])
    if not ids:
        return []
    rows, _ = _best_rows(np.vstack(sims), top)
    return [ids[r] for r in rows.tolist()]


def _fitted_tfidf(featurizer: str, texts: list[str], transform: bool = False) -> Any:
    """The project's TF-IDF featurizer fitted on ``texts`` (and, with ``transform``, their
    features: one pass over the texts instead of two)."""
    vectorizer = clone(features.make_featurizer(featurizer))
    if len(texts) < 200 and "min_df" in vectorizer.get_params():
        vectorizer.set_params(min_df=1)  # a small pool may share no term twice
    if transform:
        return vectorizer, vectorizer.fit_transform(texts)
    return vectorizer.fit(texts)


def _undone_batches(queue: Any, size: int = BATCH) -> Iterator[list[Any]]:
    """Unlabelled items (id, text, priority) in batches by id: never the whole pool at once."""
    after = -1
    while True:
        with queue.db.read() as conn:
            rows = conn.execute(sql.read_undone_batch, {"after": after, "limit": size}).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _texts(texts: Sequence[str]) -> list[str]:
    return ["" if t is None else str(t) for t in texts]


# -- a cold-start cycle -----------------------------------------------------------------------


def order_queue(
    queue: Any,
    featurizer: str,
    labelled: Any,
    run_id: int,
    random_state: int = 0,
    embedder: Any = None,
) -> dict[str, Any] | None:
    """Order the unlabelled texts for diversity (and the stored boost) with one reorder.

    ``labelled`` is the cycle's frame of labelled texts (``item_id``, ``text``): their clusters
    wait their turn. Returns what the run records (clusters, boosted texts, items reordered),
    or None when there is nothing to order.
    """
    pool = queue.undone()
    if pool.empty:
        return None
    texts = pool["text"].tolist()
    seen_texts = labelled["text"].tolist()
    if features.is_cacheable(featurizer):
        X = features.embed_cached(queue, featurizer, pool["item_id"].tolist(), texts,
                                  embedder=embedder)
        X_seen = features.embed_cached(queue, featurizer, labelled["item_id"].tolist(),
                                       seen_texts, embedder=embedder) if seen_texts else None
        embed = embedder or features.make_featurizer(featurizer)
        transform = embed.transform
    else:
        try:  # fitted on every text, labelled ones too: one pass of tokenizing
            vectorizer, X_all = _fitted_tfidf(featurizer, texts + seen_texts, transform=True)
        except ValueError as exc:  # texts with no word at all: no features to cluster
            log.info("cold start: cannot featurize the texts (%s); queue left as it is", exc)
            return None
        X, X_seen = X_all[: len(texts)], (X_all[len(texts):] if seen_texts else None)
        transform = vectorizer.transform
    diversity = diversity_scores(X, X_seen, random_state=random_state)
    scores = diversity.scores
    boost = read_boost(queue)
    boosted = np.zeros(len(texts), dtype=bool)
    for q in boost.queries:
        boosted |= parse_query(q).matches(texts)
    if boost.like:
        rows, _ = similar_rows(X, transform(boost.like), boost.top)
        boosted[rows] = True
    scores = scores + boosted  # boosted texts first, in diversity order among themselves
    n = queue.reorder(pool["item_id"].to_numpy(), scores, ranked_by=run_id)
    return {"clusters": diversity.n_clusters, "smallest_cluster": int(diversity.sizes.min()),
            "largest_cluster": int(diversity.sizes.max()), "boosted": int(boosted.sum()),
            "n_reranked": int(n)}


__all__ = [
    "Diversity", "diversity_scores", "choose_k", "Query", "parse_query", "similar_rows",
    "Boost", "read_boost", "add_boost", "clear_boost", "boost_now", "order_queue",
    "QUERY_SYNTAX", "COLD_START",
]
