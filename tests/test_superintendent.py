"""Coming from superintendent 0.6: importing its database, and running its widget on our queue.

The source databases are written the way superintendent 0.6 writes them: its table (created
from superintendent's own SQLModel class, or declared here with the column types sqlmodel
0.0.8 gave it, which superintendent 0.6 pins) and values serialised by its own ``data_dumps``.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import ipywidgets as widgets
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from widgetal import Queue
from widgetal.cli import app
from widgetal.errors import InvalidInput, NotInitialised
from widgetal.superintendent import SuperintendentQueue, import_superintendent

superintendent = pytest.importorskip(
    "superintendent", reason="needs pip install 'widgetal[superintendent]'"
)
from superintendent.db_queue import SuperintendentData  # noqa: E402
from superintendent.serialization import data_dumps  # noqa: E402

T0 = datetime(2024, 5, 1, 12, 0, 0)


# -- building a superintendent database ---------------------------------------------------------


def _sqlmodel_008_table(metadata: sa.MetaData) -> sa.Table:
    # What superintendent 0.6's SuperintendentData becomes under sqlmodel 0.0.8 / SQLAlchemy 1.4
    # (timestamps without time zone). The installed sqlmodel makes them timezone-aware instead.
    return sa.Table(
        "superintendentdata",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("input", sa.String, nullable=False),
        sa.Column("output", sa.String, nullable=True),
        sa.Column("inserted_at", sa.DateTime, nullable=False),
        sa.Column("priority", sa.Integer, nullable=True, index=True),
        sa.Column("popped_at", sa.DateTime, nullable=True),
        sa.Column("completed_at", sa.DateTime, nullable=True),
        sa.Column("worker_id", sa.String, nullable=True),
    )


def write_source(url: str, rows: list[dict], schema: str = "sqlmodel-0.0.8") -> None:
    """Rows as superintendent stores them: {'input', 'output'?, 'priority'?, 'worker_id'?}."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    if schema == "installed-superintendent":
        table = SuperintendentData.__table__
        t0 = T0.replace(tzinfo=timezone.utc)
    else:
        table = _sqlmodel_008_table(sa.MetaData())
        t0 = T0
    with engine.begin() as conn:
        table.create(conn, checkfirst=True)
        for i, row in enumerate(rows):
            labelled = row.get("output") is not None
            conn.execute(
                table.insert().values(
                    input=data_dumps(row["input"]),
                    output=data_dumps(row.get("output")),
                    inserted_at=t0,
                    priority=row.get("priority"),
                    popped_at=t0 + timedelta(minutes=i) if labelled else None,
                    completed_at=t0 + timedelta(minutes=i) if labelled else None,
                    worker_id=row.get("worker_id"),
                )
            )
    engine.dispose()


def label_in_source(url: str, superintendent_id: int, label: str, worker: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    table = _sqlmodel_008_table(sa.MetaData())
    with engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.id == superintendent_id)
            .values(output=data_dumps(label), completed_at=T0, worker_id=worker)
        )
    engine.dispose()


