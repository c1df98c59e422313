"""Speaker verification of a checkpoint on a trial list, identification, and scoring a score file.

- Trials: `--trials NAME|FILE`, else `evaluation.trials`, else the manifest's only
  trial list. A FILE is VoxCeleb format `1|0 enroll test` with sample ids.
- Embeddings: only the samples the trials name, plus the cohort when a score
  normalisation needs one.
- Cohort (mean subtraction, AS-norm): a seeded random subset of at most
  `evaluation.cohort_utterances` train-split utterances of the evaluated work
  directory. The mean is the mean of their embeddings; the AS-norm cohort is one
  mean embedding per training identity (as WeSpeaker does).
- Identification: leave-one-out nearest centroid among the identities of the trial
  utterances (see `nearest_centroid_identification`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.data.manifest import Manifest, read_trials
from xmd_cli.errors import XmdError
from xmd_cli.inference import CheckpointModel, describe_embedding, embed_samples
from xmd_cli.io import file_sha256
from xmd_cli.metrics import classification, evidence
from xmd_cli.metrics.scorefile import score_file
from xmd_cli.metrics.scoring import score_trials
from xmd_cli.metrics.verification import verification_summary
from xmd_cli.recipe import Recipe
from xmd_cli.stages.evaluation.model import check_fits

_COUNTS = ("n_trials", "n_target", "n_nontarget", "c_miss", "c_fa")
_BLOCK = 4096  # probes scored at once in identification: bounds memory at any size


def trials_file(spec: str | None, source: str, workdir: Path, dataset: dict, *, required: bool = True) -> Path | None:
    """The trial list file named by `spec` (a file or a trial list of the work directory)."""
    named = dataset.get("trials", {}) or {}
    if spec:
        path = Path(spec).expanduser()
        if path.is_file():
            return path
        if spec in named:
            return Path(workdir) / named[spec]
        raise XmdError(f"{source} {spec}: neither a file nor a trial list of {workdir}"
                       + (f" (it has: {', '.join(sorted(named))})" if named else " (it has none)"),
                       hint="pass a trial list file (`1 enroll test` or `enroll test target|nontarget`), "
                            "or the name of a list `xmd prepare` wrote")
    if len(named) == 1:
        return Path(workdir) / next(iter(named.values()))
    if not required:
        return None
    if not named:
        raise XmdError(f"{workdir}: the prepared data set has no trial list",
                       hint="pass --trials FILE (`1 enroll test` or `enroll test target|nontarget`) "
                            "or set evaluation.trials")
    raise XmdError(f"{workdir} has {len(named)} trial lists ({', '.join(sorted(named))})",
                   hint="choose one with --trials NAME or evaluation.trials")


def split_summary(summary: dict) -> tuple[dict, dict]:
    """(metrics, protocol): trial counts and costs describe the protocol, not the model."""
    metrics = {k: v for k, v in summary.items() if k not in _COUNTS}
    return metrics, {k: summary[k] for k in _COUNTS if k in summary}


def nearest_centroid_identification(embeddings: np.ndarray, identities: list[str], ks=(1, 5)) -> dict:
    """top-k identification of each utterance among the identities of the set, leave-one-out.

    Each identity's centroid is the mean of its unit-length embeddings; a probe is an
    utterance whose identity has at least two, and its own identity's centroid leaves
    the probe out (otherwise it would find itself). Scores are cosines to the
    centroids; ties count against (xmd_cli.metrics.classification). Identities with
    one utterance still compete as distractors.
    """
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    names, y = np.unique(np.asarray(identities), return_inverse=True)
    counts = np.bincount(y)
    sums = np.zeros((names.size, unit.shape[1]))
    np.add.at(sums, y, unit)
    sum_norms = np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
    probes = np.flatnonzero(counts[y] >= 2)
    if names.size < 2 or probes.size == 0:
        return {}
    ranks = np.empty(probes.size, dtype=np.int64)
    for start in range(0, probes.size, _BLOCK):
        rows = probes[start:start + _BLOCK]
        dots = unit[rows] @ sums.T
        scores = dots / sum_norms
        own, r = y[rows], np.arange(rows.size)
        # Leave-one-out: (sum - u) . u = dot - 1, |sum - u|^2 = |sum|^2 - 2 dot + 1.
        left_out = np.sqrt(np.maximum(sum_norms[own] ** 2 - 2 * dots[r, own] + 1, 1e-24))
        scores[r, own] = (dots[r, own] - 1) / left_out
        ranks[start:start + rows.size] = classification.true_class_rank(scores, own)
    result = {f"top{k}_identification": float((ranks < k).mean()) for k in ks if k < names.size}
    result["identification_probes"] = int(probes.size)
    result["identification_identities"] = int(names.size)
    return result


def _cohort(recipe: Recipe, manifest: Manifest, model: CheckpointModel, out) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mean embedding, per-identity cohort matrix, protocol) from the train split."""
    train = manifest.split("train")
    if not train:
        raise XmdError(f"{manifest.workdir}: evaluation.score_norm={recipe.evaluation.score_norm} needs a "
                       "cohort from the train split, and this data set has none",
                       hint="set evaluation.score_norm=none, or evaluate in a work directory with a train split")
    limit = recipe.evaluation.cohort_utterances
    if len(train) > limit:
        rng = np.random.default_rng(recipe.seed)
        train = [train[i] for i in sorted(rng.choice(len(train), size=limit, replace=False))]
    rows = embed_samples(model, manifest, train, stage="cohort", num_workers=recipe.training.num_workers, out=out)
    labels = np.array([s.label for s in train])
    names, y = np.unique(labels, return_inverse=True)
    cohort = np.zeros((names.size, rows.shape[1]))
    np.add.at(cohort, y, rows)
    cohort /= np.bincount(y)[:, None]
    return rows.mean(axis=0), cohort, {"cohort": f"train split, {len(train)} utterances, "
                                                 f"{names.size} identity means", "cohort_seed": recipe.seed}


