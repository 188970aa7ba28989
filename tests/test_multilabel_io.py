"""Label sets in and out of files, on a real SQLite file and on PostgreSQL.

Imports read JSON lists, list values and labels joined by a separator the user names; ``[]``
is the answer "none of these" and an empty cell a text not labelled yet. Bad cells are named
and nothing is stored. Exports write sets so that importing them back adds nothing and needs
no options; single-label exports are what they always were.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from test_cli import run

from widgetal import Queue
from widgetal.errors import ImportConflict, InvalidInput
from widgetal.io import write_labels

LABELS = ["billing", "urgent", "refund"]
BOTH = '["billing","urgent"]'


@pytest.fixture
def ml(db_url):
    q = Queue(db_url, labels=LABELS, multi_label=True)
    yield q
    q.engine.dispose()


def _final(q: Queue) -> dict[str, str]:
    frame = q.labelled()
    return dict(zip(frame.external_id, frame.label))


def _state(q: Queue) -> tuple:
    """Everything a refused import must leave as it was."""
    return q.progress().total, q.count_label_events(), sorted(_final(q).items())


def _csv(tmp_path, text: str, name: str = "in.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- import ------------------------------------------------------------------------------------


def test_json_lists_are_read_in_any_order_and_an_empty_cell_is_not_labelled_yet(ml, tmp_path):
    path = _csv(tmp_path, 'id,text,label\n1,pay now,"[""urgent"", ""billing""]"\n'
                          '2,hello,[]\n3,money back,"[""refund""]"\n4,later,\n')
    result = ml.add(path, id="id", label="label")
    assert (result.added, result.labels_added) == (4, 3)
    assert _final(ml) == {"1": BOTH, "2": "[]", "3": '["refund"]'}
    assert ml.pop("ana").external_id == "4"  # the empty cell: still to label


def test_labels_joined_by_a_named_separator(ml, tmp_path):
    path = _csv(tmp_path, "id,text,label\n1,pay now, urgent | billing\n2,hello,[]\n"
                          "3,money back,refund\n4,later,\n")
    assert ml.add(path, id="id", label="label", label_sep="|").labels_added == 3
    assert _final(ml) == {"1": BOTH, "2": "[]", "3": '["refund"]'}


def test_list_values_from_jsonl_parquet_and_a_dataframe(ml, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [
        {"id": "j1", "text": "a", "label": ["urgent", "billing"]},
        {"id": "j2", "text": "b", "label": []},
        {"id": "j3", "text": "c", "label": None},
    ]))
    parquet = tmp_path / "in.parquet"
    pd.DataFrame({"id": ["p1", "p2"], "text": ["d", "e"],
                  "label": [["refund"], []]}).to_parquet(parquet)
    frame = pd.DataFrame({"id": ["f1", "f2", "f3"], "text": ["f", "g", "h"],
                          "label": [{"billing", "urgent"}, ("refund",), None]})
    for source in (jsonl, parquet, frame):
        ml.add(source, id="id", label="label")
    assert _final(ml) == {"j1": BOTH, "j2": "[]", "p1": '["refund"]', "p2": "[]",
                          "f1": BOTH, "f2": '["refund"]'}
    assert ml.progress().total == 8


@pytest.mark.parametrize(
    ("cell", "sep", "message"),
    [
        ('"[""billing"", ""spam""]"', None, r"row 2: \['spam'\] is not in the label set"),
        ("billing|spam", "|", r"row 2: \['spam'\] is not in the label set"),
        ('"[""billing"",]"', None, r"row 2: '\[\"billing\",\]' is not a well-formed JSON list"),
        ("[1]", None, r"row 2: '\[1\]' is not a JSON list of label names"),
        ("billing", None, "row 2: 'billing' is not a JSON list of labels, and no separator was "
         "named.*name the character joining the labels with --label-sep"),
        ("billing;urgent", "|", r"row 2: \['billing;urgent'\] is not in the label set"),
    ],
)
def test_a_bad_cell_is_named_by_row_and_nothing_is_stored(ml, tmp_path, cell, sep, message):
    ml.add(["already here"])
    path = _csv(tmp_path, f'id,text,label\n1,good,"[""refund""]"\n2,bad,{cell}\n3,new,\n')
    before = _state(ml)
    with pytest.raises(InvalidInput, match=message) as caught:
        ml.add(path, id="id", label="label", label_sep=sep)
    assert "1 cells in column 'label' are not label sets" in str(caught.value)
    assert "Nothing was imported." in str(caught.value)
    assert _state(ml) == before


def test_many_bad_cells_are_counted_and_the_first_ten_named(ml):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(25)], "label": ["spam"] * 25})
    with pytest.raises(InvalidInput, match=r"25 cells .*row 10: .*; and 15 more\.") as caught:
        ml.add(frame, label="label", label_sep="|")
    assert "row 11:" not in str(caught.value)
    assert ml.progress().total == 0


def test_an_empty_separator_is_refused(ml, tmp_path):
    path = _csv(tmp_path, "text,label\na,billing\n")
    with pytest.raises(InvalidInput, match="--label-sep cannot be empty"):
        ml.add(path, label="label", label_sep="")
    assert ml.progress().total == 0


def test_a_single_label_project_refuses_lists_and_label_sep(queue, tmp_path):
    frame = pd.DataFrame({"text": ["a", "b"], "label": ["positive", ["positive"]]})
    with pytest.raises(InvalidInput, match="holds lists of labels at rows 2.*--multi-label"):
        queue.add(frame, label="label")
    path = _csv(tmp_path, 'text,label\na,positive\nb,"[""positive""]"\n')
    with pytest.raises(InvalidInput, match="Lists of labels need a multi-label project"):
        queue.add(path, label="label")
    with pytest.raises(InvalidInput, match="--label-sep is for multi-label projects"):
        queue.add(path, label="label", label_sep="|")
    assert (queue.progress().total, queue.count_label_events()) == (0, 0)


def test_reimport_compares_sets_not_their_spelling(ml, tmp_path):
    ml.add(_csv(tmp_path, 'id,text,label\n1,a,"[""billing"",""urgent""]"\n2,b,[]\n'),
           id="id", label="label")
    same = _csv(tmp_path, "id,text,label\n1,a,urgent|billing|urgent\n2,b,[]\n", "same.csv")
    again = ml.add(same, id="id", label="label", label_sep="|")
    assert (again.added, again.labels_already_present) == (0, 2)
    other = _csv(tmp_path, "id,text,label\n1,a,billing\n2,b,[]\n", "other.csv")
    before = _state(ml)
    stored_to_file = r"1: '\[\"billing\",\"urgent\"\]' → '\[\"billing\"\]'"
    with pytest.raises(ImportConflict, match=stored_to_file):
        ml.add(other, id="id", label="label", label_sep="|")
    assert _state(ml) == before
    ml.add(other, id="id", label="label", label_sep="|", on_conflict="replace")
    assert _final(ml) == {"1": '["billing"]', "2": "[]"}


def test_imported_sets_fill_overlap_slots_by_the_labeller_column(ml, tmp_path):
    ml.configure(overlap=2)
    ml.add(_csv(tmp_path, "id,text,label,labeller\n1,a,billing|urgent,ana\n2,b,[],ana\n"),
           id="id", label="label", label_sep="|")
    assert ml.progress().done == 0
    ml.add(_csv(tmp_path, 'id,text,label,labeller\n1,a,"[""urgent"",""billing""]",ben\n'
                          "2,b,refund,ben\n", "ben.csv"),
           id="id", label="label", label_sep="|")
    assert _final(ml) == {"1": BOTH}
    assert (ml.progress().done, ml.awaiting_review()) == (2, 1)


# -- export ------------------------------------------------------------------------------------


def _labelled_project(q: Queue) -> None:
    q.add(pd.DataFrame({"id": ["1", "2", "3", "4"], "text": ["pay", "hi", "back", "later"]}),
          id="id")
    for answer in (["urgent", "billing"], [], ["refund"]):
        item = q.pop("ana")
        q.submit(item.item_id, answer, "ana", seconds=2.5)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_an_export_of_sets_reimports_without_options_adding_nothing(ml, tmp_path, suffix):
    _labelled_project(ml)
    path = tmp_path / f"out{suffix}"
    write_labels(ml.labelled(), path, label_set=ml.labels)
    again = ml.add(path)
    assert (again.added, again.already_present, again.labels_already_present) == (0, 3, 3)
    assert _final(ml) == {"1": BOTH, "2": "[]", "3": '["refund"]'}
    # into another project (a SQLite file, wherever the export came from): the same sets
    fresh = Queue(f"sqlite:///{tmp_path / 'fresh.db'}", labels=LABELS, multi_label=True)
    assert fresh.add(path).labels_added == 3
    assert _final(fresh) == {"1": BOTH, "2": "[]", "3": '["refund"]'}
    assert fresh.labelled().labeller.tolist() == ["ana"] * 3


def test_a_csv_export_joins_sets_with_a_bar_beside_a_0_1_column_per_label(ml, tmp_path):
    _labelled_project(ml)
    path = tmp_path / "out.csv"
    write_labels(ml.labelled(), path, label_set=ml.labels)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["item_id", "external_id", "text", "label", "label:billing",
                                   "label:urgent", "label:refund", "labeller", "created_at",
                                   "seconds", "source"]
    assert frame[["external_id", "label", "label:billing", "label:urgent",
                  "label:refund"]].values.tolist() == [
        ["1", "billing|urgent", "1", "1", "0"], ["2", "[]", "0", "0", "0"],
        ["3", "refund", "0", "0", "1"]]


def test_jsonl_and_parquet_exports_write_lists(ml, tmp_path):
    _labelled_project(ml)
    write_labels(ml.labelled(), tmp_path / "out.jsonl", label_set=ml.labels)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [["billing", "urgent"], [], ["refund"]]
    write_labels(ml.labelled(), tmp_path / "out.parquet", label_set=ml.labels)
    table = pq.read_table(tmp_path / "out.parquet")
    assert str(table.schema.field("label").type) == "list<element: string>"
    assert table.column("label").to_pylist() == [["billing", "urgent"], [], ["refund"]]


def test_a_parquet_export_of_empty_sets_only_is_still_a_list_of_strings(ml, tmp_path):
    ml.add(["t1"])
    ml.submit(ml.pop("ana").item_id, [], "ana")
    write_labels(ml.labelled(), tmp_path / "out.parquet", label_set=ml.labels)
    assert str(pq.read_schema(tmp_path / "out.parquet").field("label").type) == (
        "list<element: string>")
    assert ml.add(tmp_path / "out.parquet").labels_already_present == 1


def test_an_edited_0_1_column_is_refused_on_reimport_and_nothing_changes(ml, tmp_path):
    _labelled_project(ml)
    path = tmp_path / "out.csv"
    write_labels(ml.labelled(), path, label_set=ml.labels)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame.external_id == "2", "label:refund"] = "1"
    frame.to_csv(tmp_path / "edited.csv", index=False)
    before = _state(ml)
    with pytest.raises(InvalidInput, match="disagree with the 'label' column at rows 2"):
        ml.add(tmp_path / "edited.csv")
    frame.loc[frame.external_id == "2", "label:refund"] = "yes"
    frame.to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(InvalidInput, match="values other than 0 and 1 at rows 2"):
        ml.add(tmp_path / "edited.csv")
    assert _state(ml) == before
    # without the 0/1 columns the label column decides, and a new set is a conflict as usual
    frame.drop(columns=[c for c in frame.columns if c.startswith("label:")]).assign(
        label=["billing|urgent", "refund", "refund"]).to_csv(tmp_path / "edited.csv",
                                                               index=False)
    with pytest.raises(ImportConflict, match="1 rows bring a label that differs"):
        ml.add(tmp_path / "edited.csv", label_sep="|")


def test_labels_that_cannot_be_joined_are_written_as_json_lists(db_url, tmp_path):
    q = Queue(db_url, labels=["a|b", "[c]"], multi_label=True)
    q.add(["t1"])
    q.submit(q.pop("ana").item_id, ["[c]", "a|b"], "ana")
    write_labels(q.labelled(), tmp_path / "out.csv", label_set=q.labels)
    frame = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert frame.label.tolist() == ['["a|b","[c]"]']
    assert q.add(tmp_path / "out.csv").labels_already_present == 1


def test_events_export_writes_every_event_s_set_the_same_way(ml, tmp_path):
    ml.add(["t1", "t2"])
    first = ml.pop("ana")
    ml.submit(first.item_id, ["billing", "urgent"], "ana")
    ml.undo("ana")
    ml.submit(first.item_id, [], "ana")
    ml.skip(ml.pop("ana").item_id, "ana")
    write_labels(ml.events(), tmp_path / "events.csv", label_set=ml.labels)
    frame = pd.read_csv(tmp_path / "events.csv", dtype=str, keep_default_na=False)
    assert frame[["event", "label", "label:billing"]].values.tolist() == [
        ["label", "billing|urgent", "1"], ["undo", "billing|urgent", "1"], ["label", "[]", "0"],
        ["skip", "", ""]]
    write_labels(ml.events(), tmp_path / "events.jsonl", label_set=ml.labels)
    rows = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r["label"] for r in rows] == [["billing", "urgent"], ["billing", "urgent"], [], None]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_single_label_export_is_written_as_before(queue, tmp_path, suffix):
    queue.add(["t1", "t2"])
    for label in ("positive", "negative"):
        queue.submit(queue.pop("ana").item_id, label, "ana")
    frame = queue.labelled()
    ours, plain = tmp_path / f"ours{suffix}", tmp_path / f"plain{suffix}"
    write_labels(frame, ours)
    if suffix == ".csv":
        frame.to_csv(plain, index=False)
    elif suffix == ".jsonl":
        frame.to_json(plain, orient="records", lines=True, date_format="iso", date_unit="us",
                      force_ascii=False)
    else:
        frame.to_parquet(plain, index=False)
    assert ours.read_bytes() == plain.read_bytes()


# -- the command line --------------------------------------------------------------------------


def test_cli_import_with_a_separator_export_and_reimport(db_url, tmp_path):
    run("init", "--labels", "billing,urgent,refund", "--multi-label", db=db_url)
    src = _csv(tmp_path, "id,text,tags\n1,pay now,urgent;billing\n2,hello,[]\n3,later,\n")
    out = run("import", str(src), "--id-col", "id", "--label-col", "tags", "--label-sep", ";",
              db=db_url).stdout
    assert "Read 3 rows: added 3 texts (2 with labels)" in out
    status = run("status", db=db_url).stdout
    assert "Items: 3   labelled: 2   left: 1" in status
    run("export", str(tmp_path / "out.csv"), db=db_url)
    exported = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert exported[["label", "label:billing", "label:urgent"]].values.tolist() == [
        ["billing|urgent", "1", "1"], ["[]", "0", "0"]]
    again = run("import", str(tmp_path / "out.csv"), db=db_url).stdout
    assert "added 0 texts" in again and "2 labels already present" in again


def test_cli_bad_import_says_which_rows_and_stores_nothing(db_url, tmp_path):
    run("init", "--labels", "billing,urgent,refund", "--multi-label", db=db_url)
    src = _csv(tmp_path, "id,text,label\n1,a,billing|urgent\n2,b,spam\n")
    proc = run("import", str(src), "--id-col", "id", "--label-col", "label", "--label-sep", "|",
               db=db_url, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "row 2: ['spam'] is not in the label set" in proc.stderr
    assert "Items: 0" in run("status", db=db_url).stdout
