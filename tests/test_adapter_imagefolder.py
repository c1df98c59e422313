"""imagefolder adapter: both layouts, captions, problems, split assignment."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from xmd_cli.data.adapters import get_adapter
from xmd_cli.data.adapters.imagefolder import read
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig


def touch(root: Path, *relatives: str) -> None:
    # The adapter never opens images, so empty files stand in for them.
    for relative in relatives:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def config(root: Path, **fields) -> DataConfig:
    return DataConfig(adapter="imagefolder", root=str(root), **fields)


def test_class_layout_lists_images_of_any_case_and_assigns_splits(tmp_path):
    names = [f"cat/{i:02d}.jpg" for i in range(10)] + [f"dog/{i:02d}.PNG" for i in range(10)]
    touch(tmp_path, *names, "dog/deep/x.JpEg", "dog/a.webp", "dog/b.bmp", "dog/notes.txt",
          "dog/.hidden.jpg", "cat/Thumbs.db")
    output = get_adapter("imagefolder")(config(tmp_path, validation_fraction=0.2, seed=1), tmp_path)
    assert output.root == tmp_path and output.problems == []
    by_id = {s.id: s for s in output.samples}
    assert len(by_id) == 23
    assert by_id["dog/deep/x"].images == ["dog/deep/x.JpEg"] and by_id["dog/deep/x"].label == "dog"
    assert by_id["cat/03"].label == "cat" and by_id["cat/03"].text is None
    counts = Counter((s.label, s.split) for s in output.samples)
    assert counts["cat", "validation"] == 2 and counts["cat", "train"] == 8
    assert counts["dog", "validation"] == 3 and counts["dog", "train"] == 10
    again = read(config(tmp_path, validation_fraction=0.2, seed=1), tmp_path)
    assert [s.split for s in again.samples] == [s.split for s in output.samples]
    other_seed = read(config(tmp_path, validation_fraction=0.2, seed=2), tmp_path)
    assert [s.split for s in other_seed.samples] != [s.split for s in output.samples]


def test_split_layout_maps_val_to_validation_and_keeps_layout_splits(tmp_path):
    touch(tmp_path, "train/cat/1.jpg", "train/cat/2.jpg", "train/dog/1.jpg",
          "val/cat/3.jpg", "validation/dog/4.jpg", "test/cat/5.jpg", "test/dog/6.png", "test/stray.jpg")
    output = read(config(tmp_path), tmp_path)
    assert [(p.kind, Path(p.where).relative_to(tmp_path).as_posix()) for p in output.problems] == \
        [("not-in-class", "test/stray.jpg")]
    split_of = {s.id: (s.split, s.label) for s in output.samples}
    assert split_of == {"train/cat/1": ("train", "cat"), "train/cat/2": ("train", "cat"),
                        "train/dog/1": ("train", "dog"), "val/cat/3": ("validation", "cat"),
                        "validation/dog/4": ("validation", "dog"), "test/cat/5": ("test", "cat"),
                        "test/dog/6": ("test", "dog")}
    forced = read(config(tmp_path, split="test"), tmp_path)
    assert {s.split for s in forced.samples} == {"test"}


def test_empty_class_duplicates_and_stray_images_are_problems(tmp_path):
    touch(tmp_path, "cat/a.jpg", "cat/a.png", "cat/b.jpg", "stray.jpg")
    (tmp_path / "bird").mkdir()
    touch(tmp_path, "bird/readme.txt")
    output = read(config(tmp_path), tmp_path)
    kinds = {p.kind: p for p in output.problems}
    assert set(kinds) == {"empty-class", "duplicate-id", "not-in-class"}
    assert kinds["empty-class"].where.endswith("bird")
    assert kinds["duplicate-id"].where == "cat/a.png" and "cat/a.jpg" in kinds["duplicate-id"].detail
    assert sorted(s.id for s in output.samples) == ["cat/a", "cat/b"]


def test_captions_file_sets_text_and_reports_lines_that_do_not_fit(tmp_path):
    root = tmp_path / "images"
    touch(root, "cat/1.jpg", "cat/2.jpg", "dog/3.jpg", "dog/4.jpg")
    captions = tmp_path / "captions.tsv"
    captions.write_text("\n".join([
        "# path<TAB>caption",
        "cat/1.jpg\tA grey cat asleep on a red sofa.",
        "./cat/2.jpg\tA kitten with white paws.",
        "dog/3\tA dog named by its id, without the extension.",
        "dog/missing.jpg\tNo such image.",
        "this line has no tab",
        "cat/1.jpg\tA second caption for the same image.",
        "dog/4.jpg\t   ",
    ]) + "\n", encoding="utf-8")
    output = read(config(root, captions=str(captions)), tmp_path)
    text = {s.id: s.text for s in output.samples}
    assert text == {"cat/1": "A grey cat asleep on a red sofa.", "cat/2": "A kitten with white paws.",
                    "dog/3": "A dog named by its id, without the extension.", "dog/4": None}
    where = {(p.kind, p.where) for p in output.problems}
    assert (("missing-file", f"{captions}:5") in where and ("bad-line", f"{captions}:6") in where
            and ("duplicate-caption", f"{captions}:7") in where and ("bad-line", f"{captions}:8") in where)
    missing = [p for p in output.problems if p.kind == "missing-caption"]
    assert len(missing) == 1 and "1 image(s)" in missing[0].detail and "dog/4.jpg" in missing[0].detail


def test_trial_lists_make_their_classes_the_test_split(tmp_path):
    touch(tmp_path, *[f"{who}/{i}.jpg" for who in ("ann", "bob", "cy", "dee") for i in range(4)])
    trials = tmp_path / "trials.txt"
    trials.write_text("1 cy/0.jpg cy/1.jpg\n0 cy/2.jpg dee/0.jpg\n")
    output = read(config(tmp_path, trials=[str(trials)]), tmp_path)
    test_labels = {s.label for s in output.samples if s.split == "test"}
    assert test_labels == {"cy", "dee"}
    assert [t.enroll for t in output.trials["trials"]] == ["cy/0", "cy/2"]


@pytest.mark.parametrize("setup, fields, message", [
    (lambda root: None, {"root": None}, "data.root: the imagefolder adapter needs"),
    (lambda root: None, {"root": "does/not/exist"}, "is not a folder"),
    (lambda root: touch(root, "a.jpg"), {}, "no class folders"),
    (lambda root: touch(root, "train/cat/1.jpg", "dog/1.jpg"), {}, "mixes split folders"),
    (lambda root: touch(root, "cat/1.jpg"), {"captions": "no/captions.tsv"}, "cannot read the captions file"),
])
def test_bad_input_is_an_xmd_error(tmp_path, setup, fields, message):
    setup(tmp_path)
    fields = {"root": str(tmp_path), **fields}
    with pytest.raises(XmdError, match=message):
        read(DataConfig(adapter="imagefolder", **fields), tmp_path)
