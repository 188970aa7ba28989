"""superintendent's own widget, driven the way a labeller does, on widgetal's queue.

``Superintendent(queue=SuperintendentQueue(...), labelling_widget=ClassLabeller(...))`` with
ipyannotations' text labeller as a notebook would make it (free-text box included), clicked
through labelling, skipping, undoing, a free-text label outside the label set, ``retrain()``
and to the end; then the finished project opened again.
"""

from __future__ import annotations

import time
import warnings

import ipywidgets as widgets
import pytest

from widgetal import Queue
from widgetal.superintendent import REFUSED_NOTICE, LabelNotRecorded, SuperintendentQueue

superintendent = pytest.importorskip(
    "superintendent", reason="needs pip install 'widgetal[superintendent]'"
)
text_widgets = pytest.importorskip(
    "ipyannotations.text", reason="needs pip install 'widgetal[superintendent]'"
)

LABELS = ["negative", "positive"]
TEXTS = [f"{kind} product number {i}" for i in range(8) for kind in ("good", "bad")]


def truth(text: str) -> str:
    return "positive" if text.startswith("good") else "negative"


class Session:
    """One labeller's notebook: the widget, its ipyannotations labeller, what it showed."""

    def __init__(self, queue: Queue, labeller: str, **kwargs):
        self.adapter = SuperintendentQueue(queue, labeller)
        with warnings.catch_warnings():  # ipyannotations 0.5 on ipywidgets 8 / traitlets 5
            warnings.simplefilter("ignore", DeprecationWarning)
            self.labeller = text_widgets.ClassLabeller(options=LABELS)  # free text on
        self.shown: list[str] = []
        show = self.labeller.display_function

        def record(item):  # what the labeller sees, then ipyannotations' own Markdown display
            self.shown.append(item)
            show(item)

        self.labeller.display_function = record
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.widget = superintendent.Superintendent(
                queue=self.adapter, labelling_widget=self.labeller, **kwargs
            )

    @property
    def on_screen(self) -> str:
        return self.shown[-1]

    def click(self, label: str) -> None:
        self.labeller.control_elements.buttons[label].button.click()

    def label_correctly(self) -> str:
        text = self.on_screen
        self.click(truth(text))
        return text

    def skip(self) -> None:
        self.labeller.skip_button.click()

    def undo(self) -> None:
        self.labeller.undo_button.click()

    def type_label(self, label: str) -> None:
        """Type into the free-text box and press Enter."""
        box = self.labeller.freetext_widget
        box.value = label
        box._submission_callbacks(box)

    @property
    def finished(self) -> bool:
        html = (c.value for c in _walk(self.widget) if isinstance(c, widgets.HTML))
        return any("Finished labelling" in value for value in html)


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def model_kwargs() -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return {
        "model": make_pipeline(TfidfVectorizer(), LogisticRegression()),
        "acquisition_function": "entropy",
        "shuffle_prop": 0.0,
    }


