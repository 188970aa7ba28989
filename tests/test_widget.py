"""The labelling widget's handlers, driven headlessly by button clicks and synthetic key events,
checked against its state and the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys

import ipywidgets as widgets
import pytest

from widgetal import Queue
from widgetal.errors import DatabaseUnavailable
from widgetal.widget import Labeller, labeller_from_url


def _key(key: str, **extra) -> dict:
    return {"type": "keydown", "key": key, "repeat": False, **extra}


def _labels(queue) -> list[tuple[str, str, str]]:
    frame = queue.labelled().sort_values("created_at")
    return list(zip(frame["text"], frame["label"], frame["labeller"], strict=True))


class _FlakyQueue:
    """A Queue whose database can be switched off, as when a server goes away mid-session."""

    def __init__(self, queue):
        self._queue = queue
        self.down = False

    def __getattr__(self, name):
        attr = getattr(self._queue, name)
        if callable(attr) and name in {
            "pop", "submit", "submit_and_pop", "skip", "undo", "progress", "runs"
        }:
            def guarded(*args, **kwargs):
                if self.down:
                    raise DatabaseUnavailable("Cannot reach the database at test://: gone.")
                return attr(*args, **kwargs)

            return guarded
        return attr


def test_widget_module_imports_neither_sqlalchemy_nor_sklearn():
    # The package's __init__ imports the Queue (and so SQLAlchemy); load the widget module on
    # its own, under an empty package, to see what it pulls in itself.
    code = (
        "import sys, types, pathlib, widgetal.widget as _probe\n"
        "folder = str(pathlib.Path(_probe.__file__).parent)\n"
        "for name in [m for m in sys.modules if m.split('.')[0] in "
        "('widgetal', 'sqlalchemy', 'sklearn', 'pandas')]:\n"
        "    del sys.modules[name]\n"
        "pkg = types.ModuleType('widgetal'); pkg.__path__ = [folder]\n"
        "sys.modules['widgetal'] = pkg\n"
        "import widgetal.widget\n"
        "w = sys.modules['widgetal.widget']; assert hasattr(w, 'Labeller')\n"
        "print(','.join(m for m in ('sqlalchemy', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


def test_untrusted_text_is_shown_escaped_never_as_html(queue):
    queue.add(["<script>alert('x')</script> & <b>bold</b>"])
    w = Labeller(queue, labeller="ana")
    assert "<script>" not in w._text.value
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in (
        w._text.value
    )


def test_clicking_label_buttons_records_labels_with_labeller_and_seconds(queue):
    queue.add(["first", "second", "third"])
    w = Labeller(queue, labeller="ana")
    assert [b.description for b in w._label_buttons] == ["negative (1)", "positive (2)"]
    assert w.item.text == "first"
    w._label_buttons[1].click()
    assert w.item.text == "second"
    w._label_buttons[0].click()
    assert _labels(queue) == [("first", "positive", "ana"), ("second", "negative", "ana")]
    assert queue.labelled()["seconds"].notna().all()
    assert (queue.labelled()["seconds"] >= 0).all()
    assert w.item.text == "third"


def test_keys_label_skip_and_undo(queue):
    queue.add(["a", "b", "c", "d"])
    w = Labeller(queue, labeller="ana")
    w.handle_key(_key("1"))  # a -> negative
    w.handle_key(_key("s"))  # b skipped
    w.handle_key(_key("2"))  # c -> positive
    assert w.item.text == "d"
    w.handle_key(_key("u"))  # c back on screen
    assert w.item.text == "c"
    assert "Undone" in w.message
    w.handle_key(_key("2"))
    w.handle_key(_key("Backspace"))
    assert w.item.text == "c"
    w.handle_key(_key("1"))
    assert _labels(queue) == [("a", "negative", "ana"), ("c", "negative", "ana")]
    assert w.item.text == "d"


def test_the_page_wide_key_listener_drives_the_labeller(queue):
    queue.add(["a", "b", "c"])
    w = Labeller(queue, labeller="ana")
    assert w._keys in w._panel.children  # its cue shows the keys are live
    assert w._keys.shortcuts == ["1", "2", "s", "S", "u", "U", "Backspace"]
    assert "1–2 label" in w._keys.hint and "s skip" in w._keys.hint
    assert "widgetal-app" in w._dom_classes
    w._keys.press("2")  # as the page sends it
    w._keys.press("S")
    assert _labels(queue) == [("a", "positive", "ana")]
    assert w.item.text == "c"


def test_held_keys_modifiers_and_unmapped_keys_do_nothing(queue):
    queue.add(["a", "b"])
    w = Labeller(queue, labeller="ana")
    w.handle_key(_key("1", repeat=True))
    w.handle_key(_key("2", ctrlKey=True))
    w.handle_key(_key("3"))  # only two labels
    w.handle_key(_key("x"))
    w.handle_key({"type": "keyup", "key": "1"})
    assert queue.progress().done == 0
    assert w.item.text == "a"


def test_skipped_text_is_not_shown_again_to_that_labeller(queue):
    queue.add(["a", "b"])
    w = Labeller(queue, labeller="ana")
    w._skip.click()
    assert w.item.text == "b"
    w._label_buttons[0].click()
    assert w.item is None
    assert Labeller(queue, labeller="bob").item.text == "a"


def test_undo_with_nothing_to_undo_says_so(queue):
    queue.add(["a"])
    w = Labeller(queue, labeller="ana")
    w._undo.click()
    assert "Nothing to undo" in w.message
    assert w.item.text == "a"


def test_item_labelled_by_someone_else_is_reported_and_the_next_shown(queue):
    queue.add(["a", "b"])
    w = Labeller(queue, labeller="ana")
    queue.submit(w.item.item_id, "positive", "bob")  # e.g. after ana's lease ran out
    w._label_buttons[0].click()
    assert "someone else labelled that text first" in w.message.lower()
    assert _labels(queue) == [("a", "positive", "bob")]
    assert w.item.text == "b"


def test_database_outage_keeps_the_label_until_retry_saves_it(queue):
    queue.add(["a", "b"])
    flaky = _FlakyQueue(queue)
    w = Labeller(flaky, labeller="ana")
    flaky.down = True
    w._label_buttons[0].click()
    assert w.pending == ("label", "negative")
    assert "Not saved yet" in w.message and "negative" in w.message
    assert w._retry.layout.display is None  # the Retry button is visible
    w._label_buttons[1].click()  # still down: the latest choice is what is kept
    assert w.pending == ("label", "positive")
    assert w.item.text == "a"
    flaky.down = False
    assert queue.progress().done == 0
    w._retry.click()
    assert w.pending is None
    assert _labels(queue) == [("a", "positive", "ana")]
    assert w.item.text == "b"
    assert w.message == ""


def test_database_outage_on_fetching_the_next_text_offers_retry(queue):
    queue.add(["a", "b"])
    flaky = _FlakyQueue(queue)
    w = Labeller(flaky, labeller="ana")
    real_pop = queue.pop
    queue_down_for_pop = {"on": True}

    def pop(labeller):
        if queue_down_for_pop["on"]:
            raise DatabaseUnavailable("gone")
        return real_pop(labeller)

    flaky.pop = pop
    w._skip.click()  # the skip is saved, but the next text cannot be fetched
    assert w.item is None and "Cannot fetch the next text" in w.message
    assert all(b.disabled for b in w._label_buttons)
    queue_down_for_pop["on"] = False
    w.retry()
    assert w.item.text == "b"
    assert not any(b.disabled for b in w._label_buttons)


def test_empty_queue_says_all_done_with_counts(queue):
    queue.add(["a", "b"])
    queue.submit(queue.pop("bob").item_id, "positive", "bob")
    w = Labeller(queue, labeller="ana")
    w._label_buttons[0].click()
    assert w.item is None
    assert "All done" in w.message
    assert "2 of 2 texts are labelled; 1 by you" in w.message
    assert all(b.disabled for b in w._label_buttons)
    assert w._bar.value == 2 and w._bar.max == 2


def test_progress_counts_per_label_and_own(queue):
    queue.add(["a", "b", "c", "d"])
    queue.submit(queue.pop("bob").item_id, "positive", "bob")
    w = Labeller(queue, labeller="ana")
    w.handle_key(_key("1"))
    counts = w._counts.value
    assert "<b>2</b> labelled" in counts and "<b>2</b> left" in counts
    assert "negative 1" in counts and "positive 1" in counts
    assert "you: <b>1</b>" in counts


def test_model_run_ranking_the_queue_is_shown_with_its_cv_score(queue):
    queue.add(["a", "b"])
    w = Labeller(queue, labeller="ana")
    assert "import order" in w._model_line.value
    run_id = queue.start_run(n_labels=40)
    queue.finish_run(run_id, status="trained", metrics={"f1_macro": 0.8123, "accuracy": 0.85},
                     model_file="m.pkl")
    ids = [w.item.item_id, w.item.item_id + 1]
    queue.reorder(ids, [0.1, 0.9], ranked_by=run_id)
    w.handle_key(_key("s"))
    line = w._model_line.value
    assert f"run #{run_id}" in line and "40 labels" in line and "CV macro-F1 0.812" in line


def test_name_prompt_comes_first_and_labels_carry_the_name(queue, monkeypatch):
    monkeypatch.delenv("QUERY_STRING", raising=False)
    queue.add(["a"])
    w = Labeller(queue)
    assert w.labeller is None and w.item is None
    assert w._name_box in w.children
    w.start("  ")
    assert "Type your name" in w._name_message.value
    w._name.value = "carla"
    w._name_box.children[1].children[1].click()  # Start
    assert w.labeller == "carla" and w.item.text == "a"
    w.handle_key(_key("2"))
    assert _labels(queue) == [("a", "positive", "carla")]


def test_labeller_comes_from_the_voila_url(queue, monkeypatch):
    queue.add(["a"])
    monkeypatch.setenv("QUERY_STRING", "labeller=d%C3%A9sir%C3%A9e&x=1")
    assert Labeller(queue).labeller == "désirée"
    assert labeller_from_url("?labeller=") is None
    assert labeller_from_url("") is None


def test_meta_fields_are_optional_and_escaped(queue):
    import pandas as pd

    queue.add(pd.DataFrame({"text": ["a"], "source": ["<i>web</i>"]}))
    assert Labeller(queue, labeller="ana")._meta.value == ""
    shown = Labeller(queue, labeller="ana", show_meta=True)._meta.value
    assert "&lt;i&gt;web&lt;/i&gt;" in shown and "<i>" not in shown


def test_the_guess_is_off_by_default_and_comes_from_the_queue_escaped(
    db_url, tmp_path, monkeypatch
):
    """The guess the orchestrator published with the popped item, never a model file: there is
    no models folder, and loading a model would fail the test."""
    from widgetal import Queue, models

    def no_model_files(*args, **kwargs):
        raise AssertionError("the widget opened a model file")

    monkeypatch.setattr(models, "load_latest", no_model_files)
    monkeypatch.chdir(tmp_path)  # no ./models here
    monkeypatch.delenv("WIDGETAL_MODELS_DIR", raising=False)
    q = Queue(db_url, labels=["<i>bad</i>", "good"])
    q.add(["awful awful film"])
    assert Labeller(q, labeller="ana")._guess.value == ""
    w = Labeller(q, labeller="ana", show_guess=True)
    assert "none yet" in w._guess.value  # no run has ranked it
    q.reorder([w.item.item_id], [0.5], ranked_by=7, guesses=(["<i>bad</i>"], [0.875]))
    w = Labeller(q, labeller="ana", show_guess=True)  # a reloaded page: the same text
    assert w.item.guess_label == "<i>bad</i>" and w.item.guess_proba == 0.875
    assert "<b>&lt;i&gt;bad&lt;/i&gt;</b> (88%)" in w._guess.value
    assert "<i>" not in w._guess.value
    assert not (tmp_path / "models").exists()
    q.engine.dispose()


def test_more_than_nine_labels_get_buttons_but_only_nine_keys(sqlite_url):
    from widgetal import Queue

    labels = [f"l{i}" for i in range(11)]
    q = Queue(sqlite_url, labels=labels)
    q.add(["a", "b"])
    w = Labeller(q, labeller="ana")
    assert len(w._label_buttons) == 11
    assert w._label_buttons[8].description == "l8 (9)"
    assert w._label_buttons[10].description == "l10"
    w.handle_key(_key("9"))
    assert _labels(q) == [("a", "l8", "ana")]
    q.engine.dispose()


class _CuttableProxy:
    """A TCP relay to the real database server that the test can cut and restore, as when
    the network or the server goes away under a labeller (and comes back)."""

    def __init__(self, target_host: str, target_port: int):
        import socket
        import threading

        self._socket, self._threading = socket, threading
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._conns: list = []
        self._listener = None

    def start(self) -> None:
        listener = self._socket.socket()
        listener.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        self._threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        try:
            self._listener.shutdown(self._socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        for conn in self._conns:
            try:
                conn.shutdown(self._socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._conns.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            server = self._socket.create_connection(self.target)
            self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass


def test_a_real_server_outage_keeps_the_click_and_retry_saves_it_once(postgres_url):
    """No wrapper: the connection to PostgreSQL itself is cut mid-session, then restored."""
    import sqlalchemy as sa

    from widgetal import Queue

    real = sa.make_url(postgres_url)
    proxy = _CuttableProxy(real.host or "127.0.0.1", real.port or 5432)
    proxy.start()
    through_proxy = real.set(host="127.0.0.1", port=proxy.port)
    queue = Queue(through_proxy.render_as_string(hide_password=False), labels=["neg", "pos"])
    direct = Queue(postgres_url)
    queue.add(["first text", "second text"])
    w = Labeller(queue, labeller="ana")
    assert w.item.text == "first text"

    proxy.cut()
    w._label_buttons[1].click()
    assert w.pending == ("label", "pos"), (w.message, direct.progress())
    assert "Not saved yet" in w.message and "Cannot reach the database" in w.message
    assert w.item.text == "first text"  # the text stays on screen with its unsaved label
    assert direct.progress().done == 0

    proxy.start()
    w._retry.click()
    assert w.pending is None and w.message == ""
    assert _labels(direct) == [("first text", "pos", "ana")]
    assert w.item.text == "second text"
    proxy.cut()
    queue.engine.dispose()


# -- multi-label projects: an answer is a set of labels -----------------------------------------

MULTI = ["billing", "urgent", "refund"]


@pytest.fixture
def multi(db_url):
    """A multi-label project (``widgetal init --multi-label``) on SQLite and PostgreSQL."""
    q = Queue(db_url, labels=MULTI, multi_label=True, lease_seconds=600)
    yield q
    q.engine.dispose()


def _button_row(w) -> tuple:
    """The buttons the app shows, in order."""
    return next(c for c in w._panel.children if isinstance(c, widgets.HBox)).children


def _on(w) -> list[str]:
    """The labels whose toggle shows them switched on (caption and colour), in order."""
    return [t.description for t in w._toggles.toggles if t.button_style == "success"]


def test_multi_label_app_has_a_toggle_per_label_and_a_submit_naming_the_set(multi):
    multi.add(["a"])
    w = Labeller(multi, labeller="ana")
    assert w._label_buttons == []  # no button submits one label on its own
    assert [t.description for t in w._toggles.toggles] == ["billing (1)", "urgent (2)",
                                                          "refund (3)"]
    assert list(_button_row(w)[:4]) == [*w._toggles.toggles, w._toggles.send]
    assert w._toggles.send.description == "Submit: none of these (Enter)"
    assert "none of these labels applies" in w._toggles.send.tooltip
    assert w._keys.shortcuts == ["1", "2", "3", "Enter", "s", "S", "u", "U", "Backspace"]
    assert w._keys.hint.startswith("1–3 toggle · Enter submit · s skip")
    assert "widgetal-submit" in w._toggles.send._dom_classes
    assert "widgetal-toggle-2" in w._toggles.toggles[1]._dom_classes


def test_digits_toggle_labels_and_enter_submits_the_set_then_the_next_text_starts_clear(multi):
    multi.add(["a", "b"])
    w = Labeller(multi, labeller="ana")
    w.handle_key(_key("3"))
    w.handle_key(_key("1"))
    w.handle_key(_key("2"))
    w.handle_key(_key("2"))  # pressed again: off
    assert w.chosen == ["billing", "refund"]  # project order, not the order pressed
    assert _on(w) == ["✓ billing (1)", "✓ refund (3)"]
    assert w._toggles.send.description == "Submit: billing + refund (Enter)"
    assert multi.progress().done == 0  # toggling saves nothing
    w.handle_key(_key("Enter"))
    assert _labels(multi) == [("a", '["billing","refund"]', "ana")]
    assert w.item.text == "b" and w.chosen == [] and _on(w) == []
    assert w._toggles.send.description == "Submit: none of these (Enter)"


def test_clicking_toggles_and_submit_records_the_set(multi):
    multi.add(["a", "b"])
    w = Labeller(multi, labeller="ana")
    w._toggles.toggles[1].value = True  # what a click in the page does to a toggle
    w._toggles.toggles[0].value = True
    w._toggles.send.click()
    assert _labels(multi) == [("a", '["billing","urgent"]', "ana")]
    assert w.item.text == "b"


def test_submit_with_nothing_on_records_none_of_these(multi):
    multi.add(["a", "b", "c"])
    w = Labeller(multi, labeller="ana")
    w.handle_key(_key("Enter"))
    w.submit([])  # the Python call says the same
    assert _labels(multi) == [("a", "[]", "ana"), ("b", "[]", "ana")]
    assert "none of these 2" in w._counts.value and "[]" not in w._counts.value


def test_submit_takes_a_list_and_refuses_unknown_labels_or_a_plain_string(multi):
    multi.add(["a", "b"])
    w = Labeller(multi, labeller="ana")
    w.submit(["nope", "billing"])
    assert "not in this project's label set" in w.message and "nothing was saved" in w.message
    w.submit("billing")
    assert "a list of labels" in w.message
    assert multi.progress().done == 0 and w.item.text == "a"
    w.submit({"refund", "urgent"})
    assert _labels(multi) == [("a", '["urgent","refund"]', "ana")]


def test_undo_brings_the_text_back_with_the_set_it_was_given_switched_on(multi):
    multi.add(["a", "b", "c"])
    w = Labeller(multi, labeller="ana")
    for key in ("1", "2", "Enter", "Enter"):  # a -> billing + urgent, b -> none of these
        w.handle_key(_key(key))
    w.handle_key(_key("u"))
    assert w.item.text == "b" and w.chosen == []
    assert "with your answer, none of these" in w.message
    w.handle_key(_key("Backspace"))
    assert w.item.text == "a" and w.chosen == ["billing", "urgent"]
    assert _on(w) == ["✓ billing (1)", "✓ urgent (2)"]
    assert "billing + urgent" in w.message
    w.handle_key(_key("1"))  # change it: only urgent
    w.handle_key(_key("Enter"))
    assert _labels(multi) == [("a", '["urgent"]', "ana")]
    assert w.item.text == "b" and w.chosen == []


def test_skip_clears_the_toggles_and_undoing_a_skip_brings_the_text_back_all_off(multi):
    multi.add(["a", "b"])
    w = Labeller(multi, labeller="ana")
    w.handle_key(_key("3"))
    w.handle_key(_key("s"))
    assert w.item.text == "b" and w.chosen == []
    assert multi.progress().done == 0
    w.handle_key(_key("u"))
    assert w.item.text == "a" and w.chosen == []
    assert w.message == "Undone: this text is back for you to label."


def test_undo_on_a_reloaded_page_brings_the_text_back_all_off(multi):
    multi.add(["a", "b"])
    Labeller(multi, labeller="ana").submit(["refund"])
    w = Labeller(multi, labeller="ana")  # the page reloaded: it never sent that set
    w.undo()
    assert w.item.text == "a" and w.chosen == []


def test_shift_enter_and_toggling_with_no_text_do_nothing(multi):
    multi.add(["a"])
    w = Labeller(multi, labeller="ana")
    w.handle_key(_key("1"))
    w.handle_key(_key("Enter", shiftKey=True))  # Jupyter's run-cell, not a submit
    w.handle_key(_key("Enter", repeat=True))
    w.handle_key(_key("4"))  # only three labels
    assert multi.progress().done == 0 and w.chosen == ["billing"]
    w.handle_key(_key("Enter"))
    assert w.item is None
    w.handle_key(_key("2"))  # nothing on screen: nothing to toggle
    assert w.chosen == [] and all(b.disabled for b in w._toggles.buttons)


def test_a_single_label_project_claims_no_enter_and_has_no_toggles(queue):
    queue.add(["a"])
    w = Labeller(queue, labeller="ana")
    assert "Enter" not in w._keys.shortcuts and "toggle" not in w._keys.hint
    w.handle_key(_key("Enter"))
    w.toggle("negative")
    assert "one label per text" in w.message
    assert queue.progress().done == 0 and w.chosen == []
    assert list(_button_row(w)[:2]) == w._label_buttons
    assert all(t not in _button_row(w) for t in w._toggles.buttons)


def test_the_guess_reads_as_a_set_escaped(multi):
    multi.add(["a", "b"])
    w = Labeller(multi, labeller="ana", show_guess=True)
    assert "none yet" in w._guess.value
    ids = [w.item.item_id, w.item.item_id + 1]
    multi.reorder(ids, [0.9, 0.1], ranked_by=3,
                  guesses=(['["billing","urgent"]', "[]"], [0.625, 0.5]))
    w = Labeller(multi, labeller="ana", show_guess=True)  # a reloaded page: the same text
    assert "Model's guess: <b>billing + urgent</b> (62%)" in w._guess.value
    assert w.chosen == []  # a guess never switches labels on
    w.submit([])
    assert "<b>none of these</b> (50%)" in w._guess.value


def test_multi_label_labels_are_shown_escaped(sqlite_url):
    q = Queue(sqlite_url, labels=["<b>x</b>", "y"], multi_label=True)
    q.add(["a"])
    w = Labeller(q, labeller="ana", show_guess=True)
    q.reorder([w.item.item_id], [1.0], ranked_by=1, guesses=(['["<b>x</b>"]'], [0.9]))
    w = Labeller(q, labeller="ana", show_guess=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in w._guess.value and "<b>x</b>" not in w._guess.value
    w.handle_key(_key("1"))
    assert w._toggles.send.description == "Submit: <b>x</b> (Enter)"  # a caption is plain text
    q.engine.dispose()


def test_database_outage_keeps_the_set_on_screen_until_retry_saves_it(multi):
    multi.add(["a", "b"])
    flaky = _FlakyQueue(multi)
    w = Labeller(flaky, labeller="ana")
    flaky.down = True
    w.handle_key(_key("2"))
    w.handle_key(_key("Enter"))
    assert w.pending == ("label", "urgent")
    assert "Your answer 'urgent'" in w.message and "press Submit again" in w.message
    assert w.item.text == "a" and w.chosen == ["urgent"]  # the toggles stay as they were
    flaky.down = False
    w._retry.click()
    assert _labels(multi) == [("a", '["urgent"]', "ana")]
    assert w.item.text == "b" and w.chosen == []


def test_a_multi_label_kernel_labels_without_pandas_sklearn_or_numpy(multi, db_url):
    multi.add(["a", "b", "c"])
    code = (
        "import sys\n"
        "from widgetal import Labeller, Queue\n"
        "w = Labeller(Queue(sys.argv[1]), labeller='ana', show_guess=True)\n"
        "for key in ('1', '3', 'Enter', 'Enter', 'u', 's'):\n"
        "    w.handle_key({'type': 'keydown', 'key': key})\n"
        "print(w.item.text, [m for m in ('pandas', 'sklearn', 'torch', 'numpy') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code, db_url],
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "c []"
    assert _labels(multi) == [("a", '["billing","refund"]', "ana")]
