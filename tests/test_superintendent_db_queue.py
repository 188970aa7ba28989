"""superintendent 0.6.0's own queue tests, run against :class:`SuperintendentQueue`.

The test bodies are those of superintendent 0.6.0's ``tests/test_db_queue.py`` (which its own
``DatabaseQueue`` passes), each run on a fresh SQLite file and, with
``WIDGETAL_TEST_POSTGRES_URL``, a fresh PostgreSQL schema per example. They are adapted only
where the inputs or labels are not what a text-classification notebook has, and each
adaptation says so in an ``ADAPTED:`` comment:

- inputs are non-empty texts (superintendent also draws booleans, numbers, arrays and data
  frames; widgetal labels texts and refuses empty ones), drawn without repeats (the adapter
  stores the same text once: see the class notes), and without NUL characters (PostgreSQL
  cannot store them, and widgetal refuses them on SQLite too;
  ``test_a_nul_character_is_refused_on_postgresql`` checks the message);
- labels are the project's class names (superintendent draws any text; widgetal refuses a
  label outside the label set);
- where superintendent expects a pandas or numpy container back, the adapter gives texts.

``test_enqueue_at_creation`` is skipped in superintendent 0.6.0 itself and is left out.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter, OrderedDict
from contextlib import contextmanager
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from widgetal import Queue
from widgetal.errors import InvalidInput
from widgetal.superintendent import LabelNotRecorded, SuperintendentQueue

NEEDS = "needs pip install 'widgetal[superintendent]'"
pytest.importorskip("superintendent", reason=NEEDS)
pytest.importorskip("hypothesis", reason=NEEDS)
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis.strategies import integers, lists, sampled_from, text  # noqa: E402

PG_ENV = "WIDGETAL_TEST_POSTGRES_URL"
LABELS = ["negative", "positive"]

pytestmark = pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"needs {PG_ENV}"),
            ],
        ),
    ],
)

# ADAPTED (every test): texts, not booleans / floats / integers; no NUL (PostgreSQL).
texts = text(min_size=1).filter(lambda s: s.strip() != "" and "\x00" not in s)
# ADAPTED (every test): class names, not arbitrary text.
class_names = sampled_from(LABELS)
# ADAPTED (every property test): each example gets a brand-new database (0.1 s on SQLite,
# 0.3 s on PostgreSQL), so 40 examples instead of hypothesis' default 100.
EXAMPLES = 40


@contextmanager
def q_context(backend: str):
    """A SuperintendentQueue on a brand-new database, as superintendent's ``q_context``."""
    if backend == "sqlite":
        folder = tempfile.mkdtemp()
        queue = Queue(f"sqlite:///{folder}/testing.db", labels=LABELS)
        try:
            yield SuperintendentQueue(queue, "tester")
        finally:
            queue.engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)
        return
    base = os.environ[PG_ENV]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    queue = Queue(f"{base}{sep}options={quote(f'-csearch_path={schema}')}", labels=LABELS)
    try:
        yield SuperintendentQueue(queue, "tester")
    finally:
        queue.engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


# superintendent's conftest registers these as pytest.helpers.
def same_elements(a, b):
    return Counter(a) == Counter(b)


def no_shared_members(a, b):
    return (set(a) & set(b)) == set()


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(inputs=lists(texts, unique=True))  # ADAPTED: texts, no repeats
def test_enqueue(backend, inputs):
    n = len(inputs)
    with q_context(backend) as q:
        q.enqueue(inputs)
        # assert we can pop everything:
        for _ in range(n):
            q.pop()
        # assert there's nothing else to pop:
        with pytest.raises(IndexError):
            q.pop()


@settings(suppress_health_check=(HealthCheck.too_slow,), deadline=None, max_examples=EXAMPLES)
@given(inputs=lists(texts, unique=True), stars=integers(0, 5))
def test_enqueue_dataframe(backend, inputs, stars):
    # ADAPTED: a data frame with a 'text' column (and another column, kept as metadata);
    # superintendent's rows of any dtypes come back as Series, the adapter's as texts.
    inputs = pd.DataFrame({"text": inputs, "stars": stars})
    n = len(inputs)
    assume(n > 1)
    with q_context(backend) as q:
        q.enqueue(inputs)
        # assert we can pop everything:
        for _ in range(n):
            id_, val = q.pop()
            assert isinstance(val, str)  # ADAPTED: pd.Series
        # assert there's nothing else to pop:
        with pytest.raises(IndexError):
            q.pop()
        # assert it re-constructs a df on list all
        if n > 0:
            ids, X, y = q.list_all()
            assert X == inputs["text"].tolist()  # ADAPTED: isinstance(X, pd.DataFrame)
            # assert it re-constructs a df on list uncomplete
            q.submit(ids[0], "positive")  # ADAPTED: "hello"
            ids, X = q.list_uncompleted()
            assert X == inputs["text"].tolist()[1:]  # ADAPTED: isinstance(X, pd.DataFrame)
            # assert it re-constructs a df on list uncomplete
            ids, X, y = q.list_completed()
            assert X == inputs["text"].tolist()[:1]  # ADAPTED: isinstance(X, pd.DataFrame)


