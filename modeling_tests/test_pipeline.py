"""pipeline("zero-shot-image-tagging")."""

import json
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REFERENCE_IMAGES, TINY_DIR, run_without_package, tiny_text_model
import transformers_ramplus  # noqa: F401  (registers the task)
from transformers import pipeline
from transformers_ramplus import TagSet, ZeroShotImageTaggingPipeline


IMAGES = [str(path) for path in REFERENCE_IMAGES]


@pytest.fixture(scope="module")
def golden_tagger(converted_tiny):
    return pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")


def test_builtin_scores_equal_the_closed_set_model(golden_tagger, reference_outputs):
    assert isinstance(golden_tagger, ZeroShotImageTaggingPipeline)
    expected = torch.sigmoid(reference_outputs["logits"])
    names = golden_tagger.model.config.tag_names
    results = golden_tagger(IMAGES, threshold=0.0, batch_size=2)
    assert len(results) == 2
    for image_index, tags in enumerate(results):
        assert len(tags) == len(names)
        scores = [tag["score"] for tag in tags]
        assert scores == sorted(scores, reverse=True)
        by_label = {tag["label"]: tag["score"] for tag in tags}
        got = torch.tensor([by_label[name] for name in names])
        torch.testing.assert_close(got, expected[image_index], atol=1e-4, rtol=0)
    # a subset of built-in tags: same scores for those tags, in the tag_indices fast path
    subset = [names[5], names[28], names[0]]
    tag_set = golden_tagger.get_tag_set(subset)
    assert tag_set.is_builtin_subset
    sub_results = golden_tagger(IMAGES[1], candidate_labels=subset, threshold=0.0)
    for tag in sub_results:
        torch.testing.assert_close(torch.tensor(tag["score"]), expected[1, names.index(tag["label"])], atol=1e-4, rtol=0)
    assert {tag["label"] for tag in sub_results} == set(subset)


def test_default_thresholds_and_languages_match_the_original(golden_tagger):
    meta = json.loads((TINY_DIR / "reference_meta.json").read_text())
    results = golden_tagger(IMAGES)
    for tags, original in zip(results, meta["tags"]):
        assert {tag["label"] for tag in tags} == {name.strip() for name in original.split("|")}
    chinese = golden_tagger(IMAGES, language="zh")
    for tags, original in zip(chinese, meta["tags_chinese"]):
        assert {tag["label"] for tag in tags} == {name.strip() for name in original.split("|")}
    top = golden_tagger(IMAGES[0], top_k=3, threshold=0.0)
    everything = golden_tagger(IMAGES[0], threshold=0.0)
    assert top == everything[:3]


def test_image_kinds_and_batch_sizes_agree(golden_tagger):
    path = IMAGES[1]
    pil = Image.open(path)
    array = np.asarray(pil.convert("RGB"))
    from_path = golden_tagger(path, threshold=0.0)
    for other in (golden_tagger(pil, threshold=0.0), golden_tagger(array, threshold=0.0)):
        assert [t["label"] for t in other] == [t["label"] for t in from_path]
        np.testing.assert_allclose([t["score"] for t in other], [t["score"] for t in from_path], atol=1e-6)
    one_by_one = golden_tagger(IMAGES, threshold=0.3, batch_size=1)
    batched = golden_tagger(IMAGES, threshold=0.3, batch_size=2)
    assert [[t["label"] for t in r] for r in batched] == [[t["label"] for t in r] for r in one_by_one]


