"""The terms of the distillation loss as functions of tensors: d_i, L_feat, L_rel, L_kd and the QAW weights w_i.

The formulas are in `distill`'s docstring and docs/method.md. Nothing here holds
parameters (the trainable parts are in `distill_heads`); `distill.DistillationLoss`
combines both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xmd_cli.models.distill_config import QualityWeighting
from xmd_cli.registry import Registry

# Per-sample distances d_i(s, z), by the name `method.feature.loss` gives them.
DISTANCES: Registry = Registry("feature distance", key="method.feature.loss")
DISTANCES.add("cosine", lambda s, z: 1.0 - F.cosine_similarity(s, z, dim=1))  # in [0, 2]
DISTANCES.add("l2", lambda s, z: ((s - z) ** 2).mean(dim=1))  # mean squared difference


def feature_distance(s: torch.Tensor, z: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample distance d_i between student and projected teacher embeddings.

    >>> feature_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), "cosine")
    tensor([1.])
    """
    return DISTANCES.get(kind)(s, z)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """sum_i w_i v_i / sum_i w_i; the plain mean without weights, 0 for no values.

    >>> values = torch.tensor([1.0, 3.0])
    >>> weighted_mean(values, None).item(), weighted_mean(values, torch.tensor([1.0, 3.0])).item()
    (2.0, 2.5)
    >>> weighted_mean(torch.zeros(0), None).item()
    0.0
    """
    if values.numel() == 0:
        return values.new_zeros(())
    if weights is None:
        return values.mean()
    return (weights * values).sum() / weights.sum().clamp_min(1e-12)


def margin_loss(s, z, *, kind: str, margin: float, weights=None) -> torch.Tensor:
    """Soft feature-level constraint: only pairs farther apart than `margin` are pulled in.

    L_feat = sum_i w_i max(0, d_i - m) / sum_i w_i. A pair at cosine distance 1 with
    m = 0.2 contributes 0.8; a pair already within the margin contributes nothing:

    >>> s = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> z = torch.tensor([[0.0, 1.0], [1.0, 0.1]])
    >>> round(margin_loss(s, z, kind="cosine", margin=0.2).item(), 4)
    0.4
    """
    return weighted_mean(F.relu(feature_distance(s, z, kind) - margin), weights)


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every pair of rows of `x`.

    >>> cosine_matrix(torch.tensor([[1.0, 0.0], [3.0, 0.0]])).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    unit = F.normalize(x, dim=1)
    return unit @ unit.T


def relation_loss(s: torch.Tensor, z: torch.Tensor, *, margin: float, weights=None) -> torch.Tensor:
    """Soft relational constraint over the pairs i < j of a batch:
    L_rel = sum w_i w_j max(0, |cos(s_i, s_j) - cos(z_i, z_j)| - m) / sum w_i w_j (plain mean without weights).

    >>> s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])              # student: the pair is orthogonal (cos 0)
    >>> round(relation_loss(s, torch.tensor([[1.0, 0.0], [1.0, 1.0]]), margin=0.1).item(), 4)  # teacher: cos 0.7071
    0.6071
    """
    i, j = torch.triu_indices(s.shape[0], s.shape[0], offset=1, device=s.device)
    gap = (cosine_matrix(s)[i, j] - cosine_matrix(z)[i, j]).abs()
    return weighted_mean(F.relu(gap - margin), None if weights is None else weights[i] * weights[j])


def effective_sample_size(weights: torch.Tensor) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2: n for equal weights, 1 when one sample has all.

    >>> effective_sample_size(torch.tensor([1.0, 1.0, 1.0, 1.0])), effective_sample_size(torch.tensor([4.0, 0, 0, 0]))
    (4.0, 1.0)
    """
    weights = weights.double()
    return float(weights.sum() ** 2 / (weights ** 2).sum().clamp_min(1e-300))


def logit_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened logits, times T^2 (Hinton et al.).

    The teacher logits are detached: only the student learns from this term.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
    >>> logit_kd(logits, logits, temperature=4.0).item()  # identical distributions
    0.0
    >>> round(logit_kd(torch.zeros(1, 2), torch.tensor([[4.0, -4.0]]), temperature=2.0).item(), 4)
    2.4122
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    p_teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    kl = (p_teacher * (torch.log(p_teacher.clamp_min(1e-12)) - log_p_student)).sum(dim=1)
    return weighted_mean(kl, weights) * temperature ** 2


def qaw_weights(config: QualityWeighting, teacher_quality: torch.Tensor | None,
                student_quality: torch.Tensor | None, batch: int, device=None) -> torch.Tensor:
    """Quality-based adaptive weights with batch mean 1 (all ones when QAW is off).

    >>> qaw_weights(QualityWeighting(), torch.tensor([0.2, 0.6]), None, 2)
    tensor([0.5000, 1.5000])
    """
    ones = torch.ones(batch, device=device)
    if not config.enabled or (teacher_quality is None and student_quality is None):
        return ones
    q = ones.clone()
    if teacher_quality is not None:
        q = q * teacher_quality.clamp(1e-6, 1.0) ** config.alpha
    if student_quality is not None:
        q = q * student_quality.clamp(1e-6, 1.0) ** config.beta
    if config.mode == "power":
        powered = q ** config.gamma
        return powered / powered.mean()
    return batch * F.softmax(q / config.tau, dim=0)
