"""`python -m xmd_cli` runs the same app as the `xmd` command (torchrun needs this form)."""

from xmd_cli.cli import main

main()