def test_new_tags_and_descriptions_with_a_bundled_text_tower(converted_tiny_text, reference_outputs):
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny_text), device="cpu")
    assert tagger.tokenizer is not None and tagger.model.text_model is not None
    from_object = pipeline("zero-shot-image-tagging", model=tagger.model, device="cpu")
    assert type(from_object.tokenizer) is type(tagger.tokenizer)  # found next to the model's weights
    names = tagger.model.config.tag_names
    labels = {names[5]: None, "zebra": ["a striped horse", "black and white stripes"], "kite": None}
    results = tagger(IMAGES, candidate_labels=labels, threshold=0.0)
    expected_builtin = torch.sigmoid(reference_outputs["logits"][:, 5])
    tag_set = TagSet.from_model(tagger.model, labels, tokenizer=tagger.tokenizer)
    pixel_values = reference_outputs["pixel_values"]
    with torch.no_grad():
        direct = torch.sigmoid(tagger.model(pixel_values=pixel_values, **tag_set.model_inputs(tagger.model)).logits)
    for image_index, tags in enumerate(results):
        by_label = {tag["label"]: tag["score"] for tag in tags}
        assert set(by_label) == set(labels)
        torch.testing.assert_close(torch.tensor(by_label[names[5]]), expected_builtin[image_index], atol=1e-4, rtol=0)
        got = torch.tensor([by_label[name] for name in labels])
        torch.testing.assert_close(got, direct[image_index], atol=1e-4, rtol=0)
    # per-tag default thresholds: 0.5 for new tags
    default = tagger(IMAGES[0], candidate_labels=labels)
    kept = {tag["label"] for tag in default}
    by_label = {tag["label"]: tag["score"] for tag in results[0]}
    assert kept == {name for name, t in zip(tag_set.names, tag_set.thresholds) if by_label[name] > t}
    assert tag_set.thresholds[1:] == [0.5, 0.5]


