"""The training losses: the asymmetric loss against values computed by hand, and the model's tagging, alignment and
distillation losses and their gradients against the authors' training forward (`reference_losses.pt`)."""

import math

import pytest
import torch

from transformers_ramplus.training.losses import alignment_loss, asymmetric_loss, distillation_loss, tagging_loss


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


# ------------------------------------------------------------------ against the authors' training forward
# `reference_losses.pt`: the original `RAM_plus.forward` (eval mode) on the golden tiny checkpoint and the reference
# pixel values: each loss and the gradient of each loss alone for four original parameters.
ORIGINAL_PARAMETERS = {
    "fc.weight": "classifier.weight",
    "reweight_scale": "reweight_scale",
    "wordvec_proj.weight": "query_projection.weight",
    "image_proj.weight": "image_projection.weight",
}
LOSS_INPUTS = {
    "tag": ("tag_loss", lambda inputs: {"labels": inputs["image_tag"].float()}),
    "alignment": ("alignment_loss", lambda inputs: {"caption_embeds": inputs["batch_text_embed"]}),
    "distillation": ("distillation_loss", lambda inputs: {"teacher_image_embeds": inputs["clip_feature"]}),
}


@pytest.fixture(scope="module")
def golden_model(converted_tiny):
    from transformers_ramplus import RamPlusModel

    return RamPlusModel.from_pretrained(converted_tiny).eval()  # eval: dropout off, as the reference


@pytest.mark.parametrize("loss_name", ["tag", "alignment", "distillation"])
def test_losses_and_gradients_match_the_authors(golden_model, reference_outputs, reference_losses, loss_name):
    field, make_inputs = LOSS_INPUTS[loss_name]
    golden_model.zero_grad(set_to_none=True)
    output = golden_model(pixel_values=reference_outputs["pixel_values"], **make_inputs(reference_losses["inputs"]))
    loss = getattr(output, field)
    expected = reference_losses["losses"][loss_name]
    torch.testing.assert_close(loss.detach(), expected, rtol=2e-6, atol=0)
    # only this loss is computed, so the model's total is this loss (weight 1)
    torch.testing.assert_close(output.loss.detach(), expected, rtol=2e-6, atol=0)
    loss.backward()
    parameters = dict(golden_model.named_parameters())
    for original, ours in ORIGINAL_PARAMETERS.items():
        reference = reference_losses["grads"][loss_name][original]
        gradient = parameters[ours].grad
        gradient = torch.zeros_like(parameters[ours]) if gradient is None else gradient
        scale = float(reference.abs().max())
        # ~1e-6 relative to the largest entry for a correct implementation; a zero reference must stay zero
        torch.testing.assert_close(
            gradient, reference.reshape(gradient.shape), rtol=1e-5, atol=max(scale, 1e-6) * 1e-5,
            msg=lambda m: f"gradient of the {loss_name} loss for {original} ({ours}): {m}",
        )
    golden_model.zero_grad(set_to_none=True)


def test_weighted_total_of_the_three_losses_matches_the_authors(converted_tiny, reference_outputs, reference_losses):
    from transformers_ramplus import RamPlusModel

    model = RamPlusModel.from_pretrained(
        converted_tiny, tag_loss_weight=1.0, align_loss_weight=0.5, distill_loss_weight=2.0
    ).eval()
    inputs = reference_losses["inputs"]
    with torch.no_grad():
        output = model(
            pixel_values=reference_outputs["pixel_values"],
            labels=inputs["image_tag"].float(),
            caption_embeds=inputs["batch_text_embed"],
            teacher_image_embeds=inputs["clip_feature"],
        )
    losses = reference_losses["losses"]
    expected = losses["tag"] + 0.5 * losses["alignment"] + 2.0 * losses["distillation"]
    torch.testing.assert_close(output.loss, expected, rtol=2e-6, atol=0)
    for name, (field, _) in LOSS_INPUTS.items():
        torch.testing.assert_close(getattr(output, field), losses[name], rtol=2e-6, atol=0)
