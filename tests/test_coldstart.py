"""Cold start and boosts: before a model, the queue serves one text per cluster (rare clusters
first), and a user can bring texts matching a query or like an example to the front; the first
trained model's uncertainty order replaces both. Pure ranking functions, then cycles on SQLite
and PostgreSQL, then the `widgetal boost` command."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from widgetal import Queue
from widgetal.coldstart import (
    add_boost,
    clear_boost,
    diversity_scores,
    parse_query,
    read_boost,
    similar_rows,
)
from widgetal.errors import InvalidInput
from widgetal.features import make_featurizer
from widgetal.models import load_latest
from widgetal.orchestrator import Orchestrator
from widgetal.strategies import power_sample, sharpness

LABELS = ["other", "money"]
# Four topics with no word in common, imported biggest first: import order serves the rare
# one (refund requests) last.
TOPICS = {
    "weather": ("rain sunny cloudy storm forecast wind cold humid thunder snow drizzle fog", 300),
    "football": ("goal striker penalty league referee match keeper offside midfield coach", 120),
    "cooking": ("recipe oven garlic simmer dough flour butter onion roast sauce", 40),
    "refund": ("refund chargeback money back bank card charged twice reimburse", 6),
}


def topic_texts(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for topic, (vocabulary, n) in TOPICS.items():
        words = vocabulary.split()
        for i in range(n):
            rows.append({"id": f"{topic}{i}", "text": " ".join(rng.choice(words, 5)),
                         "topic": topic})
    return pd.DataFrame(rows)


@pytest.fixture
def topics(db_url):
    q = Queue(db_url, labels=LABELS, lease_seconds=600)
    data = topic_texts()
    q.add(data[["id", "text"]], text="text", id="id")
    yield q, dict(zip(data["id"], data["topic"])), data
    q.engine.dispose()


def served(q: Queue, n: int) -> list:
    """The next n texts handed out (one labeller each, so nobody's lease repeats an item)."""
    return [q.pop(f"l{i}") for i in range(n)]


def priorities(q: Queue) -> list[tuple]:
    return [(i.item_id, i.priority, i.ranked_by) for i in q.items(q.undone()["item_id"])]


# -- the pure ranking functions ---------------------------------------------------------------


def blobs(sizes, seed=0):
    """Well separated blobs in 3-D (odd sizes). Each blob's first row is its exact centre; the
    others come in pairs c + v, c - v with v orthogonal to c and |v| = 1, so the centre is
    also the mean of the blob's unit-length rows and every other row is farther from it."""
    rng = np.random.default_rng(seed)
    X, blob = [], []
    for b, n in enumerate(sizes):
        centre = np.eye(3)[b] * 10
        v = rng.normal(0, 1, ((n - 1) // 2, 3))
        v[:, b] = 0
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        X.append(np.vstack([centre, centre + v, centre - v]))
        blob += [b] * n
    return np.vstack(X), np.array(blob)


def test_every_cluster_is_served_once_before_any_twice_smallest_first():
    X, blob = blobs([301, 61, 9])
    d = diversity_scores(X, n_clusters=3)
    order = np.argsort(-d.scores)
    assert len(set(d.scores.tolist())) == len(X) and d.scores.max() <= 1 and d.scores.min() > 0
    assert blob[order[:3]].tolist() == [2, 1, 0]  # one per blob, the smallest first
    # each blob is represented first by the text nearest its centre
    starts = {0: 0, 1: 301, 2: 362}
    assert sorted(order[:3].tolist()) == sorted(starts.values())
    # rounds: the next three again cover every blob
    assert sorted(blob[order[3:6]].tolist()) == [0, 1, 2]
    assert sorted(d.sizes.tolist()) == [9, 61, 301]


def test_clusters_already_labelled_wait_their_turn():
    X, blob = blobs([301, 61, 9])
    seen = X[[363, 364, 365]]  # three labelled texts from the small blob
    d = diversity_scores(X, X_seen=seen, n_clusters=3)
    order = np.argsort(-d.scores)
    # the small blob starts at round 3: the first six served are the other blobs' rounds 0-2
    assert set(blob[order[:6]].tolist()) == {0, 1}
    assert blob[order[6]] == 2


@pytest.mark.parametrize("query,texts,expected", [
    ("refund OR chargeback", ["A REFUND please", "Chargeback!", "refunds"], [True, True, False]),
    ("refund*", ["refunded twice", "a refund", "prefund"], [True, True, False]),
    ('"money back" OR late deliver*', ["my MONEY  back", "delivery late", "back money"],
     [True, True, False]),
    ("late delivery", ["late delivery", "delivery was late", "late"], [True, True, False]),
    ('":)" OR "c++"', ["hi :)", "I write C++ daily", "c+"], [True, True, False]),
    ("or", ["this or that", "order"], [True, False]),  # lower-case or is a word
])
def test_query_syntax(query, texts, expected):
    assert parse_query(query).matches(texts).tolist() == expected


@pytest.mark.parametrize("query,message", [
    ("", "empty"),
    ("   ", "empty"),
    ("refund OR", "ends with OR"),
    ("OR refund", "OR without a term before it"),
    ("refund OR OR chargeback", "OR without a term before it"),
    ('"money back', "unbalanced quote"),
    ('refund ""', "empty phrase"),
    ("(refund OR chargeback)", "parentheses"),
    ("*", "no letter or digit"),
])
def test_a_bad_query_is_refused_with_the_reason(query, message):
    with pytest.raises(InvalidInput, match=message):
        parse_query(query)


def test_similar_rows_are_the_top_per_example_merged_best_first():
    X = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.8, 0.2], [0, 0, 1], [-1, 0, 0]])
    rows, sim = similar_rows(X, np.array([[1.0, 0, 0], [0, 1.0, 0]]), top=2)
    assert sorted(rows.tolist()) == [0, 1, 2, 3]
    assert sim.tolist() == sorted(sim.tolist(), reverse=True)
    rows, _ = similar_rows(X, np.array([[-1.0, 0, 0]]), top=3)
    assert rows.tolist() == [5]  # dissimilar rows (cosine <= 0) are never boosted


