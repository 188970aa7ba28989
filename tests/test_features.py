"""Featurizers: TF-IDF spec, transformer embeddings through the real from_pretrained path on a tiny
randomly initialised model, pickling, and the per-item embedding cache."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from widgetal import features
from widgetal.features import TransformerEmbedder, embed_cached, make_featurizer

WORDS = (
    "the a an film movie good bad great dull awful lovely i you we love hate like it was is "
    "not very so really today day night happy sad work home"
).split()


def build_tiny_model(directory: Path) -> Path:
    """A 2-layer DistilBERT with 32-dim states and a WordPiece vocab written here; no hub."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab.write_text("\n".join(special + WORDS + ["##s", "##ing", "##ed", "!", "."]) + "\n")
    tokenizer = DistilBertTokenizerFast(vocab=str(vocab))
    if len(tokenizer) < len(WORDS):  # transformers 4 spells the argument vocab_file
        tokenizer = DistilBertTokenizerFast(vocab_file=str(vocab))
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=32,
        hidden_dim=64,
        n_layers=2,
        n_heads=2,
        max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(0)
    DistilBertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-distilbert")))


TEXTS = [
    "the film was good",
    "i hate it",
    "a really really very lovely day at home , we were so happy today !",
    "bad",
    "you like the movie",
    "awful work night",
]


def test_tfidf_spec_gives_word_bigrams_with_sublinear_tf():
    vec = make_featurizer("tfidf")
    assert isinstance(vec, TfidfVectorizer)
    assert vec.ngram_range == (1, 2) and vec.sublinear_tf and vec.min_df == 2
    X = vec.fit_transform(["good film", "good film indeed", "bad film"])
    assert "good film" in vec.vocabulary_ and X.shape[0] == 3


def test_tfidf_char_spec_adds_character_ngrams_and_scales_rows_to_unit_length():
    vec = make_featurizer("tfidf-char")
    texts = ["soooo good film", "sooo good film indeed", "bad film :(", "bad day :("]
    X = vec.fit_transform(texts)
    words = make_featurizer("tfidf").fit(texts)
    assert X.shape[0] == 4 and X.shape[1] > len(words.vocabulary_) and X.dtype == np.float32
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)), 1.0, atol=1e-5)
    # "soooo" and "sooo" are different words but share character n-grams.
    row = vec.transform(["soooo"])
    assert row.nnz > 0 and (row @ vec.transform(["sooo"]).T).toarray()[0, 0] > 0.5
    again = pickle.loads(pickle.dumps(vec))
    assert np.allclose(again.transform(texts).toarray(), X.toarray())


def test_tfidf_char_min_df_can_be_lowered_for_tiny_label_sets():
    # The orchestrator sets min_df=1 below 200 labels; two texts sharing no word must then fit.
    texts = ["alpha beta", "gamma delta"]
    with pytest.raises(ValueError):
        make_featurizer("tfidf-char").fit(texts)
    assert make_featurizer("tfidf-char").set_params(min_df=1).fit_transform(texts).shape[0] == 2


def test_unknown_featurizer_spec_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="tfidf-char"):
        make_featurizer("word2vec")
    with pytest.raises(ValueError, match="transformer:NAME_OR_PATH"):
        make_featurizer("transformer:")


def test_transformer_spec_names_the_model():
    emb = make_featurizer("transformer: /models/minilm ")
    assert isinstance(emb, TransformerEmbedder)
    assert emb.model_name_or_path == "/models/minilm"
    assert features.is_cacheable("transformer:x") and not features.is_cacheable("tfidf")


def test_tiny_transformer_embeds_texts_in_input_order(tiny_model):
    emb = TransformerEmbedder(model_name_or_path=tiny_model, batch_size=2)
    X = emb.fit_transform(TEXTS)
    assert X.shape == (len(TEXTS), 32) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    # Each text embedded alone (no padding at all) gives the same vector as inside a
    # length-sorted, padded batch: the order is restored and padding is masked out of the mean.
    alone = np.vstack([emb.transform([t]) for t in TEXTS])
    np.testing.assert_allclose(X, alone, atol=1e-5)


def test_mean_pooling_ignores_padding_even_unnormalised(tiny_model):
    emb = TransformerEmbedder(model_name_or_path=tiny_model, batch_size=8, normalize=False)
    batch = emb.transform(["bad", "a really very lovely day at home today"])
    single = emb.transform(["bad"])
    np.testing.assert_allclose(batch[0], single[0], atol=1e-5)


def test_long_texts_are_truncated_to_max_length(tiny_model):
    emb = TransformerEmbedder(model_name_or_path=tiny_model, max_length=8)
    X = emb.transform(["good " * 500])  # far beyond the model's 64 positions
    assert X.shape == (1, 32) and np.isfinite(X).all()


def test_embedder_pickles_without_weights_and_reloads(tiny_model):
    emb = TransformerEmbedder(model_name_or_path=tiny_model)
    before = emb.fit_transform(TEXTS[:3])
    blob = pickle.dumps(emb)
    assert len(blob) < 2_000  # parameters only; the weights stay in the model directory
    again = pickle.loads(blob)
    np.testing.assert_allclose(again.transform(TEXTS[:3]), before, atol=1e-6)


def test_empty_input_gives_an_empty_matrix(tiny_model):
    assert TransformerEmbedder(model_name_or_path=tiny_model).transform([]).shape == (0, 32)


class _CountingEmbedder(TransformerEmbedder):
    def transform(self, X):
        self.seen = getattr(self, "seen", []) + list(X)
        return super().transform(X)


def test_cache_embeds_each_text_once_per_featurizer(queue, tiny_model):
    queue.add(TEXTS)
    undone = queue.undone()
    ids, texts = undone["item_id"].tolist(), undone["text"].tolist()
    spec = f"transformer:{tiny_model}"
    emb = _CountingEmbedder(model_name_or_path=tiny_model)

    first = embed_cached(queue, spec, ids[:4], texts[:4], embedder=emb)
    assert sorted(emb.seen) == sorted(texts[:4])
    emb.seen = []
    every = embed_cached(queue, spec, ids, texts, embedder=emb)
    assert sorted(emb.seen) == sorted(texts[4:])  # only the two it had not seen
    np.testing.assert_allclose(every[:4], first, atol=0)
    np.testing.assert_allclose(every, emb.transform(texts), atol=1e-5)

    emb.seen = []
    again = embed_cached(queue, spec, ids[::-1], texts[::-1], embedder=emb)
    assert emb.seen == []  # a second pass embeds nothing
    np.testing.assert_allclose(again, every[::-1], atol=0)

    # another featurizer has its own cache entries
    embed_cached(queue, spec + "?v2", ids[:1], texts[:1], embedder=emb)
    assert emb.seen == texts[:1]


def test_word_char_tfidf_fit_transform_is_fit_then_transform_in_one_pass():
    from widgetal.features import WordCharTfidf

    texts = ["soooo good :)", "so good", "bad bad day", "a good day :(", "sooo bad", "day"] * 3
    one_pass = WordCharTfidf().fit_transform(texts)
    two_pass = WordCharTfidf().fit(texts).transform(texts)
    assert one_pass.shape == two_pass.shape and one_pass.dtype == two_pass.dtype
    assert abs(one_pass - two_pass).max() < 1e-6
    assert np.allclose(np.asarray(one_pass.multiply(one_pass).sum(axis=1)).ravel(), 1.0)
