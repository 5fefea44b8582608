"""Tag2Text against the authors' golden tiny data (fixtures/tag2text_tiny): conversion, tag logits and strings,
captions (predicted and specified tags, batched = one at a time), losses and gradients, pipelines, remote code."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import FIXTURES_DIR, REFERENCE_IMAGES, run_without_package


T2T_DIR = FIXTURES_DIR / "tag2text_tiny"


def _golden(name):
    path = T2T_DIR / name
    if not path.is_file():
        pytest.fail(f"golden data not found at {path}")
    return torch.load(path, weights_only=True) if name.endswith(".pt") else json.loads(path.read_text())


@pytest.fixture(scope="module")
def converted_t2t(tmp_path_factory):
    """The golden original checkpoint converted with `ramplus convert` (format detected from the keys)."""
    from transformers_ramplus.cli.main import main

    out = tmp_path_factory.mktemp("t2t") / "tag2text_tiny"
    code = main(
        [
            "convert",
            str(T2T_DIR / "tag2text_original.pth"),
            str(out),
            "--tag-list",
            str(T2T_DIR / "tag2text_ori_tag_list.txt"),
            "--tokenizer",
            str(T2T_DIR / "tokenizer"),
            "--text-heads",
            "4",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def t2t(converted_t2t):
    from transformers_ramplus import Tag2TextForConditionalGeneration, Tag2TextProcessor

    model = Tag2TextForConditionalGeneration.from_pretrained(converted_t2t).eval()
    return model, Tag2TextProcessor.from_pretrained(converted_t2t)


def test_conversion_files_and_config(converted_t2t):
    config = json.loads((converted_t2t / "config.json").read_text())
    assert config["model_type"] == "tag2text"
    assert config["delete_tag_index"] == [127, 2961, 3351, 3265, 3338, 3355, 3359]
    thresholds = config["tag_thresholds"]
    assert len(thresholds) == 3429 and thresholds[2701] == thresholds[2828] == thresholds[1167] == 0.7
    assert thresholds.count(0.68) == 3426
    generation = json.loads((converted_t2t / "generation_config.json").read_text())
    assert (generation["num_beams"], generation["max_length"], generation["min_length"]) == (3, 30, 10)
    assert generation["repetition_penalty"] == 1.0
    assert "AutoModelForImageTextToText" in config["auto_map"]


def test_logits_and_tag_strings_match_golden(t2t):
    model, processor = t2t
    golden, meta = _golden("reference_outputs.pt"), _golden("reference_meta.json")
    with torch.no_grad():
        logits = model(pixel_values=golden["pixel_values"]).logits
    assert logits.shape == golden["logits"].shape
    assert (logits - golden["logits"]).abs().max().item() < 1e-4
    tags = processor.post_process_image_tagging(logits)
    assert [processor.format_tags(t) for t in tags] == meta["tags"]


@pytest.mark.slow
def test_captions_match_golden_ids(t2t):
    model, processor = t2t
    golden, meta = _golden("reference_outputs.pt"), _golden("reference_meta.json")
    for i in range(2):
        pixels = golden["pixel_values"][i : i + 1]
        ids, tag_texts = model.generate(pixel_values=pixels, return_tags=True)
        assert ids.tolist() == golden["caption_ids"][i].tolist()
        assert tag_texts == [meta["tags"][i]]
        assert processor.batch_decode(ids) == [meta["captions"][i]]
        ids = model.generate(pixel_values=pixels, tags=[meta["specified_tags"][i]])
        assert ids.tolist() == golden["specified_caption_ids"][i].tolist()
        assert processor.batch_decode(ids) == [meta["specified_captions"][i]]


def test_batched_captions_equal_one_at_a_time(t2t):
    """Each row of a batch equals the golden one-at-a-time ids (predicted and specified tags) and their captions."""
    model, processor = t2t
    golden, meta = _golden("reference_outputs.pt"), _golden("reference_meta.json")
    for tags in (None, meta["specified_tags"]):
        batched = model.generate(pixel_values=golden["pixel_values"], tags=tags)
        key = "caption_ids" if tags is None else "specified_caption_ids"
        for i in range(2):
            single = golden[key][i][0]
            row = batched[i]
            assert row[: len(single)].tolist() == single.tolist()
            assert (row[len(single) :] == model.config.text_config.pad_token_id).all()
        captions = meta["captions"] if tags is None else meta["specified_captions"]
        assert processor.batch_decode(batched) == captions


@pytest.mark.slow
def test_tags_from_processor_and_lists(t2t):
    """Specified tags as a list of tags, and pre-tokenized by the processor, give the golden caption too."""
    model, processor = t2t
    golden, meta = _golden("reference_outputs.pt"), _golden("reference_meta.json")
    pixels = golden["pixel_values"][:1]
    as_list = [t.strip() for t in meta["specified_tags"][0].split("|")]
    assert model.generate(pixel_values=pixels, tags=[as_list]).tolist() == golden["specified_caption_ids"][0].tolist()
    inputs = processor(tags=[meta["specified_tags"][0]])
    ids = model.generate(pixel_values=pixels, **inputs)
    assert ids.tolist() == golden["specified_caption_ids"][0].tolist()


@pytest.mark.slow
def test_sampling_and_options(t2t):
    model, processor = t2t
    pixels = _golden("reference_outputs.pt")["pixel_values"]
    torch.manual_seed(0)
    ids = model.generate(
        pixel_values=pixels, do_sample=True, num_beams=1, top_p=0.9, repetition_penalty=1.1, max_length=12
    )
    assert ids.shape[0] == 2 and ids.shape[1] <= 12
    assert (ids[:, :4] == torch.tensor([4175, 104, 105, 106])).all()  # [DEC] a picture of
    ids = model.generate(pixel_values=pixels, num_beams=2, num_return_sequences=2, max_length=12, min_length=5)
    assert ids.shape[0] == 4
    assert all(isinstance(c, str) for c in processor.batch_decode(ids))
    greedy = model.generate(pixel_values=pixels[:1], num_beams=1, max_length=12, min_length=5)
    assert greedy.shape[1] <= 12


def test_bad_inputs_are_named(t2t):
    model, _ = t2t
    pixels = _golden("reference_outputs.pt")["pixel_values"]
    with pytest.raises(ValueError, match="384x384"):
        model(pixel_values=torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="tags of each of the 2 images"):
        model.generate(pixel_values=pixels, tags=["dog"])
    with pytest.raises(TypeError, match="string or a list of strings"):
        model.generate(pixel_values=pixels[:1], tags=[3])
    with pytest.raises(ValueError, match=r"labels.*shape"):
        model(pixel_values=pixels, labels=torch.zeros(2, 5))


def test_losses_and_gradients_match_golden(t2t):
    """`text_generation` and `tag` of the original training forward, and the gradient of each for three parameters
    (the tag loss reaches the tag encoder through the shared tagging layers)."""
    model, processor = t2t
    golden, reference = _golden("reference_outputs.pt"), _golden("reference_losses.pt")
    inputs = reference["inputs"]
    batch = processor(captions=inputs["captions"], add_prompt=False)  # the golden forward took them as given
    params = {
        "fc": model.fc.W,
        "text_decoder.cls": model.text_model.text_decoder.cls.predictions.transform.dense.weight,
        "tag_encoder.layer0.crossattention.query": (
            model.text_model.tag_encoder.encoder.layer[0].crossattention.self.query.weight
        ),
    }
    names = {"text_generation": "caption_loss", "tag": "tag_loss"}
    for loss_name, attribute in names.items():
        model.zero_grad()
        out = model(
            pixel_values=golden["pixel_values"],
            labels=inputs["image_tag"],
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            caption_labels=batch["caption_labels"],
        )
        loss = getattr(out, attribute)
        expected = reference["losses"][loss_name]
        assert abs(loss.item() - expected.item()) <= 1e-5 * abs(expected.item())
        loss.backward()
        for key, param in params.items():
            want = reference["grads"][loss_name][key]
            got = param.grad if param.grad is not None else torch.zeros_like(param)
            scale = want.abs().max().clamp(min=1e-12)
            assert (got.reshape(want.shape) - want).abs().max() <= 1e-4 * scale, (loss_name, key)
    model.zero_grad()


def test_tagging_pipeline_and_no_open_set(converted_t2t):
    from transformers import pipeline

    meta = _golden("reference_meta.json")
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_t2t))
    results = tagger([str(p) for p in REFERENCE_IMAGES])
    # the pipeline reads the photos itself: the same tags as the golden pixel values (sorted by score there)
    assert [sorted(r["label"] for r in result) for result in results] == [sorted(t.split(" | ")) for t in meta["tags"]]
    with pytest.raises(ValueError, match="no open set"):
        tagger(str(REFERENCE_IMAGES[0]), candidate_labels=["dog", "cat"])


def test_image_to_text_pipeline(converted_t2t):
    from transformers import pipeline

    meta = _golden("reference_meta.json")
    captioner = pipeline("image-text-to-text", model=str(converted_t2t))
    out = captioner(images=str(REFERENCE_IMAGES[0]), text="a picture of")
    assert out[0]["generated_text"].strip().startswith("a picture of")
    assert out[0]["generated_text"].strip() == ("a picture of " + meta["captions"][0]).strip()


def test_convert_errors_name_the_problem(tmp_path):
    from transformers_ramplus.models.ram_plus.convert_ram_plus import ConversionError
    from transformers_ramplus.models.tag2text.convert_tag2text import convert_checkpoint

    short = tmp_path / "tags.txt"
    short.write_text("dog\ncat\n")
    with pytest.raises(ConversionError, match="2 tags"):
        convert_checkpoint(T2T_DIR / "tag2text_original.pth", tmp_path / "a", short, T2T_DIR / "tokenizer")
    state = torch.load(T2T_DIR / "tag2text_original.pth", weights_only=True)["model"]
    state["tagging_head.encoder.layer.0.output.dense.bias"] = (
        state["tagging_head.encoder.layer.0.output.dense.bias"] + 1
    )
    changed = tmp_path / "changed.pth"
    torch.save({"model": state}, changed)
    with pytest.raises(ConversionError, match="differs from tag_encoder"):
        convert_checkpoint(changed, tmp_path / "b", T2T_DIR / "tag2text_ori_tag_list.txt", T2T_DIR / "tokenizer")
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_remote_code_without_package(converted_t2t, tmp_path):
    script = f"""
