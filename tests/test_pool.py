"""Bounded cycles (widgetal/pool.py): a cycle scores a random window of the unlabelled items
plus the head of the queue, leaves every other item's priority and ranked_by alone, and
``simulate --pool-size`` replays the same sampler. The pool is featurized and scored in batches
(the same queue as in one piece), and a large project's stop set is read from a key window."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from widgetal import Queue, orchestrator, pool, stopping
from widgetal.cli import app
from widgetal.errors import InvalidInput
from widgetal.orchestrator import Orchestrator
from widgetal.schema import items, ranks
from widgetal.simulate import simulate

POSITIVE = "good great lovely happy love wonderful fun nice".split()
NEGATIVE = "bad awful sad hate terrible boring dull ugly".split()
NEUTRAL = "the film day work home today movie night we it was".split()


def corpus(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    positive = rng.integers(2, size=n).astype(bool)
    texts = [" ".join([*rng.choice(NEUTRAL, 4), *rng.choice(POSITIVE if p else NEGATIVE, 2),
                       *rng.choice(NEGATIVE if p else POSITIVE, rng.integers(0, 2))])
             for p in positive]
    return pd.DataFrame({"id": [f"t{i}" for i in range(n)], "text": texts,
                         "label": np.where(positive, "positive", "negative")})


def labelled_queue(url: str, n: int = 500, n_labels: int = 60) -> Queue:
    q = Queue(url, labels=["negative", "positive"])
    data = corpus(n)
    q.add(data[["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["label"]))
    for _ in range(n_labels):
        item = q.pop("ana")
        q.submit(item.item_id, truth[item.external_id], "ana")
    return q


def undone_state(q: Queue) -> pd.DataFrame:
    """Every undone item's key, priority, run and guess, straight from the table."""
    query = (sa.select(items.c.id, items.c.audit_key, ranks.c.priority, ranks.c.ranked_by,
                       ranks.c.guess_label, ranks.c.guess_proba)
             .join_from(items, ranks, ranks.c.item_id == items.c.id)
             .where(items.c.done_at.is_(None)).order_by(items.c.id))
    with q.engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).all(),
                            columns=["id", "key", "priority", "ranked_by", "guess", "proba"])


def expected_window(state: pd.DataFrame, start: float, share: float, size: int) -> set[int]:
    """The ``size`` items outside the reserve whose keys follow ``start``, wrapping round."""
    outside = state[state["key"] >= share].sort_values(["key", "id"])
    ordered = pd.concat([outside[outside["key"] >= start], outside[outside["key"] < start]])
    return set(ordered["id"][:size])


def head(state: pd.DataFrame, share: float, top: int) -> set[int]:
    outside = state[state["key"] >= share]
    return set(outside.sort_values(["priority", "id"], ascending=[False, True])["id"][:top])


def test_a_bounded_cycle_rescores_the_window_and_the_head_and_nothing_else(db_url, tmp_path):
    q = labelled_queue(db_url)
    q.configure(audit_share=0.2)
    first = Orchestrator(q, models_dir=tmp_path, pool_size=None).run_once()
    assert first.status == "trained" and first.pool == {"sampled": False, "scored": 440}
    before = undone_state(q)
    assert (before["ranked_by"] == first.run_id).all()

    run = Orchestrator(q, models_dir=tmp_path, pool_size=100, top=20).run_once()

    after = undone_state(q)
    window = expected_window(before, run.pool["start"], 0.2, 100)
    top = head(before, 0.2, 20)
    rescored = set(after["id"][after["ranked_by"] == run.run_id])
    assert len(window) == 100 and rescored == window | top
    assert run.n_reranked == run.pool["scored"] == len(window | top)
    assert run.pool["window"] == 100 and run.pool["head"] == 20
    kept = after[~after["id"].isin(rescored)].set_index("id")
    old = before.set_index("id").loc[kept.index]
    assert (kept["ranked_by"] == first.run_id).all()  # untouched: still the first run's
    assert kept["priority"].tolist() == old["priority"].tolist()
    assert kept["guess"].tolist() == old["guess"].tolist()
    # the audit reserve, which the queue never serves by priority, is not sampled
    assert not (after["key"][after["id"].isin(rescored)] < 0.2).any()
    recorded = q.runs(limit=1)[0]
    assert recorded["n_reranked"] == run.n_reranked
    assert recorded["metrics"]["pool"]["window"] == 100
    assert "read_pool" in recorded["timings"]
    q.engine.dispose()


