"""The trainable parts of distillation: the projection head P and the classifiers the embeddings meet.

`ProjectionHead` maps teacher rows into the student's space (z = P(t)); `AAMClassifier`
is the additive angular margin softmax that s and z share; `GeneratedClasses` makes the
teacher-generated classifier's rows from the class means of the teacher (formulas in
`distill`'s docstring and docs/method.md). The teacher itself never trains;
`distill.DistillationLoss` owns these modules.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from xmd_cli.errors import XmdError


class ProjectionHead(nn.Module):
    """P: teacher embedding -> student embedding space. The teacher itself never trains.

    `kind` is "mlp" (Linear, BatchNorm, ReLU, Linear), "linear" or "identity".

    >>> head = ProjectionHead(teacher_dim=6, student_dim=4, kind="linear")
    >>> head(torch.zeros(3, 6)).shape
    torch.Size([3, 4])
    >>> ProjectionHead(4, 4, kind="identity")(torch.ones(1, 4)).tolist()
    [[1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, teacher_dim: int, student_dim: int, kind: str = "mlp", hidden: int | None = None):
        super().__init__()
        if kind == "mlp":
            hidden = hidden or max(teacher_dim, student_dim)
            self.net = nn.Sequential(nn.Linear(teacher_dim, hidden), nn.BatchNorm1d(hidden),
                                     nn.ReLU(inplace=True), nn.Linear(hidden, student_dim))
        elif kind == "linear":
            self.net = nn.Linear(teacher_dim, student_dim)
        elif kind == "identity":
            if teacher_dim != student_dim:
                raise XmdError(f"method.projection: identity needs equal dimensions, but the teacher has "
                               f"{teacher_dim} and the student {student_dim}",
                               hint="use projection linear or mlp, or set student.embedding_dim to the teacher's")
            self.net = nn.Identity()
        else:
            raise XmdError(f"method.projection: unknown kind {kind!r}")

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.net(t)


class AAMClassifier(nn.Module):
    """Additive angular margin softmax (ArcFace): logit_y = scale * cos(theta_y + margin).

    `per_sample_loss` returns the cross-entropy of every sample, so that quality
    weights can scale each one. `margin` is an angle in radians.

    >>> head = AAMClassifier(2, 2, scale=10.0, margin=0.3)
    >>> _ = head.weight.data.copy_(torch.eye(2))
    >>> head.logits(torch.tensor([[1.0, 0.0]])).tolist()  # no labels: plain scaled cosines
    [[10.0, 0.0]]
    >>> round(head.logits(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))[0, 0].item(), 3)  # 10 cos(0 + 0.3)
    9.553
    """

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.2, learned: bool = True):
        super().__init__()
        weight = torch.empty(classes, dim)
        nn.init.xavier_uniform_(weight)
        if learned:
            self.weight = nn.Parameter(weight)
        else:
            # A teacher-generated W is computed, not learned: the buffer holds its latest value, so that
            # the checkpoint's `method.classifier.weight` is what evaluation classifies with.
            self.register_buffer("weight", weight)
        self.scale, self.margin = scale, margin

    def cosine(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight if weight is None else weight, dim=1))

    def logits(self, x: torch.Tensor, labels: torch.Tensor | None = None,
               weight: torch.Tensor | None = None) -> torch.Tensor:
        """`weight` replaces the module's own W (the teacher-generated classifier passes its rows)."""
        cos = self.cosine(x, weight)
        if labels is None or self.margin == 0:
            return self.scale * cos
        sin = torch.sqrt((1.0 - cos * cos).clamp(1e-9, 1.0))
        cos_m = cos * math.cos(self.margin) - sin * math.sin(self.margin)
        # Past theta = pi - m, cos(theta + m) stops falling; the usual ArcFace fallback keeps
        # the target logit monotonic in theta there.
        threshold, fallback = math.cos(math.pi - self.margin), math.sin(math.pi - self.margin) * self.margin
        cos_m = torch.where(cos > threshold, cos_m, cos - fallback)
        one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.scale * (one_hot * cos_m + (1 - one_hot) * cos)

    def per_sample_loss(self, x: torch.Tensor, labels: torch.Tensor,
                        weight: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(self.logits(x, labels, weight), labels, reduction="none")


def generated_class_weights(projected_means: torch.Tensor, has_mean: torch.Tensor, learned: torch.Tensor,
                            generated_weight: float) -> torch.Tensor:
    """Teacher-generated classifier rows: W_k = n(a n(P(mu_k)) + (1 - a) n(L_k)); n(L_k) where class k has
    no teacher row (n: unit length; a = generated_weight; L the learned rows).

    >>> generated_class_weights(torch.tensor([[3.0, 0.0], [9.0, 9.0]]), torch.tensor([True, False]),
    ...                         torch.tensor([[0.0, 2.0], [0.0, 5.0]]), 1.0).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    learned = F.normalize(learned, dim=1)
    mixed = generated_weight * F.normalize(projected_means, dim=1) + (1.0 - generated_weight) * learned
    return torch.where(has_mean[:, None], F.normalize(mixed, dim=1), learned)


def project_with_running_stats(head: nn.Module, t: torch.Tensor) -> torch.Tensor:
    """head(t) with every BatchNorm in eval mode (running statistics, none updated).

    The class means are not a batch of samples: in training mode BatchNorm would normalise them by
    their own statistics and mix those into its running ones. With running statistics, the W that
    training classifies against is the same function of P that a checkpoint's evaluation uses.

    >>> head = ProjectionHead(3, 2, "mlp").train()
    >>> _ = project_with_running_stats(head, torch.ones(1, 3))  # one row: fine with running statistics
    >>> head.training
    True
    """
    norms = [m for m in head.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for module in norms:
        module.eval()
    try:
        return head(t)
    finally:
        for module in norms:
            module.train()


class GeneratedClasses(nn.Module):
    """What the teacher-generated classifier is made of: the training split's mean teacher row of each
    class (a buffer, computed once before training, never updated), which classes have one, and the
    learned rows L that stand in for the others and that `generated_weight` < 1 mixes in.

    >>> classes = GeneratedClasses(torch.eye(2), torch.tensor([True, False]), student_dim=2, generated_weight=1.0)
    >>> weights = classes(nn.Identity())  # class 0 from its teacher mean, class 1 from its learned row
    >>> weights[0].tolist(), torch.allclose(weights[1], F.normalize(classes.learned[1], dim=0))
    ([1.0, 0.0], True)
    """

    def __init__(self, class_means: torch.Tensor, has_mean: torch.Tensor, student_dim: int, generated_weight: float):
        super().__init__()
        self.register_buffer("class_means", class_means.detach().float().clone())
        self.register_buffer("has_mean", has_mean.detach().bool().clone())
        self.learned = nn.Parameter(torch.empty(class_means.shape[0], student_dim))
        nn.init.xavier_uniform_(self.learned)
        self.generated_weight = generated_weight

    def forward(self, projection: nn.Module) -> torch.Tensor:
        projected = project_with_running_stats(projection, self.class_means)
        return generated_class_weights(projected, self.has_mean, self.learned, self.generated_weight)
