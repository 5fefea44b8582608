"""`enable_fast_inference` (alias `optimize_for_inference`): the fast paths give the reference model's outputs, and
only where they apply; they are installed by replacing submodules, never by changing a class."""

import copy
import importlib.util
import json
import pickle
import re
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

from transformers import AutoModel
from transformers.models.swin.modeling_swin import SwinLayer
from transformers_ramplus import RamPlusModel, enable_fast_inference, optimize_for_inference
from transformers_ramplus.inference import fast_paths as optimization
from transformers_ramplus.inference.fast_paths import (
    FastSwinLayer,
    OneDnnLinearMode,
    RamPlusFastInference,
    is_optimized,
)

from conftest import PROJECT_ROOT, spread_model

# fp32 logits of the spread fixtures are several units apart; the fast paths change them by ~1e-6 (summation order)
ATOL = 1e-4


def _pixels(batch=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 64, 64, generator=generator)


def _pair(**overrides):
    """A spread reference model and an optimized copy of it."""
    reference = spread_model(**overrides)
    return reference, enable_fast_inference(copy.deepcopy(reference))


def _count_attention_calls(monkeypatch, model):
    """True per folded cross-attention, False per call of a reference cross-attention module of `model`."""
    calls = []
    original = optimization.folded_cross_attention
    monkeypatch.setattr(optimization, "folded_cross_attention", lambda *args: calls.append(True) or original(*args))
    for layer in model.decoder.layers:
        layer.cross_attention.register_forward_hook(lambda *_: calls.append(False))
    return calls


@pytest.mark.parametrize("batch", [1, 3])
def test_optimized_matches_reference_and_takes_the_fast_path(monkeypatch, batch):
    reference, optimized = _pair(num_tags=9, descriptions_per_tag=3)
    assert is_optimized(optimized) and not is_optimized(reference)
    assert type(optimized) is RamPlusModel and not optimized.training
    calls = _count_attention_calls(monkeypatch, optimized)
    x = _pixels(batch)
    with torch.no_grad():
        expected = reference(pixel_values=x).logits
        fast = optimized(pixel_values=x)
    assert calls and all(calls)  # every decoder layer took the folded path
    assert len(calls) == batch * reference.config.num_hidden_layers
    assert expected.std() > 1.0  # logits that spread: an error in the fast path would show
    torch.testing.assert_close(fast.logits, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast.image_embeds, reference.get_image_embeds(x), atol=ATOL, rtol=0)