@settings(suppress_health_check=(HealthCheck.too_slow,), deadline=None, max_examples=EXAMPLES)
@given(inputs=lists(texts, unique=True, min_size=1, max_size=50))
def test_enqueue_array(backend, inputs):
    # ADAPTED: a 1-D numpy array of texts (superintendent: 2-D arrays of any dtype, a row each).
    inputs = np.array(inputs)
    assume(len(set(inputs.tolist())) == len(inputs))  # numpy drops trailing NULs, none here
    n = inputs.shape[0]
    with q_context(backend) as q:
        q.enqueue(inputs)
        # assert we can pop everything:
        for _ in range(n):
            id_, val = q.pop()
            assert isinstance(val, str)  # ADAPTED: np.ndarray of one row's size
        # assert there's nothing else to pop:
        with pytest.raises(IndexError):
            q.pop()
        # assert it re-constructs a df on list all
        if n > 0:
            ids, X, y = q.list_all()
            assert X == inputs.tolist()  # ADAPTED: isinstance(X, np.ndarray)


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(inputs=lists(texts, unique=True), labels=lists(class_names))  # ADAPTED: see top
def test_enqueue_with_labels(backend, inputs, labels):

    if len(labels) > len(inputs):
        labels = labels[: len(inputs)]
    elif len(labels) < len(inputs):
        labels += [None] * (len(inputs) - len(labels))

    n = len(inputs) - (len(labels) - Counter(labels)[None])

    with q_context(backend) as q:
        q.enqueue(inputs, labels)

        # assert we can pop everything where the label was not none:
        for _ in range(n):
            q.pop()
        # assert there's nothing else to pop:
        with pytest.raises(IndexError):
            q.pop()


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(label1=class_names, label2=class_names)  # ADAPTED: class names
def test_submitting_text(backend, label1, label2):
    with q_context(backend) as q:
        q.enqueue(["1", "2"])  # ADAPTED: [1, 2]
        with pytest.raises(ValueError):
            q.submit(1, label1)
        id_, val = q.pop()
        q.submit(id_, label1)
        assert q.progress == 0.5
        id_, val = q.pop()
        q.submit(id_, label2)
        assert q.progress == 1
        assert q.list_completed()[-1] == [label1, label2]


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(label1=class_names, label2=class_names)  # ADAPTED: class names
def test_submitting_list(backend, label1, label2):
    with q_context(backend) as q:
        q.enqueue(["1"])  # ADAPTED: [1]
        id_, _ = q.pop()
        # ADAPTED: widgetal takes one label per text, so a list is refused with a warning
        # (an exception would end superintendent's labelling loop) and nothing is stored.
        # superintendent: q.submit(id_, [label1, label2]) stores the list.
        with pytest.warns(LabelNotRecorded, match="one label per text"):
            q.submit(id_, [label1, label2])
        assert q.list_completed()[-1] == []


def test_reordering(backend):
    inp = ["b", "a", "d", "c"]
    with q_context(backend) as q:
        q.enqueue(inp)
        q.reorder(OrderedDict([(1, 1), (2, 0), (3, 3), (4, 2)]))

        id_, val = q.pop()
        assert val == "a" and id_ == 2
        id_, val = q.pop()
        assert val == "b" and id_ == 1
        id_, val = q.pop()
        assert val == "c" and id_ == 4
        id_, val = q.pop()
        assert val == "d" and id_ == 3


def test_iterating_over_queue(backend):
    inps = [str(i) for i in range(50)]
    with q_context(backend) as q:
        q.enqueue(inps)

        for i, (id_, val) in enumerate(q):  # noqa: B007 - superintendent's line
            assert i + 1 == id_


def test_length_of_queue(backend):
    inps = [str(i) for i in range(50)]
    with q_context(backend) as q:
        assert len(q) == 0
        q.enqueue(inps)
        assert len(q) == len(inps)


