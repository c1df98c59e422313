"""The parts of `xmd evaluate`, one idea a module (the entry points are in `xmd_cli.stages.evaluate`).

  model           which checkpoint is measured, and whether it fits the task
  verification    speaker verification (trials, cohort, back-end, DET) and nearest-centroid identification
  closed_set      classification with the checkpoint's classifier
  matching        cross-modal matching against projected teacher rows from the store

Loading a checkpoint and embedding samples is `xmd_cli.inference`, shared with
diagnose and the checkpoint teacher. `EVALUATIONS` maps each task to its
function, called as `evaluate(recipe, manifest=, model=, out_dir=, allow_stale=,
out=, trials=)`; only speaker verification takes a trial list.
"""

from xmd_cli.registry import Registry

EVALUATIONS = Registry("evaluation task", key="--task")
EVALUATIONS.add("speaker-verification", "xmd_cli.stages.evaluation.verification:evaluate_verification")
EVALUATIONS.add("classification", "xmd_cli.stages.evaluation.closed_set:evaluate_classification")
EVALUATIONS.add("cross-modal-matching", "xmd_cli.stages.evaluation.matching:evaluate_matching")
