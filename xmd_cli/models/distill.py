"""The distillation loss: projection head, margin loss, shared classifier, logit KD, QAW.

Formulas (docs/method.md, our reading of the papers):
    d_i           = 1 - cos(s_i, z_i)      or mean_k (s_ik - z_ik)^2 for l2
    L_feat        = sum_i w_i max(0, d_i - m) / sum_i w_i
    L_cls_student = AAM(s_i, y_i; W)
    L_cls_teacher = sum_i w_i AAM(z_i, y_i; W) / sum_i w_i      (shared classifier)
    L_kd          = KL(softmax(W_t z / T) || softmax(W s / T)) T^2   (hard classifier-level baseline)
    L             = L_cls_student + lambda_feat L_feat + lambda_cls (L_cls_teacher or L_kd)
with z_i = P(t_i) and w_i the quality-based adaptive weights. Every constant is
an explicit argument (`FeatureTerm`, `ClassifierTerm`, `QualityWeighting`); the
recipe's `method` section maps onto them one to one (`DistillationLoss.from_recipe`).
`DistillationLoss.forward` returns every term by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from xmd_cli.errors import XmdError
from xmd_cli.registry import Registry


@dataclass(frozen=True)
class FeatureTerm:
    """L_feat: the distance d_i ("cosine", "l2" or "none"), its margin m and its weight lambda_feat.

    >>> FeatureTerm(loss="l2", margin=0.0)
    FeatureTerm(loss='l2', margin=0.0, weight=1.0)
    """

    loss: str = "cosine"
    margin: float = 0.2
    weight: float = 1.0


@dataclass(frozen=True)
class ClassifierTerm:
    """The classifier-level term: "shared" (one AAM classifier W for s and z), "logit-kd" or "none".

    `angular_margin` (radians) and `scale` are the AAM softmax's; `temperature` is logit KD's T.

    >>> ClassifierTerm(kind="logit-kd", temperature=2.0)
    ClassifierTerm(kind='logit-kd', weight=1.0, temperature=2.0, scale=30.0, angular_margin=0.2)
    """

    kind: str = "shared"
    weight: float = 1.0
    temperature: float = 4.0
    scale: float = 30.0
    angular_margin: float = 0.2


@dataclass(frozen=True)
class QualityWeighting:
    """Quality-based adaptive weights: q = q_t^alpha q_s^beta, then w = q^gamma / mean ("power")
    or w = B softmax(q / tau) ("softmax"), applied to the terms named in `apply_to`.

    >>> config = QualityWeighting(mode="softmax", apply_to=("feat",))
    >>> config.mode, config.tau, config.apply_to
    ('softmax', 0.1, ('feat',))
    """

    enabled: bool = True
    mode: str = "power"
    gamma: float = 1.0
    tau: float = 0.1
    alpha: float = 1.0
    beta: float = 1.0
    apply_to: tuple[str, ...] = ("feat", "cls_teacher")


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

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale, self.margin = scale, margin

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))

    def logits(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosine(x)
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

    def per_sample_loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(x, labels), labels, reduction="none")


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


class DistillationLoss(nn.Module):
    """All loss terms of one method configuration; the trainable parts of the method live here.

    forward(s, t, labels, has_teacher, teacher_quality, student_quality) -> dict of named
    terms plus "total". Samples without a teacher row (`has_teacher` False) get only the
    student's classification loss; the teacher-side terms average over the others.

    >>> _ = torch.manual_seed(0)
    >>> loss = DistillationLoss(student_dim=4, teacher_dim=6, classes=3)
    >>> terms = loss(torch.randn(4, 4), torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    >>> sorted(terms), loss.teacher_terms()
    (['cls_student', 'cls_teacher', 'feat', 'total'], ['feat', 'cls_teacher'])
    >>> total = terms["cls_student"] + terms["feat"] + terms["cls_teacher"]  # both weights are 1
    >>> torch.allclose(terms["total"], total)
    True
    """

    def __init__(self, *, student_dim: int, teacher_dim: int | None, classes: int, projection: str = "mlp",
                 feature: FeatureTerm = FeatureTerm(), classifier: ClassifierTerm = ClassifierTerm(),
                 qaw: QualityWeighting = QualityWeighting()):
        super().__init__()
        self.feature, self.classifier_term, self.qaw = feature, classifier, qaw
        cls = classifier
        self.classifier = AAMClassifier(student_dim, classes, cls.scale, cls.angular_margin)
        self.uses_teacher = teacher_dim is not None and (feature.loss != "none" or cls.kind != "none")
        self.projection = (ProjectionHead(teacher_dim, student_dim, projection)
                           if self.uses_teacher else None)
        # Logit KD needs meaningful teacher logits: a teacher-side classifier of its own,
        # trained by cross-entropy on z, whose (detached) softened outputs teach the student.
        self.teacher_classifier = (AAMClassifier(student_dim, classes, cls.scale, cls.angular_margin)
                                   if self.uses_teacher and cls.kind == "logit-kd" else None)

    @classmethod
    def from_recipe(cls, method, *, student_dim: int, teacher_dim: int | None, classes: int) -> "DistillationLoss":
        """The loss a recipe's `method` section (a `MethodConfig`) describes."""
        feature, classifier, qaw = method.feature, method.classifier, method.qaw
        return cls(student_dim=student_dim, teacher_dim=teacher_dim, classes=classes, projection=method.projection,
                   feature=FeatureTerm(feature.loss, feature.margin, feature.weight),
                   classifier=ClassifierTerm(classifier.kind, classifier.weight, classifier.temperature,
                                             classifier.scale, classifier.angular_margin),
                   qaw=QualityWeighting(qaw.enabled, qaw.mode, qaw.gamma, qaw.tau, qaw.alpha, qaw.beta,
                                        tuple(qaw.apply_to)))

    def teacher_terms(self) -> list[str]:
        """The names of the teacher-driven terms this configuration computes."""
        if not self.uses_teacher:
            return []
        names = ["feat"] if self.feature.loss != "none" else []
        if self.classifier_term.kind == "shared":
            names.append("cls_teacher")
        elif self.classifier_term.kind == "logit-kd":
            names += ["cls_teacher", "kd"]
        return names

    def forward(self, s, t=None, labels=None, has_teacher=None, teacher_quality=None, student_quality=None):
        feature, classifier, batch = self.feature, self.classifier_term, s.shape[0]
        weights = qaw_weights(self.qaw, teacher_quality, student_quality, batch, s.device)
        applies = set(self.qaw.apply_to) if self.qaw.enabled else set()
        terms = {"cls_student": weighted_mean(self.classifier.per_sample_loss(s, labels),
                                              weights if "cls_student" in applies else None)}
        total = terms["cls_student"]
        if self.uses_teacher and t is not None:
            mask = has_teacher if has_teacher is not None else torch.ones(batch, dtype=torch.bool, device=s.device)
            # Every process returns the same terms (DDP averages them by name), zero when this
            # batch has too few teacher rows: the mlp head's BatchNorm needs two rows in training.
            for name in self.teacher_terms():
                terms[name] = s.new_zeros(())
            if int(mask.sum()) >= (2 if self.training else 1):
                z = self.projection(t[mask])
                s_t, y_t = s[mask], labels[mask]
                w_t = weights[mask]
                w_t = w_t / w_t.mean()  # mean 1 over the samples that have a teacher row
                if feature.loss != "none":
                    terms["feat"] = margin_loss(s_t, z, kind=feature.loss, margin=feature.margin,
                                                weights=w_t if "feat" in applies else None)
                    total = total + feature.weight * terms["feat"]
                w_cls = w_t if "cls_teacher" in applies else None
                if classifier.kind == "shared":
                    terms["cls_teacher"] = weighted_mean(self.classifier.per_sample_loss(z, y_t), w_cls)
                    total = total + classifier.weight * terms["cls_teacher"]
                elif classifier.kind == "logit-kd":
                    terms["cls_teacher"] = weighted_mean(self.teacher_classifier.per_sample_loss(z, y_t), None)
                    teacher_logits = self.teacher_classifier.logits(z)
                    terms["kd"] = logit_kd(self.classifier.logits(s_t), teacher_logits,
                                           classifier.temperature, w_cls)
                    total = total + terms["cls_teacher"] + classifier.weight * terms["kd"]
        terms["total"] = total
        return terms