def test_successive_bounded_cycles_sample_different_items(db_url, tmp_path):
    q = labelled_queue(db_url)
    orch = Orchestrator(q, models_dir=tmp_path, pool_size=80, top=0)
    windows = []
    for _ in range(3):
        run = orch.run_once()
        state = undone_state(q)
        windows.append(set(state["id"][state["ranked_by"] == run.run_id]))
        assert len(windows[-1]) == 80 == run.n_reranked
    assert windows[0] != windows[1] != windows[2]
    assert len(windows[0] | windows[1] | windows[2]) > 80 * 2
    q.engine.dispose()


def test_a_pool_size_covering_every_unlabelled_item_is_the_full_cycle(db_url, tmp_path):
    q = labelled_queue(db_url)
    n_undone = len(q.undone())
    full = Orchestrator(q, models_dir=tmp_path, pool_size=None).run_once()
    by_full = undone_state(q)
    covering = Orchestrator(q, models_dir=tmp_path, pool_size=n_undone, top=5).run_once()
    by_covering = undone_state(q)

    assert covering.pool == full.pool == {"sampled": False, "scored": n_undone}
    assert (by_covering["ranked_by"] == covering.run_id).all()
    # the same model scored every item (the priorities are drawn per run: widgetal.ranking)
    assert by_covering["proba"].to_numpy() == pytest.approx(by_full["proba"].to_numpy())
    assert by_covering["guess"].tolist() == by_full["guess"].tolist()
    # one fewer than the unlabelled count: now a sample
    smaller = Orchestrator(q, models_dir=tmp_path, pool_size=n_undone - 1, top=0).run_once()
    assert smaller.pool["sampled"] and smaller.n_reranked == n_undone - 1
    q.engine.dispose()


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_bad_pool_sizes_are_refused_with_the_reason(sqlite_url, tmp_path, bad):
    q = Queue(sqlite_url, labels=["negative", "positive"])
    with pytest.raises(ValueError, match="pool_size is how many unlabelled items"):
        Orchestrator(q, models_dir=tmp_path, pool_size=bad)
    with pytest.raises(ValueError, match="top is how many items"):
        Orchestrator(q, models_dir=tmp_path, top=-1)
    with pytest.raises(InvalidInput, match="pool_size"):
        simulate(["a"] * 10, ["x", "y"] * 5, pool_size=bad, progress=False)
    assert q.runs() == []  # nothing ran


