"""The audit sample: a share of hand-outs drawn uniformly at random, kept out of training, and
the score each model gets on it; on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from typer.testing import CliRunner

from widgetal import Queue, audit, models, schema
from widgetal.cli import app
from widgetal.db import Database
from widgetal.errors import InvalidInput
from widgetal.orchestrator import Orchestrator
from widgetal.widget import Labeller

LABELS = ["negative", "positive"]
_i = schema.items.c


def _queue(url: str, n: int, share: float, **kwargs) -> Queue:
    q = Queue(url, labels=LABELS, lease_seconds=600, **kwargs)
    q.add([f"text {i}" for i in range(n)])
    q.configure(audit_share=share)
    return q


def _keys(q: Queue) -> dict[int, float]:
    with q.db.read() as conn:
        return dict(conn.execute(sa.select(_i.id, _i.audit_key)).all())


def _label_all(q: Queue, pops: int, labeller: str = "ana") -> list:
    served = []
    item = q.pop(labeller)
    for _ in range(pops):
        served.append(item)
        item = q.submit_and_pop(item.item_id, "positive", labeller)
    return served


def test_the_served_audit_share_is_close_to_the_setting(db_url):
    q = _queue(db_url, 2000, share=0.25)
    served = _label_all(q, 600)
    n_audit = sum(item.audit for item in served)
    # Binomial(600, 0.25): sd 10.6; five of them either side fails by chance once in 3 million
    assert abs(n_audit - 150) < 5 * math.sqrt(600 * 0.25 * 0.75)
    # every label records how its item was served
    labelled = q.labelled(audit_column=True).set_index("item_id")["audit"]
    assert {i.item_id: i.audit for i in served} == labelled.to_dict()
    events = q.events()
    assert len(events) == 600
    with q.db.read() as conn:
        flags = dict(conn.execute(
            sa.select(schema.labels.c.item_id, schema.labels.c.audit)).all())
    assert flags == labelled.to_dict()
    q.engine.dispose()


def test_audit_items_are_the_reserve_in_key_order_not_the_top_priorities(db_url):
    n, share = 2000, 0.3
    q = _queue(db_url, n, share=share)
    keys = _keys(q)
    ids = np.array(sorted(keys))
    priority = np.random.default_rng(1).permutation(n).astype(float)  # ranks 0..n-1
    q.reorder(ids, priority)
    by_priority = dict(zip(ids.tolist(), priority.tolist()))
    served = _label_all(q, 400)
    audited = [i.item_id for i in served if i.audit]
    ranked = [i.item_id for i in served if not i.audit]
    assert 60 < len(audited) < 180

    reserve = sorted((k, i) for i, k in keys.items() if k < share)
    # the labelled audit items are exactly the reserve's smallest keys, in key order ...
    assert audited == [i for _, i in reserve[: len(audited)]]
    # ... and the others exactly the best priorities outside the reserve, best first
    outside = sorted((i for i, k in keys.items() if k >= share), key=lambda i: -by_priority[i])
    assert ranked == outside[: len(ranked)]
    # keys are independent of priorities: audit items sit anywhere in the ranking (mean
    # priority rank of a uniform sample: 0.5, sd 0.29 / sqrt(m)), ranked ones at the top
    mean_rank = np.mean([by_priority[i] / (n - 1) for i in audited])
    assert abs(mean_rank - 0.5) < 5 * 0.289 / math.sqrt(len(audited))
    assert min(by_priority[i] for i in ranked) > 0.75 * n
    # the keys themselves are uniform on [0, 1)
    values = np.array(list(keys.values()))
    assert values.min() >= 0 and values.max() < 1 and len(set(values)) == n
    assert abs(np.mean(values < share) - share) < 5 * math.sqrt(share * (1 - share) / n)
    q.engine.dispose()


def test_share_zero_serves_no_audit_items_and_follows_the_priorities(db_url):
    q = _queue(db_url, 300, share=0.0)
    ids = np.array(sorted(_keys(q)))
    q.reorder(ids, ids.astype(float))  # the last added first
    served = _label_all(q, 300)
    assert not any(i.audit for i in served)
    assert [i.item_id for i in served] == ids[::-1].tolist()
    assert not q.labelled(audit_column=True)["audit"].any()
    q.engine.dispose()


def test_when_one_kind_is_used_up_the_other_is_served(db_url):
    """A pop never comes back empty while items are left: all reserve (share 0.99) or none."""
    q = _queue(db_url, 200, share=0.99)
    served = _label_all(q, 200)
    assert len({i.item_id for i in served}) == 200
    assert q.pop("ana") is None
    keys = _keys(q)
    audited = [i.item_id for i in served if i.audit]
    assert all(keys[i] < 0.99 for i in audited)
    q.engine.dispose()


@pytest.mark.parametrize("bad", [-0.1, 1, 1.5, float("nan"), "0.1", True, None])
def test_a_bad_share_is_refused_and_changes_nothing(db_url, bad):
    q = _queue(db_url, 10, share=0.05)
    if bad is None:  # None means "leave it": the stored share stays
        q.configure(audit_share=None)
    else:
        with pytest.raises(InvalidInput, match="audit share"):
            q.configure(audit_share=bad, overlap=2)
    assert q.audit_share == 0.05
    assert q.overlap == 1  # nothing else in the same call changed either
    q.engine.dispose()


def test_init_sets_and_changes_the_share_and_refuses_a_bad_one(sqlite_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["init", "--labels", "a,b", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "Audit sample: 5% of hand-outs" in result.output
    assert Queue(sqlite_url).audit_share == 0.05  # a new project's default
    result = runner.invoke(app, ["init", "--labels", "a,b", "--audit-share", "0.1",
                                 "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert Queue(sqlite_url).audit_share == 0.1
    result = runner.invoke(app, ["init", "--labels", "a,b", "--audit-share", "1.5",
                                 "--overlap", "3", "--db", sqlite_url])
    assert result.exit_code != 0  # `widgetal` prints this error and exits 1
    assert isinstance(result.exception, InvalidInput)
    assert "audit share" in str(result.exception)
    q = Queue(sqlite_url)
    assert q.audit_share == 0.1 and q.overlap == 1
    # running init again without the option keeps the share
    result = runner.invoke(app, ["init", "--labels", "a,b", "--db", sqlite_url])
    assert Queue(sqlite_url).audit_share == 0.1


def test_overlap_leases_skip_and_undo_keep_working_with_audit_items(db_url):
    q = _queue(db_url, 200, share=0.5)
    q.configure(overlap=2)
    seen: dict[str, list] = {"ana": [], "bo": []}
    for _ in range(60):
        for name in seen:
            item = q.pop(name)
            seen[name].append(item)
            q.submit(item.item_id, "positive", name)
    for items in seen.values():  # exactly once per labeller
        assert len({i.item_id for i in items}) == len(items)
    labels = q.label_table()
    counts = labels.groupby("item_id").size()
    assert counts.max() <= 2
    # an item's labels are all audit labels or none: an audit item stays one for every slot
    with q.db.read() as conn:
        rows = conn.execute(sa.select(schema.labels.c.item_id, schema.labels.c.audit)).all()
        marked = dict(conn.execute(sa.select(_i.id, _i.audit)).all())
    assert all(marked[item_id] == flag for item_id, flag in rows)
    assert any(flag for _, flag in rows) and not all(flag for _, flag in rows)
    final = q.labelled(audit_column=True)
    assert len(final) == (counts == 2).sum()
    assert all(final["audit"] == final["item_id"].map(marked))

    # undo hands the audit item back, still audit; its new label is an audit label
    q.configure(overlap=1)
    item = q.pop("cy")
    while not item.audit:
        q.submit(item.item_id, "negative", "cy")
        item = q.pop("cy")
    q.submit(item.item_id, "negative", "cy")
    back = q.undo("cy")
    assert back.item_id == item.item_id and back.audit
    q.submit(back.item_id, "positive", "cy")
    final = q.labelled(audit_column=True).set_index("item_id")
    assert final.loc[item.item_id, "audit"] and final.loc[item.item_id, "label"] == "positive"

    # a skipped audit item stays in the reserve for others, never shown to the skipper again
    item = q.pop("dee")
    while not item.audit:
        q.submit(item.item_id, "negative", "dee")
        item = q.pop("dee")
    q.skip(item.item_id, "dee")
    for _ in range(30):
        other = q.pop("dee")
        if other is None:
            break
        assert other.item_id != item.item_id
        q.submit(other.item_id, "negative", "dee")
    q.engine.dispose()


# -- the orchestrator ----------------------------------------------------------------------------

_WORDS = {"negative": "awful dull slow bad boring".split(),
          "positive": "great fun good lovely brilliant".split()}
_FILLER = "the a film plot actor scene story long music end".split()


def _texts(n: int, seed: int = 0) -> tuple[list[str], dict[str, str]]:
    """Short texts whose class shows in a word or two among filler, 15% with the other
    class's word too (so that models err, and their scores differ)."""
    rng = np.random.default_rng(seed)
    texts, truth = [], {}
    for i in range(n):
        label = LABELS[rng.integers(2)]
        words = list(rng.choice(_FILLER, 6)) + [rng.choice(_WORDS[label])]
        if rng.random() < 0.15:
            words.append(rng.choice(_WORDS[LABELS[1 - LABELS.index(label)]]))
        rng.shuffle(words)
        text = f"{' '.join(words)} #{i}"
        texts.append(text)
        truth[text] = label
    return texts, truth


