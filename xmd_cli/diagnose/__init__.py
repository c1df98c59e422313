"""`xmd diagnose`: will distillation from this teacher help this student? Measured before training.

A teacher helps only through information that its modality shares with the
student's and that the labels do not already carry. Each module measures one part
of that on the teacher store (and, optionally, a student-alone checkpoint):

  separability         does the teacher separate the classes (CV nearest-centroid, linear probe, cosines)
  beyond_label         how much teacher variance is left within classes, and is it structured or noise
  class_attributes     do the teacher's class means predict what is constant within each class (gender, build, ...)
  cka                  linear CKA between teacher and student-alone embeddings, overall and within classes
  quality_reliability  does the quality score track how far a sample sits from its class in teacher space
  verdicts             the thresholds, and a plain-language verdict for each measurement
  report               report.json, report.md, the plots and the rich table

Every function here takes arrays (rows, labels, ...) and returns plain dicts, so
that each can be tested on constructed data with a known answer; the stage
(`xmd_cli.stages.diagnose`) reads the stores and the checkpoint.
"""
