"""The training losses against values computed by hand from the loss definitions."""

import math

import pytest
import torch

from transformers_ramplus.losses import alignment_loss, asymmetric_loss, distillation_loss, tagging_loss

from conftest import tiny_model


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _asl_term(x, y, gamma_neg, gamma_pos, clip, eps=1e-8):
    p = _sigmoid(x)
    if y == 1:
        return -math.log(max(p, eps)) * (1 - p) ** gamma_pos
    p_neg = min(1 - p + clip, 1.0)
    return -math.log(max(p_neg, eps)) * (1 - p_neg) ** gamma_neg


def test_asymmetric_loss_matches_hand_computed_value():
    logits = torch.tensor([[0.0, 2.0, -1.0], [3.0, -4.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    expected = sum(
        _asl_term(logits[i, j].item(), int(targets[i, j]), 7.0, 0.0, 0.05) for i in range(2) for j in range(3)
    )
    assert tagging_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    # gamma_pos > 0 and no clip
    expected = sum(
        _asl_term(logits[i, j].item(), int(targets[i, j]), 2.0, 1.0, 0.0) for i in range(2) for j in range(3)
    )
    got = asymmetric_loss(logits, targets, gamma_neg=2.0, gamma_pos=1.0, clip=0.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_asymmetric_loss_focusing_weights_carry_no_gradient():
    logits = torch.tensor([[0.0, 2.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0]])
    tagging_loss(logits, targets).backward()
    p0, p1 = _sigmoid(0.0), _sigmoid(2.0)
    # positive, gamma_pos 0: d/dx -log(sigmoid(x)) = -(1 - p)
    assert logits.grad[0, 0].item() == pytest.approx(-(1 - p0), rel=1e-6)
    # negative: weight w = (1 - p_neg)^7 held constant; d/dx -w log(1 - p + clip) = w p (1 - p) / (1 - p + clip)
    p_neg = 1 - p1 + 0.05
    weight = (1 - p_neg) ** 7
    assert logits.grad[0, 1].item() == pytest.approx(weight * p1 * (1 - p1) / p_neg, rel=1e-5)


def test_asymmetric_loss_eps_clamps_the_log():
    loss = asymmetric_loss(torch.tensor([[-100.0]]), torch.tensor([[1.0]]), gamma_neg=0, gamma_pos=0, clip=0)
    assert loss.item() == pytest.approx(-math.log(1e-8), rel=1e-6)


def test_alignment_loss_uses_identity_targets():
    logits = torch.tensor([[1.0, -2.0, 0.3], [0.5, 2.5, -1.0]])
    expected = sum(
        _asl_term(logits[i, j].item(), int(i == j), 4.0, 0.0, 0.05) for i in range(2) for j in range(3)
    )
    assert alignment_loss(logits).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="num_captions"):
        alignment_loss(torch.zeros(3))


def test_distillation_loss_is_mean_l1():
    student = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    teacher = torch.tensor([[0.0, 0.0], [1.0, 5.0]])
    assert distillation_loss(student, teacher).item() == pytest.approx((1 + 2 + 2 + 1) / 4)
    with pytest.raises(ValueError, match="teacher_image_embeds"):
        distillation_loss(student, teacher[:, :1])


def test_model_loss_is_the_weighted_sum_of_the_pure_losses():
    model = tiny_model(num_tags=4, tag_loss_weight=1.0, align_loss_weight=0.5, distill_loss_weight=2.0)
    torch.manual_seed(1)
    pixel_values = torch.randn(3, 3, 64, 64)
    labels = torch.tensor([[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)
    captions = torch.nn.functional.normalize(torch.randn(3, 24), dim=-1)
    teacher = torch.randn(3, 24)
    with torch.no_grad():
        out = model(pixel_values, labels=labels, caption_embeds=captions, teacher_image_embeds=teacher)
        image_embeds = model.get_image_embeds(pixel_values)
        align_logits = model.alignment_logits(image_embeds, captions)
    assert out.tag_loss.item() == pytest.approx(tagging_loss(out.logits, labels).item(), rel=1e-6)
    assert out.alignment_loss.item() == pytest.approx(alignment_loss(align_logits).item(), rel=1e-5)
    assert out.distillation_loss.item() == pytest.approx(
        distillation_loss(image_embeds[:, 0], teacher).item(), rel=1e-6
    )
    total = out.tag_loss + 0.5 * out.alignment_loss + 2.0 * out.distillation_loss
    assert out.loss.item() == pytest.approx(total.item(), rel=1e-6)
