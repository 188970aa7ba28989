"""Importing into a project that already holds items: no label or text is ever dropped silently."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from test_cli import run

from widgetal import Queue
from widgetal.errors import ImportConflict, InvalidInput


def _csv(tmp_path, text: str, name="in.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _active(queue) -> list[tuple[str, str, str]]:
    frame = queue.labelled()
    return sorted(zip(frame.external_id, frame.label, frame.labeller))


def _history(queue) -> list[tuple[int, str, str, bool]]:
    with queue.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT item_id, label, labeller, undone_at IS NOT NULL "
            "FROM widgetal_labels ORDER BY id"
        ).all()
    return [tuple(r) for r in rows]


def test_labels_for_texts_already_queued_are_recorded(queue, tmp_path):
    queue.add(_csv(tmp_path, "id,text\n1,a\n2,b\n3,c\n", "texts.csv"), id="id")
    labelled = _csv(tmp_path, "id,text,label\n1,a,positive\n2,b,negative\n4,d,positive\n")
    result = queue.add(labelled, id="id", label="label")
    assert (result.added, result.labels_added) == (1, 1)
    assert (result.already_present, result.labels_added_existing) == (2, 2)
    assert "2 labels added to texts already there" in result.summary()
    assert _active(queue) == [("1", "positive", "import"), ("2", "negative", "import"),
                              ("4", "positive", "import")]
    assert queue.pop("ana").external_id == "3"  # the labelled ones left the hand-out
    assert queue.progress().done == 3


def test_an_item_held_by_a_labeller_can_be_labelled_by_import(queue, tmp_path):
    queue.add(["only text"])
    held = queue.pop("ana")
    frame = pd.DataFrame({"text": ["only text"], "label": ["positive"]})
    assert queue.add(frame, label="label").labels_added_existing == 1
    with pytest.raises(Exception, match="already labelled"):
        queue.submit(held.item_id, "negative", "ana")
    assert _active(queue)[0][1] == "positive"


def test_equal_labels_count_as_already_present(queue, tmp_path):
    path = _csv(tmp_path, "id,text,label\n1,a,positive\n2,b,\n")
    queue.add(path, id="id", label="label")
    again = queue.add(path, id="id", label="label")
    assert (again.labels_already_present, again.labels_added_existing, again.added) == (1, 0, 0)
    assert len(_history(queue)) == 1


def test_a_different_label_refuses_the_whole_import_by_default(queue, tmp_path):
    queue.add(_csv(tmp_path, "id,text,label\n1,a,positive\n2,b,\n", "first.csv"),
              id="id", label="label")
    before = _history(queue)
    second = _csv(tmp_path, "id,text,label\n1,a,negative\n2,b,positive\n9,new,positive\n")
    with pytest.raises(ImportConflict) as info:
        queue.add(second, id="id", label="label")
    assert "1: 'positive' → 'negative'" in str(info.value)
    assert "Nothing was imported" in str(info.value)
    assert _history(queue) == before
    assert queue.progress().total == 2  # the new row 9 was not added either


def test_on_conflict_keep_keeps_the_stored_label_and_imports_the_rest(queue, tmp_path):
    queue.add(_csv(tmp_path, "id,text,label\n1,a,positive\n2,b,\n", "first.csv"),
              id="id", label="label")
    second = _csv(tmp_path, "id,text,label\n1,a,negative\n2,b,positive\n")
    result = queue.add(second, id="id", label="label", on_conflict="keep")
    assert [(c.external_id, c.old, c.new) for c in result.label_conflicts] == [
        ("1", "positive", "negative")]
    assert result.labels_added_existing == 1 and not result.conflicts_replaced
    assert _active(queue) == [("1", "positive", "import"), ("2", "positive", "import")]


def test_on_conflict_replace_keeps_the_old_label_in_the_history(queue, tmp_path):
    queue.add(_csv(tmp_path, "id,text,label\n1,a,positive\n", "first.csv"),
              id="id", label="label", labeller="ana")
    second = _csv(tmp_path, "id,text,label\n1,a,negative\n")
    result = queue.add(second, id="id", label="label", labeller="bob", on_conflict="replace")
    assert result.conflicts_replaced and "replaced" in result.summary()
    assert _active(queue) == [("1", "negative", "bob")]
    history = _history(queue)
    assert [(h[1], h[2], h[3]) for h in history] == [("positive", "ana", True),
                                                     ("negative", "bob", False)]
    assert queue.progress().done == 1


def test_an_id_stored_with_another_text_is_refused_unless_asked(queue, tmp_path):
    queue.add(_csv(tmp_path, "id,text\n1,original\n2,b\n", "first.csv"), id="id")
    changed = _csv(tmp_path, "id,text,label\n1,edited,positive\n3,c,negative\n")
    stored_elsewhere = r"1 ids are already stored with a different text \('1'\)"
    with pytest.raises(ImportConflict, match=stored_elsewhere):
        queue.add(changed, id="id", label="label")
    assert queue.progress().total == 2 and queue.progress().done == 0
    result = queue.add(changed, id="id", label="label", keep_stored_text=True)
    assert result.text_conflicts == ["1"] and result.added == 1
    assert queue.items([1])[0].text == "original"
    assert "1 ids with another text: stored texts kept" in result.summary()


def test_labeller_column_names_who_gave_each_label(queue, tmp_path):
    path = _csv(tmp_path, "id,text,label,labeller\n1,a,positive,ana\n2,b,negative,\n")
    queue.add(path, id="id", label="label")
    assert _active(queue) == [("1", "positive", "ana"), ("2", "negative", "import")]
    assert queue.items([1])[0].meta is None  # the labeller column is not meta


def test_empty_batch_is_a_no_op(queue):
    result = queue.add([])
    assert (result.added, result.rows) == (0, 0)
    assert queue.progress().total == 0


def test_summary_accounts_for_every_row(queue, tmp_path):
    queue.add(_csv(tmp_path, "id,text,label\n1,a,positive\n2,b,\n3,c,negative\n", "f.csv"),
              id="id", label="label")
    path = _csv(tmp_path, "id,text,label\n1,a,positive\n2,b,negative\n3,c,positive\n4,d,\n")
    r = queue.add(path, id="id", label="label", on_conflict="keep")
    assert r.rows == 4
    assert (r.added, r.already_present) == (1, 3)
    assert (r.labels_already_present, r.labels_added_existing, len(r.label_conflicts)) == (1, 1, 1)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_export_then_import_restores_ids_texts_labels_and_labellers(db_url, tmp_path, suffix):
    source = Queue(db_url, labels=["negative", "positive"])
    source.add(pd.DataFrame({"id": ["a1", "b2", "c3"],
                             "text": ["=SUM(A1)", "plain, with comma", "-minus"]}), id="id")
    for labeller, label in (("ana", "positive"), ("bob", "negative")):
        item = source.pop(labeller)
        source.submit(item.item_id, label, labeller, seconds=2.5)
    out = tmp_path / f"export{suffix}"
    run("export", str(out), db=db_url)
    source.engine.dispose()

    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    run("init", "--labels", "negative,positive", db=target_url)
    first = run("import", str(out), db=target_url).stdout
    assert "added 2 texts (2 with labels)" in first
    again = run("import", str(out), db=target_url).stdout
    assert "added 0 texts" in again and "2 labels already present" in again
    target = Queue(target_url)
    restored = target.labelled()
    original = Queue(db_url).labelled()
    cols = ["external_id", "text", "label", "labeller", "seconds"]
    pd.testing.assert_frame_equal(
        restored[cols].sort_values("external_id").reset_index(drop=True),
        original[cols].sort_values("external_id").reset_index(drop=True),
    )
    assert (restored.created_at.sort_values().to_numpy()
            == original.created_at.sort_values().to_numpy()).all()
    assert all(i.meta is None for i in target.items(restored.item_id.tolist()))


def test_export_keeps_formula_like_texts_unless_spreadsheet_safe(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=["negative", "positive"])
    q.add(["=HYPERLINK(\"http://x\")", "+1", "@here", "normal"])
    for _ in range(4):
        item = q.pop("ana")
        q.submit(item.item_id, "positive", "ana")
    plain, safe = tmp_path / "plain.csv", tmp_path / "safe.csv"
    run("export", str(plain), db=sqlite_url)
    run("export", str(safe), "--spreadsheet-safe", db=sqlite_url)
    assert set(pd.read_csv(plain, keep_default_na=False).text) == {
        '=HYPERLINK("http://x")', "+1", "@here", "normal"}
    assert set(pd.read_csv(safe, keep_default_na=False).text) == {
        '\'=HYPERLINK("http://x")', "'+1", "'@here", "normal"}
    bad = run("export", str(tmp_path / "x.jsonl"), "--spreadsheet-safe", db=sqlite_url,
              check=False)
    assert bad.returncode == 1 and "for .csv files" in bad.stderr


def test_cli_import_conflict_exits_1_and_lists_rows(sqlite_url, tmp_path):
    run("init", "--labels", "negative,positive", db=sqlite_url)
    run("import", str(_csv(tmp_path, "id,text,label\n1,a,positive\n", "a.csv")),
        "--id-col", "id", "--label-col", "label", db=sqlite_url)
    path = _csv(tmp_path, "id,text,label\n1,a,negative\n")
    refused = run("import", str(path), "--id-col", "id", "--label-col", "label",
                  db=sqlite_url, check=False)
    assert refused.returncode == 1
    assert "1: 'positive' → 'negative'" in refused.stderr and "--on-conflict" in refused.stderr
    kept = run("import", str(path), "--id-col", "id", "--label-col", "label",
               "--on-conflict", "keep", db=sqlite_url).stdout
    assert "1 conflicting labels: stored ones kept" in kept
    assert "1: stored 'positive', file 'negative'" in kept
    bad = run("import", str(path), "--on-conflict", "merge", "--id-col", "id",
              "--label-col", "label", db=sqlite_url, check=False)
    assert bad.returncode == 1 and "on_conflict must be one of" in bad.stderr


def test_orchestrate_once_gives_up_on_an_unreachable_database(tmp_path):
    # A port nobody listens on: refused at once, so --once retries until its bounded wait ends.
    url = "postgresql://nobody:pw@127.0.0.1:9/none"
    proc = subprocess.run(
        [sys.executable, "-m", "widgetal.cli", "orchestrate", "--once", "--db", url],
        capture_output=True, text=True, timeout=120,
        env={"WIDGETAL_WAIT_SECONDS": "3", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "gave up after 3 s" in proc.stderr


def test_jsonl_export_lines_are_plain_records(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=["negative", "positive"])
    q.add(["x"])
    q.submit(q.pop("ana").item_id, "negative", "ana")
    out = tmp_path / "e.jsonl"
    run("export", str(out), db=sqlite_url)
    record = json.loads(out.read_text().splitlines()[0])
    assert {"external_id", "text", "label", "labeller"} <= set(record)


def test_a_text_with_a_nul_character_is_refused_with_its_row(queue):
    with pytest.raises(InvalidInput, match=r"NUL character .* at rows 2"):
        queue.add(["fine", "bad\x00text"])
    assert queue.progress().total == 0
