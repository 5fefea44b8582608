"""RAM (the predecessor of RAM++) against the authors' golden tiny RAM (`fixtures/ram_tiny/`): conversion with the
format detected from the keys, closed-set and open-set logits, the tag strings, the tagging and distillation losses
and their gradients, and the RAM++ features it shares (pipeline, `ramplus tag`, Chinese, open set, heatmaps, fast
inference)."""

import json

import pytest
import torch
from conftest import RAM_TINY_DIR, REFERENCE_IMAGES, TINY_DIR
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline

from transformers_ramplus import RamConfig, RamModel, RamPlusModel, RamPlusProcessor
from transformers_ramplus.cli.main import main
from transformers_ramplus.models.ram_plus.convert_ram_plus import (
    ConversionError,
    convert_checkpoint,
    detect_format,
    load_original_state_dict,
)


META = json.loads((RAM_TINY_DIR / "reference_meta.json").read_text(encoding="utf-8"))
IMAGES = [str(p) for p in REFERENCE_IMAGES]


@pytest.fixture(scope="module")
def ram(converted_ram_tiny):
    return AutoModel.from_pretrained(converted_ram_tiny).eval()


@pytest.fixture(scope="module")
def image_embeds(ram, ram_reference_outputs):
    """The projected image tokens of the two reference images (the Swin encoder run once for several tests)."""
    with torch.no_grad():
        return ram.get_image_embeds(ram_reference_outputs["pixel_values"])


def split_tags(line):
    # the original joins names with " | "; its Chinese file pads some names with spaces, which we strip
    return [name.strip() for name in line.split(" | ")]


# ------------------------------------------------------------------ conversion
def test_conversion_detects_ram_and_writes_a_ram_folder(converted_ram_tiny, ram):
    assert detect_format(load_original_state_dict(RAM_TINY_DIR / "ram_original.pth")) == "ram"
    assert detect_format(load_original_state_dict(TINY_DIR / "ram_plus_original.pth")) == "ram_plus"
    config = json.loads((converted_ram_tiny / "config.json").read_text())
    assert config["model_type"] == "ram" and config["architectures"] == ["RamModel"]
    assert config["descriptions_per_tag"] == 1 and len(config["id2label"]) == 37
    thresholds = [float(v) for v in (RAM_TINY_DIR / "ram_tag_list_threshold.txt").read_text().split()]
    assert config["tag_thresholds"] == thresholds
    assert config["auto_map"]["AutoModel"] == "modeling_ram.RamModel"
    assert config["auto_map"]["AutoConfig"] == "configuration_ram.RamConfig"
    weights = load_file(converted_ram_tiny / "model.safetensors")
    assert weights["label_embeds"].shape == (37, 512) and "reweight_scale" not in weights
    original = load_original_state_dict(RAM_TINY_DIR / "ram_original.pth")
    torch.testing.assert_close(weights["label_embeds"], original["label_embed"], atol=0, rtol=0)
    # the Auto classes give RAM's classes, which are RAM++'s with one embedding per tag and no re-weighting
    assert type(AutoConfig.from_pretrained(converted_ram_tiny)) is RamConfig
    assert type(ram) is RamModel and isinstance(ram, RamPlusModel) and ram.reweight_scale is None
    assert "reweight_scale" not in dict(ram.named_parameters())
    assert isinstance(AutoProcessor.from_pretrained(converted_ram_tiny), RamPlusProcessor)


