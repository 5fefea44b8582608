"""The inference fast paths give the same numbers as the straightforward computation (tiny configs)."""

import importlib.util
import sys

import pytest
import torch
import torch.nn.functional as F

from transformers_ramplus import RamPlusModel
from transformers_ramplus.modeling_ram_plus import RamPlusCrossAttention

from conftest import PROJECT_ROOT, tiny_model


def _model(**kwargs):
    """A tiny random model whose logits spread over several units (a fresh head gives values near 0.1)."""
    model = tiny_model(**kwargs)
    with torch.no_grad():
        model.classifier.weight.mul_(30.0)
        model.reweight_scale.fill_(2.0)  # sharper description weights than exp(log(1/0.07)) on random vectors
        model.image_projection.weight.mul_(10.0)  # image tokens that differ from each other
        for layer in model.decoder.layers:  # peaked attention, so that an error in the scores would show
            attention = layer.cross_attention
            for module in (attention.q_proj, attention.k_proj):
                module.weight.mul_(8.0)
                module.bias.mul_(8.0)
    return model


def _pixels(batch=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 64, 64, generator=generator)


def _load_benchmark():
    path = PROJECT_ROOT / "benchmarks" / "bench_inference.py"
    spec = importlib.util.spec_from_file_location("bench_inference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_inference", module)
    spec.loader.exec_module(module)
    return module


def _materialized_logits(model, pixel_values, label_embeds, mask=None):
    """SPEC section 1 written out literally: (B, C, D, T) product, Linear, ReLU, eager decoder."""
    image_embeds = model.get_image_embeds(pixel_values)
    cls = F.normalize(image_embeds[:, 0], dim=-1)
    similarity = torch.einsum("bt,cdt->bcd", cls, label_embeds) * model.reweight_scale.exp()
    if mask is not None:
        similarity = similarity.masked_fill(~mask, float("-inf"))
    weights = similarity.softmax(-1)
    pooled = (weights.unsqueeze(-1) * label_embeds.unsqueeze(0)).sum(2)
    queries = F.relu(model.query_projection(pooled))
    hidden = queries
    for layer in model.decoder.layers:
        attention = layer.cross_attention
        batch, num_queries, hidden_size = hidden.shape
        heads, head_dim = attention.num_heads, attention.head_dim
        q = attention.q_proj(hidden).view(batch, num_queries, heads, head_dim).transpose(1, 2)
        k = attention.k_proj(image_embeds).view(batch, -1, heads, head_dim).transpose(1, 2)
        v = attention.v_proj(image_embeds).view(batch, -1, heads, head_dim).transpose(1, 2)
        probs = (q @ k.transpose(-1, -2) / head_dim**0.5).softmax(-1)
        context = (probs @ v).transpose(1, 2).reshape(batch, num_queries, hidden_size)
        hidden = attention.layer_norm(attention.o_proj(context) + hidden)
        hidden = layer.final_layer_norm(layer.fc2(F.gelu(layer.fc1(hidden))) + hidden)
    return model.classifier(hidden).squeeze(-1)


def test_fast_path_is_the_default_and_matches_the_literal_computation(monkeypatch):
    model = _model(num_tags=6, descriptions_per_tag=4)
    assert model.config._attn_implementation == "sdpa"
    calls = []
    original = RamPlusCrossAttention._folded_forward
    monkeypatch.setattr(
        RamPlusCrossAttention, "_folded_forward", lambda self, *a: calls.append(1) or original(self, *a)
    )
    pixel_values = _pixels()
    label_embeds = model.label_embeds.view(6, 4, -1)
    with torch.no_grad():
        fast = model(pixel_values=pixel_values).logits
        reference = _materialized_logits(model, pixel_values, label_embeds)
    assert len(calls) == model.config.num_hidden_layers  # the folded attention ran in every layer
    torch.testing.assert_close(fast, reference, atol=1e-4, rtol=0)
    assert fast.abs().max() > 1.0 and fast.std() > 0.1  # not a degenerate comparison