def test_progress(backend):
    inps = [str(i) for i in range(50)]
    with q_context(backend) as q:
        # assert my little hack for dividing by zero
        # assert np.isnan(q.progress)
        q.enqueue(inps)

        for i, (id_, val) in enumerate(q):  # noqa: B007 - superintendent's line
            assert q.progress == i / len(inps)
            q.submit(id_, LABELS[i % 2])  # ADAPTED: str(i)
    with q_context(backend) as q:
        assert np.isnan(q.progress)


def test_undo(backend):
    inp = ["input 1"]
    with q_context(backend) as q:
        q.enqueue(inp)
        id_, val = q.pop()
        q.submit(id_, "positive")  # ADAPTED: "label 1"
        # ensure the queue is empty now:
        with pytest.raises(IndexError):
            q.pop()
        q.undo()
        # see if it's possible to pop now:
        id_, val = q.pop()
        assert val == "input 1"


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(
    inputs=lists(texts, min_size=5, unique=True),  # ADAPTED: see top
    labels=lists(class_names, min_size=5),
)
def test_list_completed(backend, inputs, labels):
    with q_context(backend) as q:
        q.enqueue(inputs)

        popped_ids = []
        for i in range(5):
            id_, val = q.pop()
            q.submit(id_, labels[i])

            popped_ids.append(id_)

        ids, x, y = q.list_completed()

        assert len(ids) == 5
        # test that the popped IDs and completed IDs have the same members
        assert same_elements(ids, popped_ids)
        assert same_elements(y, labels[:5])


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(
    inputs=lists(texts, min_size=5, unique=True),  # ADAPTED: see top
    labels=lists(class_names, min_size=5),
)
def test_list_uncompleted(backend, inputs, labels):
    with q_context(backend) as q:
        q.enqueue(inputs)

        popped_ids = []
        for i in range(5):
            id_, val = q.pop()
            q.submit(id_, labels[i])

            popped_ids.append(id_)

        ids, x = q.list_uncompleted()

        assert len(ids) == (len(inputs) - 5)
        assert q._unlabelled_count() == (len(inputs) - 5)
        # test that the popped IDs and completed IDs don't share members
        assert no_shared_members(ids, popped_ids)
        # assert pytest.helpers.same_elements(x, [inputs[idx] for idx in id])


@settings(deadline=None, max_examples=EXAMPLES)  # ADAPTED: see EXAMPLES
@given(
    inputs=lists(texts, min_size=5, unique=True),  # ADAPTED: see top
    labels=lists(class_names, min_size=5),
)
def test_list_all(backend, inputs, labels):
    with q_context(backend) as q:
        q.enqueue(inputs)

        popped_ids = []
        for i in range(5):
            id_, val = q.pop()
            q.submit(id_, labels[i])

            popped_ids.append(id_)

        ids, x, y = q.list_all()

        assert len(ids) == len(inputs)
        assert all([label in labels for label in y if label is not None])
        assert all([label is None or id_ in popped_ids for id_, label in zip(ids, y)])
        assert Counter(y)[None] == (len(inputs) - 5)
        assert same_elements(ids, range(1, 1 + len(inputs)))
        # ADDED: in id order, features and labels line up (what retrain() relies on).
        assert ids == sorted(ids) and x == inputs


def test_dropping(backend):
    # ADAPTED: the adapter offers no drop_table (a widgetal database is shared by labellers,
    # the orchestrator and its runs; drop it with the database's own tools).
    # superintendent: drop_table() warns, drop_table(sure=True) drops its table.
    with q_context(backend) as q:
        q.enqueue(["a", "b"])
        assert not hasattr(q, "drop_table")
        assert len(q) == 2


# -- beyond superintendent's file: what the adaptations above rely on ---------------------------


def test_the_same_text_enqueued_twice_is_one_item(backend):
    with q_context(backend) as q:
        q.enqueue(["a", "b", "a"])
        q.enqueue(["b", "c"])
        assert q.list_all()[1] == ["a", "b", "c"]


def test_non_text_inputs_and_empty_texts_are_refused_and_add_nothing(backend):
    with q_context(backend) as q:
        with pytest.raises(InvalidInput, match=r"Inputs \[2\] are int, not texts"):
            q.enqueue(["fine", 3])
        with pytest.raises(InvalidInput, match="empty"):
            q.enqueue(["fine", "  "])
        with pytest.raises(InvalidInput, match="one label"):
            q.enqueue(["a", "b"], ["positive"])
        assert len(q) == 0 and np.isnan(q.progress)


def test_a_nul_character_is_refused_on_postgresql(backend):
    # Refused on SQLite too, so that one file means the same on both databases.
    with q_context(backend) as q:
        with pytest.raises(InvalidInput, match="NUL character"):
            q.enqueue(["fine", "nul\x00here"])
        assert len(q) == 0
