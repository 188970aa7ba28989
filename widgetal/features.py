"""Featurizers as scikit-learn transformers: TF-IDF, transformer embeddings, and a per-item cache.

A featurizer turns raw texts into a matrix, so that a saved model (featurizer + classifier) scores
raw text. Embeddings cost far more than a classifier, so they are cached in the database: each text
is embedded once per featurizer, and a cycle embeds only items it has not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.preprocessing import normalize

log = logging.getLogger(__name__)

#: Prefix of a featurizer spec naming a transformer model: ``transformer:NAME_OR_PATH``.
TRANSFORMER_PREFIX = "transformer:"
#: What the orchestrator, ``orchestrate``, ``quickstart`` and ``simulate`` use unless told:
#: words + characters saved the most labels in benchmarks/featurizers.py (README, "Which
#: featurizer"), at a cycle time that stays in minutes at 100,000 items; MiniLM was no better
#: than random on the tweets and costs an embedding of every text.
DEFAULT_FEATURIZER = "tfidf-char"


def make_featurizer(spec: str = DEFAULT_FEATURIZER) -> BaseEstimator:
    """Build the featurizer a spec names.

    Parameters
    ----------
    spec : str
        ``"tfidf"``: word 1-2-grams, sublinear term frequency, terms in at least two texts.
        ``"tfidf-char"`` (the default): those word features side by side with character
        2-5-grams (within word boundaries), the row scaled to unit length. Spelling
        variants, elongations ("soooo") and emoticons share features, which helps short noisy
        texts; about five times the columns, and about 2.5x the fitting time of ``"tfidf"``.
        ``"transformer:NAME_OR_PATH"``: mean-pooled embeddings from a Hugging Face model, by hub
        name or local directory (see :class:`TransformerEmbedder`).

    Returns
    -------
    An unfitted scikit-learn transformer (raw texts in, features out).

    Raises
    ------
    ValueError
        For any other spec.

    Examples
    --------
    >>> make_featurizer("tfidf").ngram_range
    (1, 2)
    >>> make_featurizer("transformer:/models/minilm").model_name_or_path
    '/models/minilm'
    """
    spec = (spec or "").strip()
    if spec == "tfidf":
        # min_df=2 drops hapaxes (typos, handles, one-off bigrams), which cannot generalise and
        # would otherwise make up most of a bigram vocabulary; sublinear tf damps repeats.
        return _tfidf("word", (1, 2))
    if spec == "tfidf-char":
        return WordCharTfidf()
    if spec.startswith(TRANSFORMER_PREFIX) and spec[len(TRANSFORMER_PREFIX) :].strip():
        return TransformerEmbedder(model_name_or_path=spec[len(TRANSFORMER_PREFIX) :].strip())
    raise ValueError(
        f"Unknown featurizer '{spec}'. Use 'tfidf', 'tfidf-char' or 'transformer:NAME_OR_PATH' "
        "(a Hugging Face model name or a local directory, e.g. "
        "transformer:sentence-transformers/all-MiniLM-L6-v2)."
    )


def _tfidf(analyzer: str, ngram_range: tuple[int, int], min_df: int | float = 2) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=ngram_range,
        sublinear_tf=True,
        min_df=min_df,
        strip_accents="unicode",
        dtype=np.float32,
    )


class WordCharTfidf(TransformerMixin, BaseEstimator):
    """Word 1-2-gram and character 2-5-gram TF-IDF side by side, each row scaled to unit length.

    Character n-grams (within word boundaries) let spelling variants, elongations ("soooo") and
    emoticons share features, which helps short noisy texts. On the shared tweets the full-data
    ROC AUC rises from 0.859 (words alone) to 0.873, and uncertainty sampling reaches 99% of it
    with under half the labels random needs: 2,600 against 5,600 (benchmarks/results). One
    class with a ``min_df`` of its own, so callers can lower it for tiny label sets as for
    ``"tfidf"``.

    Parameters
    ----------
    min_df : int or float
        As in ``TfidfVectorizer``, for both the word and the character vocabulary.
    """

    def __init__(self, min_df: int | float = 2):
        self.min_df = min_df

    def fit(self, X: Sequence[str], y: Any = None) -> WordCharTfidf:
        """Learn both vocabularies and their IDF weights."""
        self.union_ = self._union().fit(_as_texts(X))
        return self

    def transform(self, X: Sequence[str]) -> Any:
        """A sparse float32 matrix, one unit-length row per text."""
        return normalize(self.union_.transform(_as_texts(X)))

    def fit_transform(self, X: Sequence[str], y: Any = None) -> Any:
        """``fit(X).transform(X)`` in one pass: the default would tokenize every text twice,
        which is most of a cycle's featurizing time with this featurizer."""
        self.union_ = self._union()
        return normalize(self.union_.fit_transform(_as_texts(X)))

    def _union(self) -> FeatureUnion:
        return FeatureUnion([("words", _tfidf("word", (1, 2), self.min_df)),
                             ("chars", _tfidf("char_wb", (2, 5), self.min_df))])


def is_cacheable(spec: str) -> bool:
    """Whether a featurizer spec is per-text and stateless, so its vectors can be cached."""
    return str(spec).strip().startswith(TRANSFORMER_PREFIX)