def test_fast_path_matches_eager_attention_and_the_attention_outputs():
    model = _model(num_tags=7, descriptions_per_tag=3)
    pixel_values = _pixels()
    with torch.no_grad():
        fast = model(pixel_values=pixel_values)
        with_attentions = model(pixel_values=pixel_values, output_attentions=True)
        model.set_attn_implementation("eager")
        eager = model(pixel_values=pixel_values)
    torch.testing.assert_close(fast.logits, eager.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(fast.logits, with_attentions.logits, atol=1e-4, rtol=0)
    assert with_attentions.cross_attentions[0].shape == (3, 4, 7, with_attentions.image_embeds.shape[1])


def test_training_mode_uses_the_standard_path_and_has_gradients():
    model = _model(num_tags=5, descriptions_per_tag=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    pixel_values = _pixels(batch=2)
    with torch.no_grad():
        eval_logits = model(pixel_values=pixel_values).logits
    model.train()
    train_logits = model(pixel_values=pixel_values).logits
    torch.testing.assert_close(train_logits.detach(), eval_logits, atol=1e-4, rtol=0)
    train_logits.sum().backward()
    assert model.decoder.layers[0].cross_attention.q_proj.weight.grad.abs().sum() > 0


def test_open_set_with_description_mask_matches_the_literal_computation():
    model = _model(num_tags=4, descriptions_per_tag=3)
    generator = torch.Generator().manual_seed(3)
    label_embeds = F.normalize(torch.randn(5, 6, model.config.text_embed_dim, generator=generator), dim=-1)
    mask = torch.ones(5, 6, dtype=torch.bool)
    mask[0, 2:] = False
    mask[3, 1:] = False
    pixel_values = _pixels(batch=2)
    with torch.no_grad():
        fast = model(pixel_values=pixel_values, label_embeds=label_embeds, description_mask=mask).logits
        reference = _materialized_logits(model, pixel_values, label_embeds, mask)
        # padded rows have no influence
        garbage = label_embeds.clone()
        garbage[0, 2:] = 5.0
        padded = model(pixel_values=pixel_values, label_embeds=garbage, description_mask=mask).logits
    torch.testing.assert_close(fast, reference, atol=1e-4, rtol=0)
    torch.testing.assert_close(padded, fast, atol=1e-6, rtol=0)


def test_batching_and_tag_subsets_do_not_change_logits():
    model = _model(num_tags=9, descriptions_per_tag=2)
    pixel_values = _pixels(batch=4)
    subset = torch.tensor([7, 0, 4])
    with torch.no_grad():
        batched = model(pixel_values=pixel_values).logits
        single = torch.cat([model(pixel_values=pixel_values[i : i + 1]).logits for i in range(4)])
        sub = model(pixel_values=pixel_values, tag_indices=subset).logits
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    torch.testing.assert_close(sub, batched[:, subset], atol=1e-4, rtol=0)


def test_bfloat16_loading_and_autocast(tmp_path):
    model = _model(num_tags=6, descriptions_per_tag=3)
    model.save_pretrained(tmp_path)
    bf16 = RamPlusModel.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert bf16.label_embeds.dtype == torch.bfloat16 and bf16.classifier.weight.dtype == torch.bfloat16
    pixel_values = _pixels(batch=2)
    with torch.no_grad():
        reference = model(pixel_values=pixel_values).logits
        loaded = bf16(pixel_values=pixel_values).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(pixel_values=pixel_values).logits
        subset = bf16(pixel_values=pixel_values, tag_indices=[1, 4]).logits
    assert loaded.dtype == torch.bfloat16 and autocast.dtype == torch.bfloat16
    spread = reference.abs().max().item()
    for logits in (loaded, autocast):
        error = (logits.float() - reference).abs().max().item()
        assert error < 0.05 * spread + 0.05, (error, spread)
    torch.testing.assert_close(subset, loaded[:, [1, 4]], atol=0, rtol=0)


def test_benchmark_baseline_is_faithful_to_the_model():
    """The benchmark's original-order baseline (fused-qkv Swin, per-image re-weighting, BERT decoder) gives the
    model's logits, so the benchmark's speed ratios compare the same computation."""
    bench = _load_benchmark()
    model = _model(num_tags=5, descriptions_per_tag=3)
    baseline = bench.OriginalStyleRamPlus(model).eval()
    pixel_values = _pixels(batch=2)
    with torch.no_grad():
        ours = model(pixel_values=pixel_values).logits
        theirs = baseline(pixel_values)
        torch.testing.assert_close(baseline.image_embeds(pixel_values), model.get_image_embeds(pixel_values), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    bench = _load_benchmark()
    output = tmp_path / "bench.json"
    assert bench.main(["--quick", "--repeats", "1", "--output", str(output)]) == 0
    import json

    results = json.loads(output.read_text())
    assert results["fp32_exactness"]["within_1e-4"]
    assert results["subset_matches_full"] < 1e-4
    for label in ("fp32_b1", "bf16_b1", "autocast_bf16_b1", "baseline_fp32_b1", "decoder_fp32_subset"):
        assert results["times"][label]["median_s"] > 0
    # batch 1 and the large batch are timed on the same images, so their per-image figures compare the same work
    assert results["times"]["fp32_b1"]["images"] == results["times"]["fp32_b8"]["images"] == 8


def test_decoder_blocks_at_batch_one_give_the_same_result(monkeypatch):
    """A single image with many tags is also decoded in blocks of tags; the result equals the unblocked computation."""
    import transformers_ramplus.modeling_ram_plus as modeling

    model = tiny_model(num_tags=7)
    pixel_values = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model(pixel_values=pixel_values).logits
        monkeypatch.setattr(modeling, "DECODER_CHUNK_ROWS", 3)  # 7 tags -> blocks of 3, 3, 1
        blocked = model(pixel_values=pixel_values).logits
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-6)


def test_onednn_linear_inference_matches_plain_linear():
    """fp32 CPU inference routes linear layers to oneDNN (same arithmetic); training, autograd and autocast do not."""
    import contextlib

    from transformers_ramplus.modeling_ram_plus import _OneDnnLinearMode, _onednn_linear_available

    if not _onednn_linear_available():
        pytest.skip("this torch build has no oneDNN linear kernel")
    model = tiny_model(num_tags=6)
    pixel_values = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert isinstance(model._inference_context(), _OneDnnLinearMode)
        fast = model(pixel_values=pixel_values).logits
        model.config.cpu_onednn_linear = False
        assert isinstance(model._inference_context(), contextlib.nullcontext)
        plain = model(pixel_values=pixel_values).logits
        model.config.cpu_onednn_linear = True
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert isinstance(model._inference_context(), contextlib.nullcontext)
    assert isinstance(model._inference_context(), contextlib.nullcontext)  # autograd on
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


def test_image_encoder_blocks_give_the_same_result(monkeypatch):
    """Inference encodes large batches in blocks of images; the result equals encoding them at once."""
    import transformers_ramplus.modeling_ram_plus as modeling

    model = tiny_model(num_tags=4)
    pixel_values = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model(pixel_values=pixel_values)
        monkeypatch.setattr(modeling, "VISION_CHUNK_IMAGES", 2)  # 5 images -> blocks of 2, 2, 1
        blocked = model(pixel_values=pixel_values)
    torch.testing.assert_close(blocked.image_embeds, whole.image_embeds, rtol=0, atol=1e-5)
    torch.testing.assert_close(blocked.logits, whole.logits, rtol=0, atol=1e-5)


def test_decoder_tag_blocks_give_the_same_result(monkeypatch):
    """Inference on several images decodes the tags in blocks; the logits equal decoding all tags at once."""
    import transformers_ramplus.modeling_ram_plus as modeling

    model = tiny_model(num_tags=9)
    pixel_values = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = model(pixel_values=pixel_values).logits
        monkeypatch.setattr(modeling, "DECODER_CHUNK_ROWS", 4)  # 3 images x 9 tags -> per image, blocks of 4, 4, 1 tags
        folds = []
        original_fold = RamPlusCrossAttention.fold_image

        def counting_fold(self, image_embeds):
            folds.append(self)
            return original_fold(self, image_embeds)

        monkeypatch.setattr(RamPlusCrossAttention, "fold_image", counting_fold)
        blocked = model(pixel_values=pixel_values).logits
        # the image side of each layer's folded attention is computed once per image, not once per tag block
        assert len(folds) == len(model.decoder.layers) * pixel_values.shape[0]
        assert model.decoder.fold_image(torch.zeros(1, 3, model.config.text_embed_dim)) is not None
        # a model that cannot fold (eager attention) takes the regular path in the same blocks
        model.set_attn_implementation("eager")
        assert model.decoder.fold_image(torch.zeros(1, 3, model.config.text_embed_dim)) is None
        folds.clear()
        blocked_eager = model(pixel_values=pixel_values).logits
        assert folds == []
    torch.testing.assert_close(blocked, whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(blocked_eager, whole, rtol=0, atol=1e-5)