import sys
sys.modules["transformers_ramplus"] = None  # the package is absent: only the folder's code runs
import json, torch
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained({str(converted_t2t)!r}, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained({str(converted_t2t)!r}, trust_remote_code=True)
golden = torch.load({str(T2T_DIR / "reference_outputs.pt")!r}, weights_only=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    logits = model(pixel_values=golden["pixel_values"]).logits
assert (logits - golden["logits"]).abs().max() < 1e-4
ids = model.generate(pixel_values=golden["pixel_values"][:1])
assert ids.tolist() == golden["caption_ids"][0].tolist()
print("OK", processor.batch_decode(ids)[0])
"""
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_cli_tag_captions(converted_t2t, converted_tiny, tmp_path, capsys):
    """`ramplus tag --captions`: records gain the caption written from their tags (the golden ones for the golden
    photos); a model that only tags is refused with a clear message."""
    from transformers_ramplus.cli.main import main

    meta = _golden("reference_meta.json")
    output = tmp_path / "tags.jsonl"
    paths = [str(p) for p in REFERENCE_IMAGES]
    code = main(["tag", *paths, "--model", str(converted_t2t), "--captions", "--output", str(output), "--no-progress"])
    assert code == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["caption"] for r in records] == meta["captions"]
    code = main(["tag", paths[0], "--model", str(converted_tiny), "--captions", "--no-progress"])
    assert code != 0
    assert "--captions needs a captioning model" in capsys.readouterr().err


def test_service_answers_with_captions(converted_t2t):
    """The HTTP service's worker (`ramplus serve`, without HTTP) on Tag2Text: `/v1/tag` records carry the golden
    caption of each photo beside its tags, batched over requests; an unreadable image is still that image's error;
    the Hub's task format (tags only) is refused as for any model without an open set."""
    from transformers_ramplus.serving.requests import HUB_FORMAT, ImageInput, TagRequest
    from transformers_ramplus.serving.service import TaggingService

    meta = _golden("reference_meta.json")
    service = TaggingService(str(converted_t2t))
    photos = [ImageInput(p.name, data=p.read_bytes()) for p in REFERENCE_IMAGES]
    answers = service.answer(
        [TagRequest([photos[0], ImageInput("broken.jpg", data=b"not an image")]), TagRequest(photos[1:])]
    )
    assert [a.status for a in answers] == [200, 200]
    records = answers[0].body["results"] + answers[1].body["results"]
    assert records[1]["path"] == "broken.jpg" and "error" in records[1] and "caption" not in records[1]
    good = [records[0], *records[2:]]
    assert [r["caption"] for r in good] == meta["captions"]
    assert [sorted(t["label"] for t in r["tags"]) for r in good] == [sorted(t.split(" | ")) for t in meta["tags"]]
    hub = service.answer([TagRequest(photos[:1], {"candidate_labels": ["dog", "cat"]}, HUB_FORMAT)])[0]
    assert hub.status == 422 and "no open set" in hub.body["error"]


def test_caption_lora_training_steps(converted_t2t, tmp_path):
    """LoRA caption fine-tuning through `CaptionTrainer` on a `datasets` image + text set: the loss is the model's,
    only the LoRA matrices change, and a row with an unreadable image is skipped and counted."""
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("peft")
    from peft import get_peft_model
    from PIL import Image
    from transformers import TrainingArguments

    from transformers_ramplus import Tag2TextForConditionalGeneration, Tag2TextProcessor
    from transformers_ramplus.training.captioning import CaptionCollator, CaptionTrainer, caption_lora_config

    model = Tag2TextForConditionalGeneration.from_pretrained(converted_t2t)
    processor = Tag2TextProcessor.from_pretrained(converted_t2t)
    paths, texts = [], []
    for color, name in (((200, 0, 0), "red"), ((0, 0, 200), "blue"), ((0, 160, 0), "green")):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (32, 32), color).save(path)
        paths.append(str(path))
        texts.append(f"a {name} square")
    paths.append(str(tmp_path / "missing.png"))  # unreadable: skipped, counted
    texts.append("a black square")
    train = datasets.Dataset.from_dict({"image": paths, "text": texts})
    model = get_peft_model(model, caption_lora_config(r=4))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = CaptionTrainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path / "run"),
            per_device_train_batch_size=4,
            max_steps=2,
            learning_rate=1e-2,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
        ),
        train_dataset=train,
        data_collator=CaptionCollator(processor),
    )
    result = trainer.train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert trainer.num_skipped_images == 2  # the missing file, in each of the 2 steps
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("text_decoder" in n for n in changed)


