"""The distillation method's settings as explicit records, one a term: what `DistillationLoss` is built from.

Every constant of docs/method.md is a field here (`FeatureTerm`, `ClassifierTerm`,
`RelationTerm`, `QualityWeighting`), so the loss, its tests and its benchmarks
never read a recipe; `DistillationLoss.from_recipe` maps a recipe's `method`
section onto them one to one.
"""

from __future__ import annotations

from dataclasses import dataclass


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
