"""The distillation loss: projection head, margin loss, shared classifier, logit KD, QAW.

Formulas (docs/method.md, our reading of the papers):
    d_i           = 1 - cos(s_i, z_i)      or mean_k (s_ik - z_ik)^2 for l2
    L_feat        = sum_i w_i max(0, d_i - m) / sum_i w_i
    L_cls_student = AAM(s_i, y_i; W)
    L_cls_teacher = sum_i w_i AAM(z_i, y_i; W) / sum_i w_i      (shared classifier)
    L_kd          = KL(softmax(W_t z / T) || softmax(W s / T)) T^2   (hard classifier-level baseline)
    W_k           = n(a n(P(mu_k)) + (1 - a) n(L_k))   (teacher-generated classifier; mu_k the class's
                                                       mean teacher row, L the learned W)
    L_rel         = sum_{i<j} w_i w_j max(0, |cos(s_i, s_j) - cos(z_i, z_j)| - m_rel) / sum_{i<j} w_i w_j
    L             = L_cls_student + lambda_feat L_feat + lambda_cls (L_cls_teacher or L_kd) + lambda_rel L_rel
with z_i = P(t_i) and w_i the quality-based adaptive weights. Every constant is
an explicit argument (`FeatureTerm`, `ClassifierTerm`, `RelationTerm`, `QualityWeighting`); the
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
    """The classifier-level term: "shared" (one AAM classifier W for s and z), "teacher-generated"
    (the same, with W generated from the teacher's class means), "logit-kd" or "none".

    `angular_margin` (radians) and `scale` are the AAM softmax's; `temperature` is logit KD's T;
    `generated_weight` is teacher-generated's share a of the generated rows (1 - a: learned rows).

    >>> ClassifierTerm(kind="logit-kd", temperature=2.0)
    ClassifierTerm(kind='logit-kd', weight=1.0, temperature=2.0, scale=30.0, angular_margin=0.2, generated_weight=1.0)
    """

    kind: str = "shared"
    weight: float = 1.0
    temperature: float = 4.0
    scale: float = 30.0
    angular_margin: float = 0.2
    generated_weight: float = 1.0


@dataclass(frozen=True)
class RelationTerm:
    """L_rel: pairwise cosine structure of the batch, student against teacher ("projected": z = P(t),
    or "raw": t), with margin m_rel; weight 0 switches it off.

    >>> RelationTerm(weight=1.0)
    RelationTerm(weight=1.0, margin=0.1, target='projected')
    """

    weight: float = 0.0
    margin: float = 0.1
    target: str = "projected"


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

    @classmethod
    def from_config(cls, qaw) -> "QualityWeighting":
        """From a recipe's `method.qaw` section (duck-typed: models/ does not import the recipe)."""
        return cls(qaw.enabled, qaw.mode, qaw.gamma, qaw.tau, qaw.alpha, qaw.beta, tuple(qaw.apply_to))


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
                 qaw: QualityWeighting = QualityWeighting(), relation: RelationTerm = RelationTerm(),
                 class_means: torch.Tensor | None = None, has_class_mean: torch.Tensor | None = None):
        super().__init__()
        self.feature, self.classifier_term, self.qaw, self.relation = feature, classifier, qaw, relation
        cls = classifier
        self.uses_teacher = teacher_dim is not None and (feature.loss != "none" or cls.kind != "none"
                                                         or relation.weight > 0)
        generated = self.uses_teacher and cls.kind == "teacher-generated"
        self.classifier = AAMClassifier(student_dim, classes, cls.scale, cls.angular_margin, learned=not generated)
        # Only raw-teacher relations need no head: leave it out rather than hold unused parameters.
        needs_head = self.uses_teacher and (feature.loss != "none" or cls.kind != "none" or relation.target != "raw")
        self.projection = ProjectionHead(teacher_dim, student_dim, projection) if needs_head else None
        # Logit KD needs meaningful teacher logits: a teacher-side classifier of its own,
        # trained by cross-entropy on z, whose (detached) softened outputs teach the student.
        self.teacher_classifier = (AAMClassifier(student_dim, classes, cls.scale, cls.angular_margin)
                                   if self.uses_teacher and cls.kind == "logit-kd" else None)
        self.generated = self._generated_classes(generated, class_means, has_class_mean, classes, student_dim)

    def _generated_classes(self, generated: bool, class_means, has_class_mean, classes: int,
                           student_dim: int) -> GeneratedClasses | None:
        if not generated:
            return None
        if class_means is None or tuple(class_means.shape[:1]) != (classes,):
            raise XmdError("method.classifier.kind teacher-generated needs the mean teacher row of each of the "
                           f"{classes} classes (got {None if class_means is None else tuple(class_means.shape)})",
                           hint="train it with `xmd distill`, which computes them from the teacher store")
        if has_class_mean is None:
            has_class_mean = torch.ones(classes, dtype=torch.bool)
        generated = GeneratedClasses(class_means, has_class_mean, student_dim, self.classifier_term.generated_weight)
        with torch.no_grad():  # a W to start from, before the first refresh
            self.classifier.weight.copy_(generated(self.projection))
        return generated

    @classmethod
    def from_recipe(cls, method, *, student_dim: int, teacher_dim: int | None, classes: int,
                    class_means: torch.Tensor | None = None,
                    has_class_mean: torch.Tensor | None = None) -> "DistillationLoss":
        """The loss a recipe's `method` section (a `MethodConfig`) describes; `class_means` and
        `has_class_mean` feed the teacher-generated classifier."""
        feature, classifier, relation = method.feature, method.classifier, method.relation
        return cls(student_dim=student_dim, teacher_dim=teacher_dim, classes=classes, projection=method.projection,
                   feature=FeatureTerm(feature.loss, feature.margin, feature.weight),
                   classifier=ClassifierTerm(classifier.kind, classifier.weight, classifier.temperature,
                                             classifier.scale, classifier.angular_margin,
                                             classifier.generated_weight),
                   qaw=QualityWeighting.from_config(method.qaw),
                   relation=RelationTerm(relation.weight, relation.margin, relation.target),
                   class_means=class_means, has_class_mean=has_class_mean)

    def teacher_terms(self) -> list[str]:
        """The names of the teacher-driven terms this configuration computes."""
        if not self.uses_teacher:
            return []
        names = ["feat"] if self.feature.loss != "none" else []
        if self.classifier_term.kind in ("shared", "teacher-generated"):
            names.append("cls_teacher")
        elif self.classifier_term.kind == "logit-kd":
            names += ["cls_teacher", "kd"]
        if self.relation.weight > 0:
            names.append("relation")
        return names

    def class_weight(self) -> torch.Tensor:
        """The W every sample is classified against: learned, or generated from the teacher's class means."""
        return self.classifier.weight if self.generated is None else self.generated(self.projection)

    @torch.no_grad()
    def refresh_classifier(self) -> None:
        """Store the teacher-generated W (from the current P) in `classifier.weight`, which evaluation reads."""
        if self.generated is not None:
            self.classifier.weight.copy_(self.generated(self.projection))

    def train(self, mode: bool = True):
        # Validation (model.eval()) classifies with `classifier.weight`: it must be the W of the current P.
        if not mode:
            self.refresh_classifier()
        return super().train(mode)

    def state_dict(self, *args, **kwargs):
        # A checkpoint's `method.classifier.weight` is the W it classifies with (docs/method.md).
        self.refresh_classifier()
        return super().state_dict(*args, **kwargs)

    def forward(self, s, t=None, labels=None, has_teacher=None, teacher_quality=None, student_quality=None):
        batch = s.shape[0]
        weights = qaw_weights(self.qaw, teacher_quality, student_quality, batch, s.device)
        applies = set(self.qaw.apply_to) if self.qaw.enabled else set()
        weight = self.class_weight() if self.generated is not None else None
        terms = {"cls_student": weighted_mean(self.classifier.per_sample_loss(s, labels, weight),
                                              weights if "cls_student" in applies else None)}
        total = terms["cls_student"]
        if self.uses_teacher and t is not None:
            mask = has_teacher if has_teacher is not None else torch.ones(batch, dtype=torch.bool, device=s.device)
            # Every process returns the same terms (DDP averages them by name), zero when this
            # batch has too few teacher rows: the mlp head's BatchNorm needs two rows in training.
            for name in self.teacher_terms():
                terms[name] = s.new_zeros(())
            if int(mask.sum()) >= (2 if self.training else 1):
                w_t = weights[mask]
                w_t = w_t / w_t.mean()  # mean 1 over the samples that have a teacher row
                total = self._teacher_side(terms, total, s[mask], t[mask], labels[mask], w_t, applies, weight)
        terms["total"] = total
        return terms

    def _teacher_side(self, terms: dict, total, s_t, t, y_t, w_t, applies: set, weight) -> torch.Tensor:
        """Fill the teacher-driven terms of the samples with a teacher row; returns `total` plus their weighted sum."""
        feature, classifier, relation = self.feature, self.classifier_term, self.relation
        z = self.projection(t) if self.projection is not None else None
        if feature.loss != "none":
            terms["feat"] = margin_loss(s_t, z, kind=feature.loss, margin=feature.margin,
                                        weights=w_t if "feat" in applies else None)
            total = total + feature.weight * terms["feat"]
        w_cls = w_t if "cls_teacher" in applies else None
        if classifier.kind in ("shared", "teacher-generated"):
            terms["cls_teacher"] = weighted_mean(self.classifier.per_sample_loss(z, y_t, weight), w_cls)
            total = total + classifier.weight * terms["cls_teacher"]
        elif classifier.kind == "logit-kd":
            terms["cls_teacher"] = weighted_mean(self.teacher_classifier.per_sample_loss(z, y_t), None)
            teacher_logits = self.teacher_classifier.logits(z)
            terms["kd"] = logit_kd(self.classifier.logits(s_t), teacher_logits, classifier.temperature, w_cls)
            total = total + terms["cls_teacher"] + classifier.weight * terms["kd"]
        if relation.weight > 0:
            target = t if relation.target == "raw" else z
            terms["relation"] = relation_loss(s_t, target, margin=relation.margin,
                                              weights=w_t if "relation" in applies else None)
            total = total + relation.weight * terms["relation"]
        return total
