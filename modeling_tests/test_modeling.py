import math

import pytest
import torch
import torch.nn.functional as F

from transformers import AutoModel
from transformers_ramplus import RamPlusModel, RamPlusOutput, asymmetric_loss

from conftest import spread_model, tiny_model


def pixels(batch=2, size=64, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator)


def reference_reweighting(model, image_embeds, label_embeds):
    """The original computation order: a Python loop over the batch with a materialized (C, D, T) product."""
    cls = F.normalize(image_embeds[:, 0], dim=-1)
    outputs = []
    for b in range(image_embeds.shape[0]):
        weights = (label_embeds @ cls[b]) * model.reweight_scale.exp()  # (C, D)
        weights = weights.softmax(dim=-1)
        outputs.append((weights.unsqueeze(-1) * label_embeds).sum(dim=1))
    return F.relu(model.query_projection(torch.stack(outputs)))


def literal_logits(model, pixel_values, label_embeds=None):
    """The model's computation written out in the original order: a per-image re-weighting loop, then BERT-style
    cross-attention with per-head transposes, residual + LayerNorm, feed-forward, head."""
    config = model.config
    if label_embeds is None:
        label_embeds = model.label_embeds.view(config.num_tags, config.descriptions_per_tag, -1)
    image_embeds = model.get_image_embeds(pixel_values)
    hidden = reference_reweighting(model, image_embeds, label_embeds)
    for layer in model.decoder.layers:
        attention = layer.cross_attention
        batch, num_queries, width = hidden.shape
        heads, head_dim = attention.num_heads, attention.head_dim

        def split(x):
            return x.view(batch, -1, heads, head_dim).permute(0, 2, 1, 3)

        q, k, v = split(attention.q_proj(hidden)), split(attention.k_proj(image_embeds)), split(attention.v_proj(image_embeds))
        probs = (q @ k.transpose(-1, -2) / math.sqrt(head_dim)).softmax(-1)
        context = (probs @ v).permute(0, 2, 1, 3).reshape(batch, num_queries, width)
        hidden = layer.cross_attention_layer_norm(attention.o_proj(context) + hidden)
        hidden = layer.final_layer_norm(layer.fc2(F.gelu(layer.fc1(hidden))) + hidden)
    return model.classifier(hidden).squeeze(-1)


def test_fixture_logits_spread(model):
    """The shared fixture is useful only if its logits differ: several units apart, across tags and images."""
    with torch.no_grad():
        logits = model(pixel_values=pixels(batch=3)).logits
    assert logits.abs().max() > 2.0 and logits.std() > 1.0
    assert (logits[0] - logits[1]).abs().max() > 0.1  # images give different logits
    assert torch.sigmoid(logits).std() > 0.1  # and probabilities that differ


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_logits_match_the_literal_computation(implementation):
    model = spread_model(num_tags=7, descriptions_per_tag=3, attn_implementation=implementation)
    assert model.config._attn_implementation == implementation
    x = pixels(batch=3)
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).logits, literal_logits(model, x), atol=1e-4, rtol=0)


def test_output_shapes_and_recorded_outputs():
    model = spread_model(attn_implementation="eager")
    config = model.config
    with torch.no_grad():
        out = model(pixel_values=pixels(), output_attentions=True, output_hidden_states=True)
    assert isinstance(out, RamPlusOutput)
    tokens = (64 // 4 // 2) ** 2 + 1  # final stage tokens + the mean token
    assert out.logits.shape == (2, config.num_tags)
    assert out.image_embeds.shape == (2, tokens, config.text_embed_dim)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert out.hidden_states[-1].shape == (2, config.num_tags, config.hidden_size)
    # hidden_states[0] is the decoder input (the tag queries), the last one feeds the head
    label_embeds = model.label_embeds.view(config.num_tags, config.descriptions_per_tag, -1)
    torch.testing.assert_close(out.hidden_states[0], model.compute_label_queries(out.image_embeds, label_embeds))
    torch.testing.assert_close(model.classifier(out.hidden_states[-1]).squeeze(-1), out.logits)
    assert len(out.cross_attentions) == config.num_hidden_layers
    assert out.cross_attentions[0].shape == (2, config.num_attention_heads, config.num_tags, tokens)
    torch.testing.assert_close(out.cross_attentions[0].sum(-1), torch.ones(2, 4, config.num_tags))
    assert out.cross_attentions[0].max() > 1.5 / tokens  # not uniform: the weights depend on the queries
    assert out.loss is None
    as_tuple = model(pixel_values=pixels(), return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.logits)


def test_attention_weights_need_the_eager_attention(model):
    """sdpa does not compute the weights: asking for them says so instead of switching implementation silently."""
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="eager"):
        model(pixel_values=pixels(), output_attentions=True)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        assert len(model(pixel_values=pixels(), output_attentions=True).cross_attentions) == 2