def test_label_skip_undo_refuse_retrain_and_finish_with_ipyannotations(queue):
    queue.add(TEXTS)
    ana = Session(queue, "ana", **model_kwargs())
    assert ana.widget.queue is ana.adapter and ana.on_screen == TEXTS[0]

    # label
    labelled = [ana.label_correctly() for _ in range(5)]
    assert queue.labelled()["text"].tolist() == labelled == TEXTS[:5]
    assert ana.widget.progressbar.value == pytest.approx(5 / len(TEXTS))

    # skip: the item goes to someone else at once, and not back to ana
    skipped = ana.on_screen
    ana.skip()
    assert ana.on_screen == TEXTS[6] and skipped not in queue.labelled()["text"].tolist()
    ben = SuperintendentQueue(queue, "ben")
    ben_id, ben_text = ben.pop()
    assert ben_text == skipped

    # undo: the text on screen goes back, the previous label is taken back and shown again
    ana.undo()
    assert ana.on_screen == TEXTS[4] and queue.progress().done == 4
    ana.click("negative")  # a wrong label ("good ..."), corrected below
    ana.undo()
    assert ana.on_screen == TEXTS[4] and queue.progress().done == 4
    ana.label_correctly()
    assert queue.labelled().set_index("text").loc[TEXTS[4], "label"] == "positive"
    assert queue.count_label_events() == 7  # the two undone labels stay in the history

    # a free-text label outside the label set: refused, said so, nothing stored, same text
    current = ana.on_screen
    with pytest.warns(LabelNotRecorded, match="'neutral' is not one of this project's labels"):
        ana.type_label("neutral")
    assert ana.on_screen.startswith(REFUSED_NOTICE.split("{")[0]) and "neutral" in ana.on_screen
    assert ana.on_screen.endswith(current) and queue.progress().done == 5
    assert current in queue.undone()["text"].tolist()
    with pytest.warns(LabelNotRecorded):
        ana.type_label("")  # Enter on an empty box sends an empty label
    ana.click(truth(current))  # the widget still works, and labels the same text
    assert queue.labelled().set_index("text").loc[current, "label"] == truth(current)

    # retrain: scores the rest, reorders the queue; the text on screen stays, the next
    # text is the model's first choice; list_all lines up labels with texts
    on_screen = ana.on_screen
    ana.widget.retrain()
    assert ana.widget.model_performance.value.startswith("Score:")
    assert ana.on_screen == on_screen
    undone = queue.undone()  # queue order: highest priority first
    assert undone["item_id"].nunique() == len(TEXTS) - 6
    best_next = [
        t for i, t in zip(undone["item_id"], undone["text"]) if i != ben_id and t != on_screen
    ][0]
    ana.label_correctly()
    assert ana.on_screen == best_next
    ids, x, y = ana.adapter.list_all()
    assert ids == sorted(ids) and x == TEXTS
    assert all(label is None or label == truth(text) for text, label in zip(x, y))
    assert ana.widget.new_labels == y

    # finish: ben labels the skipped text, ana everything else
    ben.submit(ben_id, truth(ben_text))
    while not ana.finished:
        ana.label_correctly()
    assert ana.widget.progressbar.value == 1.0 and queue.progress().left == 0
    done = queue.labelled()
    assert done["item_id"].is_unique and len(done) == len(TEXTS)
    assert (done["label"] == done["text"].map(truth)).all()
    assert done.groupby("labeller").size().to_dict() == {"ana": len(TEXTS) - 1, "ben": 1}

    # the finished project, opened again: the adapter is kept and says it is finished
    again = Session(queue, "ana")
    assert again.widget.queue is again.adapter and again.finished and again.shown == []


def test_features_given_to_an_empty_queue_are_labelled_in_widgetal(queue):
    # superintendent's widget does `queue or DatabaseQueue(...)`: an empty adapter is kept
    session = Session(queue, "ana", features=TEXTS[:3])
    assert session.widget.queue is session.adapter
    assert session.on_screen == TEXTS[0]
    ben = Session(queue, "ben", features=TEXTS[:3])  # a second notebook adds nothing twice
    assert queue.progress().total == 3 and ben.on_screen == TEXTS[1]
    for _ in range(2):
        session.label_correctly()
    assert session.finished and queue.progress().done == 2  # ben holds the third
    ben.label_correctly()
    assert ben.finished and queue.progress().done == 3


def test_labels_given_with_the_features_arrive_labelled(queue):
    session = Session(queue, "ana", features=TEXTS[:3], labels=["positive", None, None])
    assert queue.labelled()["text"].tolist() == [TEXTS[0]]
    assert session.on_screen == TEXTS[1]


def test_a_label_taken_first_by_someone_else_is_not_undone_by_ana(db_url):
    # lease of one second: ana's item expires and ben labels it before she clicks
    queue = Queue(db_url, labels=LABELS, lease_seconds=1)
    try:
        queue.add(TEXTS[:3])
        ana = Session(queue, "ana")
        ana.label_correctly()
        taken = ana.on_screen
        time.sleep(1.2)
        ben = SuperintendentQueue(queue, "ben")
        ben_id, ben_text = ben.pop()
        assert ben_text == taken
        ben.submit(ben_id, "positive")
        with pytest.warns(LabelNotRecorded, match="already labelled"):
            ana.click("negative")
        assert queue.labelled().set_index("text").loc[taken, "labeller"] == "ben"
        ana.undo()  # the item on screen, then the one ben labelled: his label stays
        assert sorted(queue.labelled()["labeller"]) == ["ana", "ben"]
        ana.undo()  # the item on screen again, then ana's own first label
        assert queue.labelled()["labeller"].tolist() == ["ben"]
        assert ana.on_screen == TEXTS[0]
    finally:
        queue.engine.dispose()
