"""Both notebooks run top to bottom in a real kernel against a temporary database and models
folder made by the real orchestrator."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from widgetal import Queue
from widgetal.serve import LABEL_NOTEBOOK, MODELS_NOTEBOOK

nbclient = pytest.importorskip("nbclient")
pytestmark = pytest.mark.timeout(300)

GOOD = ["great", "lovely", "wonderful", "superb", "brilliant"]
BAD = ["awful", "terrible", "dreadful", "boring", "dull"]


def _run(path, monkeypatch, **env) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type in ("display_data", "execute_result") and kind in o.data]


def _errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error" or getattr(o, "name", "") == "stderr" and "Error" in o.text]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """40 labelled texts, 20 not, and two model versions written by the orchestrator."""
    from widgetal.orchestrator import Orchestrator

    tmp_path = tmp_path_factory.mktemp("project")
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    q = Queue(url, labels=["negative", "positive"])
    texts = [f"a {w} film, number {i}" for i in range(6) for w in GOOD + BAD]
    q.add(texts)
    orchestrator = Orchestrator(q, models_dir=tmp_path / "models", cv_folds=3)
    for batch in (20, 20):
        for _ in range(batch):
            item = q.pop("tester")
            label = "positive" if any(w in item.text for w in GOOD) else "negative"
            q.submit(item.item_id, label, "tester")
        orchestrator.run_once()
    yield q, url, tmp_path / "models"
    q.engine.dispose()


def test_models_notebook_shows_versions_curve_confusion_and_labels(project, monkeypatch):
    q, url, models_dir = project
    nb = _run(MODELS_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=url,
              WIDGETAL_MODELS_DIR=str(models_dir))
    assert not _errors(nb)
    tables = [o.data["text/html"] for o in _outputs(nb, "text/html")]
    versions = next(t for t in tables if "f1_macro" in t)
    assert versions.count(".pkl") == 2
    # learning curve, stop-set kappa (the second run has one), confusion matrix, labels
    assert len(_outputs(nb, "image/png")) == 4
    stop = next(t for t in tables if "stop-set kappa" in t)
    second = q.runs(limit=1)[0]["metrics"]["stop_kappa"]
    assert f"{second:.3f}" in stop
    assert any("tester" in t for t in tables)
    shown = " ".join(o.data.get("text/markdown", "") for o in _outputs(nb, "text/markdown"))
    assert "**40** of **60** texts labelled" in shown
    assert "audit part unknown" in shown  # the stop signal, with why it cannot say more


def test_models_notebook_says_no_model_yet_on_an_empty_folder(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Queue(url, labels=["negative", "positive"]).engine.dispose()
    nb = _run(MODELS_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=url,
              WIDGETAL_MODELS_DIR=str(tmp_path / "models"))
    assert not _errors(nb)
    shown = " ".join(o.data["text/markdown"] for o in _outputs(nb, "text/markdown"))
    assert "No model yet" in shown


def test_label_notebook_shows_the_labeller_widget_with_the_next_text(project, monkeypatch):
    q, url, models_dir = project
    nb = _run(LABEL_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=url,
              WIDGETAL_MODELS_DIR=str(models_dir), QUERY_STRING="labeller=nb")
    assert not _errors(nb)
    assert _outputs(nb, "application/vnd.jupyter.widget-view+json")
    state = json.dumps(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"])
    shown = q.pop("nb")  # the notebook's kernel leased it to "nb": the same item comes back
    assert shown.ranked_by == q.runs(1)[0]["id"]
    assert json.dumps(shown.text)[1:-1] in state
    assert "Labelling as <b>nb</b>" in state
    assert f"run #{shown.ranked_by}, 40 labels" in state  # the orchestrator ranked the queue


def test_label_notebook_explains_an_unreachable_database(tmp_path, monkeypatch):
    nb = _run(LABEL_NOTEBOOK, monkeypatch,
              WIDGETAL_DB_URL="postgresql://nobody:x@127.0.0.1:9/none?connect_timeout=2")
    assert not _errors(nb)
    state = json.dumps(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"])
    assert "Cannot start labelling" in state and "Cannot reach the database" in state


def test_repository_notebooks_are_the_packaged_ones():
    """One source of truth: notebooks/ links to the copies `widgetal serve` ships."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert (root / "notebooks" / "label.ipynb").resolve() == LABEL_NOTEBOOK.resolve()
    assert (root / "notebooks" / "models.ipynb").resolve() == MODELS_NOTEBOOK.resolve()


def test_simulate_notebook_reproduces_the_article_in_fast_mode(monkeypatch, tweets_path):
    """The article-reproduction notebook runs on the shared tweets (on a 1,500-tweet slice)."""
    path = Path(__file__).resolve().parents[1] / "notebooks" / "simulate.ipynb"
    nb = _run(path, monkeypatch, WIDGETAL_SIMULATE_FAST="1")
    assert not _errors(nb)
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert text.count("full-data ROC AUC") == 2  # TF-IDF and MiniLM both ran
    assert len(_outputs(nb, "image/png")) >= 2


def test_models_notebook_shows_the_agreement_table(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    q = Queue(url, labels=["negative", "positive"])
    q.configure(overlap=2)
    q.add([f"a {w} film, number {i}" for i in range(2) for w in GOOD + BAD])
    for who in ("ana", "bob"):
        while (item := q.pop(who)) is not None:
            good = any(w in item.text for w in GOOD)
            if who == "bob" and "number 0" in item.text and "great" in item.text:
                good = not good  # one disagreement
            q.submit(item.item_id, "positive" if good else "negative", who)
    q.engine.dispose()
    nb = _run(MODELS_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=url,
              WIDGETAL_MODELS_DIR=str(tmp_path / "models"))
    assert not _errors(nb)
    shown = " ".join(o.data["text/markdown"] for o in _outputs(nb, "text/markdown"))
    # 20 texts, two coders, one disagreement: coincidences o_pn = o_np = 1, n_pos = 19,
    # n_neg = 21, n = 40, so alpha = 1 - (n - 1) * 2 / (2 * 19 * 21) = 1 - 39/399 = 0.902
    assert "Krippendorff's alpha: **0.902** over 20 texts" in shown
    tables = " ".join(o.data["text/html"] for o in _outputs(nb, "text/html"))
    assert "ana" in tables and "bob" in tables and "kappa" in tables