def _label(q: Queue, truth: dict, n: int, item=None):
    """Ana labels ``n`` texts truthfully, one click each; returns the item she is shown next."""
    item = item or q.pop("ana")
    for _ in range(n):
        item = q.submit_and_pop(item.item_id, truth[item.text], "ana")
    return item


def test_audit_labels_are_left_out_of_training_and_score_the_model(db_url, tmp_path):
    texts, truth = _texts(900)
    q = Queue(db_url, labels=LABELS, lease_seconds=600)
    q.add(texts)
    q.configure(audit_share=0.3)
    _label(q, truth, 300)
    labelled = q.labelled(audit_column=True)
    train, audited = labelled[~labelled["audit"]], labelled[labelled["audit"]]
    assert len(audited) > 40

    run = Orchestrator(q, models_dir=tmp_path / "models").run_once()
    assert run.status == "trained"
    assert run.n_labels == len(train)  # audit labels are not training labels
    m = run.metrics
    assert m["n_audit"] == len(audited)

    # recomputed independently: the saved model's predictions on the audit texts
    saved = models.load_model(run.model_file)
    predicted = saved.predict(audited["text"].tolist())
    expected = f1_score(audited["label"], predicted, average="macro")
    assert m["audit_f1_macro"] == pytest.approx(expected, abs=1e-12)
    assert m["audit_accuracy"] == pytest.approx(accuracy_score(audited["label"], predicted))
    assert m["audit_ci_low"] <= m["audit_f1_macro"] <= m["audit_ci_high"]
    assert m["audit_ci_high"] - m["audit_ci_low"] > 0.01  # a real interval, from few labels

    # trained on the non-audit labels only: a fresh fit on them gives the same model, a fit
    # that includes the audit labels does not
    own = clone(saved).fit(train["text"].tolist(), train["label"].to_numpy())
    both = clone(saved).fit(labelled["text"].tolist(), labelled["label"].to_numpy())
    probe = audited["text"].tolist()
    np.testing.assert_allclose(own.predict_proba(probe), saved.predict_proba(probe))
    assert not np.allclose(both.predict_proba(probe), saved.predict_proba(probe))

    # recorded beside the CV score, in the run row and in the sidecar
    stored = q.runs(limit=1)[0]["metrics"]
    sidecar = json.loads(run.model_file.with_suffix(".json").read_text())
    for key in ("n_audit", "audit_f1_macro", "audit_ci_low", "audit_ci_high", "f1_macro"):
        assert stored[key] == pytest.approx(m[key])
        assert sidecar["metrics"][key] == pytest.approx(m[key])
    assert audit.audit_score(stored) == ("f1_macro", m["audit_f1_macro"], m["audit_ci_low"],
                                         m["audit_ci_high"], len(audited))

    # where people see it: status's audit learning curve, and the labelling app's run line
    shown = f"{m['audit_f1_macro']:.3f} [{m['audit_ci_low']:.3f}, {m['audit_ci_high']:.3f}]"
    out = CliRunner().invoke(app, ["status", "--db", db_url])
    assert out.exit_code == 0, out.output
    assert "Audit learning curve" in out.output and shown in out.output
    assert f"{m['f1_macro']:.3f}" in out.output
    line = Labeller(q, labeller="bo")._model_line.value
    assert (f"audit macro-F1 {m['audit_f1_macro']:.3f} [{m['audit_ci_low']:.3f}–"
            f"{m['audit_ci_high']:.3f}] on {len(audited)} random texts") in line
    q.engine.dispose()