@pytest.mark.parametrize("typo", ["lables", "tag_indice", "pixel_value"])
def test_misspelled_arguments_are_rejected(model, typo):
    with pytest.raises(TypeError, match=typo):
        model(pixel_values=pixels(), **{typo: torch.zeros(2, 5)})


def test_image_tokens_are_mean_then_swin_tokens(model):
    x = pixels()
    with torch.no_grad():
        vision = model.vision_model(pixel_values=x)
        tokens = torch.cat([vision.last_hidden_state.mean(1, keepdim=True), vision.last_hidden_state], 1)
        torch.testing.assert_close(model.get_image_embeds(x), model.image_projection(tokens))


def test_vectorized_reweighting_equals_the_per_image_loop(model):
    with torch.no_grad():
        image_embeds = model.get_image_embeds(pixels(batch=3))
        label_embeds = model.label_embeds.view(model.config.num_tags, model.config.descriptions_per_tag, -1)
        torch.testing.assert_close(
            model.compute_label_queries(image_embeds, label_embeds),
            reference_reweighting(model, image_embeds, label_embeds),
        )


def test_auto_model_resolves(tmp_path, model):
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(loaded, RamPlusModel)


def test_save_load_round_trip_keeps_logits_and_label_embeds(tmp_path, model):
    x = pixels()
    with torch.no_grad():
        before = model(pixel_values=x).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = RamPlusModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.label_embeds, model.label_embeds)
    torch.testing.assert_close(loaded.reweight_scale, model.reweight_scale)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, before)


def test_eager_and_sdpa_agree():
    x = pixels()
    results = {}
    for implementation in ("eager", "sdpa"):
        model = spread_model(attn_implementation=implementation)
        assert model.config._attn_implementation == implementation
        with torch.no_grad():
            results[implementation] = model(pixel_values=x).logits
    assert results["eager"].std() > 0.5
    torch.testing.assert_close(results["eager"], results["sdpa"], atol=1e-5, rtol=0)