def evaluate_verification(recipe: Recipe, manifest: Manifest, model: CheckpointModel, *, trials: str | None,
                          out_dir: Path, allow_stale: bool, out, save_scores: Path | None = None,
                          save_embeddings: Path | None = None) -> dict:
    """Report parts (backend, metrics, protocol, fingerprints, plots) of a checkpoint on a trial list.

    `save_scores` / `save_embeddings` also write the trial scores and the trial utterances'
    embeddings (see `save_trial_outputs`)."""
    from xmd_cli.metrics.plots import det_curve_png

    source = "--trials" if trials else "evaluation.trials"
    path = trials_file(trials or recipe.evaluation.trials, source, manifest.workdir, manifest.dataset)
    by_id = manifest.by_id()
    trial_list = read_trials(path, set(by_id))
    names = list(dict.fromkeys(name for t in trial_list for name in (t.enroll, t.test)))
    samples = [by_id[name] for name in names]
    facts = check_fits(model, "speaker-verification", manifest, {s.label for s in samples},
                       allow_stale=allow_stale)
    rows = embed_samples(model, manifest, samples, stage="trial utterances",
                         num_workers=recipe.training.num_workers, out=out)
    evaluation = recipe.evaluation
    norm, protocol = evaluation.score_norm, {}
    mean = cohort = None
    if norm != "none":
        mean, cohort, protocol = _cohort(recipe, manifest, model, out)
        if norm == "asnorm":
            mean = None  # AS-norm alone; "mean" is its own back-end
    scored = score_trials(dict(zip(names, rows)), trial_list, norm=norm, mean=mean, cohort=cohort,
                          top_n=evaluation.asnorm_top_n, trials_path=path)
    summary = verification_summary(scored.scores, scored.labels, p_targets=evaluation.p_targets,
                                   source=str(path))
    metrics, counts = split_summary(summary)
    saved = save_trial_outputs(trial_list, scored.scores, names, rows, save_scores, save_embeddings)
    # A trial's identities are the manifest labels of its two samples: the identity bootstrap's units.
    enroll_ids = [by_id[t.enroll].label for t in trial_list]
    test_ids = [by_id[t.test].label for t in trial_list]
    intervals: dict = {}
    evidence.add_verification_intervals(metrics, intervals, scored.scores, scored.labels, enroll_ids, test_ids,
                                        p_targets=evaluation.p_targets, resamples=evaluation.bootstrap,
                                        seed=recipe.seed, source=str(path))
    evidence.save_verification(out_dir, scored.scores, scored.labels, enroll_ids, test_ids,
                               evidence.trials_fingerprint(scored.labels, [t.enroll for t in trial_list],
                                                           [t.test for t in trial_list]))
    identification = nearest_centroid_identification(rows, [s.label for s in samples])
    protocol_ident = {k: identification.pop(k) for k in ("identification_probes", "identification_identities")
                      if k in identification}
    metrics.update(identification)
    det = det_curve_png(out_dir / "det.png", scored.scores, scored.labels, summary=summary,
                        title=f"{model.meta.get('recipe', '')} on {path.name} ({scored.backend})")
    protocol = {"trials_file": str(path), **counts, "embedding": describe_embedding(model), **protocol,
                **facts, **intervals}
    if protocol_ident:
        protocol["identification"] = ("leave-one-out nearest centroid (cosine) among the identities of the "
                                      f"trial utterances: {protocol_ident['identification_probes']} probes, "
                                      f"{protocol_ident['identification_identities']} identities")
    if saved:
        protocol["saved"] = saved
    return {"backend": scored.backend, "metrics": metrics, "protocol": protocol,
            "fingerprints": {"trials_sha256": file_sha256(path)}, "plots": {"det": det.name}}