# -- cycles on a real database ------------------------------------------------------------------


def test_cold_start_serves_one_text_per_cluster_and_the_rare_topic_first(topics, tmp_path):
    q, topic, data = topics
    first_imported = [topic[i.external_id] for i in q.items(q.undone()["item_id"][:30])]
    assert set(first_imported) == {"weather"}  # import order would serve weather for long

    run = Orchestrator(q, models_dir=tmp_path / "m").run_once()

    assert run.status == "cold-start" and "no labels yet" in run.reason
    assert run.n_reranked == len(data)
    row = q.runs(1)[0]
    assert row["status"] == "cold-start" and row["reason"] == run.reason
    assert row["strategy"] == "cold-start" and row["model_file"] is None
    k = row["metrics"]["cold_start"]["clusters"]
    assert k == round(np.sqrt(len(data)))
    # the same features and clusters, recomputed outside the orchestrator
    X = make_featurizer(row["featurizer"]).fit_transform(data["text"])
    clusters = dict(zip(data["id"], diversity_scores(X).clusters))
    first = served(q, k)
    assert {i.ranked_by for i in first} == {run.run_id}
    assert len({clusters[i.external_id] for i in first}) == k  # k pops, k distinct clusters
    assert "refund" in [topic[i.external_id] for i in first[:3]]
    assert {topic[i.external_id] for i in first} == set(TOPICS)


def test_the_labelling_app_says_the_queue_is_ordered_for_diversity(topics, tmp_path):
    from widgetal.widget import Labeller

    q, _, _ = topics
    run = Orchestrator(q, models_dir=tmp_path / "m").run_once()
    line = Labeller(q, labeller="ana")._model_line.value
    assert f"ordered for diversity by run #{run.run_id}" in line and "no model yet" in line


def test_cold_start_off_leaves_import_order(topics, tmp_path):
    q, _, _ = topics
    before = priorities(q)
    run = Orchestrator(q, models_dir=tmp_path / "m", cold_start=False).run_once()
    assert run.status == "skipped" and priorities(q) == before
    assert q.runs(1)[0]["status"] == "skipped" and q.runs(1)[0]["reason"] == run.reason


