"""Importing files: what comes in, what is refused, and that a refusal changes nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from widgetal.errors import InvalidInput


def _csv(tmp_path, text: str, name="in.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_import_keeps_ids_and_other_columns_as_meta(queue, tmp_path):
    path = _csv(tmp_path, "id,text,source\n7,hello world,web\n8,second text,mail\n")
    result = queue.add(path, text="text", id="id")
    assert (result.added, result.already_present) == (2, 0)
    items = queue.items([1, 2])
    assert [(i.external_id, i.text, i.meta) for i in items] == [
        ("7", "hello world", {"source": "web"}),
        ("8", "second text", {"source": "mail"}),
    ]


def test_reimporting_the_same_file_adds_nothing_twice(queue, tmp_path):
    path = _csv(tmp_path, "id,text\n1,a\n2,b\n")
    queue.add(path, id="id")
    again = queue.add(path, id="id")
    assert (again.added, again.already_present) == (0, 2)
    assert queue.progress().total == 2


def test_texts_without_ids_are_identified_by_content(queue):
    first = queue.add(["same", "other", "same"])
    assert (first.added, first.merged_duplicates) == (2, 1)
    assert queue.add(["same"]).added == 0


def test_label_column_brings_labels_in_as_done_items(queue, tmp_path):
    path = _csv(tmp_path, "id,text,label\n1,good,positive\n2,bad,negative\n3,unknown,\n")
    result = queue.add(path, id="id", label="label", labeller="seed")
    assert result.labels_added == 2
    labelled = queue.labelled()
    assert sorted(zip(labelled.external_id, labelled.label, labelled.labeller)) == [
        ("1", "positive", "seed"),
        ("2", "negative", "seed"),
    ]
    assert queue.pop("ana").external_id == "3"  # only the unlabelled one is handed out


def test_jsonl_and_parquet_import(queue, tmp_path):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": i, "text": f"t{i}"}) for i in range(3)))
    parquet = tmp_path / "in.parquet"
    pd.DataFrame({"id": ["p1", "p2"], "text": ["x", "y"]}).to_parquet(parquet)
    assert queue.add(jsonl, id="id").added == 3
    assert queue.add(parquet, id="id").added == 2
    assert queue.progress().total == 5


def test_named_encoding_is_honoured(queue, tmp_path):
    path = _csv(tmp_path, "text\ncafé crème\n", encoding="latin-1")
    queue.add(path, encoding="latin-1")
    assert queue.items([1])[0].text == "café crème"


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("id,body\n1,a\n", {"id": "id"}, r"Missing column\(s\) \['text'\]"),
        ("id,text\n1,a\n", {"id": "ident"}, r"Missing column\(s\) \['ident'\]"),
        (
            "id,text\n1,a\n2,   \n3,\n",
            {"id": "id"},
            r"2 empty or whitespace-only texts .* rows 2, 3",
        ),
        ("id,text\n1,a\n1,b\n2,c\n", {"id": "id"}, r"Duplicate ids .*'1'.* rows 1, 2"),
        (
            "id,text,label\n1,a,positive\n2,b,neutral\n",
            {"id": "id", "label": "label"},
            r"outside the label set .*'neutral' at rows 2",
        ),
    ],
)
def test_bad_files_are_refused_with_a_specific_message_and_change_nothing(
    queue, tmp_path, content, kwargs, message
):
    queue.add(["already here"])
    with pytest.raises(InvalidInput, match=message):
        queue.add(_csv(tmp_path, content), **kwargs)
    assert queue.progress().total == 1
    assert queue.labelled().empty


def test_undecodable_bytes_name_the_encoding_to_use(queue, tmp_path):
    path = _csv(tmp_path, "text\ncafé\n", encoding="latin-1")
    with pytest.raises(InvalidInput, match="not valid utf-8.*--encoding"):
        queue.add(path)
    assert queue.progress().total == 0


def test_malformed_csv_and_unknown_extension_are_refused(queue, tmp_path):
    bad = _csv(tmp_path, 'id,text\n1,"unterminated\n')
    with pytest.raises(InvalidInput, match="Cannot read"):
        queue.add(bad, id="id")
    with pytest.raises(InvalidInput, match="Don't know how to read"):
        queue.add(_csv(tmp_path, "x", name="in.xlsx"))
    with pytest.raises(InvalidInput, match="No such file"):
        queue.add(tmp_path / "missing.csv")
    assert queue.progress().total == 0


def test_labels_from_file_need_a_label_set(db_url, tmp_path):
    from widgetal import Queue
    from widgetal.errors import NotInitialised

    q = Queue(db_url)
    with pytest.raises(NotInitialised):
        q.add(_csv(tmp_path, "text,label\na,positive\n"), label="label")
    assert q.progress().total == 0


def test_a_cp1252_file_is_named_with_its_real_offset_line_and_likely_encoding(queue, tmp_path):
    # Windows files: curly quotes and dashes are bytes 0x91-0x97, control characters in latin-1.
    lines = [f"plain line {i}" for i in range(3000)]
    lines += ["She said “great film” – and I agree", "It’s dull; the café scene aside"]
    path = tmp_path / "windows.csv"
    path.write_bytes(("text\n" + "\n".join(lines) + "\n").encode("cp1252"))
    offset = path.read_bytes().index(b"\x93")  # far beyond pandas' first read buffer
    with pytest.raises(InvalidInput) as err:
        queue.add(path)
    message = str(err.value)
    assert f"not valid utf-8 at byte {offset} (line 3002, column 10" in message
    assert "try --encoding cp1252" in message and "latin-1" not in message
    assert "“great film”" in message  # the line as the suggested encoding reads it
    assert queue.progress().total == 0
    queue.add(path, encoding="cp1252")
    assert queue.items([3001])[0].text == "She said “great film” – and I agree"