def save_trial_outputs(trial_list, scores: np.ndarray, names: list[str], rows: np.ndarray,
                       scores_path: Path | None, embeddings_path: Path | None) -> dict:
    """Write what rescoring needs without re-embedding; returns {what: file} for the report.

    Scores: `enroll test score target|nontarget` a line in trial order (Kaldi/WeSpeaker), the
    scores this report measured (after the back-end's normalisation), each written with
    repr so it reads back to the same float and `evaluate --scores` gives the same EER.
    Embeddings: the trial utterances' raw embeddings, ids with them
    (`shards.embedfile`: .npz, .safetensors or .ark by suffix).
    """
    from xmd_cli.io import write_text
    from xmd_cli.shards.embedfile import write_embeddings

    saved = {}
    if scores_path is not None:
        lines = (f"{t.enroll} {t.test} {float(score)!r} {'target' if t.target else 'nontarget'}\n"
                 for t, score in zip(trial_list, scores))
        write_text(Path(scores_path), "".join(lines))
        saved["scores"] = str(scores_path)
    if embeddings_path is not None:
        saved["embeddings"] = write_embeddings(Path(embeddings_path), names, rows)["out"]
    return saved


def evaluate_score_file(recipe: Recipe, workdir: Path, scores: Path, *, trials: str | None, out_dir: Path) -> dict:
    """Report parts of a score file made elsewhere, measured by the same scorer."""
    import json

    if not Path(scores).is_file():
        raise XmdError(f"--scores {scores}: no such file")
    dataset_json = Path(workdir) / "dataset.json"
    dataset = json.loads(dataset_json.read_text()) if dataset_json.exists() else {}
    source = "--trials" if trials else "evaluation.trials"
    path = trials_file(trials or recipe.evaluation.trials, source, workdir, dataset, required=False)
    result = score_file(Path(scores), path, p_targets=recipe.evaluation.p_targets, det_png=out_dir / "det.png",
                        with_trials=True)
    per_trial = result.pop("per_trial")
    summary = {k: v for k, v in result.items() if k in _COUNTS or k.startswith(("eer", "min_dcf"))}
    metrics, counts = split_summary(summary)
    uses_trials = result["layout"] != "label score"  # `label score` lines name no trial
    fingerprints = {"scores_sha256": result["scores_sha256"]}
    protocol = {"scores_file": result["scores_file"], "layout": result["layout"], **counts}
    if uses_trials and path is not None:
        fingerprints["trials_sha256"] = result["trials_sha256"]
        protocol["trials_file"] = result["trials_file"]
    found = _score_file_identities(Path(workdir), per_trial["enroll"], per_trial["test"])
    if isinstance(found, str):
        protocol["intervals"] = (f"absent: {found}; a trial-level bootstrap is not offered because trials "
                                 "sharing a speaker are not independent, so it would be too narrow")
    else:
        enroll_ids, test_ids, manifest_sha256 = found
        fingerprints["manifest_sha256"] = manifest_sha256
        evidence.add_verification_intervals(metrics, protocol, per_trial["scores"], per_trial["labels"], enroll_ids,
                                            test_ids, p_targets=recipe.evaluation.p_targets,
                                            resamples=recipe.evaluation.bootstrap, seed=recipe.seed,
                                            source=str(scores))
        evidence.save_verification(out_dir, per_trial["scores"], per_trial["labels"], enroll_ids, test_ids,
                                   evidence.trials_fingerprint(per_trial["labels"], per_trial["enroll"],
                                                               per_trial["test"]))
    return {"backend": result["backend"], "metrics": metrics, "protocol": protocol,
            "fingerprints": fingerprints, "plots": {"det": "det.png"}}


def _score_file_identities(workdir: Path, enroll: list[str] | None, test: list[str] | None):
    """(enroll identities, test identities, manifest sha256) from the manifest of `workdir`, or why not.

    An utterance is looked up as named, then without its extension (`id10270/x/00001.wav`)."""
    import os

    from xmd_cli.data.manifest import read_manifest

    if enroll is None:
        return "`label score` lines name no utterances, so their speakers are unknown"
    if not (Path(workdir) / "manifest.jsonl").exists():
        return f"{workdir} has no manifest.jsonl naming the utterances' speakers (pass -w of the prepared data)"
    manifest = read_manifest(workdir)
    label = {s.id: s.label for s in manifest.samples}
    identities = []
    for names in (enroll, test):
        found = [label.get(name, label.get(os.path.splitext(name)[0])) for name in names]
        if None in found:
            missing = names[found.index(None)]
            return f"utterance {missing!r} of the score file is not in {manifest.workdir}/manifest.jsonl"
        identities.append(found)
    return identities[0], identities[1], manifest.fingerprint