def test_fast_inference_replaces_submodules_over_the_same_parameters():
    """No class changes: the model and its modules keep their classes, except the Swin blocks, which are replaced by
    `FastSwinLayer`s over the same Parameters; the state dict is the same tensors; output capturing hooks installed
    before still record."""
    model = spread_model(num_tags=5)
    x = _pixels(2)
    with torch.no_grad():
        before = model(pixel_values=x, output_hidden_states=True)  # installs transformers' output capturing hooks
    classes = {name: type(module) for name, module in model.named_modules()}
    parameters = dict(model.named_parameters())
    state = model.state_dict()
    assert enable_fast_inference(model) is model
    assert isinstance(model.fast_inference, RamPlusFastInference) and "precision='fp32'" in repr(model.fast_inference)
    after = {name: type(module) for name, module in model.named_modules()}
    assert set(after) == set(classes) | {"fast_inference"}
    changed = {name for name in classes if after[name] is not classes[name]}
    assert changed and all(classes[name] is SwinLayer and after[name] is FastSwinLayer for name in changed)
    assert len(changed) == sum(len(stage.blocks) for stage in model.vision_model.encoder.layers)
    assert all(param is parameters[name] for name, param in model.named_parameters())
    assert model.state_dict().keys() == state.keys()
    assert all(tensor.data_ptr() == state[name].data_ptr() for name, tensor in model.state_dict().items())
    with torch.no_grad():
        again = model(pixel_values=x, output_hidden_states=True)
        fast = model(pixel_values=x).logits
    assert len(again.hidden_states) == len(before.hidden_states)
    torch.testing.assert_close(again.hidden_states[-1], before.hidden_states[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(fast, before.logits, atol=ATOL, rtol=0)


def test_the_sources_change_no_class_and_no_private_registry():
    """The fast paths are installed through public mechanisms only: nothing in `src/` assigns `__class__`, creates a
    class with `type(name, bases, namespace)`, writes `globals()` or touches transformers' `_CAN_RECORD_REGISTRY`."""
    forbidden = re.compile(r"__class__\s*=(?!=)|globals\(\)\s*\[|_CAN_RECORD|\btype\(\s*[^()]+,\s*\(")
    sources = sorted((PROJECT_ROOT / "src").rglob("*.py"))
    assert len(sources) > 20
    hits = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if forbidden.search(line)
    ]
    assert not hits, hits
    assert forbidden.search("module.__class__ = Other") and forbidden.search('type("Fast", (Base,), {})')


def test_fast_models_deepcopy_and_pickle():
    reference, optimized = _pair(num_tags=6)
    x = _pixels(2)
    with torch.no_grad():
        expected = optimized(pixel_values=x).logits
        for clone in (copy.deepcopy(optimized), pickle.loads(pickle.dumps(optimized))):
            assert is_optimized(clone) and type(clone) is RamPlusModel
            assert all(a is not b for a, b in zip(clone.parameters(), optimized.parameters()))
            torch.testing.assert_close(clone(pixel_values=x).logits, expected, atol=0, rtol=0)
            # the forward hooks came along: a call that records hidden states runs the reference layers
            hidden_states = clone(pixel_values=x, output_hidden_states=True).hidden_states
            assert len(hidden_states) == clone.config.num_hidden_layers + 1
    torch.testing.assert_close(expected, reference(pixel_values=x).logits.detach(), atol=ATOL, rtol=0)


def test_open_set_subsets_and_masks_match():
    reference, optimized = _pair(num_tags=6, descriptions_per_tag=3)
    generator = torch.Generator().manual_seed(3)
    label_embeds = F.normalize(torch.randn(5, 4, reference.config.text_embed_dim, generator=generator), dim=-1)
    mask = torch.ones(5, 4, dtype=torch.bool)
    mask[0, 2:] = False
    x = _pixels(2)
    with torch.no_grad():
        for kwargs in ({"label_embeds": label_embeds, "description_mask": mask}, {"tag_indices": [5, 0, 3]}):
            torch.testing.assert_close(optimized(pixel_values=x, **kwargs).logits, reference(pixel_values=x, **kwargs).logits, atol=ATOL, rtol=0)


def test_blocks_of_images_and_tags_give_the_same_logits(monkeypatch):
    reference, optimized = _pair(num_tags=9, descriptions_per_tag=2)
    x = _pixels(5)
    folds = []
    original_fold = optimization.fold_image
    monkeypatch.setattr(optimization, "fold_image", lambda attention, tokens: folds.append(1) or original_fold(attention, tokens))
    monkeypatch.setattr(optimization, "DECODER_CHUNK_ROWS", 4)  # 9 tags -> 3 blocks of 3 per image
    assert optimization.decoder_blocks(9, 37, 4) == 3
    monkeypatch.setattr(optimization, "VISION_CHUNK_IMAGES", 2)  # 5 images -> blocks of 2, 2, 1
    with torch.no_grad():
        expected = reference(pixel_values=x)
        blocked = optimized(pixel_values=x)
    # the image side of each layer's folded attention is computed once per image, not once per tag block
    assert len(folds) == reference.config.num_hidden_layers * x.shape[0]
    monkeypatch.setattr(optimization, "DECODER_CHUNK_ROWS", None)  # by bytes: full size fp32 / bf16
    assert optimization.decoder_blocks(4585, 3072, 4) == 4 and optimization.decoder_blocks(4585, 3072, 2) == 2
    assert optimization.decoder_blocks(1, 3072, 4) == 1
    torch.testing.assert_close(blocked.image_embeds, expected.image_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(blocked.logits, expected.logits, atol=ATOL, rtol=0)


def test_onednn_kernels_route_fp32_inference_only(monkeypatch):
    if not optimization.onednn_linear_available():
        pytest.fail("this torch build has no oneDNN linear kernel; the fp32 fast path expects one on CPU")
    reference, optimized = _pair(num_tags=6)
    routed = []
    original = OneDnnLinearMode.__torch_function__
    monkeypatch.setattr(OneDnnLinearMode, "__torch_function__", lambda self, *a, **k: routed.append(1) or original(self, *a, **k))
    x = _pixels(2)
    monkeypatch.setattr(optimization, "cpu_vendor", lambda: "AuthenticAMD")  # routed by default
    with torch.no_grad():
        fast = optimized(pixel_values=x).logits
        assert routed, "fp32 CPU inference without autograd runs through the oneDNN kernels"
        routed.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            optimized(pixel_values=x)
        assert not routed  # autocast chooses the kernels itself
        with optimization.onednn_routing(False):  # the benchmark's "no oneDNN routing" rows
            unrouted = optimized(pixel_values=x).logits
        assert not routed
        torch.testing.assert_close(unrouted, fast, atol=ATOL, rtol=0)
        optimized(pixel_values=x)
        assert routed  # back on after the block
        routed.clear()
    optimized(pixel_values=x)
    assert not routed  # autograd on: plain kernels
    torch.testing.assert_close(fast, reference(pixel_values=x).logits.detach(), atol=ATOL, rtol=0)
    monkeypatch.setattr(optimization, "cpu_vendor", lambda: "GenuineIntel")  # MKL is as fast there: not routed
    with torch.no_grad():
        optimized(pixel_values=x)
        assert not routed
        with optimization.onednn_routing(True):  # forced, as the benchmark's "onednn" rows do
            optimized(pixel_values=x)
        assert routed


def test_training_mode_and_recorded_outputs_take_the_reference_path(monkeypatch):
    reference, optimized = _pair(num_tags=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    calls = _count_attention_calls(monkeypatch, optimized)
    x = _pixels(2)
    optimized.train()
    train_logits = optimized(pixel_values=x).logits
    train_logits.sum().backward()
    assert optimized.decoder.layers[0].cross_attention.q_proj.weight.grad.abs().sum() > 0
    assert calls and not any(calls)  # the reference attention ran
    optimized.eval()
    calls.clear()
    optimized(pixel_values=x).logits.sum().backward()  # autograd in eval mode: the reference computation too
    assert calls and not any(calls)
    with torch.no_grad():
        torch.testing.assert_close(train_logits.detach(), reference(pixel_values=x).logits, atol=ATOL, rtol=0)
        hidden = optimized(pixel_values=x, output_hidden_states=True)
        expected = reference(pixel_values=x, output_hidden_states=True)
        assert len(hidden.hidden_states) == len(expected.hidden_states) == 3
        torch.testing.assert_close(hidden.hidden_states[-1], expected.hidden_states[-1], atol=ATOL, rtol=0)
        with pytest.raises(ValueError, match="eager"):
            optimized(pixel_values=x, output_attentions=True)  # the same rule as the reference model
        optimized.set_attn_implementation("eager")
        reference.set_attn_implementation("eager")
        attentions = optimized(pixel_values=x, output_attentions=True).cross_attentions
        torch.testing.assert_close(attentions[1], reference(pixel_values=x, output_attentions=True).cross_attentions[1])


def test_same_signature_and_checks():
    _, optimized = _pair()
    with pytest.raises(TypeError, match="lables"):
        optimized(pixel_values=_pixels(1), lables=torch.zeros(1, 5))
    with pytest.raises(ValueError, match="tag_indices"):
        optimized(pixel_values=_pixels(1), tag_indices=[0, 99])
    with torch.no_grad():
        as_tuple = optimized(pixel_values=_pixels(1), return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (1, 5)
    with pytest.raises(ValueError, match="int4"):
        enable_fast_inference(optimized, precision="int4")
    with pytest.raises(TypeError, match="RamPlusModel"):
        enable_fast_inference(torch.nn.Linear(2, 2))
    assert optimize_for_inference is enable_fast_inference  # the earlier name


def test_bf16_precision():
    reference = spread_model(num_tags=6)
    optimized = enable_fast_inference(copy.deepcopy(reference), precision="bf16")
    assert optimized.classifier.weight.dtype == torch.bfloat16 and optimized.fast_inference.precision == "bf16"
    x = _pixels(3)
    with torch.no_grad():
        expected = reference(pixel_values=x).logits
        logits = optimized(pixel_values=x).logits
    assert logits.dtype == torch.bfloat16
    spread = expected.abs().max().item()
    assert (logits.float() - expected).abs().max().item() < 0.05 * spread
    assert ((logits.float() > 0) == (expected > 0)).float().mean() > 0.9  # nearly the same decisions


def test_save_pretrained_writes_the_reference_checkpoint(tmp_path):
    reference, optimized = _pair(num_tags=5)
    optimized.save_pretrained(tmp_path)
    assert is_optimized(optimized)  # still optimized after saving
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["RamPlusModel"]
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is RamPlusModel and not is_optimized(loaded)
    assert set(loaded.state_dict()) == set(optimized.state_dict()) == set(reference.state_dict())
    x = _pixels(2)
    with torch.no_grad():
        # the same weights (alignment of loaded tensors may change an AVX-512 GEMM's last bit, as in test_modeling)
        torch.testing.assert_close(loaded(pixel_values=x).logits, reference(pixel_values=x).logits, atol=1e-6, rtol=1e-6)


def test_lora_wrapped_projections_take_the_reference_attention():
    from transformers_ramplus.training.adapters import apply_lora, default_lora_config

    reference = spread_model(num_tags=5)
    peft_model = apply_lora(copy.deepcopy(reference), default_lora_config(vision=False)).eval()
    with torch.no_grad():  # a LoRA update that changes the outputs
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    x = _pixels(2)
    with torch.no_grad():
        expected = peft_model(pixel_values=x).logits
        optimized = enable_fast_inference(peft_model)
        assert optimized is peft_model and is_optimized(peft_model) and is_optimized(peft_model.get_base_model())
        torch.testing.assert_close(optimized(pixel_values=x).logits, expected, atol=ATOL, rtol=0)
        assert (expected - reference(pixel_values=x).logits).abs().max() > 0.1  # the adapter mattered


def test_optimized_matches_the_golden_outputs(converted_tiny, reference_outputs):
    """The authors' logits of the golden tiny checkpoint, closed and open set, batch 2 and batch 1."""
    model = enable_fast_inference(RamPlusModel.from_pretrained(converted_tiny))
    pixel_values = reference_outputs["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=pixel_values).logits, reference_outputs["logits"], atol=1e-4, rtol=0)
        for index in range(pixel_values.shape[0]):
            single = model(pixel_values=pixel_values[index : index + 1]).logits
            torch.testing.assert_close(single, reference_outputs["logits"][index : index + 1], atol=1e-4, rtol=0)
        open_set = model(
            pixel_values=pixel_values,
            label_embeds=reference_outputs["openset_label_embeds"],
            descriptions_per_tag=int(reference_outputs["openset_descriptions_per_tag"]),
        ).logits
    torch.testing.assert_close(open_set, reference_outputs["openset_logits"], atol=1e-4, rtol=0)


def _load_benchmark():
    path = PROJECT_ROOT / "benchmarks" / "bench_inference.py"
    spec = importlib.util.spec_from_file_location("bench_inference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_inference", module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_scene_model_uses_the_released_thresholds():
    """At full size the scene model takes the released per-tag thresholds (package data), as the committed results
    did; a moved data file must not turn the decision check silently into another one."""
    _load_benchmark()  # puts benchmarks/ on the path
    from ramplus_bench.scenes import released_thresholds

    values = released_thresholds(4585)
    assert values is not None and len(values) == 4585 and all(0.0 < value <= 1.0 for value in values)
    assert len(set(values)) > 10  # per-tag values, not one threshold for all
    assert released_thresholds(40) is None  # other vocabularies: the config's


def test_benchmark_baseline_is_faithful_to_the_model():
    """The benchmark's original-order baseline (fused-qkv Swin, per-image re-weighting, BERT decoder) gives the
    model's logits, so the benchmark's speed ratios compare the same computation."""
    bench = _load_benchmark()
    model = spread_model(num_tags=5, descriptions_per_tag=3)
    baseline = bench.OriginalStyleRamPlus(model).eval()
    x = _pixels(2)
    with torch.no_grad():
        ours = model(pixel_values=x).logits
        theirs = baseline(x)
        torch.testing.assert_close(baseline.image_embeds(x), model.get_image_embeds(x), atol=ATOL, rtol=0)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


@pytest.mark.slow
def test_benchmark_quick_run(tmp_path):
    bench = _load_benchmark()
    output = tmp_path / "bench.json"
    assert bench.main(["--quick", "--repeats", "1", "--output", str(output)]) == 0
    results = json.loads(output.read_text())
    assert results["fp32_exactness"]["within_1e-4"]
    assert results["subset_matches_full"] < 1e-4
    labels = ["ours_fp32", "ours_fp32_no_onednn", "ours_fp32_onednn", "reference_fp32", "ours_bf16", "ours_int8", "baseline_fp32"]
    labels += ["baseline_bf16", "baseline_int8_naive", "onnx_int8"]
    for label in labels:
        assert results["times"][f"{label}_b1"]["median_s"] > 0 and results["times"][f"{label}_b4"]["median_s"] > 0
    assert results["components"]["decoder_fp32_subset"]["median_s"] > 0
    assert results["times"]["ours_fp32_b1"]["images"] == results["times"]["ours_fp32_b4"]["images"] == 4
    for label in ("ours_bf16", "ours_int8", "onnx_int8"):
        assert set(results["decisions_vs_fp32"][label]) >= {"config", "global_0.01", "per_image_top_0.01"}
    fired = results["scene_model"]["fraction_of_tags_firing_per_photo"]
    assert len(fired) == 2 and all(0.2 < value < 0.8 for value in fired)  # about half of the tags fire
    assert {"ours_int8", "ours_bf16", "ours_fp32", "batch_no_slower"} <= set(results["goals"])


@pytest.mark.slow
def test_full_size_optimized_matches_reference():
    """At the released sizes (Swin-L 384, 4585 tags x 51, heads x tokens = 580 < 768) the fast paths give the
    reference logits, at batch 1 and batch 3."""
    from transformers_ramplus import RamPlusConfig

    config = RamPlusConfig(id2label={i: f"tag_{i}" for i in range(4585)})
    torch.manual_seed(0)
    reference = RamPlusModel(config).eval()
    with torch.no_grad():
        reference.query_projection.weight.mul_(10.0)
    optimized = enable_fast_inference(copy.deepcopy(reference))
    x = torch.randn(3, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(pixel_values=x).logits
        torch.testing.assert_close(optimized(pixel_values=x).logits, expected, atol=1e-3, rtol=0)
        torch.testing.assert_close(optimized(pixel_values=x[:1]).logits, expected[:1], atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------------------ int8
needs_int8 = pytest.mark.skipif(
    not optimization.int8_available(), reason="this PyTorch build has no int8 linear kernel for this CPU"
)


@pytest.fixture(params=["onednn", "onednn-uint8", "fbgemm"])
def int8_kernel(request, monkeypatch):
    """Each int8 kernel in turn, whatever this CPU would pick (oneDNN's runs emulated, slowly, without VNNI/AMX:
    fine for the tiny models here); oneDNN with signed input codes (its AMX form) and with uint8 ones (its form
    elsewhere), the latter with the second layers in int8 too, as `int8_second_layers` chooses by default."""
    kernel = request.param.split("-")[0]
    if not optimization.int8_available(kernel):
        pytest.skip(f"this PyTorch build has no {kernel} int8 linear kernel")
    monkeypatch.setattr(optimization, "INT8_KERNEL", kernel)
    monkeypatch.setattr(optimization, "INT8_SIGNED_INPUTS", request.param == "onednn")
    monkeypatch.setattr(optimization, "INT8_SECOND_LAYERS", None)  # by the kernel and input codes
    monkeypatch.setattr(optimization, "INT8_SECOND_LAYER_MIN_OUTPUTS", 0)  # the tiny models' layers are narrow
    assert optimization.int8_second_layers() is (request.param == "onednn-uint8")
    return kernel


def _count_int8_calls(monkeypatch):
    """The (rows, in_features) of every int8 product, on either kernel."""
    calls = []
    original = optimization.Int8DynamicLinear._int8_product

    def counting(self, inputs, *args, **kwargs):
        calls.append((inputs.numel() // self.in_features, self.in_features))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(optimization.Int8DynamicLinear, "_int8_product", counting)
    return calls


def test_int8_precision_runs_int8_linears_and_keeps_the_decisions(monkeypatch, int8_kernel):
    reference = spread_model(num_tags=40)
    optimized = enable_fast_inference(copy.deepcopy(reference), precision="int8")
    assert optimized.fast_inference.precision == "int8" and is_optimized(optimized)
    int8 = [name for name, module in optimized.named_modules() if isinstance(module, optimization.Int8DynamicLinear)]
    assert set(int8) == set(optimization.int8_linear_targets(reference)) and int8
    assert any(name.startswith("vision_model.encoder.layers.0.") for name in int8)
    assert any(name.startswith("decoder.layers.") for name in int8)
    last_stage = f"vision_model.encoder.layers.{len(reference.vision_model.encoder.layers) - 1}."
    assert any(name.startswith(last_stage) for name in int8)  # the last stage too
    calls = _count_int8_calls(monkeypatch)
    x = _pixels(3)
    with torch.no_grad():
        expected = reference(pixel_values=x).logits
        as_tuple = optimized(pixel_values=x[:1], return_dict=False)
        # one image: each int8 linear runs once, query/key/value as one product, plus the description similarity
        groups = sum(name.endswith("attention.q_proj") for name in int8)
        assert len(calls) == len(int8) - 2 * groups + 1 and groups
        width = reference.config.text_embed_dim
        decoder_products = sum(name.startswith("decoder.layers.") for name in int8)
        assert calls[-decoder_products - 1] == (1, width)  # the similarity: one row per image, then the decoder
        outputs = optimized(pixel_values=x)
    logits = outputs.logits
    assert type(outputs).__name__ == type(reference(pixel_values=x[:1])).__name__
    assert logits.shape == expected.shape and logits.dtype == optimization.precision_dtype("int8", int8_kernel)
    assert {module.int8_kernel for module in optimized.modules() if isinstance(module, optimization.Int8DynamicLinear)} == {int8_kernel}
    # the second MLP / feed-forward layers: in int8 with uint8 input codes on oneDNN (no AMX), else in float
    assert any(name.endswith("fc2") for name in int8) is optimization.int8_second_layers()
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (1, 40)
    spread = (expected.max() - expected.min()).item()
    assert (logits.float() - expected).abs().max().item() < 0.05 * spread
    # the spread fixtures' logits sit units apart around 0: decisions nearly all agree
    assert ((logits.float() > 0) == (expected > 0)).float().mean() > 0.95


def test_int8_takes_the_float_path_with_autograd_and_in_training(monkeypatch, int8_kernel):
    optimized = enable_fast_inference(spread_model(num_tags=5), precision="int8")
    calls = _count_int8_calls(monkeypatch)
    x = _pixels(1)
    optimized(pixel_values=x).logits.float().sum().backward()  # autograd: float linears, gradients flow
    assert not calls
    assert optimized.vision_model.encoder.layers[0].blocks[0].attention.q_proj.weight.grad is not None
    optimized.train()
    with torch.no_grad():
        optimized(pixel_values=x)
    assert not calls


def test_int8_save_pretrained_writes_the_standard_checkpoint(tmp_path, int8_kernel):
    reference = spread_model(num_tags=5)
    optimized = enable_fast_inference(copy.deepcopy(reference), precision="int8")
    assert set(optimized.state_dict()) == set(reference.state_dict())
    optimized.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["RamPlusModel"]
    assert any(isinstance(m, optimization.Int8DynamicLinear) for m in optimized.modules())  # still int8
    loaded = AutoModel.from_pretrained(tmp_path)
    assert type(loaded) is RamPlusModel
    assert not any(isinstance(m, optimization.Int8DynamicLinear) for m in loaded.modules())
    dtype = optimization.precision_dtype("int8", int8_kernel)  # bf16 around oneDNN's products, fp32 around fbgemm's
    for name, tensor in reference.state_dict().items():  # the float weights, not int8 codes
        torch.testing.assert_close(loaded.state_dict()[name].float(), tensor.to(dtype).float(), atol=0, rtol=0)


def test_int8_copies_pickles_and_switches_precision(tmp_path, int8_kernel):
    optimized = enable_fast_inference(spread_model(num_tags=5), precision="int8")
    x = _pixels(2)
    with torch.no_grad():
        logits = optimized(pixel_values=x).logits
        for clone in (copy.deepcopy(optimized), pickle.loads(pickle.dumps(optimized))):
            torch.testing.assert_close(clone(pixel_values=x).logits, logits, atol=0, rtol=0)
        again = enable_fast_inference(optimized, precision="int8")  # idempotent
        torch.testing.assert_close(again(pixel_values=x).logits, logits, atol=0, rtol=0)
        back = enable_fast_inference(optimized, precision="bf16")
        assert not any(isinstance(m, optimization.Int8DynamicLinear) for m in back.modules())
        assert back.fast_inference.precision == "bf16" and back(pixel_values=x).logits.dtype == torch.bfloat16
        assert optimization.int8_linear_targets(back)  # plain linears again, over the same weights


@needs_int8
@pytest.mark.parametrize("signed", [True, False])
def test_onednn_input_codes_follow_the_cpu(monkeypatch, signed):
    """Signed input codes only where oneDNN runs them at speed (AMX); uint8 codes elsewhere, and for one-sided
    inputs (GELU outputs) everywhere. Both compute the float linear closely."""
    if not optimization.int8_available("onednn"):
        pytest.skip("this PyTorch build has no oneDNN int8 linear kernel")
    monkeypatch.setattr(optimization, "INT8_KERNEL", "onednn")
    monkeypatch.setattr(optimization, "INT8_SIGNED_INPUTS", None)
    monkeypatch.setattr(optimization, "onednn_signed_int8_inputs", lambda: signed)
    seen = []
    original = optimization.quantize_activation
    monkeypatch.setattr(optimization, "quantize_activation", lambda x, symmetric: seen.append(symmetric) or original(x, symmetric))
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    two_sided = optimization.Int8DynamicLinear.from_linear(linear).eval()
    one_sided = optimization.Int8DynamicLinearOneSided.from_linear(linear).eval()
    assert two_sided.int8_input_codes == ("int8" if signed else "uint8") and one_sided.int8_input_codes == "uint8"
    x = torch.randn(10, 64, generator=generator)
    with torch.no_grad():
        expected = linear(x)
        torch.testing.assert_close(two_sided(x), expected, atol=0.05, rtol=0.05)
        torch.testing.assert_close(one_sided(torch.nn.functional.gelu(x)), linear(torch.nn.functional.gelu(x)), atol=0.05, rtol=0.05)
    assert seen == [signed, False]
    # a copy keeps its codes, whatever the CPU says later
    monkeypatch.setattr(optimization, "onednn_signed_int8_inputs", lambda: not signed)
    assert pickle.loads(pickle.dumps(two_sided)).int8_input_codes == two_sided.int8_input_codes
    monkeypatch.setattr(optimization, "INT8_KERNEL", "fbgemm")
    if optimization.int8_available("fbgemm"):
        assert optimization.Int8DynamicLinear.from_linear(linear).int8_input_codes == "uint8"


def test_bad_precision_values_fail_clearly():
    model = spread_model(num_tags=5)
    for bad in ("int4", "INT8", "fp16", None, 8):
        with pytest.raises(ValueError, match="precision.*'fp32', 'bf16', 'int8'"):
            enable_fast_inference(model, precision=bad)
    if optimization.onednn_int8_available():
        meta = spread_model(num_tags=5).to("meta")
        with pytest.raises(ValueError, match="int8.*CPU.*meta"):
            enable_fast_inference(meta, precision="int8")


def test_fbgemm_int8_matches_the_float_linear_and_refuses_non_finite_inputs(monkeypatch):
    if not optimization.int8_available("fbgemm"):
        pytest.skip("this PyTorch build has no fbgemm int8 linear kernel")
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(48, 24).eval()
    int8 = optimization.Int8DynamicLinear.from_linear(linear, "fbgemm")
    assert int8.int8_kernel == "fbgemm" and int8.weight is linear.weight  # shared, not copied
    x = torch.randn(2, 7, 48, generator=generator)
    with torch.no_grad():
        expected = linear(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the quantized weight is made once, its deprecation warning silenced
            got = int8(x)
            gelu = int8.int8_forward(x, post_op="gelu")
        assert got.shape == expected.shape == (2, 7, 24) and got.dtype == torch.float32
        assert 0 < (got - expected).abs().max() < 0.03 * expected.abs().max()  # quantized: close, not equal
        torch.testing.assert_close(gelu, F.gelu(got), atol=1e-6, rtol=0)
        assert int8(x.to(torch.bfloat16)).dtype == torch.bfloat16  # other input dtypes: in and out as given
        for bad in (float("nan"), float("inf")):  # the reference propagates them; a quantizer would not
            broken = x.clone()
            broken[0, 0, 0] = bad
            assert int8.int8_forward(broken) is None
            out = int8(broken)
            torch.testing.assert_close(out, linear(broken), equal_nan=True)
            assert torch.isfinite(out[1]).all()  # one bad row spoils only its own outputs, as in the reference
        assert int8(torch.zeros(0, 48)).shape == (0, 24)
        back = pickle.loads(pickle.dumps(int8))  # the packed weight is rebuilt, on the same kernel
        assert back.int8_kernel == "fbgemm"
        torch.testing.assert_close(back(x), got, atol=0, rtol=0)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_model_made_under_inference_mode_takes_the_fast_paths(precision):
    """Tensors made under `torch.inference_mode()` have no version counter, which the fast paths' caches key on."""
    if precision == "int8" and not optimization.int8_available():
        pytest.skip("this PyTorch build has no int8 linear kernel for this CPU")
    reference = spread_model(num_tags=6)
    x = _pixels(2)
    with torch.inference_mode():
        made = copy.deepcopy(reference)
        assert made.image_projection.weight.is_inference()
        fast = enable_fast_inference(made, precision=precision)
        got = fast(pixel_values=x).logits.float()
        again = fast(pixel_values=x).logits.float()  # from the caches
        expected = reference(pixel_values=x).logits
    torch.testing.assert_close(again, got, atol=0, rtol=0)
    if precision == "fp32":
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    else:
        assert (got - expected).abs().max() < 0.05 * (expected.max() - expected.min())


def test_fbgemm_int8_cannot_saturate_on_avx2():
    """AVX2 (no VNNI) sums pairs of u8 x s8 products in 16 bits, saturating: with 8-bit input codes the weights'
    7-bit codes keep every pair in range. Inputs at the top of their range against weights at theirs, same sign:
    8-bit codes on both sides would clip each pair sum near half its value."""
    if not optimization.int8_available("fbgemm"):
        pytest.skip("this PyTorch build has no fbgemm int8 linear kernel")
    linear = torch.nn.Linear(64, 4, bias=False).eval()
    with torch.no_grad():
        linear.weight.fill_(0.5)
        linear.weight[1].fill_(-0.5)
        linear.weight[2, ::2] = 0.01  # other rows: no effect on the extreme ones
        x = torch.full((3, 64), 2.0)
        x[1] = -0.25  # the range includes 0 and -0.25: the 2.0 entries code to 255
        got = optimization.Int8DynamicLinear.from_linear(linear, "fbgemm")(x)
        torch.testing.assert_close(got, linear(x), atol=0.02 * 64, rtol=0)


def test_int8_kernel_switch_rebuilds_the_linears(monkeypatch):
    if not (optimization.int8_available("fbgemm") and optimization.int8_available("onednn")):
        pytest.skip("needs both int8 kernels")
    reference = spread_model(num_tags=6)
    x = _pixels(1)
    monkeypatch.setattr(optimization, "INT8_KERNEL", "onednn")
    model = enable_fast_inference(copy.deepcopy(reference), precision="int8")
    assert model.image_projection.weight.dtype == torch.bfloat16
    monkeypatch.setattr(optimization, "INT8_KERNEL", "fbgemm")
    model = enable_fast_inference(model, precision="int8")
    kernels = {m.int8_kernel for m in model.modules() if isinstance(m, optimization.Int8DynamicLinear)}
    assert kernels == {"fbgemm"} and model.image_projection.weight.dtype == torch.float32
    assert set(optimization.int8_linear_targets(reference)) == {
        name for name, m in model.named_modules() if isinstance(m, optimization.Int8DynamicLinear)
    }
    with torch.no_grad():
        fresh = enable_fast_inference(copy.deepcopy(reference).to(torch.bfloat16).float(), precision="int8")
        torch.testing.assert_close(model(pixel_values=x).logits, fresh(pixel_values=x).logits, atol=0, rtol=0)


def test_int8_without_the_kernel_fails_clearly(monkeypatch):
    monkeypatch.setattr(optimization, "INT8_KERNEL", "onednn")
    monkeypatch.setattr(optimization, "onednn_int8_available", lambda: False)
    with pytest.raises(RuntimeError, match="oneDNN.*int8.*bf16"):
        enable_fast_inference(spread_model(num_tags=5), precision="int8")
    monkeypatch.setattr(optimization, "INT8_KERNEL", "fbgemm")
    monkeypatch.setattr(optimization, "fbgemm_int8_available", lambda: False)
    with pytest.raises(RuntimeError, match="fbgemm.*int8.*fp32"):
        enable_fast_inference(spread_model(num_tags=5), precision="int8")
    monkeypatch.setattr(optimization, "INT8_KERNEL", "int4")
    with pytest.raises(ValueError, match="INT8_KERNEL.*'onednn', 'fbgemm'.*'int4'"):
        enable_fast_inference(spread_model(num_tags=5), precision="int8")


def test_int8_second_layers_by_cpu_and_wide_only(monkeypatch):
    """The second MLP / feed-forward layers run in int8 by default only on oneDNN with uint8 input codes (VNNI
    without AMX), or as INT8_SECOND_LAYERS forces, and only those with at least INT8_SECOND_LAYER_MIN_OUTPUTS
    outputs."""
    reference = spread_model(num_tags=5)
    second = {"vision_model.encoder.layers.0.blocks.0.mlp.fc2", "decoder.layers.0.fc2"}
    monkeypatch.setattr(optimization, "INT8_SECOND_LAYER_MIN_OUTPUTS", 0)
    assert optimization.INT8_SECOND_LAYERS is None  # the default: by the kernel and its input codes
    for kernel, signed, expected in (("onednn", False, True), ("onednn", True, False), ("fbgemm", False, False)):
        monkeypatch.setattr(optimization, "INT8_KERNEL", kernel)
        monkeypatch.setattr(optimization, "INT8_SIGNED_INPUTS", signed)
        assert optimization.int8_second_layers() is expected
        targets = set(optimization.int8_linear_targets(reference))
        assert "vision_model.encoder.layers.0.blocks.0.mlp.fc1" in targets
        assert second & targets == (second if expected else set())
        for forced in (False, True):  # INT8_SECOND_LAYERS forces either choice
            monkeypatch.setattr(optimization, "INT8_SECOND_LAYERS", forced)
            assert optimization.int8_second_layers() is forced
            assert second & set(optimization.int8_linear_targets(reference)) == (second if forced else set())
        monkeypatch.setattr(optimization, "INT8_SECOND_LAYERS", None)
    # a kernel given decides instead of the one this CPU would pick (uint8 input codes still set)
    assert second <= set(optimization.int8_linear_targets(reference, kernel="onednn"))
    monkeypatch.setattr(optimization, "INT8_KERNEL", "onednn")
    assert not second & set(optimization.int8_linear_targets(reference, kernel="fbgemm"))
    monkeypatch.setattr(optimization, "INT8_SECOND_LAYERS", True)
    widths = {
        name: owner.get_submodule(attr).out_features
        for name, (owner, attr) in optimization.int8_linear_targets(reference).items()
        if name.endswith("fc2")
    }
    assert len(set(widths.values())) > 1
    monkeypatch.setattr(optimization, "INT8_SECOND_LAYER_MIN_OUTPUTS", max(widths.values()))
    kept = {name for name in optimization.int8_linear_targets(reference) if name.endswith("fc2")}
    assert kept == {name for name, width in widths.items() if width == max(widths.values())}
    monkeypatch.setattr(optimization, "INT8_SECOND_LAYER_MIN_OUTPUTS", 0)
    if optimization.int8_available("onednn"):
        monkeypatch.setattr(optimization, "INT8_KERNEL", "onednn")
        monkeypatch.setattr(optimization, "INT8_SIGNED_INPUTS", False)
        model = enable_fast_inference(copy.deepcopy(reference), precision="int8")
        fc2 = model.decoder.layers[0].fc2
        assert isinstance(fc2, optimization.Int8DynamicLinearOneSided) and fc2.int8_input_codes == "uint8"
        # a model keeps the selection it was made with; enabling it again applies the current one, either way
        monkeypatch.setattr(optimization, "INT8_SECOND_LAYERS", False)
        assert isinstance(model.decoder.layers[0].fc2, optimization.Int8DynamicLinear)
        x = _pixels(1)
        for second in (False, True):
            monkeypatch.setattr(optimization, "INT8_SECOND_LAYERS", second)
            model = enable_fast_inference(model, precision="int8")
            fresh = enable_fast_inference(copy.deepcopy(reference), precision="int8")
            int8 = {name for name, m in model.named_modules() if isinstance(m, optimization.Int8DynamicLinear)}
            assert int8 == {name for name, m in fresh.named_modules() if isinstance(m, optimization.Int8DynamicLinear)}
            assert any(name.endswith("fc2") for name in int8) is second
            with torch.no_grad():
                torch.testing.assert_close(model(pixel_values=x).logits, fresh(pixel_values=x).logits, atol=0, rtol=0)


def test_quantize_activation_round_trips_and_refuses_non_finite():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    for symmetric in (True, False):
        codes, scale, zero_point = optimization.quantize_activation(x, symmetric)
        assert codes.dtype == (torch.int8 if symmetric else torch.uint8)
        assert ((codes.float() - zero_point) * scale - x).abs().max() <= 0.5001 * scale
        assert torch.equal(codes.int() - zero_point, torch.round(x * (1.0 / scale)).int())  # nearest, float32
    bf16 = x.bfloat16()  # computed in float32, not in the input's dtype
    codes, scale, zero_point = optimization.quantize_activation(bf16, False)
    assert torch.equal(codes.int() - zero_point, torch.round(bf16.float() * (1.0 / scale)).int())
    gelu = F.gelu(x)  # one-sided inputs: uint8 codes use the whole range
    codes, scale, zero_point = optimization.quantize_activation(gelu, False)
    assert codes.max() >= 254 and codes.min() <= 1 and 0 < zero_point <= 16  # GELU >= -0.17
    for low, high in ((-1.0, 0.0), (0.0, 1.0), (-3.0, 5.0), (-1e-30, 1e30)):  # codes stay in [0, 255], no clamp
        ramp = torch.linspace(low, high, 10001).reshape(-1, 1)
        codes, scale, zero_point = optimization.quantize_activation(ramp, False)
        assert ((codes.float() - zero_point) * scale - ramp).abs().max() <= 0.5001 * scale
    codes = optimization.quantize_activation(torch.tensor([[-2.0, 0.5, 2.0]]), True)[0]
    assert codes.tolist() == [[-127, 32, 127]]
    assert optimization.quantize_activation(torch.zeros(4, 4), True)[1] == 1.0  # all zeros: no division by 0
    x[3, 3] = float("nan")
    assert optimization.quantize_activation(x, True) is None


@needs_int8
def test_pipeline_and_cli_precision(converted_tiny, tmp_path, capsys):
    from transformers import pipeline

    from conftest import REFERENCE_IMAGES
    from transformers_ramplus.cli.main import main

    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), precision="int8")
    assert tagger.model.fast_inference.precision == "int8"
    fp32 = pipeline("zero-shot-image-tagging", model=str(converted_tiny))
    image = str(REFERENCE_IMAGES[0])
    ours, theirs = tagger(image, threshold=0.0, top_k=3), fp32(image, threshold=0.0, top_k=3)
    assert [tag["label"] for tag in ours] and len(ours) == len(theirs) == 3
    with pytest.raises(ValueError, match="optimize=True"):
        pipeline("zero-shot-image-tagging", model=str(converted_tiny), optimize=False, precision="int8")
    output = tmp_path / "tags.jsonl"
    assert main(["tag", image, "--model", str(converted_tiny), "--precision", "int8", "--output", str(output), "--no-progress"]) == 0
    assert json.loads(output.read_text().splitlines()[0])["path"].endswith(REFERENCE_IMAGES[0].name)
    # the precision changes scores: resuming the output at another precision is refused
    assert main(["tag", image, "--model", str(converted_tiny), "--output", str(output), "--no-progress"]) == 2
    # (the resolved precision is recorded: "auto" picks fp32 or bf16 by machine)
    assert re.search(r"--precision: 'int8' before, '(fp32|bf16)' now", capsys.readouterr().err)
    with pytest.raises(SystemExit):
        main(["tag", image, "--model", str(converted_tiny), "--precision", "int4"])


def test_benchmark_rejects_a_bad_reference_src(tmp_path, capsys):
    bench = _load_benchmark()
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--reference-src", str(tmp_path / "missing")])
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "checkout").mkdir()
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--reference-src", str(tmp_path / "checkout")])
    assert "ram/models/ram_plus.py" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ Swin blocks
def _count_fast_swin(monkeypatch):
    calls = []
    original = optimization.FastSwinLayer._fast_forward

    def counting(self, hidden_states, height, width, window):
        calls.append((self.shift_size, hidden_states.shape[0]))
        return original(self, hidden_states, height, width, window)

    monkeypatch.setattr(optimization.FastSwinLayer, "_fast_forward", counting)
    return calls


@pytest.mark.parametrize("batch", [1, 3])
def test_fast_swin_blocks_match_the_reference_blocks(monkeypatch, batch):
    reference, optimized = _pair(num_tags=6)
    calls = _count_fast_swin(monkeypatch)
    x = _pixels(batch)
    with torch.no_grad():
        expected = reference.get_image_embeds(x)
        fast = optimized.get_image_embeds(x)
    blocks = sum(len(stage.blocks) for stage in reference.vision_model.encoder.layers)
    image_blocks = -(-batch // optimization.VISION_CHUNK_IMAGES)
    assert len(calls) == blocks * image_blocks  # every block, shifted ones included
    assert any(shift > 0 for shift, _ in calls) and any(shift == 0 for shift, _ in calls)
    assert max(size for _, size in calls) == min(batch, optimization.VISION_CHUNK_IMAGES)
    assert expected.std() > 0.5
    torch.testing.assert_close(fast, expected, atol=ATOL, rtol=0)
    # the reference path (hidden states requested) does not take it
    calls.clear()
    with torch.no_grad():
        optimized(pixel_values=x, output_hidden_states=True)
    assert not calls


def test_window_order_is_the_shifted_window_partition():
    from transformers.models.swin.modeling_swin import window_partition

    height, width, window = 8, 12, 4
    grid = torch.arange(height * width, dtype=torch.float32).view(1, height, width, 1)
    for shift in (0, 2):
        rolled = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2))
        expected = window_partition(rolled, window).reshape(-1).long()
        order, inverse = optimization.window_order(height, width, window, shift)
        assert torch.equal(order, expected)
        assert torch.equal(order[inverse], torch.arange(height * width))


def test_grids_that_are_not_multiples_of_the_window_take_the_reference_blocks(monkeypatch):
    reference, optimized = _pair(num_tags=6)
    calls = _count_fast_swin(monkeypatch)
    x = _pixels(2)[:, :, :56, :56]  # 14 x 14 patches, then 7 x 7: not multiples of the window (4)
    with torch.no_grad():
        expected = reference.get_image_embeds(x)
        fast = optimized.get_image_embeds(x)
    assert not calls  # 14 x 14 and 7 x 7 grids: both stages pad, the reference blocks ran
    torch.testing.assert_close(fast, expected, atol=ATOL, rtol=0)


def test_int8_vocabulary_only_for_the_built_in_tags_and_follows_changes(monkeypatch, int8_kernel):
    reference = spread_model(num_tags=12)
    optimized = enable_fast_inference(copy.deepcopy(reference), precision="int8")
    x = _pixels(2)
    width = reference.config.text_embed_dim
    calls = _count_int8_calls(monkeypatch)
    with torch.no_grad():
        full = optimized(pixel_values=x).logits
        assert calls.count((2, width)) == 1  # the similarity to the whole vocabulary, in int8
        calls.clear()
        subset = optimized(pixel_values=x, tag_indices=[1, 4, 7]).logits
        label_embeds = optimized.label_embeds.view(12, -1, width)[:5].clone()
        open_set = optimized(pixel_values=x, label_embeds=label_embeds).logits
        assert (2, width) not in calls  # subsets and open-set tags: the reference similarity
        assert subset.shape == (2, 3) and open_set.shape == (2, 5)
        spread = (full.max() - full.min()).item()
        assert (subset.float() - full[:, [1, 4, 7]].float()).abs().max().item() < 0.05 * spread
        # an in-place change of the vocabulary is seen (the int8 copy is rebuilt)
        optimized.label_embeds.mul_(-1.0)
        reference.label_embeds.mul_(-1.0)
        changed = optimized(pixel_values=x).logits
        fresh = enable_fast_inference(copy.deepcopy(reference), precision="int8")(pixel_values=x).logits
    torch.testing.assert_close(changed, fresh, atol=0, rtol=0)
    assert not torch.equal(changed, full)