class TransformerEmbedder(TransformerMixin, BaseEstimator):
    """Mean-pooled transformer embeddings, as a stateless scikit-learn transformer.

    Texts are tokenized once, sorted by length and embedded in batches, so each batch pads only
    to its own longest text; results come back in input order. Runs under
    ``torch.inference_mode`` on the GPU when there is one. The model loads lazily on first use
    and is dropped when pickled, so a saved pipeline stays small and reloads it when used.

    Parameters
    ----------
    model_name_or_path : str
        A Hugging Face hub name or a local directory saved with ``save_pretrained``.
    batch_size : int
        Texts per forward pass.
    max_length : int
        Tokens per text; longer texts are truncated.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default: CUDA when available, else CPU.
    normalize : bool
        Scale each embedding to unit length (what sentence-transformers models expect).

    Examples
    --------
    >>> emb = TransformerEmbedder(model_name_or_path="sentence-transformers/all-MiniLM-L6-v2")
    >>> emb.batch_size
    32
    """

    def __init__(
        self,
        model_name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2",
        batch_size: int = 32,
        max_length: int = 128,
        device: str | None = None,
        normalize: bool = True,
    ):
        self.model_name_or_path = model_name_or_path
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.normalize = normalize

    def fit(self, X: Any = None, y: Any = None) -> TransformerEmbedder:
        """Nothing to learn: loads the model so that errors show up early."""
        self._load()
        return self

    def transform(self, X: Sequence[str]) -> np.ndarray:
        """Embed texts; returns a float32 array of shape (n_texts, hidden_size)."""
        texts = _as_texts(X)
        tokenizer, model, device = self._load()
        if not texts:
            return np.zeros((0, model.config.hidden_size), dtype=np.float32)
        import torch

        encoded = tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = encoded["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = tokenizer.pad(
                    {key: [encoded[key][i] for i in rows] for key in encoded.keys()},
                    padding=True,
                    return_tensors="pt",
                )
                batch = {key: value.to(device) for key, value in batch.items()}
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled.float().cpu().numpy()
        return out

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: nothing learned, so always ready

    def __getstate__(self) -> dict:
        # The weights live at model_name_or_path; a pickle carries only the parameters.
        return {k: v for k, v in self.__dict__.items() if k not in _LOADED}

    def _load(self) -> tuple[Any, Any, Any]:
        if getattr(self, "_model", None) is None:
            try:
                import torch
                from transformers import AutoModel, AutoTokenizer
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    "Transformer featurizers need torch and transformers: "
                    "pip install 'widgetal[transformers]'."
                ) from exc
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            log.info("loading %s on %s", self.model_name_or_path, device)
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_name_or_path)
            self._model = AutoModel.from_pretrained(self.model_name_or_path).to(device).eval()
            self._device = device
        return self._tokenizer, self._model, self._device


_LOADED = ("_tokenizer", "_model", "_device")


class FeatureCache(Protocol):
    """Where embeddings are kept between cycles: what :func:`embed_cached` needs of a store
    (the queue is one: its feature table)."""

    def cached_features(self, featurizer: str, item_ids: Sequence[int]) -> dict[int, bytes]:
        """The stored vectors of those items that have one under ``featurizer``."""

    def store_features(self, featurizer: str, vectors: dict[int, bytes]) -> None:
        """Keep new vectors under ``featurizer``."""


def embed_cached(
    queue: FeatureCache,
    featurizer_spec: str,
    item_ids: Sequence[int],
    texts: Sequence[str],
    embedder: TransformerEmbedder | None = None,
) -> np.ndarray:
    """Embeddings for items, computing only those not yet cached under ``featurizer_spec``.

    Parameters
    ----------
    queue : FeatureCache
        Where the cache lives, such as the :class:`~widgetal.queue.Queue`.
    featurizer_spec : str
        The cache key, e.g. ``"transformer:sentence-transformers/all-MiniLM-L6-v2"``.
    item_ids, texts : sequences of the same length
        The items to embed and their texts.
    embedder : TransformerEmbedder, optional
        Reuse an already loaded model; default: built from the spec.

    Returns
    -------
    np.ndarray
        float32, one row per item, in the order given.
    """
    ids = [int(i) for i in item_ids]
    texts = _as_texts(texts)
    if len(ids) != len(texts):
        raise ValueError(f"Got {len(ids)} item ids but {len(texts)} texts.")
    cached = queue.cached_features(featurizer_spec, ids) if ids else {}
    missing = [k for k, i in enumerate(ids) if i not in cached]
    fresh: np.ndarray | None = None
    if missing:
        embedder = embedder if embedder is not None else make_featurizer(featurizer_spec)
        log.info("embedding %d new texts (%d cached)", len(missing), len(ids) - len(missing))
        fresh = np.ascontiguousarray(embedder.transform([texts[k] for k in missing]), np.float32)
        queue.store_features(
            featurizer_spec, {ids[k]: fresh[j].tobytes() for j, k in enumerate(missing)}
        )
    if fresh is not None:
        dim = fresh.shape[1]
    elif cached:
        dim = len(next(iter(cached.values()))) // 4
    else:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.empty((len(ids), dim), dtype=np.float32)
    for j, k in enumerate(missing):
        out[k] = fresh[j]
    for k, i in enumerate(ids):
        if i in cached:
            out[k] = np.frombuffer(cached[i], dtype=np.float32)
    return out


def _as_texts(X: Any) -> list[str]:
    if isinstance(X, str):
        raise ValueError("Expected a list of texts, got a single string; wrap it in a list.")
    if hasattr(X, "tolist"):
        X = X.tolist()
    return ["" if x is None else str(x) for x in X]


__all__ = [
    "DEFAULT_FEATURIZER", "make_featurizer", "TransformerEmbedder", "WordCharTfidf",
    "embed_cached", "is_cacheable",
]