def test_conversion_errors_name_the_problem(tmp_path):
    with pytest.raises(ConversionError, match="37 tags .* tag list has 36"):
        short = tmp_path / "short.txt"
        short.write_text("\n".join((RAM_TINY_DIR / "ram_tag_list.txt").read_text().splitlines()[:36]) + "\n")
        convert_checkpoint(RAM_TINY_DIR / "ram_original.pth", tmp_path / "out", tag_list=short)
    state = load_original_state_dict(RAM_TINY_DIR / "ram_original.pth")
    broken = {k: v for k, v in state.items() if k != "wordvec_proj.bias"}
    torch.save({"model": broken}, tmp_path / "broken.pth")
    with pytest.raises(ConversionError, match="query_projection.bias"):
        convert_checkpoint(tmp_path / "broken.pth", tmp_path / "out")
    tag2text_like = {k: v for k, v in state.items() if k != "label_embed"}
    tag2text_like["label_embed.weight"] = torch.zeros(37, 64)
    torch.save({"model": tag2text_like}, tmp_path / "t2t.pth")
    with pytest.raises(ConversionError, match="Tag2Text"):
        convert_checkpoint(tmp_path / "t2t.pth", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ parity with the authors' RAM
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_closed_and_open_set_logits_match_the_authors(converted_ram_tiny, ram_reference_outputs, implementation):
    model = AutoModel.from_pretrained(converted_ram_tiny, attn_implementation=implementation).eval()
    pixel_values = ram_reference_outputs["pixel_values"]
    with torch.no_grad():
        output = model(pixel_values=pixel_values)
        logits, tokens = output.logits, output.image_embeds
        open_set = model(image_embeds=tokens, label_embeds=ram_reference_outputs["openset_label_embeds"],
                         descriptions_per_tag=1).logits
        open_set_3d = model(image_embeds=tokens, label_embeds=ram_reference_outputs["openset_label_embeds"][:, None]).logits
    torch.testing.assert_close(logits, ram_reference_outputs["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(open_set, ram_reference_outputs["openset_logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(open_set_3d, open_set, atol=1e-6, rtol=0)


def test_tag_strings_equal_the_authors(converted_ram_tiny, ram, ram_reference_outputs):
    processor = AutoProcessor.from_pretrained(converted_ram_tiny)
    pixel_values = processor(images=IMAGES)["pixel_values"]
    torch.testing.assert_close(pixel_values, ram_reference_outputs["pixel_values"], atol=1e-5, rtol=0)
    with torch.no_grad():
        outputs = ram(pixel_values=pixel_values)
    for language, key in (("en", "tags"), ("zh", "tags_chinese")):
        tags = processor.post_process_image_tagging(outputs, language=language, sort_by="index")
        assert [[t["label"] for t in image] for image in tags] == [split_tags(line) for line in META[key]]
    with torch.no_grad():
        open_logits = ram(image_embeds=outputs.image_embeds, label_embeds=ram_reference_outputs["openset_label_embeds"][:, None]).logits
    names = [f"openset tag {i}" for i in range(7)]
    open_tags = processor.post_process_image_tagging(open_logits, threshold=0.5, tag_names=names, sort_by="index")
    assert [processor.format_tags(t) for t in open_tags] == META["openset_tags"]


# ------------------------------------------------------------------ training losses
# original parameter -> ours; the authors' tag encoder shares its lowest layers with the tagging head, so the
# gradient they report for `tag_encoder.layer0.crossattention.query` is that of the decoder's first query projection
GRADIENTS = {"fc": "classifier.weight", "tag_encoder.layer0.crossattention.query": "decoder.layers.0.cross_attention.q_proj.weight"}


def test_losses_and_gradients_match_the_authors(ram, ram_reference_outputs, ram_reference_losses):
    inputs = ram_reference_losses["inputs"]
    output = ram(pixel_values=ram_reference_outputs["pixel_values"], labels=inputs["image_tag"].float(),
                 teacher_image_embeds=inputs["clip_feature"])
    losses = ram_reference_losses["losses"]
    torch.testing.assert_close(output.loss.detach(), losses["tag"] + losses["distillation"], rtol=1e-5, atol=0)
    parameters = dict(ram.named_parameters())
    for loss_name, field in (("tag", "tag_loss"), ("distillation", "distillation_loss")):
        loss = getattr(output, field)
        torch.testing.assert_close(loss.detach(), losses[loss_name], rtol=1e-5, atol=0)
        names = list(GRADIENTS.values())
        gradients = torch.autograd.grad(loss, [parameters[n] for n in names], retain_graph=True, allow_unused=True)
        for (original, ours), gradient in zip(GRADIENTS.items(), gradients):
            reference = ram_reference_losses["grads"][loss_name][original]
            gradient = torch.zeros_like(parameters[ours]) if gradient is None else gradient
            scale = float(reference.abs().max())
            torch.testing.assert_close(
                gradient, reference.reshape(gradient.shape), rtol=1e-4, atol=max(scale, 1e-6) * 1e-4,
                msg=lambda m, loss_name=loss_name, original=original: f"{loss_name} loss, {original}: {m}",
            )


def test_captions_are_refused_with_a_clear_error(ram, image_embeds):
    with pytest.raises(ValueError, match="RAM has no image-caption alignment loss"):
        ram(image_embeds=image_embeds, caption_embeds=torch.zeros(2, 512))
    with pytest.raises(ValueError, match="no caption model .*--tokenizer"):  # converted without its text side
        ram(image_embeds=image_embeds, caption_input_ids=torch.ones(2, 5, dtype=torch.long))


# ------------------------------------------------------------------ RAM's text side (text_generation loss)
@pytest.fixture(scope="module")
def converted_ram_text(tmp_path_factory):
    """The golden tiny RAM converted with its BERT text side (the synthetic tokenizer; 4 text heads, as generated)."""
    from conftest import convert_golden_ram_tiny

    output = tmp_path_factory.mktemp("ram_text") / "ram_tiny_text"
    return convert_golden_ram_tiny(output, "--tokenizer", str(RAM_TINY_DIR / "tokenizer"), "--text-heads", "4")


# original parameter -> ours in a model with the text side (the tag encoder's first query IS the decoder's)
TEXT_GRADIENTS = {
    **GRADIENTS,
    "text_decoder.cls": "caption_model.text_decoder.cls.predictions.transform.dense.weight",
}


def test_three_losses_and_gradients_match_the_authors(converted_ram_text, ram_reference_outputs, ram_reference_losses):
    from transformers import AutoTokenizer

    model = AutoModel.from_pretrained(converted_ram_text).eval()
    shared = model.caption_model.tag_encoder.encoder.layer[0].crossattention.self.query
    assert model.decoder.layers[0].cross_attention.q_proj is shared  # one set of weights, after saving and loading
    tokenizer = AutoTokenizer.from_pretrained(RAM_TINY_DIR / "tokenizer")
    inputs = ram_reference_losses["inputs"]
    tag_texts = model.caption_model.tag_texts_from_multi_hot(inputs["parse_tag"], model.config.tag_names)
    tags = model.caption_model.tag_inputs(tokenizer, tag_texts)
    captions = model.caption_model.caption_inputs(tokenizer, inputs["captions"])
    output = model(
        pixel_values=ram_reference_outputs["pixel_values"], labels=inputs["image_tag"], teacher_image_embeds=inputs["clip_feature"],
        tag_input_ids=tags["input_ids"], tag_attention_mask=tags["attention_mask"], caption_input_ids=captions["input_ids"],
        caption_attention_mask=captions["attention_mask"], caption_labels=captions["labels"],
    )
    torch.testing.assert_close(output.logits.detach(), ram_reference_outputs["logits"], atol=1e-4, rtol=0)
    losses = ram_reference_losses["losses"]
    torch.testing.assert_close(output.loss.detach(), sum(losses.values()), rtol=1e-5, atol=0)
    parameters = dict(model.named_parameters())
    for loss_name, field in (("text_generation", "text_generation_loss"), ("tag", "tag_loss"), ("distillation", "distillation_loss")):
        loss = getattr(output, field)
        torch.testing.assert_close(loss.detach(), losses[loss_name], rtol=1e-5, atol=0)
        gradients = torch.autograd.grad(loss, [parameters[n] for n in TEXT_GRADIENTS.values()], retain_graph=True, allow_unused=True)
        for (original, ours), gradient in zip(TEXT_GRADIENTS.items(), gradients):
            reference = ram_reference_losses["grads"][loss_name][original]
            gradient = torch.zeros_like(parameters[ours]) if gradient is None else gradient
            scale = float(reference.abs().max())
            torch.testing.assert_close(
                gradient, reference.reshape(gradient.shape), rtol=1e-4, atol=max(scale, 1e-6) * 1e-4,
                msg=lambda m, loss_name=loss_name, original=original: f"{loss_name} loss, {original}: {m}",
            )


# ------------------------------------------------------------------ RAM++'s features on RAM
def test_several_descriptions_per_tag_are_averaged(ram, ram_reference_outputs, image_embeds):
    """RAM has no re-weighting: a tag given by several embeddings is their normalized mean; a tag with one real row
    (a built-in tag padded into a mixed set) keeps its row."""
    embeds = ram_reference_outputs["openset_label_embeds"]  # 7 unit rows
    pairs = torch.stack([embeds[:6:2], embeds[1:6:2]], dim=1)  # 3 tags x 2 descriptions
    mean = torch.nn.functional.normalize(pairs.mean(dim=1), dim=-1)
    padded = torch.stack([embeds[6], torch.zeros(512)])[None]  # one real row, padding
    mask = torch.tensor([[True, True]] * 3 + [[True, False]])
    with torch.no_grad():
        got = ram(image_embeds=image_embeds, label_embeds=torch.cat([pairs, padded]), description_mask=mask).logits
        expected = ram(image_embeds=image_embeds, label_embeds=torch.cat([mean, embeds[6:]])[:, None]).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got[:, 3], ram_reference_outputs["openset_logits"][:, 6], atol=1e-4, rtol=0)


def test_pipeline_and_ramplus_tag_give_the_authors_tags(converted_ram_tiny, tmp_path):
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_ram_tiny), device="cpu")
    results = tagger(IMAGES)
    assert [{t["label"] for t in image} for image in results] == [set(split_tags(line)) for line in META["tags"]]
    output = tmp_path / "tags.jsonl"
    arguments = ["--model", str(converted_ram_tiny), "--output", str(output), "--no-progress", "--language", "zh"]
    assert main(["tag", *IMAGES, *arguments]) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [{t["label"] for t in r["tags"]} for r in records] == [set(split_tags(line)) for line in META["tags_chinese"]]


