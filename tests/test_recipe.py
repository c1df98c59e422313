"""Recipe schema: shipped recipes validate; typos, wrong types and unsafe YAML fail clearly."""

from pathlib import Path

import pytest

from xmd_cli.errors import XmdError
from xmd_cli.recipe import (
    Recipe,
    dump_recipe,
    load_recipe,
    parse_override,
    save_resolved,
)
from xmd_cli.recipe_files import find_recipe, list_recipes, schema_rows

SHIPPED = sorted((Path(__file__).parent.parent / "xmd_cli/recipes").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipe_validates_and_opens_with_its_commands(path):
    assert isinstance(load_recipe(path), Recipe)
    head = path.read_text().splitlines()[:8]
    assert any("xmd " in line for line in head if line.startswith("#")), "a recipe opens with the commands that run it"


def test_shipped_recipes_are_found_by_name():
    assert {p.stem for p in list_recipes()} >= {"speaker", "image", "face-teacher", "demo-persons", "demo-captions"}
    assert find_recipe("speaker").name == "speaker.yaml"


def test_typo_names_file_line_key_and_nearest_key(tmp_path):
    path = write(tmp_path, "name: x\ndata:\n  adaptr: kaldi\n")
    with pytest.raises(XmdError) as e:
        load_recipe(path)
    message = str(e.value)
    assert f"{path}:3" in message
    assert "data.adaptr" in message and "did you mean 'data.adapter'" in message


def test_unknown_section_lists_valid_keys_when_nothing_is_close(tmp_path):
    with pytest.raises(XmdError, match="valid keys here: name, seed, data"):
        load_recipe(write(tmp_path, "zzzzzz: 1\n"))


def test_wrong_type_names_key_and_line(tmp_path):
    path = write(tmp_path, "training:\n  epochs: 3\n  lr: fast\n")
    with pytest.raises(XmdError) as e:
        load_recipe(path)
    assert f"{path}:3" in str(e.value) and "training.lr" in str(e.value) and "'fast'" in str(e.value)


def test_bad_choice_is_rejected(tmp_path):
    with pytest.raises(XmdError, match="method.projection"):
        load_recipe(write(tmp_path, "method:\n  projection: mpl\n"))


def test_executable_yaml_tag_is_refused_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = write(tmp_path, f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(XmdError, match="not valid YAML"):
        load_recipe(path)
    assert not marker.exists()


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "data:\n  adapter: [kaldi\nseed: 1\n")
    with pytest.raises(XmdError, match=f"{path}:\\d+: not valid YAML"):
        load_recipe(path)


def test_overrides_are_typed_against_the_schema(tmp_path):
    recipe = load_recipe(None, ["training.lr=0.01", "method.qaw.enabled=false", "data.trials=[a.txt, b.txt]"])
    assert recipe.training.lr == 0.01 and recipe.method.qaw.enabled is False
    assert recipe.data.trials == ["a.txt", "b.txt"]
    with pytest.raises(XmdError, match="training.epochs"):
        load_recipe(None, ["training.epochs=many"])
    with pytest.raises(XmdError, match="did you mean 'training.lr'"):
        load_recipe(None, ["training.lrr=0.1"])
    with pytest.raises(XmdError, match="expected key=value"):
        parse_override("training.lr")


def test_precedence_file_then_options_then_set(tmp_path):
    path = write(tmp_path, "seed: 1\ntraining:\n  lr: 0.5\n  epochs: 7\n")
    recipe = load_recipe(path, ["training.lr=0.25"], {"seed": 2, "training": {"lr": 0.3}})
    assert (recipe.seed, recipe.training.lr, recipe.training.epochs) == (2, 0.25, 7)


def test_resolved_recipe_round_trips(tmp_path):
    recipe = load_recipe(find_recipe("speaker"), ["training.lr=0.003"])
    saved = save_resolved(recipe, tmp_path / "run" / "recipe.resolved.yaml")
    assert load_recipe(saved) == recipe
    assert "lr: 0.003" in dump_recipe(recipe)


def test_schema_rows_cover_every_section():
    keys = [row[0] for row in schema_rows()]
    for section in ("data.", "teacher.", "quality.", "student.", "method.", "training.", "evaluation."):
        assert any(k.startswith(section) for k in keys)
    assert ("quality.student.modality", "'speech'") in [(r[0], r[2]) for r in schema_rows()]


def test_every_field_says_what_it_does():
    from xmd_cli.recipe_files import schema_rows

    undescribed = [key for key, _, _, description in schema_rows() if not description.strip()]
    assert not undescribed, f"fields without a description: {undescribed}"


def test_old_classifier_margin_key_still_works_with_a_note(tmp_path, capsys):
    path = tmp_path / "old.yaml"
    path.write_text("method:\n  classifier: {kind: shared, margin: 0.3}\n")
    recipe = load_recipe(path)
    assert recipe.method.classifier.angular_margin == 0.3
    assert "'method.classifier.margin' is deprecated" in capsys.readouterr().err
    path.write_text("method:\n  classifier: {margin: 0.3, angular_margin: 0.2}\n")
    with pytest.raises(XmdError, match="both 'method.classifier.margin'"):
        load_recipe(path)


@pytest.mark.parametrize("override, message", [
    ("training.lr=inf", "training.lr"),
    ("method.feature.margin=5", "largest cosine distance"),
    ("method.classifier.angular_margin=2", "angular_margin"),
])
def test_values_that_mean_nothing_are_refused(override, message):
    with pytest.raises(XmdError, match=message):
        load_recipe(None, [override])
