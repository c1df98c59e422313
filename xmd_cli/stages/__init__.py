"""Pipeline stages, one module each: prepare, extract-teacher, score-quality, distill, evaluate.

Each stage reads files and writes files in the work directory (see docs/architecture.md);
no stage calls another in memory. The CLI's subcommands are thin wrappers around the
`run_*` function of each module.
"""
