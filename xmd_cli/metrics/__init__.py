"""Scoring and metrics for `xmd evaluate`: one scorer, every number says how it was obtained.

Modules, one idea each:
  verification            EER, minDCF, DET points, ROC AUC from one sort of the scores
  scoring                 cosine scoring of trials, mean subtraction, AS-norm
  scorefile               reading score files written elsewhere; `score_file` for `--scores FILE`
  classification          top-k, per-class accuracy, confusion matrix
  matching                cross-modal matching (1:2, N-way, verification, recall@k) with bootstrap CIs
  bootstrap               what the bootstraps share: resample draws, percentile intervals, paired verdicts
  bootstrap_verification  identity-bootstrap intervals of EER/minDCF and paired comparisons
  reweighted_verification EER/minDCF of any reweighting of one sorted score set (its fast path)
  bootstrap_accuracy      class-stratified intervals of accuracy and paired comparisons
  evidence                intervals in reports, scores.npz beside them, paired `--compare`
  plots                   DET and confusion-matrix PNGs (matplotlib, Agg, imported lazily)
  report                  report.json / report.md and `--compare`

Nothing here imports torch: evaluation of a score file stays fast to start.
"""