def test_bad_arguments_name_the_problem(golden_tagger):
    with pytest.raises(ValueError, match="text tower"):
        golden_tagger(IMAGES[0], candidate_labels=["definitely not a built-in tag"])
    with pytest.raises(ValueError, match="threshold"):
        golden_tagger(IMAGES[0], threshold=1.5)
    with pytest.raises(ValueError, match="nan"):
        golden_tagger(IMAGES[0], threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold"):
        golden_tagger(IMAGES[0], threshold="0.5")
    with pytest.raises(ValueError, match="language"):
        golden_tagger(IMAGES[0], language="fr")
    with pytest.raises(ValueError, match="top_k"):
        golden_tagger(IMAGES[0], top_k=0)
    with pytest.raises(TypeError, match="candidate_labels"):
        golden_tagger(IMAGES[0], candidate_labels=3)


def test_saved_pipeline_loads_as_remote_code_without_the_package(tmp_path):
    """The folder's own code tags with the built-in tags (all, or some by name) without the package; new tags and
    descriptions (the package's TagSet, not shipped) fail with a message naming the package."""
    model, tokenizer = tiny_text_model()
    tagger = pipeline("zero-shot-image-tagging", model=model, tokenizer=tokenizer, device="cpu")
    labels = model.config.tag_names[:3]
    expected = {
        "some": tagger(IMAGES, candidate_labels=labels, threshold=0.0),
        "all": tagger(IMAGES, threshold=0.0, language="zh" if model.config.tag_names_chinese else "en"),
    }
    tagger.save_pretrained(tmp_path / "saved")
    saved = tmp_path / "saved"
    assert sorted(p.name for p in saved.glob("*.py")) == [
        "configuration_ram_plus.py", "image_processing_ram_plus.py", "modeling_ram_plus.py",
        "pipeline_zero_shot_image_tagging.py", "processing_ram_plus.py",
    ]
    config = json.loads((saved / "config.json").read_text())
    assert sorted(config["custom_pipelines"]) == ["zero-shot-image-classification", "zero-shot-image-tagging"]
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["transformers_ramplus"] = None  # importing the package now fails
        from transformers import pipeline
        tagger = pipeline("zero-shot-image-tagging", model={str(saved)!r}, trust_remote_code=True, device="cpu")
        assert "transformers_ramplus" not in type(tagger).__module__, type(tagger).__module__
        expected = json.load(open({str(tmp_path / 'expected.json')!r}))
        got = {{
            "some": tagger({IMAGES!r}, candidate_labels={labels!r}, threshold=0.0),
            "all": tagger({IMAGES!r}, threshold=0.0, language={"zh" if model.config.tag_names_chinese else "en"!r}),
        }}
        for key in ("some", "all"):
            for a, b in zip(got[key], expected[key]):
                assert [t["label"] for t in a] == [t["label"] for t in b], (key, a, b)
                assert max(abs(x["score"] - y["score"]) for x, y in zip(a, b)) < 1e-5
        for labels in (["a brand new tag"], {{"zebra": ["a striped horse"]}}):
            try:
                tagger({IMAGES!r}[0], candidate_labels=labels)
                raise SystemExit(f"tagged with {{labels}} without the package")
            except ValueError as error:
                assert "pip install transformers-ramplus" in str(error), error
        print("remote-pipeline-ok")
        """
    )
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote-pipeline-ok" in result.stdout


def test_the_pipeline_runs_the_optimized_model_and_can_keep_the_reference(converted_tiny, reference_outputs):
    from transformers_ramplus.inference.fast_paths import is_optimized

    optimized = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    plain = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu", optimize=False)
    bf16 = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu", precision="bf16")
    assert is_optimized(optimized.model) and not is_optimized(plain.model)
    assert bf16.model.dtype == torch.bfloat16 and bf16.model.fast_inference.precision == "bf16"
    expected = torch.sigmoid(reference_outputs["logits"][1])
    names = optimized.model.config.tag_names
    for tagger, tolerance in ((optimized, 1e-5), (plain, 1e-5), (bf16, 0.15)):  # bf16: 8-bit mantissas
        scores = {t["label"]: t["score"] for t in tagger(IMAGES[1], threshold=0.0)}
        assert len(scores) == len(names)
        got = torch.tensor([scores[name] for name in names])
        torch.testing.assert_close(got, expected, atol=tolerance, rtol=0)


@pytest.mark.parametrize("precision", [None, "bf16", "int8"])
def test_the_pipeline_leaves_the_model_it_is_given_as_it_was(converted_tiny, precision):
    """The pipeline works on its own copy of the modules (sharing the weights' memory): the model object passed in
    keeps its classes, parameters (objects, dtypes, values), training flag and outputs, and the results are those of
    a pipeline that loaded the model itself."""
    from transformers_ramplus import RamPlusModel
    from transformers_ramplus.inference.fast_paths import int8_available, is_optimized

    if precision == "int8" and not int8_available():
        pytest.skip("this PyTorch build has no int8 linear kernel for this CPU")
    model = RamPlusModel.from_pretrained(converted_tiny).eval()
    size = model.config.vision_config.image_size
    pixel_values = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits
    model.train()
    classes = {name: type(module) for name, module in model.named_modules()}
    parameters = {name: (param, param.dtype, param.detach().clone()) for name, param in model.named_parameters()}

    tagger = pipeline("zero-shot-image-tagging", model=model, device="cpu", precision=precision)
    results = tagger(IMAGES, threshold=0.0)

    assert tagger.model is not model
    assert is_optimized(tagger.model) and not is_optimized(model)
    assert {name: type(module) for name, module in model.named_modules()} == classes
    assert all(module.training for module in model.modules() if module is not model.text_model)
    for name, param in model.named_parameters():
        original, dtype, values = parameters[name]
        assert param is original and param.dtype == dtype and torch.equal(param, values), name
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=pixel_values).logits, expected, atol=0, rtol=0)
    loaded = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu", precision=precision)
    for ours, theirs in zip(results, loaded(IMAGES, threshold=0.0)):
        assert [tag["label"] for tag in ours] == [tag["label"] for tag in theirs]
        np.testing.assert_allclose([tag["score"] for tag in ours], [tag["score"] for tag in theirs], atol=1e-6)


def test_pipeline_keeps_the_requested_device_under_torch_distributed(tmp_path, converted_tiny):
    """transformers' Pipeline keeps the model's own device (the CPU, for a model loaded from a path) while a
    torch.distributed group exists, which made a sharded `ramplus tag` compute on the CPU of a GPU machine. The
    requested device wins. "meta" stands in for a GPU on this CPU-only machine: any device other than the CPU."""
    import torch.distributed as dist

    from transformers import pipeline

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="meta")
        assert tagger.device == torch.device("meta")
        assert tagger.model.device == torch.device("meta")
        on_cpu = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
        assert on_cpu.device == torch.device("cpu") and on_cpu.model.device == torch.device("cpu")
    finally:
        dist.destroy_process_group()