@pytest.fixture
def source_url(db_url: str, tmp_path: Path) -> str:
    """A superintendent database on the same kind of server as the widgetal one."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'superintendent.db'}"
    return db_url  # its own table name beside widgetal's, in the test's fresh schema


ROWS = [
    {"input": "the battery lasts for days", "output": "positive", "worker_id": "ana"},
    {"input": "it broke after a week", "output": "negative", "worker_id": "ben"},
    {"input": "arrived on time and works", "output": "positive"},  # no worker_id
    {"input": "the screen is too dim", "priority": 2},
    {"input": "great value for the price", "priority": 0},
    {"input": "the manual is confusing", "priority": 1},
]


# -- import ------------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["sqlmodel-0.0.8", "installed-superintendent"])
def test_import_copies_texts_labels_and_priorities(queue, source_url, schema):
    write_source(source_url, ROWS, schema=schema)
    summary = import_superintendent(source_url, queue)
    assert (summary.rows, summary.added, summary.labels_added) == (6, 6, 3)
    assert summary.prioritised == 3

    done = queue.labelled().set_index("external_id")
    assert done.loc["superintendent:1", ["label", "labeller"]].tolist() == ["positive", "ana"]
    assert done.loc["superintendent:2", ["label", "labeller"]].tolist() == ["negative", "ben"]
    assert done.loc["superintendent:3", "labeller"] == "superintendent"
    # superintendent served priority 0 first, then 1, then 2: so does widgetal.
    order = [queue.pop(f"l{i}").text for i in range(3)]
    assert order == [
        "great value for the price", "the manual is confusing", "the screen is too dim"
    ]
    meta = queue.items([queue.find_external_ids(["superintendent:1"])["superintendent:1"][0]])[0]
    assert meta.meta["superintendent_id"] == 1
    assert meta.meta["completed_at"].startswith("2024-05-01T12:00")


def test_reimport_adds_nothing_twice_and_picks_up_new_labels(queue, source_url):
    write_source(source_url, ROWS)
    import_superintendent(source_url, queue)
    queue.reorder([queue.find_external_ids(["superintendent:4"])["superintendent:4"][0]], [99.0])

    again = import_superintendent(source_url, queue)
    assert (again.added, again.already_present, again.labels_added) == (0, 6, 0)
    assert again.labels_already_present == 3 and again.prioritised == 0
    assert queue.progress().total == 6 and queue.count_label_events() == 3
    assert queue.pop("x").text == "the screen is too dim"  # our priority was not overridden

    label_in_source(source_url, 5, "positive", "cleo")
    third = import_superintendent(source_url, queue)
    assert (third.added, third.labels_added, third.labels_already_present) == (0, 1, 3)
    assert queue.labelled().set_index("external_id").loc["superintendent:5", "labeller"] == "cleo"
    assert queue.count_label_events() == 4


def test_labels_outside_the_label_set_are_refused_and_change_nothing(queue, source_url):
    write_source(source_url, [*ROWS, {"input": "meh", "output": "neutral", "worker_id": "ana"}])
    with pytest.raises(InvalidInput, match="neutral"):
        import_superintendent(source_url, queue)
    assert queue.progress().total == 0 and queue.count_label_events() == 0


def test_a_project_without_label_set_takes_the_labels_found(db_url, source_url):
    write_source(source_url, ROWS)
    q = Queue(db_url)
    summary = import_superintendent(source_url, q)
    assert summary.label_set == ["negative", "positive"] == q.labels
    assert Queue(db_url).labels == ["negative", "positive"]  # stored for everyone
    q.engine.dispose()


def test_a_single_label_without_label_set_asks_for_init(db_url, source_url):
    write_source(source_url, ROWS[:1] + ROWS[3:])
    q = Queue(db_url)
    with pytest.raises(NotInitialised, match="widgetal init"):
        import_superintendent(source_url, q)
    assert q.progress().total == 0
    q.engine.dispose()


def test_records_and_series_with_a_text_field_import_their_text(queue, source_url):
    series = pd.Series({"text": "quiet fan", "stars": 4})
    write_source(source_url, [{"input": series}, {"input": {"text": "loud fan", "stars": 2}}])
    assert import_superintendent(source_url, queue).added == 2
    assert sorted(queue.undone()["text"]) == ["loud fan", "quiet fan"]


def test_non_text_inputs_are_refused_with_the_row(queue, source_url):
    write_source(source_url, [{"input": "fine"}, {"input": [0.1, 0.2, 0.3]}])
    with pytest.raises(InvalidInput, match="row 2 .*not a text"):
        import_superintendent(source_url, queue)
    assert queue.progress().total == 0


def test_a_database_without_superintendent_table_is_named(queue, tmp_path):
    url = f"sqlite:///{tmp_path / 'other.db'}"
    Queue(url).engine.dispose()  # a widgetal database, not superintendent's
    with pytest.raises(InvalidInput, match="no superintendent table"):
        import_superintendent(url, queue)


def test_a_missing_sqlite_file_is_named_and_not_created(queue, tmp_path):
    missing = tmp_path / "nowhere.db"
    with pytest.raises(InvalidInput, match="No such superintendent database file"):
        import_superintendent(f"sqlite:///{missing}", queue)
    assert not missing.exists()


def test_cli_import_superintendent_twice(tmp_path):
    source = f"sqlite:///{tmp_path / 'si.db'}"
    target = f"sqlite:///{tmp_path / 'w.db'}"
    write_source(source, ROWS)
    runner = CliRunner()
    first = runner.invoke(app, ["import-superintendent", source, "--db", target])
    assert first.exit_code == 0, first.output
    assert "added 6 texts" in first.output and "3 labels" in first.output
    second = runner.invoke(app, ["import-superintendent", source, "--db", target])
    assert "added 0 texts (6 were already there), 0 labels" in second.output
    assert Queue(target).progress().done == 3


# -- superintendent's widget on widgetal's queue ------------------------------------------------


class ClickLabeller(widgets.VBox):
    """The smallest labelling widget superintendent accepts: display, on_submit, on_undo."""

    def __init__(self):
        super().__init__()
        self.shown: list[str] = []
        self._on_submit, self._on_undo = [], []

    def on_submit(self, callback):
        self._on_submit.append(callback)

    def on_undo(self, callback):
        self._on_undo.append(callback)

    def display(self, x):
        self.shown.append(x)

    def click(self, label):
        for callback in self._on_submit:
            callback(label)

    def undo(self):
        for callback in self._on_undo:
            callback()


TEXTS = [f"review number {i}" for i in range(12)]


def widget_for(queue: Queue, labeller: str):
    box = ClickLabeller()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        si = superintendent.Superintendent(
            queue=SuperintendentQueue(queue, labeller), labelling_widget=box
        )
    return si, box


def test_superintendent_widget_labels_each_item_exactly_once_in_widgetal(queue):
    queue.add(TEXTS)
    si, box = widget_for(queue, "ana")
    for _ in TEXTS:
        box.click("positive" if "1" in box.shown[-1] else "negative")
    assert si.progressbar.value == 1.0
    done = queue.labelled()
    assert sorted(done["text"]) == sorted(TEXTS) and done["item_id"].is_unique
    assert set(done["labeller"]) == {"ana"} and queue.count_label_events() == len(TEXTS)
    assert "Finished" in si.children[1].children[0].value


def test_two_superintendent_widgets_never_get_the_same_item(queue):
    queue.add(TEXTS)
    (_, a), (_, b) = widget_for(queue, "ana"), widget_for(queue, "ben")
    for _ in range(len(TEXTS) // 2):
        a.click("negative")
        b.click("positive")
    assert not set(a.shown) & set(b.shown)
    done = queue.labelled()
    assert len(done) == len(TEXTS) and done["item_id"].is_unique
    assert done.groupby("labeller").size().to_dict() == {"ana": 6, "ben": 6}


def test_superintendent_widget_asking_for_the_name_labels_as_that_name(queue):
    queue.add(TEXTS[:2])
    box = ClickLabeller()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        si = superintendent.Superintendent(
            queue=SuperintendentQueue(queue, "anonymous"), labelling_widget=box, worker_id=True
        )
    name_field = si.children[1].children[0]
    name_field.value = "dora"
    si._set_worker_id(name_field)  # what pressing Enter in its name field calls
    box.click("positive")
    assert queue.labelled()["labeller"].tolist() == ["dora"]


def test_superintendent_undo_takes_back_the_previous_label(queue):
    queue.add(TEXTS[:4])
    _, box = widget_for(queue, "ana")
    first = box.shown[-1]
    box.click("negative")
    box.undo()  # superintendent: unpop the item on screen, then unlabel the previous one
    assert box.shown[-1] == first
    assert queue.progress().done == 0
    box.click("positive")
    assert queue.labelled().set_index("text").loc[first, "label"] == "positive"
    assert queue.count_label_events() == 2  # the undone label stays in the history


def test_superintendent_skip_passes_the_item_to_someone_else(queue):
    queue.add(TEXTS[:2])
    _, a = widget_for(queue, "ana")
    skipped = a.shown[-1]
    a.click(None)  # superintendent's skip: no label
    assert a.shown[-1] != skipped
    _, b = widget_for(queue, "ben")
    assert b.shown[-1] == skipped


def test_superintendent_retrain_reorders_widgetal_queue(queue):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = [f"{kind} product {i}" for i in range(10) for kind in ("good", "bad")]
    queue.add(texts)
    box = ClickLabeller()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        si = superintendent.Superintendent(
            queue=SuperintendentQueue(queue, "ana"),
            labelling_widget=box,
            model=make_pipeline(TfidfVectorizer(), LogisticRegression()),
            acquisition_function="entropy",
            shuffle_prop=0.0,
        )
        for _ in range(8):
            box.click("positive" if box.shown[-1].startswith("good") else "negative")
        si.retrain()
    assert si.model_performance.value.startswith("Score:")
    assert queue.undone()["item_id"].nunique() == 12
    assert {r.ranked_by for r in queue.items(queue.undone()["item_id"].tolist())} == {None}
    assert len({i.priority for i in queue.items(queue.undone()["item_id"].tolist())}) > 1