def test_a_boost_query_comes_first_now_and_in_every_cold_start_run(topics, tmp_path):
    q, topic, data = topics
    orch = Orchestrator(q, models_dir=tmp_path / "m")
    orch.run_once()
    expected = {i for i, t in zip(data["id"], data["text"])
                if "oven" in t.split() or "garlic sauce" in t}
    assert 0 < len(expected) < 40

    boost, moved = add_boost(q, ['oven OR "Garlic Sauce"'])

    assert moved == len(expected) and boost.queries == ['oven OR "Garlic Sauce"']
    assert {i.external_id for i in served(q, len(expected))} == expected
    again = orch.run_once()  # the boost is stored: a new cold-start run keeps matches first
    assert q.runs(1)[0]["metrics"]["cold_start"]["boosted"] == len(expected)
    order = q.undone()["item_id"].tolist()
    ids = {i.item_id: i.external_id for i in q.items(order)}
    queue_order = [ids[i] for i in order]
    assert set(queue_order[: len(expected)]) == expected and again.status == "cold-start"

    assert clear_boost(q).queries == ['oven OR "Garlic Sauce"'] and not read_boost(q)
    orch.run_once()
    assert q.runs(1)[0]["metrics"]["cold_start"]["boosted"] == 0


def test_a_bad_boost_is_refused_and_changes_nothing(topics, tmp_path):
    q, _, _ = topics
    Orchestrator(q, models_dir=tmp_path / "m").run_once()
    add_boost(q, ["oven"])
    before = priorities(q)
    with pytest.raises(InvalidInput, match="unbalanced quote"):
        add_boost(q, ["refund", '"money back'])  # one bad query: the good one is not stored
    with pytest.raises(InvalidInput, match="empty"):
        add_boost(q, like=["  "])
    with pytest.raises(InvalidInput, match="at least 1"):
        add_boost(q, like=["my card was charged twice"], top=0)
    with pytest.raises(ValueError, match="Unknown featurizer"):
        add_boost(q, like=["my card was charged twice"], featurizer="bag-of-words")
    assert priorities(q) == before
    assert read_boost(q).queries == ["oven"] and read_boost(q).like == []


def test_like_brings_the_similar_texts_first(topics):
    q, topic, _ = topics
    boost, moved = add_boost(q, like=["my bank card was charged twice, I want a refund"], top=6)
    assert moved == 6 and boost.like and boost.top == 6
    assert [topic[i.external_id] for i in served(q, 6)] == ["refund"] * 6
    add_boost(q, ["oven"])  # a query added later keeps the examples and their --top
    assert read_boost(q).like == boost.like and read_boost(q).top == 6


def test_a_trained_model_replaces_the_cold_start_order(topics, tmp_path):
    q, topic, data = topics
    orch = Orchestrator(q, models_dir=tmp_path / "m", cv_folds=3)
    add_boost(q, ["striker"])
    cold = orch.run_once()
    assert cold.status == "cold-start"
    # label what cold start serves until both classes can fill the folds
    while True:
        item = q.pop("ana")
        q.submit(item.item_id, "money" if topic[item.external_id] == "refund" else "other",
                 "ana")
        counts = q.progress().per_label
        if min(counts.values()) >= 3 and sum(counts.values()) >= 12:
            break

    run = orch.run_once()

    assert run.status == "trained"
    pool = q.items(q.undone()["item_id"])
    assert {i.ranked_by for i in pool} == {run.run_id}  # no cold-start priority is left
    # served by the draw from the model's entropy (widgetal.ranking), not by the boost
    by_id = sorted(pool, key=lambda i: i.item_id)
    proba = load_latest(tmp_path / "m").predict_proba([i.text for i in by_id])
    entropy = -(proba * np.log(np.clip(proba, 1e-300, 1))).sum(axis=1)
    drawn = power_sample(entropy, sharpness(run.n_labels), np.random.default_rng([0, run.run_id]))
    assert [i.item_id for i in pool] == [by_id[k].item_id for k in np.argsort(-drawn)]
    assert not all("striker" in i.text for i in pool[:20])
    # a boost after the model: matches first now, with the model's guesses kept
    guesses = {i.item_id: i.guess_label for i in pool}
    _, moved = add_boost(q, ["chargeback"])
    boosted = [i for i in pool if "chargeback" in i.text.split()]
    assert moved == len(boosted)
    for item in served(q, len(boosted)):
        assert "chargeback" in item.text.split()
        assert item.ranked_by == run.run_id and item.guess_label == guesses[item.item_id]