def test_batch_equals_single(model):
    x = pixels(batch=3)
    with torch.no_grad():
        batch = model(pixel_values=x).logits
        single = torch.cat([model(pixel_values=x[i : i + 1]).logits for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)


def test_label_embeds_override_matches_builtin_and_subsets(model):
    x = pixels()
    config = model.config
    with torch.no_grad():
        builtin = model(pixel_values=x).logits
        flat = model(pixel_values=x, label_embeds=model.label_embeds.clone(), descriptions_per_tag=config.descriptions_per_tag)
        three_d = model(pixel_values=x, label_embeds=model.label_embeds.view(config.num_tags, config.descriptions_per_tag, -1))
        subset = model(pixel_values=x, tag_indices=torch.tensor([3, 0]))
    torch.testing.assert_close(flat.logits, builtin)
    torch.testing.assert_close(three_d.logits, builtin)
    torch.testing.assert_close(subset.logits, builtin[:, [3, 0]])


def test_description_mask_equals_fewer_descriptions(model):
    """A tag padded to D descriptions with a mask scores like the same tag with only its real descriptions."""
    x = pixels()
    torch.manual_seed(3)
    real = F.normalize(torch.randn(1, 2, model.config.text_embed_dim), dim=-1)
    padded = torch.cat([real, F.normalize(torch.randn(1, 1, model.config.text_embed_dim), dim=-1)], dim=1)
    mask = torch.tensor([[True, True, False]])
    with torch.no_grad():
        expected = model(pixel_values=x, label_embeds=real).logits
        masked = model(pixel_values=x, label_embeds=padded, description_mask=mask).logits
        unmasked = model(pixel_values=x, label_embeds=padded).logits
    torch.testing.assert_close(masked, expected)
    assert not torch.allclose(unmasked, expected)


def test_image_embeds_input_skips_the_encoder(model):
    x = pixels()
    with torch.no_grad():
        direct = model(pixel_values=x)
        cached = model(image_embeds=direct.image_embeds)
    torch.testing.assert_close(cached.logits, direct.logits)


def test_every_trainable_parameter_gets_a_gradient(model):
    model.train()
    x = pixels()
    labels = torch.zeros(2, model.config.num_tags)
    labels[0, 1] = labels[1, 3] = 1
    out = model(pixel_values=x, labels=labels)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing
    assert not model.label_embeds.requires_grad


def test_gradient_checkpointing_gives_the_same_gradients():
    x = pixels()
    labels = torch.ones(2, 5)
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.is_activation_checkpointing
        model(pixel_values=x, labels=labels).loss.backward()
        grads.append(model.decoder.layers[0].fc1.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_bf16_smoke(model):
    model = model.to(torch.bfloat16)
    with torch.no_grad():
        out = model(pixel_values=pixels())
    assert out.logits.dtype == torch.bfloat16
    assert torch.isfinite(out.logits.float()).all()


def test_autocast_bf16_close_to_fp32(model):
    x = pixels()
    with torch.no_grad():
        fp32 = torch.sigmoid(model(pixel_values=x).logits)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = torch.sigmoid(model(pixel_values=x).logits.float())
    assert fp32.std() > 0.1  # probabilities that differ, so that 0.05 is a real bound
    assert (fp32 - bf16).abs().max() < 0.05


def test_loss_components_and_weights(model):
    x = pixels()
    labels = torch.zeros(2, 5)
    labels[:, 0] = 1
    captions = F.normalize(torch.randn(2, model.config.text_embed_dim), dim=-1)
    teacher = torch.randn(2, model.config.text_embed_dim)
    out = model(pixel_values=x, labels=labels, caption_embeds=captions, teacher_image_embeds=teacher)
    assert out.alignment_logits.shape == (2, 2)
    expected_tag = asymmetric_loss(out.logits, labels, gamma_neg=7, gamma_pos=0, clip=0.05)
    torch.testing.assert_close(out.tag_loss, expected_tag)
    torch.testing.assert_close(out.distillation_loss, (out.image_embeds[:, 0] - teacher).abs().mean())
    torch.testing.assert_close(out.loss, out.tag_loss + out.alignment_loss + out.distillation_loss)


def test_asymmetric_loss_against_hand_computed_value():
    logits = torch.tensor([[2.0, -1.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0]])
    loss = asymmetric_loss(logits, targets, gamma_neg=4, gamma_pos=0, clip=0.05, eps=1e-8)
    p_pos = 1 / (1 + math.exp(-2.0))
    p_neg = min(1 - 1 / (1 + math.exp(1.0)) + 0.05, 1.0)
    expected = -(math.log(p_pos) + math.log(p_neg) * (1 - p_neg) ** 4)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # focusing weights are constants: d/dx of -log(p_neg) * w with w fixed
    sigma = 1 / (1 + math.exp(1.0))
    expected_grad = (1 - p_neg) ** 4 * sigma * (1 - sigma) / p_neg
    assert logits.grad[0, 1].item() == pytest.approx(expected_grad, rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of"),
        ({"pixel_values": torch.zeros(2, 64, 64)}, "pixel_values"),
        ({"pixel_values": torch.zeros(1, 1, 64, 64)}, "pixel_values"),
        ({"pixel_values": torch.zeros(1, 3, 62, 64)}, "patch size"),
        ({"pixel_values": torch.zeros(1, 3, 64, 64), "label_embeds": torch.zeros(10, 24)}, "descriptions_per_tag"),
        ({"pixel_values": torch.zeros(1, 3, 64, 64), "label_embeds": torch.zeros(10, 24), "descriptions_per_tag": 3}, "multiple"),
        ({"pixel_values": torch.zeros(1, 3, 64, 64), "label_embeds": torch.zeros(2, 3, 7)}, "width 24"),
        ({"pixel_values": torch.zeros(1, 3, 64, 64), "tag_indices": torch.tensor([0, 9])}, "outside"),
        ({"pixel_values": torch.zeros(1, 3, 64, 64), "labels": torch.zeros(1, 4)}, "labels"),
        (
            {"pixel_values": torch.zeros(1, 3, 64, 64), "label_embeds": torch.zeros(2, 3, 24), "description_mask": torch.zeros(2, 3, dtype=torch.bool)},
            "without any description",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_encode_text_without_text_tower_says_what_is_missing(model):
    with pytest.raises(ValueError, match="no text tower"):
        model.encode_text(torch.zeros(1, 4, dtype=torch.long))


def test_text_tower_is_frozen_and_saved(tmp_path):
    from transformers import CLIPTextConfig

    text_config = CLIPTextConfig(
        vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        projection_dim=24, max_position_embeddings=16, bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )
    model = tiny_model(text_config=text_config)
    assert all(not p.requires_grad for p in model.text_model.parameters())
    ids = torch.tensor([[0, 5, 7, 2]])
    with torch.no_grad():
        embeds = model.encode_text(ids)
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(1))
    model.save_pretrained(tmp_path)
    loaded = RamPlusModel.from_pretrained(tmp_path)
    assert all(not p.requires_grad for p in loaded.text_model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_text(ids), embeds)
    with_info, info = RamPlusModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and all(not p.requires_grad for p in with_info.text_model.parameters())
    auto_loaded = AutoModel.from_pretrained(tmp_path)
    assert all(not p.requires_grad for p in auto_loaded.text_model.parameters())


def test_set_vocabulary_with_counts_round_trips(tmp_path, model):
    x = pixels()
    torch.manual_seed(5)
    real = F.normalize(torch.randn(2, 4, model.config.text_embed_dim), dim=-1)
    real[0, 2:] = 0.0  # tag 0 has 2 real descriptions, padded to 4
    with torch.no_grad():
        expected = model(pixel_values=x, label_embeds=real, description_mask=torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])).logits
    model.set_vocabulary(["new a", "new b"], real, thresholds=[0.5, 0.5], description_counts=[2, 4])
    assert model.config.num_tags == 2 and model.config.descriptions_per_tag == 4
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).logits, expected)
        torch.testing.assert_close(model(pixel_values=x, tag_indices=[1, 0]).logits, expected[:, [1, 0]])
    model.save_pretrained(tmp_path)
    loaded = RamPlusModel.from_pretrained(tmp_path).eval()
    assert loaded.config.tag_description_counts == [2, 4] and loaded.config.tag_names == ["new a", "new b"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, expected)
    with pytest.raises(ValueError, match="tag_description_counts"):
        model.set_vocabulary(["a", "b"], real, description_counts=[5, 1])
    # a failed change leaves the vocabulary as it was
    assert model.config.tag_names == ["new a", "new b"] and model.config.tag_description_counts == [2, 4]
    torch.testing.assert_close(model.label_embeds.view(2, 4, -1), real)