def test_without_audit_labels_the_run_says_so(sqlite_url, tmp_path):
    texts, truth = _texts(200)
    q = Queue(sqlite_url, labels=LABELS)
    q.add(texts)
    _label(q, truth, 60)
    run = Orchestrator(q, models_dir=tmp_path / "models").run_once()
    assert run.status == "trained" and run.n_labels == 60
    assert run.metrics["n_audit"] == 0 and run.metrics["audit_f1_macro"] is None
    assert audit.audit_score(q.runs(limit=1)[0]["metrics"]) is None


# -- the interval ------------------------------------------------------------------------------


class _Fixed:
    """A 'model' that answers with given predictions (rows of X are their indices)."""

    def __init__(self, answers):
        self.answers = np.asarray(answers)

    def predict(self, X):
        return self.answers[np.asarray(X)]

    def predict_proba(self, X):
        return self.answers[np.asarray(X)]


def _naive_interval(n, statistic, seed=7, resamples=2000):
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n, n)) for _ in range(resamples)]
    return np.quantile(values, [0.025, 0.975])


def test_the_single_label_interval_matches_a_plain_bootstrap_with_scikit_learn():
    rng = np.random.default_rng(3)
    classes = np.array(["a", "b", "c"])
    truth = classes[rng.choice(3, 300, p=[0.6, 0.3, 0.1])]
    predicted = np.where(rng.random(300) < 0.7, truth, classes[rng.integers(0, 3, 300)])
    out = audit.evaluate(_Fixed(predicted), np.arange(300), truth.tolist(), [], seed=11)
    assert out["audit_f1_macro"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    low, high = _naive_interval(
        300, lambda idx: f1_score(truth[idx], predicted[idx], average="macro"))
    # two independent bootstraps of 2,000 resamples agree to about 0.01 on these bounds
    assert out["audit_ci_low"] == pytest.approx(low, abs=0.02)
    assert out["audit_ci_high"] == pytest.approx(high, abs=0.02)
    assert high - low > 0.05


def test_the_multi_label_interval_matches_a_plain_bootstrap_with_scikit_learn():
    rng = np.random.default_rng(4)
    names = ["x", "y", "z"]
    truth = rng.random((250, 3)) < [0.5, 0.2, 0.1]
    noisy = np.where(rng.random((250, 3)) < 0.8, truth, ~truth)
    answers = [json.dumps([n for n, on in zip(names, row) if on]) for row in truth]
    out = audit.evaluate(_Fixed(noisy.astype(float)), np.arange(250), answers, names,
                         multi_label=True, seed=5)
    assert out["audit_f1_micro"] == pytest.approx(f1_score(truth, noisy, average="micro"))
    low, high = _naive_interval(
        250, lambda idx: f1_score(truth[idx], noisy[idx], average="micro"))
    assert out["audit_ci_low"] == pytest.approx(low, abs=0.02)
    assert out["audit_ci_high"] == pytest.approx(high, abs=0.02)


# -- the upgrade from version 2 ----------------------------------------------------------------


def test_a_version_2_database_upgrades_in_place_and_loses_nothing(db_url, tmp_path):
    with Database(db_url).write() as conn:
        command.upgrade(schema.alembic_config(conn), "0002")
    v2 = sa.MetaData()
    with Database(db_url).write() as conn:
        v2.reflect(conn)
        t = v2.tables
        conn.execute(t["widgetal_settings"].insert(), [
            {"key": "labels", "value": LABELS}, {"key": "overlap", "value": 2},
        ])
        conn.execute(t["widgetal_counters"].update().values(value=5))
        now = datetime(2025, 3, 1, tzinfo=timezone.utc)
        conn.execute(t["widgetal_items"].insert(), [
            {"external_id": f"e{i}", "text": f"text {i}", "created_at": now,
             "priority": float(i), "done_at": now if i < 3 else None,
             "needs_review": i == 2, "guess_label": "positive" if i > 2 else None,
             "guess_proba": 0.7 if i > 2 else None}
            for i in range(1, 6)
        ])
        conn.execute(t["widgetal_labels"].insert(), [
            {"item_id": i, "label": lab, "labeller": who, "created_at": now, "priority": 1.0}
            for i, lab, who in [(1, "positive", "ana"), (1, "positive", "bo"),
                                (2, "positive", "ana"), (2, "negative", "bo")]
        ])
        conn.execute(t["widgetal_reviews"].insert(), [
            {"item_id": 1, "reviewer": "cy", "label": "positive", "created_at": now}])
        conn.execute(t["widgetal_leases"].insert(), [
            {"item_id": 4, "labeller": "ana", "expires_at": now}])
        conn.execute(t["widgetal_labellers"].insert(), [
            {"name": "cy", "role": "reviewer", "created_at": now}])
        conn.execute(t["widgetal_skips"].insert(), [
            {"item_id": 5, "labeller": "bo", "created_at": now}])

    moved = ("priority", "ranked_by", "guess_label", "guess_proba")  # to widgetal_ranks (v6)

    def rows():
        with Database(db_url).read() as conn:
            return {name: sorted(map(tuple, conn.execute(
                        sa.select(*(c for c in table.c if name != "widgetal_items"
                                    or c.name not in moved))).all()), key=repr)
                    for name, table in v2.tables.items()
                    # (runs: empty here; version 4 renamed a column, see test_migrations)
                    if name not in ("widgetal_settings", "widgetal_alembic_version",
                                    "widgetal_runs")}

    before = rows()
    q = Queue(db_url)
    assert q.labels == LABELS and q.overlap == 2
    assert q.audit_share == 0.0  # an upgraded project keeps serving as it did
    assert rows() == before  # every version-2 column of every row, unchanged
    with q.db.read() as conn:  # the queue's order, for the items queued or awaiting review
        ranks = conn.execute(sa.select(schema.ranks.c.item_id, schema.ranks.c.priority,
                                       schema.ranks.c.guess_label)).all()
    assert sorted(map(tuple, ranks)) == [(2, 2.0, None), (3, 3.0, "positive"),
                                         (4, 4.0, "positive"), (5, 5.0, "positive")]
    with q.db.read() as conn:
        state = conn.execute(schema._read_schema_version).scalar()
        marks = conn.execute(sa.select(_i.audit_key, _i.audit)).all()
        label_marks = conn.execute(sa.select(schema.labels.c.audit)).scalars().all()
    assert state == schema.SCHEMA_VERSION
    assert len({k for k, _ in marks}) == 5 and all(0 <= k < 1 for k, _ in marks)
    assert not any(a for _, a in marks) and label_marks == [False] * 4
    # and the upgraded project works: the audit draw included
    q.configure(audit_share=0.5, overlap=1)
    q.add(["a new text"])
    assert len(q.labelled(audit_column=True)) == 1  # item 1, decided by the reviewer
    q.engine.dispose()


def test_the_quickstart_project_draws_the_default_audit_sample_and_keeps_a_chosen_one(
        sqlite_url):
    from widgetal.quickstart import seed_project

    q, _ = seed_project(sqlite_url)
    assert q.audit_share == 0.05
    q.configure(audit_share=0.2)
    q, _ = seed_project(sqlite_url)  # started again: the owner's choice stays
    assert q.audit_share == 0.2
    q.engine.dispose()


def test_a_multi_label_project_is_scored_by_micro_f1_on_its_audit_sets(db_url, tmp_path):
    names = ["billing", "urgent", "spam"]
    cue = {"billing": "invoice", "urgent": "asap", "spam": "prize"}
    rng = np.random.default_rng(2)
    texts, truth = [], {}
    for i in range(500):
        carried = [n for n, p in zip(names, (0.5, 0.3, 0.3)) if rng.random() < p]
        words = list(rng.choice(_FILLER, 5)) + [cue[n] for n in carried]
        if rng.random() < 0.2:  # a misleading cue now and then: the models err
            words.append(cue[names[rng.integers(3)]])
        rng.shuffle(words)
        texts.append(f"{' '.join(words)} #{i}")
        truth[texts[-1]] = carried
    q = Queue(db_url, labels=names, multi_label=True)
    q.add(texts)
    q.configure(audit_share=0.3)
    _label(q, truth, 200)
    labelled = q.labelled(audit_column=True)
    audited = labelled[labelled["audit"]]
    run = Orchestrator(q, models_dir=tmp_path / "models").run_once()
    assert run.status == "trained" and run.n_labels == (~labelled["audit"]).sum()
    m = run.metrics
    assert m["n_audit"] == len(audited) > 30
    saved = models.load_model(run.model_file)
    trained = json.loads(run.model_file.with_suffix(".json").read_text())["trained_labels"]
    predicted = saved.predict_proba(audited["text"].tolist()) >= models.THRESHOLD
    expected = np.array([[n in truth[t] for n in trained] for t in audited["text"]])
    assert m["audit_f1_micro"] == pytest.approx(
        f1_score(expected, predicted, average="micro"), abs=1e-12)
    assert m["audit_ci_low"] <= m["audit_f1_micro"] <= m["audit_ci_high"]
    assert "audit_f1_macro" not in m
    q.engine.dispose()


def test_the_models_notebook_plots_and_lists_the_audit_curve(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    import widgetal

    url = f"sqlite:///{tmp_path / 'nb.db'}"
    texts, truth = _texts(400, seed=3)
    q = Queue(url, labels=LABELS)
    q.add(texts)
    q.configure(audit_share=0.3)
    orchestrator = Orchestrator(q, models_dir=tmp_path / "models", cv_folds=3)
    item = None
    for _ in range(2):
        item = _label(q, truth, 60, item)
        orchestrator.run_once()
    latest = q.runs(limit=1)[0]["metrics"]
    monkeypatch.setenv("WIDGETAL_DB_URL", url)
    monkeypatch.setenv("WIDGETAL_MODELS_DIR", str(tmp_path / "models"))
    path = Path(widgetal.__file__).with_name("notebooks") / "models.ipynb"  # the packaged copy
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    tables = [o.data["text/html"] for o in outputs
              if o.output_type in ("display_data", "execute_result") and "text/html" in o.data]
    curve = next(t for t in tables if "ci_low" in t)
    assert f"{latest['audit_f1_macro']:.3f}" in curve and f"{latest['audit_ci_high']:.3f}" in curve
    assert str(latest["n_audit"]) in curve
    q.engine.dispose()
