"""The distillation loss: every term of one method configuration combined, and returned by name.

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

Its parts, one idea a module: `distill_config` (the records above), `distill_losses`
(each term as a function of tensors: d_i, L_feat, L_rel, L_kd, w_i) and `distill_heads`
(the trainable P, the AAM classifier and the teacher-generated W).
"""

from __future__ import annotations

import torch
from torch import nn

from xmd_cli.errors import XmdError
from xmd_cli.models.distill_config import ClassifierTerm, FeatureTerm, QualityWeighting, RelationTerm
from xmd_cli.models.distill_heads import AAMClassifier, GeneratedClasses, ProjectionHead
from xmd_cli.models.distill_losses import logit_kd, margin_loss, qaw_weights, relation_loss, weighted_mean


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
