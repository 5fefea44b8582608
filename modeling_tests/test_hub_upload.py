"""hub_upload: staging with the one model-folder writer, verification against the original checkpoint, a model card
from huggingface_hub's ModelCard, and the push as HfApi calls (create_repo, upload_folder, --create-pr) answered by
the local Hub stand-in on 127.0.0.1 (the real Hub is out of reach here)."""

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from conftest import REFERENCE_IMAGES, TINY_DIR, run_without_package
from local_hub import LocalHub

HUB_UPLOAD = Path(__file__).resolve().parents[1] / "hub_upload" / "prepare_and_push.py"
IMAGES = [str(p) for p in REFERENCE_IMAGES]


def load_tool():
    spec = importlib.util.spec_from_file_location("prepare_and_push", HUB_UPLOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def staged(tmp_path_factory, converted_tiny):
    staging = tmp_path_factory.mktemp("stage") / "staging"
    code = load_tool().main(
        [str(converted_tiny), "someone/ram-plus-tiny", "--staging", str(staging), "--dry-run",
         "--checkpoint", str(TINY_DIR / "ram_plus_original.pth"), "--image", IMAGES[0], "--image", IMAGES[1]]
    )
    assert code == 0
    return staging


def test_dry_run_stages_verifies_and_writes_the_card(staged, converted_tiny):
    from huggingface_hub import ModelCard

    names = {p.name for p in staged.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "preprocessor_config.json", "README.md"} <= names
    assert {p.name for p in converted_tiny.glob("*.py")} <= names  # the same bundle as `ramplus convert` writes
    figures = json.loads((staged / "verification.json").read_text())
    assert figures["max_abs_logit_diff_vs_original_checkpoint"] < 1e-4 and figures["images"] == 2
    assert figures["identical_tag_decisions"] == "74/74"
    card = ModelCard.load(staged / "README.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert card.data.base_model == "xinyu1205/recognize-anything-plus-model"
    assert "arxiv:2310.15200" in card.data.tags and "arxiv.org/abs/2310.15200" in card.text
    assert "trust_remote_code=True" in card.text and "import transformers_ramplus" in card.text
    assert "max_abs_logit_diff_vs_original_checkpoint" in card.text and "@article{huang2023open" in card.text
    # the card's task runs on the staged folder (with the package here; without it below)
    assert card.data.pipeline_tag == "image-classification"
    top = pipeline(card.data.pipeline_tag, model=str(staged), device="cpu")(IMAGES[1], top_k=3)
    tagger = pipeline("zero-shot-image-tagging", model=str(staged), device="cpu")
    scores = {t["label"]: t["score"] for t in tagger(IMAGES[1], threshold=0.0)}
    # the tagging pipeline runs the optimized model (fp32 summation order differs: scores agree to ~1e-6)
    assert len(top) == 3 and all(abs(scores[t["label"]] - t["score"]) < 1e-5 for t in top)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["transformers_ramplus"] = None
        from transformers import AutoProcessor, pipeline
        processor = AutoProcessor.from_pretrained({str(staged)!r}, trust_remote_code=True)
        assert hasattr(processor, "post_process_image_tagging"), type(processor)
        top = pipeline({card.data.pipeline_tag!r}, model={str(staged)!r}, trust_remote_code=True)({IMAGES[1]!r}, top_k=3)
        assert [t["label"] for t in top] == {[t["label"] for t in top]!r}, top
        assert pipeline("zero-shot-image-tagging", model={str(staged)!r}, trust_remote_code=True)({IMAGES[1]!r})
        print("remote-ok")
        """
    )
    result = run_without_package(script, staged.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_push_creates_the_repo_and_uploads_the_staged_files_as_a_pull_request(tmp_path, staged, monkeypatch):
    from huggingface_hub import constants

    tool = load_tool()
    with LocalHub(uploads_dir=tmp_path / "uploads") as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", "hf_local_stand_in")
        info = tool.push(staged, "someone/ram-plus-tiny", create_pr=True, message="Add RAM++")
    assert [c["name"] for c in hub.created] == ["ram-plus-tiny"]
    assert hub.validated and hub.validated[-1]["pipeline_tag"] == "image-classification"
    (commit,) = hub.commits
    assert commit["repo_id"] == "someone/ram-plus-tiny" and commit["create_pr"] is True
    assert commit["revision"] == "refs/pr/1" and hub.pull_requests[0]["title"] == "Add RAM++"
    staged_files = sorted(p.name for p in staged.iterdir() if p.is_file())
    assert commit["paths"] == staged_files
    for name in staged_files:
        assert (tmp_path / "uploads" / "someone" / "ram-plus-tiny" / name).read_bytes() == (staged / name).read_bytes()
    assert info.pr_url and info.pr_url.endswith("/discussions/1")


def test_bf16_weights_are_half_the_size_and_tag_alike(tmp_path, converted_tiny):
    staging = tmp_path / "bf16"
    tool = load_tool()
    figures = tool.prepare(converted_tiny, staging, "someone/ram-plus-tiny-bf16", bf16=True, images=IMAGES)
    # random tiny weights: bf16 rounding moves logits by tenths; decisions are reported for the card
    assert figures["dtype"] == "bfloat16" and 0 < figures["max_abs_logit_diff_vs_source"] < 1.0
    assert "identical_tag_decisions" in figures
    size = (staging / "model.safetensors").stat().st_size
    assert size < 0.6 * (converted_tiny / "model.safetensors").stat().st_size
    assert json.loads((staging / "config.json").read_text())["dtype"] == "bfloat16"


def test_refuses_a_directory_that_is_not_a_model(tmp_path):
    tool = load_tool()
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty"), "someone/x", "--staging", str(tmp_path / "s"), "--dry-run"]) == 2
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def test_staged_inference_endpoints_handler(staged, converted_tiny, reference_outputs):
    """handler.py of the staged folder, called as Inference Endpoints calls it: the Hub's task format."""
    import base64
    import sys

    from PIL import Image

    assert (staged / "handler.py").is_file()
    spec = importlib.util.spec_from_file_location("staged_handler", staged / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.EndpointHandler(str(staged))
    names = json.loads((converted_tiny / "config.json").read_text())["id2label"]
    labels = [names["4"], names["0"], names["30"]]
    photo = Path(IMAGES[1]).read_bytes()
    answer = handler({"inputs": base64.b64encode(photo).decode(), "parameters": {"candidate_labels": labels}})
    assert {a["label"] for a in answer} == set(labels)
    assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)
    expected = torch.sigmoid(reference_outputs["logits"][1])
    for a in answer:
        index = int(next(k for k, v in names.items() if v == a["label"]))
        assert abs(a["score"] - expected[index].item()) < 1e-4
    # raw bytes and a PIL image (what the endpoint toolkit may pass) give the same answer; no labels: the image's tags
    assert handler({"inputs": photo, "parameters": {"candidate_labels": labels}}) == answer
    tags = handler({"inputs": Image.open(IMAGES[1])})
    meta = json.loads((TINY_DIR / "reference_meta.json").read_text())
    assert {t["label"] for t in tags} == {n.strip() for n in meta["tags"][1].split("|")}
    for bad, words in [({"inputs": "%%%"}, "base64"), ({"inputs": base64.b64encode(b"nope").decode()}, "readable"),
                       ({"image": "x"}, "inputs"), ({"inputs": photo, "parameters": {"colour": 1}}, "colour")]:
        with pytest.raises(ValueError, match=words):
            handler(bad)
    sys.modules.pop("staged_handler", None)