@pytest.mark.slow
def test_convert_from_hub_names_the_file(tmp_path):
    """A Hub repository holding several checkpoints (as xinyu1205/recognize_anything_model): `--original-file` picks
    one, and without it the command says which files there are."""
    import os
    import shutil
    import subprocess
    import sys
    import textwrap

    from local_hub import LocalHub, hub_env

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(T2T_DIR / "tag2text_original.pth", repo / "tag2text_swin_14m.pth")
    shutil.copy(FIXTURES_DIR / "tiny" / "ram_plus_original.pth", repo / "ram_swin_large_14m.pth")
    out = tmp_path / "converted"
    script = textwrap.dedent(
        f"""
        import sys
        from transformers_ramplus.cli.main import main
        common = ["--tag-list", {str(T2T_DIR / "tag2text_ori_tag_list.txt")!r}, "--tokenizer",
                  {str(T2T_DIR / "tokenizer")!r}, "--text-heads", "4"]
        print("without", main(["convert", "someone/family", {str(tmp_path / "none")!r}, *common]))
        print("with", main(["convert", "someone/family", {str(out)!r}, "--original-file", "tag2text_swin_14m.pth",
                            *common]))
        """
    )
    with LocalHub() as hub:
        hub.add_repo("someone/family", repo)
        env = hub_env(hub, tmp_path / "hf")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert "without 1" in result.stdout or "without 2" in result.stdout, result.stdout + result.stderr
    assert "several .pth files" in result.stderr
    assert "with 0" in result.stdout, result.stdout + result.stderr
    assert json.loads((out / "config.json").read_text())["model_type"] == "tag2text"
    assert not os.path.exists(tmp_path / "none")
