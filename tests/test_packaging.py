"""A wheel of xmd installed (not editable) into a fresh venv finds its shipped recipes.

The venv gets the wheel with --no-deps and, through a .pth file, only the light
libraries the CLI's skeleton needs (typer, rich, pydantic, yaml): torch and the
other heavy dependencies are absent, so listing recipes must not import them.
Everything runs from a directory outside the clone with PYTHONPATH unset, so
nothing can come from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Import names the CLI skeleton loads (see test_cli.test_help_does_not_import_torch), plus rich's
# lazily imported helpers; taken from the test venv's site-packages.
LIGHT = ("typer", "click", "rich", "markdown_it", "mdurl", "pygments", "shellingham", "pydantic",
         "pydantic_core", "annotated_types", "annotated_doc", "typing_extensions", "typing_inspection", "yaml",
         "_yaml")


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(tmp: Path) -> Path:
    # Built from a copy: an in-tree build would leave build/ and *.egg-info in the clone.
    source = tmp / "src"
    shutil.copytree(ROOT / "xmd_cli", source / "xmd_cli", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "wheel"), str(source)])
    return next((tmp / "wheel").glob("xmd-*.whl"))


def fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)])
    light = tmp / "light"
    light.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in LIGHT:
        for found in list(site.glob(name)) + list(site.glob(f"{name}.*.so")) + list(site.glob(f"{name}.py")):
            (light / found.name).symlink_to(found)
    target = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(target, "light.pth").write_text(str(light) + "\n")
    return venv


@pytest.mark.slow
def test_installed_wheel_lists_recipes_without_heavy_dependencies(tmp_path):
    shipped = sorted(p.stem for p in (ROOT / "xmd_cli/recipes").glob("*.yaml"))
    assert shipped, "no recipes in xmd_cli/recipes"
    wheel = build_wheel(tmp_path)
    venv = fresh_venv(tmp_path, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    python, xmd = str(venv / "bin/python"), str(venv / "bin/xmd")

    absent = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert absent.returncode != 0  # the heavy dependencies really are missing

    code = ("import sys, importlib.resources as r; "
            "print(sorted(p.name[:-5] for p in (r.files('xmd_cli') / 'recipes').iterdir() "
            "if p.name.endswith('.yaml'))); "
            "import xmd_cli.recipe_files as f; print(f.SHIPPED); print('torch' in sys.modules)")
    listed, shipped_dir, torch_loaded = run([python, "-c", code], cwd=elsewhere, env=env).stdout.splitlines()
    assert listed == repr(shipped) and torch_loaded == "False"
    assert Path(shipped_dir).is_relative_to(venv) and not Path(shipped_dir).is_relative_to(ROOT)

    result = json.loads(run([xmd, "recipes", "list", "--json"], cwd=elsewhere, env=env).stdout)
    assert sorted(r["name"] for r in result["recipes"]) == shipped
    assert all(Path(r["path"]).is_relative_to(venv) for r in result["recipes"])
    shown = run([xmd, "recipes", "show", "speaker", "--set", "training.lr=0.01"], cwd=elsewhere, env=env).stdout
    assert "lr: 0.01" in shown
