"""Recipe names, and how a recipe argument is resolved: a packaged name, or a path when it looks like one."""

from __future__ import annotations

import pytest

from curate.errors import CurateError
from curate.recipe import load_recipe, looks_like_path


@pytest.mark.parametrize("name", ["*", "demo*", "?", "[ab]", "..", ".hidden", "a/b", "a b", "-x", ""])
def test_a_name_that_is_not_a_plain_word_is_refused(tmp_path, name):
    """The name becomes decisions/<name>.parquet: `*` globbed every recipe's decisions (counted twice)."""
    with pytest.raises(CurateError, match="name"):
        load_recipe({"name": name, "filter": {"min_side": 10}} if name else {"filter": {}})
    path = tmp_path / "r.toml"
    path.write_text(f'name = "{name}"\n[filter]\nmin_side = 10\n' if name else "[filter]\n")
    if name:
        with pytest.raises(CurateError, match="must be a plain word"):
            load_recipe(str(path))


def test_plain_names_with_digits_dots_and_dashes_are_kept(tmp_path):
    assert load_recipe({"name": "datacomp-v2.1_small"}).name == "datacomp-v2.1_small"
    path = tmp_path / "laion-400m.toml"
    path.write_text("[filter]\nmin_side = 64\n")
    assert load_recipe(str(path)).name == "laion-400m"


def test_a_star_recipe_is_refused_by_the_commands(tmp_path, capsys):
    from curate.cli import main

    recipe = tmp_path / "star.toml"
    recipe.write_text('name = "*"\n[filter]\nmin_side = 10\n')
    (tmp_path / "ds" / "shards").mkdir(parents=True)
    assert main(["filter", str(tmp_path / "ds"), "--recipe", str(recipe)]) == 2
    assert "must be a plain word" in capsys.readouterr().err
    assert not list((tmp_path / "ds").rglob("*.parquet"))


def test_working_directory_entries_do_not_shadow_packaged_recipes(tmp_path, monkeypatch):
    """`curate demo -o demo` made a folder `demo`; the packaged recipe `demo` then failed (Is a directory)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "datacomp_basic").write_text('name = "impostor"\n')
    assert load_recipe("demo").source == "curate.pipelines/demo.toml"
    assert load_recipe("datacomp_basic").name == "datacomp_basic"
    # A path says so: a slash or a .toml suffix.
    assert load_recipe("./datacomp_basic").name == "impostor"
    (tmp_path / "mine.toml").write_text("[filter]\nmin_side = 64\n")
    assert load_recipe("mine.toml").name == "mine"
    with pytest.raises(CurateError, match="is a folder, not a TOML file"):
        load_recipe("./demo")
    with pytest.raises(CurateError, match="does not exist"):
        load_recipe("missing.toml")
    (tmp_path / "mylocal").write_text("[filter]\n")
    with pytest.raises(CurateError, match=r"write \./mylocal"):
        load_recipe("mylocal")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("demo", False),
        ("datacomp_basic", False),
        ("x.toml", True),
        ("./x", True),
        ("configs/x", True),
        ("/abs/x.toml", True),
    ],
)
def test_looks_like_path(text, path):
    assert looks_like_path(text) is path
