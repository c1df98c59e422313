"""table adapter: CSV/TSV/JSONL, column mapping, bad rows, duplicates, splits and trials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xmd_cli.data.adapters import get_adapter
from xmd_cli.data.adapters.table import read
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig


def config(table: Path, **fields) -> DataConfig:
    return DataConfig(adapter="table", table=str(table), **fields)


def problems_by_line(output) -> dict[str, tuple[str, str]]:
    return {p.where.rsplit(":", 1)[1]: (p.kind, p.detail) for p in output.problems}


def test_csv_with_a_column_mapping_and_bad_rows(tmp_path):
    table = tmp_path / "meta" / "samples.csv"
    table.parent.mkdir()
    table.write_text(
        "utt,speaker,part,wav,frames,caption,t0,t1,gender\n"                   # 1
        "u1,spk1,train,a/1.wav,f/1.jpg;f/2.jpg,hello,0.5,2.0,f\n"               # 2
        'u2,spk1,validation,a/2.wav,,"a caption, with a comma\nover two lines",,,m\n'  # 3-4
        "u3,spk2,test,a/3.wav,,,,,\n"                                          # 5
        "u4,spk2,dev,a/4.wav,,,,,\n"                                           # 6: bad split
        "u5,spk2,train,a/5.wav,,,\n"                                           # 7: field count
        ",spk2,train,a/6.wav,,,,,\n"                                           # 8: empty id
        "u6,spk2,train,a/6.wav,,,2.0,1.0,\n"                                   # 9: end before start
        "u7,spk2,train,a/7.wav,,,x,1.0,\n"                                     # 10: not a number
        "u8,spk2,train,a/8.wav,,,1.0,,\n"                                      # 11: half a segment
        "u1,spk3,train,a/9.wav,,,,,\n"                                         # 12: duplicate id
        "\n"                                                                   # 13: blank
        "u9,spk3,train,,,,,,\n",                                               # 14: no input
        encoding="utf-8")
    columns = {"id": "utt", "label": "speaker", "split": "part", "audio": "wav", "images": "frames",
               "text": "caption", "segment_start": "t0", "segment_end": "t1"}
    output = get_adapter("table")(config(table, columns=columns), tmp_path)
    assert output.root == table.parent
    by_id = {s.id: s for s in output.samples}
    assert list(by_id) == ["u1", "u2", "u3"]
    u1 = by_id["u1"]
    assert (u1.label, u1.split, u1.audio, u1.images, u1.text, u1.segment) == \
        ("spk1", "train", "a/1.wav", ["f/1.jpg", "f/2.jpg"], "hello", (0.5, 2.0))
    assert u1.info == {"columns": {"gender": "f"}}
    assert by_id["u2"].text == "a caption, with a comma\nover two lines" and by_id["u2"].split == "validation"
    assert by_id["u3"].info == {}
    problems = problems_by_line(output)
    assert set(problems) == {"6", "7", "8", "9", "10", "11", "12", "14"}
    assert all(kind == "bad-line" for line, (kind, _) in problems.items() if line != "12")
    assert problems["12"][0] == "duplicate-id" and "line 2" in problems["12"][1]
    assert "'dev' is not one of train, validation, test" in problems["6"][1]
    assert "7 fields, the header names 9" in problems["7"][1]
    assert "empty id" in problems["8"][1]
    assert "not after" in problems["9"][1] and "not a number" in problems["10"][1]
    assert "go together" in problems["11"][1] and "no audio, images or text" in problems["14"][1]
    assert all(p.where.startswith(str(table) + ":") for p in output.problems)


def test_jsonl_with_default_columns_lists_and_assigned_splits(tmp_path):
    table = tmp_path / "s.jsonl"
    rows = [{"id": f"{who}-{i}", "label": who, "images": [f"{who}/{i}.png", f"{who}/{i}b.png"], "age": 30}
            for who in ("ann", "bob") for i in range(10)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, "{not json")  # line 4
    lines.insert(6, "[1, 2]")  # line 7
    lines.append(json.dumps({"id": 7, "label": "bob", "text": "a number as id"}))
    table.write_text("\n".join(lines) + "\n")
    output = read(config(table, root=str(tmp_path / "data"), validation_fraction=0.3, seed=5), tmp_path)
    assert output.root == tmp_path / "data"
    by_id = {s.id: s for s in output.samples}
    assert len(by_id) == 21 and by_id["7"].text == "a number as id"
    assert by_id["ann-3"].images == ["ann/3.png", "ann/3b.png"]
    assert by_id["ann-3"].info == {"columns": {"age": 30}}
    assert {line: kind for line, (kind, _) in problems_by_line(output).items()} == {"4": "bad-line", "7": "bad-line"}
    splits = [(s.label, s.split) for s in output.samples]
    assert splits.count(("ann", "validation")) == 3 and splits.count(("ann", "train")) == 7
    again = read(config(table, root=str(tmp_path / "data"), validation_fraction=0.3, seed=5), tmp_path)
    assert [s.split for s in again.samples] == [s.split for s in output.samples]


def test_trial_lists_make_their_identities_the_test_split(tmp_path):
    table = tmp_path / "s.tsv"
    table.write_text("id\tlabel\taudio\n" + "".join(
        f"{who}/{i}\t{who}\t{who}/{i}.wav\n" for who in ("a", "b", "c", "d") for i in range(3)))
    trials = tmp_path / "o.txt"
    trials.write_text("1 c/0 c/1\n0 c/2 d/0\n")
    output = read(config(table, trials=[str(trials)]), tmp_path)
    assert {s.label for s in output.samples if s.split == "test"} == {"c", "d"}
    assert {s.split for s in output.samples if s.label in ("a", "b")} == {"train", "validation"}
    assert len(output.trials["o"]) == 2
    unknown = tmp_path / "bad.txt"
    unknown.write_text("1 c/0 zed/9\n")
    with pytest.raises(XmdError, match="bad.txt:1: trial names 'zed/9'"):
        read(config(table, trials=[str(unknown)]), tmp_path)


def test_missing_required_column_names_file_column_and_nearest(tmp_path):
    table = tmp_path / "s.csv"
    table.write_text("id,Labels,audio\nx,s,x.wav\n")
    with pytest.raises(XmdError) as error:
        read(config(table), tmp_path)
    text = str(error.value)
    assert str(table) in text and "'label'" in text and "columns: id, Labels, audio" in text
    assert "did you mean 'Labels'?" in text
    with pytest.raises(XmdError, match=r"(?s)no column 'labls' .*data.columns.label names it.*did you mean 'Labels'"):
        read(config(table, columns={"label": "labls"}), tmp_path)
    assert read(config(table, columns={"label": "Labels"}), tmp_path).samples[0].label == "s"


@pytest.mark.parametrize("name, content, fields, message", [
    ("s.csv", "id,label\n", {"columns": {"lable": "x"}}, r"(?s)data.columns.lable.*did you mean 'label'"),
    ("s.xlsx", "id,label\n", {}, "is not .csv, .tsv or .jsonl"),
    ("s.csv", "", {}, "the table is empty"),
    ("s.csv", "id,label,audio\n,,\n", {}, r"no usable row \(1 bad: .*s.csv:2: empty id"),
    ("s.csv", b"id,label\n\xff\xfe,x\n", {}, "not UTF-8"),
    ("s.jsonl", '{"label": "a", "audio": "x.wav"}\n', {}, "no column 'id'"),
])
def test_bad_tables_are_xmd_errors(tmp_path, name, content, fields, message):
    table = tmp_path / name
    table.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(XmdError, match=message):
        read(config(table, **fields), tmp_path)


def test_table_setting_missing_or_absent_file_is_an_xmd_error(tmp_path):
    with pytest.raises(XmdError, match="data.table: the table adapter needs"):
        read(DataConfig(adapter="table"), tmp_path)
    with pytest.raises(XmdError, match="does not exist"):
        read(config(tmp_path / "nope.csv"), tmp_path)
