"""The networks xmd trains and the loss that distils into them.

  students   `build_student(config)`: the registry of student architectures
  ecapa, resnet34, speech    speaker encoders and the waveform -> fbank -> encoder student
  image_cnn, resnet18        image students
  fbank      Kaldi log-mel fbank as the speech student's first layer
  pooling    statistics pooling masked to true lengths
  distill    the distillation loss, every term by name (`DistillationLoss`), built from
             distill_config (the settings), distill_losses (margin loss, relations, logit KD, QAW)
             and distill_heads (projection head, shared or teacher-generated AAM classifier)

Every model takes explicit constructor arguments (no recipe objects), so each
file can be read, tested and reused on its own; the `students` registry is the
one place that reads a `StudentConfig`.
"""
