"""The `xmd` command: one thin function a subcommand, parsing only.

Each command turns its flags into recipe values, loads the recipe (defaults <-
file <- flags <- --set) and hands it to a stage in `xmd_cli.stages`. Heavy
imports (torch, speechbrain) happen inside the stages, so `xmd --help` is quick.
The modules below register their commands on the one app when imported.
"""

# Imported for their registration of commands, in --help order.
from xmd_cli.cli import ablate, data, deploy, diagnose, evaluation, recipes, stores, training  # noqa: F401
from xmd_cli.cli.app import app
from xmd_cli.cli.examples import attach

attach(app)  # after every command module registered its commands

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="xmd")