def test_heatmaps_and_fast_inference(converted_ram_tiny, ram, ram_reference_outputs):
    from transformers_ramplus import enable_fast_inference

    pixel_values = ram_reference_outputs["pixel_values"]
    out = ram.tag_heatmaps(pixel_values, tags=["abacus", "afro"], normalize="sum")
    assert out.heatmaps.shape == (2, 2, 12, 12) and out.tag_names == ["abacus", "afro"]
    torch.testing.assert_close(out.heatmaps.sum(dim=(-2, -1)), torch.ones(2, 2), atol=1e-5, rtol=0)
    index = [ram.config.label2id["abacus"], ram.config.label2id["afro"]]
    torch.testing.assert_close(out.logits, ram_reference_outputs["logits"][:, index], atol=1e-4, rtol=0)
    fast = enable_fast_inference(AutoModel.from_pretrained(converted_ram_tiny).eval())
    assert type(fast) is RamModel
    with torch.no_grad():
        logits = fast(pixel_values=pixel_values).logits
        tokens = fast.get_image_embeds(pixel_values)
        open_set = fast(image_embeds=tokens, label_embeds=ram_reference_outputs["openset_label_embeds"][:, None]).logits
    torch.testing.assert_close(logits, ram_reference_outputs["logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(open_set, ram_reference_outputs["openset_logits"], atol=1e-4, rtol=0)


def test_open_set_by_names_and_descriptions_with_a_text_tower(tmp_path, tiny_clip_dir, ram_reference_outputs):
    from conftest import convert_golden_ram_tiny

    folder = convert_golden_ram_tiny(tmp_path / "ram_text", "--text-tower", str(tiny_clip_dir))
    tagger = pipeline("zero-shot-image-tagging", model=str(folder), device="cpu")
    labels = {"abacus": None, "zebra": ["a striped horse", "black and white stripes"], "lantern": None}
    results = tagger(IMAGES, candidate_labels=labels, threshold=0.0)
    assert [{t["label"] for t in image} for image in results] == [set(labels)] * 2
    # the built-in tag in a mixed set scores as in the closed set
    abacus = [next(t["score"] for t in image if t["label"] == "abacus") for image in results]
    expected = torch.sigmoid(ram_reference_outputs["logits"][:, tagger.model.config.label2id["abacus"]])
    torch.testing.assert_close(torch.tensor(abacus), expected, atol=1e-4, rtol=0)


def test_converted_ram_folder_loads_as_remote_code_without_the_package(converted_ram_text, ram_reference_outputs, tmp_path):
    import textwrap

    from conftest import run_without_package

    torch.save(ram_reference_outputs, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["transformers_ramplus"] = None  # importing the package now fails
        import torch
        from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline
        folder = {str(converted_ram_text)!r}
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        assert (type(config).__name__, type(model).__name__) == ("RamConfig", "RamModel"), (type(config), type(model))
        for obj in (config, model, processor):
            assert "transformers_ramplus" not in type(obj).__module__, type(obj).__module__
        with torch.no_grad():
            logits = model(**processor(images={IMAGES!r})).logits
        torch.testing.assert_close(logits, expected["logits"], atol=1e-4, rtol=0)
        tagger = pipeline("zero-shot-image-tagging", model=folder, trust_remote_code=True, device="cpu")
        tagger.save_pretrained("resaved")  # transformers' own copy of the remote code: the same files
        import pathlib
        names = lambda folder: sorted(p.name for p in pathlib.Path(folder).glob("*.py"))  # noqa: E731
        assert names("resaved") == names(folder), (names("resaved"), names(folder))
        print(sorted(t["label"] for t in tagger({IMAGES[1]!r})))
        print("remote-ok")
        """
    )
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote-ok" in result.stdout
    assert result.stdout.splitlines()[-2] == str(sorted(split_tags(META["tags"][1])))
    # the package's writers ship the same RAM bundle and auto_map
    from transformers_ramplus import save_model_folder

    save_model_folder(tmp_path / "saved", AutoModel.from_pretrained(converted_ram_text))
    for name in ("config.json", "preprocessor_config.json", "processor_config.json"):
        ours, theirs = (json.loads((folder / name).read_text()).get("auto_map") for folder in (tmp_path / "saved", converted_ram_text))
        assert ours == theirs, name
    assert sorted(p.name for p in (tmp_path / "saved").glob("*.py")) == sorted(p.name for p in converted_ram_text.glob("*.py"))
    assert {"configuration_ram.py", "modeling_ram.py", "modeling_ram_plus.py"} <= {p.name for p in converted_ram_text.glob("*.py")}


def test_lora_with_a_new_tag_trains_saves_and_loads_as_ram(tmp_path):
    """RAM++'s adapter path on RAM: a new tag given by two descriptions (one averaged row for RAM), LoRA training
    lowers the loss, and the saved adapter loads by AutoModel as a RamModel with the new tag and the same logits."""
    from conftest import tiny_config, tiny_word_text_config, tiny_word_tokenizer

    from transformers_ramplus import RamPlusImageProcessor
    from transformers_ramplus.training.adapters import apply_lora, save_adapter
    from transformers_ramplus.training.trainer import add_tags

    base = tiny_config(num_tags=4, descriptions_per_tag=1, text_config=tiny_word_text_config()).to_dict()
    torch.manual_seed(0)
    RamModel(RamConfig.from_dict({**base, "model_type": "ram"})).save_pretrained(tmp_path / "base")
    tokenizer = tiny_word_tokenizer(["a", "photo", "of", "lesion", "scan"])
    processor = RamPlusProcessor(image_processor=RamPlusImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer)
    model = RamModel.from_pretrained(tmp_path / "base")
    add_tags(model, {"lesion": ["a photo of lesion", "a scan"]}, tokenizer=tokenizer)
    lora = apply_lora(model)
    pixel_values, labels = torch.randn(4, 3, 64, 64), (torch.rand(4, 5) > 0.5).float()
    optimizer = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    lora.train()
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = lora(pixel_values=pixel_values, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    lora.eval()
    with torch.no_grad():
        expected = lora(pixel_values=pixel_values).logits
    save_adapter(lora, tmp_path / "adapter", processor=processor)
    loaded = AutoModel.from_pretrained(tmp_path / "adapter").eval()
    assert type(loaded) is RamModel and loaded.config.tag_names[-1] == "lesion"
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixel_values).logits, expected, atol=1e-5, rtol=0)


def test_collator_builds_the_caption_loss_inputs_of_the_authors(converted_ram_text, ram_reference_outputs, ram_reference_losses):
    """The training collator of a RAM model with its text side turns rows (image, tags, caption) into the tag-text and
    caption inputs of the text_generation loss: with the golden captions and parsed tags, the authors' loss (1e-5)."""
    from transformers import AutoTokenizer

    from transformers_ramplus.training.data import RamPlusDataCollator

    model = AutoModel.from_pretrained(converted_ram_text).eval()
    tokenizer = AutoTokenizer.from_pretrained(RAM_TINY_DIR / "tokenizer")
    inputs = ram_reference_losses["inputs"]
    rows = [
        {"image": path, "label_ids": row.nonzero().flatten().tolist(), "caption": caption}
        for path, row, caption in zip(IMAGES, inputs["parse_tag"], inputs["captions"])
    ]
    # the golden captions are taken as given (the second lacks the prompt), as the authors' training forward does
    collator = RamPlusDataCollator.for_model(model, tokenizer, train=False, add_prompt=False)
    batch = collator(rows)
    assert {"tag_input_ids", "caption_input_ids", "caption_labels"} <= set(batch)
    text = {k: v for k, v in batch.items() if k.startswith(("tag_", "caption_"))}
    with torch.no_grad():
        output = model(pixel_values=ram_reference_outputs["pixel_values"], **text)
    losses = ram_reference_losses["losses"]
    torch.testing.assert_close(output.text_generation_loss, losses["text_generation"], rtol=1e-5, atol=0)
    # by default the prompt starts every caption (as the authors' caption datasets)
    prompted = RamPlusDataCollator.for_model(model, tokenizer, train=False)(rows)
    assert prompted["caption_input_ids"].shape[1] > batch["caption_input_ids"].shape[1] or not torch.equal(
        prompted["caption_input_ids"][1], batch["caption_input_ids"][1]
    )
    with pytest.raises(ValueError, match="BERT `tokenizer`"):
        RamPlusDataCollator(model.config.num_tags, caption_config=model.config.caption_config)


def test_trainer_trains_ram_with_captions_and_tags(converted_ram_text, tmp_path):
    """`RamPlusTrainer` on a RAM model with its text side: tags, captions and teacher embeddings give the three losses
    (logged), and a step changes the caption decoder."""
    from transformers import AutoTokenizer

    from transformers_ramplus.training.data import RamPlusDataCollator
    from transformers_ramplus.training.trainer import RamPlusTrainer, RamPlusTrainingArguments

    model = AutoModel.from_pretrained(converted_ram_text)
    tokenizer = AutoTokenizer.from_pretrained(RAM_TINY_DIR / "tokenizer")
    generator = torch.Generator().manual_seed(0)
    names = model.config.tag_names
    rows = [
        {"image": IMAGES[i % 2], "tags": [names[i], names[i + 3]], "caption": f"a dog and a {names[i]}",
         "teacher_image_embeds": torch.randn(512, generator=generator).tolist()}
        for i in range(4)
    ]
    collator = RamPlusDataCollator.for_model(model, tokenizer, seed=0)
    before = model.caption_model.text_decoder.cls.predictions.transform.dense.weight.detach().clone()
    args = RamPlusTrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
    )
    trainer = RamPlusTrainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all(
        entry.get(name, 0) > 0 for entry in logged for name in ("tag_loss", "text_generation_loss", "distillation_loss")
    ), logged
    after = model.caption_model.text_decoder.cls.predictions.transform.dense.weight.detach()
    assert not torch.equal(before, after)