def test_the_cli_refuses_a_negative_pool_size(sqlite_url, tmp_path):
    result = CliRunner().invoke(app, ["orchestrate", "--once", "--db", sqlite_url,
                                      "--pool-size", "-3", "--models-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--pool-size and --top are counts" in result.output
    assert not (tmp_path / "widgetal.db").exists() or Queue(sqlite_url).runs() == []


class _Recording(LogisticRegression):
    """Records, per fit, the pool positions (column 0 of the features) it trained on, and per
    predict_proba the positions scored."""

    fits: list = []
    scored: list = []

    def fit(self, X, y):
        _Recording.fits.append(set(X[:, 0].astype(int)))
        return super().fit(X[:, 1:], y)

    def predict_proba(self, X):
        _Recording.scored.append(set(X[:, 0].astype(int)))
        return super().predict_proba(X[:, 1:])


def test_simulate_with_a_pool_size_scores_the_samplers_subpool(monkeypatch):
    data = corpus(900, seed=3)
    rng = np.random.default_rng(0)
    signal = np.where(data["label"] == "positive", 1.0, -1.0) + rng.normal(0, 1.5, len(data))
    features = np.column_stack([np.arange(len(data)), signal])  # column 0: the row's number
    windows = []
    real_window = pool.window

    def spy(keys, start, share, size):
        out = real_window(keys, start, share, size)
        windows.append(out)
        return out

    monkeypatch.setattr(pool, "window", spy)
    _Recording.fits, _Recording.scored = [], []
    test_rows = np.arange(0, 900, 10)
    result = simulate(data["text"], data["label"], strategies=["entropy"], features=features,
                      estimator=_Recording(), batch=20, start=20, test_index=test_rows,
                      repeats=1, max_labels=120, pool_size=200, top=20, progress=False)

    assert result.settings["pool_size"] == 200 and len(windows) == 5
    fits = _Recording.fits[1:]  # the first fit is the full-data model
    pool_rows = np.setdiff1d(np.arange(900), test_rows)
    rounds = [s for s in _Recording.scored if not s <= set(test_rows)]  # pool scorings
    assert len(rounds) == len(windows)
    seen: set[int] = set()
    for r, (window, scored) in enumerate(zip(windows, rounds)):
        unlabelled = np.setdiff1d(pool_rows, sorted(fits[r]))
        sampled = set(unlabelled[window])  # window positions index the unlabelled rows
        assert len(sampled) == 200 and sampled <= scored
        assert len(scored - sampled) <= 20  # plus at most the head of the queue
        seen |= scored
        chosen = fits[r + 1] - fits[r]
        assert len(chosen) == 20 and chosen <= seen  # every text served had been scored


class _Counting(LogisticRegression):
    """Records how many rows each predict_proba call scores."""

    rows: list = []

    def predict_proba(self, X):
        _Counting.rows.append(X.shape[0])
        return super().predict_proba(X)


@pytest.mark.parametrize("strategy, explore", [("entropy", 0.25), ("margin", 0.0),
                                               ("random", 0.0)])
def test_scoring_the_pool_in_batches_gives_the_same_queue_as_in_one_piece(
        tmp_path, monkeypatch, strategy, explore):
    def cycle(name: str, batch: int) -> pd.DataFrame:
        monkeypatch.setattr(orchestrator, "SCORE_BATCH", batch)
        q = labelled_queue(f"sqlite:///{tmp_path / name}.db")  # the same labels in each
        _Counting.rows = []
        run = Orchestrator(q, models_dir=tmp_path / name, featurizer="tfidf", pool_size=None,
                           strategy=strategy, explore=explore, estimator=_Counting()).run_once()
        assert run.status == "trained" and run.n_reranked == 440
        state = undone_state(q).drop(columns="key")  # keys are drawn per file
        q.engine.dispose()
        return state

    whole = cycle("whole", 10_000)
    rows_whole = _Counting.rows
    batched = cycle("batched", 37)

    # the pool of 440 scored in one piece, or 37 texts at a time
    assert 440 in rows_whole and 440 not in _Counting.rows
    assert _ran(_Counting.rows, [37] * 11 + [33])
    assert batched["id"].tolist() == whole["id"].tolist()
    assert batched["guess"].tolist() == whole["guess"].tolist()
    np.testing.assert_array_equal(batched["proba"], whole["proba"])
    np.testing.assert_array_equal(batched["priority"], whole["priority"])


def _ran(calls: list, sizes: list) -> bool:
    """Whether ``sizes`` occur as consecutive calls."""
    return any(calls[i:i + len(sizes)] == sizes for i in range(len(calls)))


def test_a_large_project_draws_its_stop_set_from_a_key_window_without_reading_every_text(
        sqlite_url, tmp_path, monkeypatch):
    q = labelled_queue(sqlite_url)
    q.configure(audit_share=0.2)
    state = undone_state(q)
    monkeypatch.setattr(stopping, "STOP_SET_SIZE", 50)

    def every_text():
        raise AssertionError("a bounded cycle read every unlabelled text")

    monkeypatch.setattr(q, "undone", every_text)
    run = Orchestrator(q, models_dir=tmp_path, featurizer="tfidf", pool_size=100,
                       top=10).run_once()

    assert run.status == "trained" and run.pool["sampled"]
    drawn = set(json.loads((tmp_path / stopping.STOP_SET_FILE).read_text())["item_ids"])
    outside = state[state["key"] >= 0.2].sort_values(["key", "id"])["id"].tolist()
    assert len(drawn) == 50 and drawn <= set(outside)
    # consecutive keys, wrapping round: a uniform sample, since the keys are
    twice = outside + outside
    assert any(set(twice[i:i + 50]) == drawn for i in range(len(outside)))
    q.engine.dispose()