def test_boost_scans_the_queue_in_batches(topics, monkeypatch):
    from widgetal import coldstart

    q, _, data = topics
    monkeypatch.setattr(coldstart, "BATCH", 50)
    reads = []
    real = coldstart._undone_batches
    monkeypatch.setattr(coldstart, "_undone_batches",
                        lambda queue, size=50: (reads.append(len(b)) or b
                                                for b in real(queue, size)))
    _, moved = add_boost(q, ["reimburse OR chargeback"])
    assert max(reads) == 50 and sum(reads) == len(data)
    expected = sum("reimburse" in t.split() or "chargeback" in t.split() for t in data["text"])
    assert moved == expected > 0


# -- the command ---------------------------------------------------------------------------------


def cli(*args: str, db: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "WIDGETAL_DB_URL": db, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "widgetal.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr or proc.stdout)
    return proc


def test_boost_and_cold_start_from_the_command_line(db_url, tmp_path):
    data = topic_texts()
    src = tmp_path / "texts.csv"
    data[["id", "text"]].to_csv(src, index=False)
    # no audit sample: its random draws would make the order served here non-deterministic
    cli("init", "--labels", ",".join(LABELS), "--audit-share", "0", db=db_url)
    cli("import", str(src), "--id-col", "id", db=db_url)

    out = cli("orchestrate", "--once", "--models-dir", str(tmp_path / "m"), db=db_url).stdout
    assert "cold-start" in out
    assert "queue ordered for diversity" in cli("status", db=db_url).stdout

    out = cli("boost", "reimburse", "OR", "chargeback", db=db_url).stdout
    expected = {i for i, t in zip(data["id"], data["text"])
                if {"reimburse", "chargeback"} & set(t.split())}
    assert f"{len(expected)} texts moved to the front" in out
    q = Queue(db_url)
    assert {i.external_id for i in served(q, len(expected))} == expected
    snapshot = priorities(q)

    bad = cli("boost", '"money back', db=db_url, check=False)
    assert bad.returncode == 1 and "unbalanced quote" in bad.stderr
    assert priorities(q) == snapshot
    with q.db.read() as conn:  # the stored boost is the good one only
        stored = conn.execute(sa.text("SELECT value FROM widgetal_settings WHERE key = 'boost'"))
        assert "money" not in str(stored.scalar_one())
    assert "reimburse OR chargeback" in cli("status", db=db_url).stdout
    assert "reimburse OR chargeback" in cli("boost", "--clear", db=db_url).stdout
    assert "Boost: none" in cli("boost", db=db_url).stdout
    q.engine.dispose()


def test_cold_start_in_a_multi_label_project(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=["billing", "urgent"], multi_label=True)
    data = topic_texts()
    q.add(data[["id", "text"]], text="text", id="id")
    topic = dict(zip(data["id"], data["topic"]))
    run = Orchestrator(q, models_dir=tmp_path / "m").run_once()
    assert run.status == "cold-start" and "no label" in run.reason
    assert "refund" in [topic[i.external_id] for i in served(q, 3)]


def test_cold_start_with_embeddings_uses_the_feature_cache(sqlite_url, tmp_path, embedded):
    from test_features import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny")
    q = Queue(sqlite_url, labels=LABELS)
    data = topic_texts().iloc[::4]  # 117 texts: the tiny model is slow enough
    q.add(data[["id", "text"]], text="text", id="id")
    orch = Orchestrator(q, models_dir=tmp_path / "m", featurizer=f"transformer:{model_dir}")
    first = orch.run_once()
    assert first.status == "cold-start" and first.n_reranked == len(data)
    assert sorted(embedded) == sorted(data["text"])  # each text embedded once, then cached
    embedded.clear()
    add_boost(q, like=[data["text"].iloc[-1]], top=3, featurizer=f"transformer:{model_dir}")
    second = orch.run_once()
    assert second.status == "cold-start" and q.runs(1)[0]["metrics"]["cold_start"]["boosted"] > 0
    assert set(embedded) <= {data["text"].iloc[-1]}  # only the example: the pool is cached
