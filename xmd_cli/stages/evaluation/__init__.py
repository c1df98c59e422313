"""The parts of `xmd evaluate`, one idea a module (the entry points are in `xmd_cli.stages.evaluate`).

  model           the checkpoint: its student, classifier and projection head, and whether it fits the task
  embed           student embeddings of whole utterances / images, eval mode, no grad
  verification    speaker verification (trials, cohort, back-end, DET) and nearest-centroid identification
  closed_set      classification with the checkpoint's classifier
  matching        cross-modal matching against projected teacher rows from the store
"""
