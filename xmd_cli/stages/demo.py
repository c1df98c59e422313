"""`xmd demo`: the whole pipeline on embedded demo data, offline.

Today it runs the stages that exist (data generation and `prepare`) and says
which stages are still to come; each later stage joins here as it lands.
Every stage's outputs are reused on a rerun.
"""

from __future__ import annotations

from pathlib import Path

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.recipe import load_recipe

TASKS = {"speaker": "synthetic-persons", "image": "synthetic-captions"}
PENDING = ["extract-teacher", "score-quality", "train", "distill", "evaluate"]


def run_demo(*, task: str, tiny: bool, workdir: Path, seed: int | None, out: Output) -> dict:
    if task not in TASKS:
        raise XmdError(f"--task {task!r}: expected one of {', '.join(TASKS)}")
    from xmd_cli.stages.prepare import run_prepare

    data = {"adapter": TASKS[task], "tiny": tiny}
    if seed is not None:
        data["seed"] = seed
    recipe = load_recipe(None, [], {"name": f"demo-{task}", "data": data})
    workdir = Path(workdir) / task
    out.note(f"[bold]xmd demo[/bold] ({task}: {TASKS[task]}{', tiny' if tiny else ''}) in {workdir}")
    with out.progress() as progress:
        prepared = run_prepare(recipe, workdir, progress=progress)
    rows = [("prepare", "done", f"{prepared['samples']} samples, {prepared['classes']} classes, "
             f"manifest {prepared['manifest']}")]
    rows += [(stage, "not built yet", "lands with its issue") for stage in PENDING]
    out.table("demo stages", rows, ("stage", "status", "output"))
    return {"task": task, "workdir": str(workdir), "prepare": prepared, "pending": PENDING}
