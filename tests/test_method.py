"""Each loss term of the method against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from xmd_cli.errors import XmdError
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.models.distill_config import ClassifierTerm, FeatureTerm, QualityWeighting, RelationTerm
from xmd_cli.models.distill_heads import AAMClassifier, ProjectionHead
from xmd_cli.models.distill_losses import effective_sample_size, logit_kd, margin_loss, qaw_weights, relation_loss
from xmd_cli.recipe import MethodConfig, QAWConfig

NO_QAW = QualityWeighting(enabled=False)


def test_margin_loss_inside_and_outside_the_margin():
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    z = torch.tensor([[0.0, 1.0],      # orthogonal: d = 1, outside m = 0.2 -> 0.8
                      [1.0, 0.1]])     # d = 1 - 1/sqrt(1.01) ~ 0.005, inside -> 0
    per_pair = [0.8, 0.0]
    assert margin_loss(s, z, kind="cosine", margin=0.2).item() == pytest.approx(sum(per_pair) / 2)
    weights = torch.tensor([3.0, 1.0])
    assert margin_loss(s, z, kind="cosine", margin=0.2, weights=weights).item() == pytest.approx(0.8 * 3 / 4)


def test_zero_margin_is_the_hard_loss():
    torch.manual_seed(0)
    s, z = torch.randn(8, 5), torch.randn(8, 5)
    hard_cosine = (1 - F.cosine_similarity(s, z)).mean()
    assert margin_loss(s, z, kind="cosine", margin=0.0).item() == pytest.approx(hard_cosine.item())
    assert margin_loss(s, z, kind="l2", margin=0.0).item() == pytest.approx(F.mse_loss(s, z).item())


def test_aam_target_logit_is_scaled_cos_of_theta_plus_margin():
    head = AAMClassifier(2, 2, scale=10.0, margin=0.3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    theta = 0.5
    x = torch.tensor([[math.cos(theta), math.sin(theta)]])
    logits = head.logits(x, torch.tensor([0]))
    assert logits[0, 0].item() == pytest.approx(10 * math.cos(theta + 0.3), abs=1e-5)
    assert logits[0, 1].item() == pytest.approx(10 * math.cos(math.pi / 2 - theta), abs=1e-5)
    expected = -torch.log_softmax(logits, dim=1)[0, 0]
    assert head.per_sample_loss(x, torch.tensor([0]))[0].item() == pytest.approx(expected.item())


def test_logit_kd_matches_kl_div_and_vanishes_for_equal_logits():
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    T = 3.0
    reference = F.kl_div(F.log_softmax(student / T, 1), F.softmax(teacher / T, 1), reduction="batchmean") * T * T
    assert logit_kd(student, teacher, T).item() == pytest.approx(reference.item(), rel=1e-5)
    assert logit_kd(teacher, teacher, T).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("mode", ["power", "softmax"])
def test_qaw_weights_have_mean_one_and_follow_quality(mode):
    config = QualityWeighting(mode=mode, gamma=2.0, tau=0.2)
    q_teacher = torch.tensor([0.9, 0.1, 0.5, 0.7])
    q_student = torch.tensor([0.8, 0.8, 0.8, 0.8])
    w = qaw_weights(config, q_teacher, q_student, 4)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.argsort(w).tolist() == torch.argsort(q_teacher).tolist()
    assert torch.equal(qaw_weights(QualityWeighting(enabled=False), q_teacher, q_student, 4), torch.ones(4))


def test_qaw_power_mode_by_hand():
    w = qaw_weights(QualityWeighting(alpha=1, beta=0, gamma=1), torch.tensor([0.2, 0.6]), None, 2)
    assert w.tolist() == pytest.approx([0.5, 1.5])


def test_shared_classifier_gradients_reach_projection_and_student():
    torch.manual_seed(0)
    loss = DistillationLoss(student_dim=4, teacher_dim=6, classes=3, feature=FeatureTerm(loss="none"),
                            classifier=ClassifierTerm(kind="shared"), qaw=NO_QAW)
    student_embedding = torch.randn(5, 4, requires_grad=True)
    terms = loss(student_embedding, torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1]))
    assert set(terms) == {"cls_student", "cls_teacher", "total"}
    terms["cls_teacher"].backward(retain_graph=True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.projection.parameters())
    shared_grad_from_teacher = loss.classifier.weight.grad.clone()
    assert shared_grad_from_teacher.abs().sum() > 0
    loss.zero_grad()
    terms["cls_student"].backward()
    assert student_embedding.grad.abs().sum() > 0 and loss.classifier.weight.grad.abs().sum() > 0


def test_samples_without_teacher_row_get_only_the_student_term():
    torch.manual_seed(0)
    loss = DistillationLoss(student_dim=4, teacher_dim=4, classes=2, qaw=NO_QAW)
    loss.eval()  # BatchNorm in the mlp head uses running stats: results independent of batch make-up
    s, t, y = torch.randn(4, 4), torch.randn(4, 4), torch.tensor([0, 1, 0, 1])
    has = torch.tensor([True, True, False, False])
    masked = loss(s, t, y, has_teacher=has)
    subset = loss(s[:2], t[:2], y[:2])
    assert masked["feat"].item() == pytest.approx(subset["feat"].item())
    assert masked["cls_teacher"].item() == pytest.approx(subset["cls_teacher"].item())
    none = loss(s, t, y, has_teacher=torch.zeros(4, dtype=torch.bool))
    # Same terms on every process (DDP averages them by name); without teacher rows they are 0.
    assert set(none) == set(masked) and none["feat"].item() == none["cls_teacher"].item() == 0.0
    assert none["total"].item() == pytest.approx(none["cls_student"].item())


def test_one_teacher_row_in_training_skips_the_teacher_terms():
    # The mlp head's BatchNorm cannot normalise one row in training mode: skip, don't crash.
    loss = DistillationLoss(student_dim=4, teacher_dim=4, classes=2, qaw=NO_QAW)
    terms = loss(torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0, 1, 0]),
                 has_teacher=torch.tensor([True, False, False]))
    assert terms["feat"].item() == 0.0 and torch.isfinite(terms["total"])


def test_total_combines_terms_with_recipe_weights():
    torch.manual_seed(0)
    loss = DistillationLoss(student_dim=4, teacher_dim=4, classes=2, feature=FeatureTerm(weight=0.5),
                            classifier=ClassifierTerm(weight=2.0), qaw=NO_QAW)
    terms = loss(torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1] * 3))
    expected = terms["cls_student"] + 0.5 * terms["feat"] + 2.0 * terms["cls_teacher"]
    assert terms["total"].item() == pytest.approx(expected.item())


def test_logit_kd_configuration_returns_kd_term():
    loss = DistillationLoss(student_dim=4, teacher_dim=8, classes=3, projection="linear",
                            feature=FeatureTerm(loss="none"), classifier=ClassifierTerm(kind="logit-kd"))
    terms = loss(torch.randn(5, 4), torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1]))
    assert {"kd", "cls_teacher", "cls_student"} <= set(terms)


def test_identity_projection_needs_equal_dimensions():
    with pytest.raises(XmdError, match="identity needs equal dimensions"):
        ProjectionHead(6, 4, "identity")


def test_from_recipe_maps_every_method_field():
    config = MethodConfig(projection="linear", feature={"loss": "l2", "margin": 0.3, "weight": 0.5},
                          classifier={"kind": "logit-kd", "weight": 2.0, "temperature": 3.0, "scale": 20.0,
                                      "angular_margin": 0.1},
                          qaw={"mode": "softmax", "gamma": 2.0, "tau": 0.3, "alpha": 0.5, "beta": 0.0,
                               "apply_to": ["feat"]})
    loss = DistillationLoss.from_recipe(config, student_dim=4, teacher_dim=8, classes=3)
    assert loss.feature == FeatureTerm("l2", 0.3, 0.5)
    assert loss.classifier_term == ClassifierTerm("logit-kd", 2.0, 3.0, 20.0, 0.1)
    assert loss.qaw == QualityWeighting(True, "softmax", 2.0, 0.3, 0.5, 0.0, ("feat",))
    assert loss.classifier.margin == 0.1 and isinstance(loss.projection.net, torch.nn.Linear)
    config = MethodConfig(classifier={"kind": "teacher-generated", "generated_weight": 0.25},
                          relation={"weight": 0.5, "margin": 0.3, "target": "raw"})
    loss = DistillationLoss.from_recipe(config, student_dim=2, teacher_dim=2, classes=2,
                                        class_means=torch.eye(2), has_class_mean=torch.tensor([True, False]))
    assert loss.classifier_term.generated_weight == 0.25 and loss.relation == RelationTerm(0.5, 0.3, "raw")
    assert loss.generated.has_mean.tolist() == [True, False]


def test_new_terms_are_off_by_default():
    method = MethodConfig()
    assert method.relation.weight == 0.0 and method.classifier.kind == "shared"
    loss = DistillationLoss.from_recipe(method, student_dim=4, teacher_dim=4, classes=2)
    assert "relation" not in loss.teacher_terms() and loss.generated is None
    assert isinstance(loss.classifier.weight, torch.nn.Parameter)


# ---------------------------------------------------------------- teacher-generated classifier
def linear_generated_loss(class_means, has_mean=None, generated_weight=1.0, **kwargs) -> DistillationLoss:
    """2-d teacher and student, P(t) = diag(2, 1) t (no bias), a teacher-generated AAM with s = 2, a = 0.2
    (a small scale keeps the losses far from 0, where float32 cross-entropy loses digits)."""
    loss = DistillationLoss(student_dim=2, teacher_dim=2, classes=class_means.shape[0], projection="linear",
                            feature=FeatureTerm(loss="none"),
                            classifier=ClassifierTerm(kind="teacher-generated", scale=2.0, angular_margin=0.2,
                                                      generated_weight=generated_weight),
                            qaw=NO_QAW, class_means=class_means, has_class_mean=has_mean, **kwargs)
    with torch.no_grad():
        loss.projection.net.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        loss.projection.net.bias.zero_()
    return loss


def test_generated_rows_are_the_projected_class_means_normalised():
    loss = linear_generated_loss(torch.tensor([[1.0, 1.0], [0.0, 3.0]]))
    # P(mu_0) = (2, 1) -> (2, 1)/sqrt 5; P(mu_1) = (0, 3) -> (0, 1)
    expected = [[2 / math.sqrt(5), 1 / math.sqrt(5)], [0.0, 1.0]]
    assert loss.class_weight().tolist() == [pytest.approx(row, abs=1e-6) for row in expected]


def test_generated_classifier_loss_is_aam_on_the_generated_rows():
    loss = linear_generated_loss(torch.tensor([[1.0, 1.0], [0.0, 3.0]]))
    loss.eval()  # one sample: the teacher terms need two rows only in training (BatchNorm); P here has none
    terms = loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    # Student (1, 0), class 0: cos theta_0 = 2/sqrt 5, cos theta_1 = 0; target logit 2 cos(theta_0 + 0.2).
    target = 2 * math.cos(math.acos(2 / math.sqrt(5)) + 0.2)
    assert terms["cls_student"].item() == pytest.approx(math.log(1 + math.exp(-target)), rel=1e-5)
    # The projected teacher P(0, 1) = (0, 1) lies on class 1's row (logit 2): theta_0 = acos(1/sqrt 5).
    target_z = 2 * math.cos(math.acos(1 / math.sqrt(5)) + 0.2)
    assert terms["cls_teacher"].item() == pytest.approx(math.log(1 + math.exp(2 - target_z)), rel=1e-5)


def test_generated_rows_mix_with_learned_rows_and_fall_back_for_classes_without_teacher():
    loss = linear_generated_loss(torch.tensor([[1.0, 0.0], [5.0, 5.0]]), has_mean=torch.tensor([True, False]),
                                 generated_weight=0.5)
    with torch.no_grad():
        loss.generated.learned.copy_(torch.tensor([[0.0, 3.0], [-1.0, 0.0]]))
    # class 0: n(0.5 (1, 0) + 0.5 (0, 1)) = (1, 1)/sqrt 2; class 1 has no teacher row: n(-1, 0), its learned row
    expected = [[1 / math.sqrt(2), 1 / math.sqrt(2)], [-1.0, 0.0]]
    assert loss.class_weight().tolist() == [pytest.approx(row, abs=1e-6) for row in expected]


def test_generated_classifier_trains_through_p_and_checkpoints_the_rows_it_uses():
    torch.manual_seed(0)
    loss = DistillationLoss(student_dim=4, teacher_dim=6, classes=3,
                            classifier=ClassifierTerm(kind="teacher-generated"),
                            qaw=NO_QAW, class_means=torch.randn(3, 6))
    norm = loss.projection.net[1]
    running = norm.running_mean.clone()
    assert "classifier.weight" not in dict(loss.named_parameters())  # a buffer: evaluation reads it, nothing trains it
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.5)
    s = torch.randn(5, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1])
    loss.class_weight()
    assert torch.equal(norm.running_mean, running)  # the class means never enter BatchNorm's statistics
    terms = loss(s, torch.randn(5, 6), y)
    terms["cls_student"].backward()
    assert loss.projection.net[0].weight.grad.abs().sum() > 0  # the student's loss reaches P through W
    before = loss.state_dict()["classifier.weight"].clone()
    optimizer.step()
    saved = loss.state_dict()["classifier.weight"]
    assert not torch.allclose(saved, before) and torch.allclose(saved, loss.class_weight().detach())
    assert torch.equal(loss.state_dict()["generated.class_means"], loss.generated.class_means)


def test_generated_classifier_without_class_means_is_refused():
    with pytest.raises(XmdError, match="teacher-generated needs the mean teacher row"):
        DistillationLoss(student_dim=4, teacher_dim=6, classes=3, classifier=ClassifierTerm(kind="teacher-generated"))


# ---------------------------------------------------------------- relational term
def test_relation_loss_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    # pairs (0,1), (0,2), (1,2): S = 0, .7071, .7071; Z = 1, .7071, .7071 -> |S - Z| = 1, 0, 0
    assert relation_loss(s, z, margin=0.1).item() == pytest.approx(0.9 / 3)
    assert relation_loss(s, z, margin=0.0).item() == pytest.approx(1 / 3)
    weights = torch.tensor([2.0, 0.5, 1.0])  # pair weights 1, 2, 0.5
    assert relation_loss(s, z, margin=0.1, weights=weights).item() == pytest.approx(0.9 * 1 / 3.5)
    assert relation_loss(s[:1], z[:1], margin=0.1).item() == 0.0  # no pair


def test_relation_term_in_the_loss_and_its_qaw_weights():
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 0])
    qaw = QualityWeighting(alpha=1.0, beta=0.0, apply_to=("relation",))
    loss = DistillationLoss(student_dim=2, teacher_dim=2, classes=2, feature=FeatureTerm(loss="none"),
                            classifier=ClassifierTerm(kind="none"), qaw=qaw,
                            relation=RelationTerm(weight=2.0, margin=0.1, target="raw"))
    assert loss.projection is None  # raw teacher cosines need no head
    q = torch.tensor([0.8, 0.2, 0.4])  # w = q / mean(q) = 12/7, 3/7, 6/7; pair weights w_i w_j
    terms = loss(s, t, y, teacher_quality=q)
    w = q / q.mean()
    expected = 0.9 * (w[0] * w[1]) / (w[0] * w[1] + w[0] * w[2] + w[1] * w[2])
    assert terms["relation"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["total"].item() == pytest.approx(terms["cls_student"].item() + 2.0 * expected.item(), rel=1e-5)
    projected = DistillationLoss(student_dim=2, teacher_dim=2, classes=2, projection="identity",
                                 feature=FeatureTerm(loss="none"), classifier=ClassifierTerm(kind="none"),
                                 qaw=NO_QAW, relation=RelationTerm(weight=1.0, margin=0.1))
    assert projected(s, t, y)["relation"].item() == pytest.approx(0.9 / 3)  # P = identity: z = t


# ---------------------------------------------------------------- QAW effective sample size
def test_effective_sample_size_by_hand():
    w = qaw_weights(QualityWeighting(beta=0), torch.tensor([0.2, 0.6]), None, 2)  # 0.5, 1.5
    assert effective_sample_size(w) == pytest.approx(2.0 ** 2 / (0.25 + 2.25))  # 1.6


def test_qaw_effective_summary_flags_a_low_share():
    import numpy as np

    from xmd_cli.stages.side_info import describe_qaw_effective, qaw_effective

    quality = {"teacher": np.array([1.0, 0.01, 0.01, 0.01]), "student": np.array([1.0, 1.0, 1.0, 1.0])}
    summary = qaw_effective(QAWConfig(gamma=1.0), quality, 4)
    w = np.array([1.0, 0.01, 0.01, 0.01])  # the scale of the weights does not change the ratio
    assert summary["effective_size"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    assert summary["effective_share"] == pytest.approx(summary["effective_size"] / 4) and summary["below"]
    assert "below method.qaw.min_effective_share 0.5" in describe_qaw_effective(summary)
    assert not qaw_effective(QAWConfig(gamma=0.0), quality, 4)["below"]  # gamma 0: equal weights, share 1


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_teacher_generated_relation_run_evaluates_with_its_generated_classifier(tmp_path):
    """distill (teacher-generated W, relation term, QAW) on tiny synthetic-captions, then classification:
    the checkpoint's W is P(class means) of the final P, and evaluate classifies with it."""
    import json

    import numpy as np
    from typer.testing import CliRunner

    from xmd_cli.cli import app
    from xmd_cli.data.manifest import read_manifest
    from xmd_cli.inference import embed_samples, load_checkpoint
    from xmd_cli.models.distill_heads import generated_class_weights, project_with_running_stats

    runner = CliRunner()

    def xmd(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result

    work = tmp_path / "w"
    tiny = ["--set", "student.image_size=32", "--set", "student.image_channels=[8,8,16,16]",
            "--set", "student.embedding_dim=16", "--set", "training.epochs=2", "--set", "training.batch_size=8",
            "--set", "method.classifier.kind=teacher-generated", "--set", "method.relation.weight=0.5",
            "--set", "method.qaw.apply_to=[feat,cls_teacher,relation]", "--set", "name=tg"]
    xmd("prepare", "synthetic-captions", "--tiny", "-w", work, "-q")
    xmd("extract-teacher", "-r", "demo-captions", "-w", work, "--device", "cpu", "-q")
    for modality in ("text", "image"):
        xmd("score-quality", "-r", "demo-captions", "-w", work, "--modality", modality, "-q")
    xmd("distill", "-r", "demo-captions", "-w", work, "--device", "cpu", *tiny, "-q")
    run = work / "runs" / "tg"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/relation" in r for r in records)
    epoch_ends = [r for r in records if "qaw/effective_share" in r]
    assert len(epoch_ends) == 2 and 0 < epoch_ends[0]["qaw/effective_share"] <= 1
    meta = json.loads((run / "checkpoints" / "best" / "meta.json").read_text())
    assert meta["qaw_effective"]["effective_share"] == pytest.approx(epoch_ends[0]["qaw/effective_share"])

    model = load_checkpoint(run / "checkpoints" / "best", torch.device("cpu"))
    with torch.no_grad():
        rebuilt = generated_class_weights(
            project_with_running_stats(model.projection(), model.weights["method.generated.class_means"]),
            model.weights["method.generated.has_mean"], model.weights["method.generated.learned"], 1.0)
    assert torch.allclose(model.classifier_weight(), rebuilt, atol=1e-5)

    result = xmd("evaluate", "-r", "demo-captions", "-w", work, "--device", "cpu", "--set", "name=tg",
                 "--task", "classification", "--json")
    report = json.loads(result.stdout)
    manifest = read_manifest(work)
    test = manifest.split("test")
    rows = torch.from_numpy(embed_samples(model, manifest, test, stage="test")).float()
    predicted = (F.normalize(rows, dim=1) @ F.normalize(rebuilt, dim=1).T).argmax(1).numpy()
    truth = np.array([model.classes.index(s.label) for s in test])
    assert report["metrics"]["top1"]["value"] == pytest.approx(float(np.mean(predicted == truth)))