def test_checkpoints_of_earlier_versions_load(tmp_path, model):
    """Files written before the config lost its inference switch and before the decoder layer owned its
    post-attention LayerNorm load unchanged; both layouts of that LayerNorm load."""
    import json

    from safetensors.torch import load_file, save_file

    x = pixels()
    with torch.no_grad():
        expected = model(pixel_values=x).logits
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config = json.loads(config_file.read_text())
    config["cpu_onednn_linear"] = True
    config_file.write_text(json.dumps(config))
    state = load_file(tmp_path / "model.safetensors")
    assert "decoder.layers.0.cross_attention.layer_norm.weight" in state  # the layout every version reads
    for layout in ("earlier", "current"):
        if layout == "current":
            state = {k.replace("cross_attention.layer_norm.", "cross_attention_layer_norm."): v for k, v in state.items()}
            save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
        loaded, info = RamPlusModel.from_pretrained(tmp_path, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], (layout, info)
        assert not hasattr(loaded.config, "cpu_onednn_linear")
        with torch.no_grad():
            # the same weights; a loaded file's tensors may sit at other memory alignments, which can change an
            # AVX-512 GEMM's summation order (last bit): ~2e-7 seen on an AMD Zen 4
            torch.testing.assert_close(loaded(pixel_values=x).logits, expected, atol=1e-6, rtol=1e-6)
    # plain `load_state_dict` (how a Trainer resumes a checkpoint) reads the earlier decoder layout too
    earlier = {k.replace("cross_attention_layer_norm.", "cross_attention.layer_norm."): v for k, v in model.state_dict().items()}
    assert "decoder.layers.1.cross_attention.layer_norm.bias" in earlier
    fresh = tiny_model(seed=7)
    fresh.load_state_dict(earlier, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(pixel_values=x).logits, expected, atol=0, rtol=0)
