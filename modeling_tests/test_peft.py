"""LoRA: default config, only adapter (and modules_to_save) parameters change, save/load, merge."""

import json

import numpy as np
import pytest
import torch

from transformers_ramplus.training.adapters import (
    apply_lora,
    default_lora_config,
    load_adapter,
    merge_adapter,
    save_adapter,
    trainable_parameter_names,
)
from transformers_ramplus.training.trainer import add_tags

from conftest import tiny_model, tiny_word_text_config, tiny_word_tokenizer


def _train(model, steps=3):
    torch.manual_seed(0)
    pixel_values = torch.randn(4, 3, 64, 64)
    labels = (torch.rand(4, model.get_base_model().config.num_tags) > 0.5).float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.05)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(pixel_values=pixel_values, labels=labels).loss.backward()
        optimizer.step()
    model.eval()


def test_default_lora_targets_the_documented_modules():
    model = apply_lora(tiny_model(num_tags=4, text_config=tiny_word_text_config()))
    names = trainable_parameter_names(model)
    assert names and all("lora_" in n or "classifier" in n for n in names)
    adapted = {n.split(".lora_")[0].split("base_model.model.")[1] for n in names if "lora_A" in n}
    assert "query_projection" in adapted and "image_projection" in adapted
    assert "decoder.layers.0.cross_attention.q_proj" in adapted and "decoder.layers.1.fc2" in adapted
    assert "vision_model.encoder.layers.0.blocks.0.attention.q_proj" in adapted
    assert not any(n.startswith("text_model") or "k_proj" in n and "vision" in n for n in adapted)
    no_vision = apply_lora(tiny_model(num_tags=4), default_lora_config(vision=False))
    assert not any("vision_model" in n for n in trainable_parameter_names(no_vision))


def test_lora_changes_only_adapter_and_saved_modules_and_merges(tmp_path):
    base = tiny_model(num_tags=4, text_config=tiny_word_text_config())
    tokenizer = tiny_word_tokenizer("a photo of lesion scan".split())
    add_tags(base, {"lesion": ["a photo of lesion", "a scan"]}, tokenizer=tokenizer)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = apply_lora(base)
    _train(model)
    changed = set()
    for name, value in model.state_dict().items():
        key = name.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" in name or "modules_to_save" in name:
            continue
        if key in before and not torch.equal(before[key], value):
            changed.add(key)
    # the base weights never change (classifier.* is the frozen original copy kept by modules_to_save)
    assert changed == set()
    lora_b = [v for k, v in model.state_dict().items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # adapters were trained
    saved_head = model.base_model.model.classifier.modules_to_save["default"].weight
    assert not torch.equal(saved_head, before["classifier.weight"])

    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        adapted_logits = model(pixel_values=pixel_values).logits
    with torch.no_grad():
        base_logits = tiny_model(num_tags=4, text_config=tiny_word_text_config())(pixel_values).logits
    assert not torch.allclose(adapted_logits[:, :4], base_logits, atol=1e-3)

    # the adapted model's logits include the LoRA updates of the attention projections (the eager path computes
    # every projection through the PEFT modules; the default fast path must agree with it)
    model.base_model.model.config._attn_implementation = "eager"
    with torch.no_grad():
        eager_logits = model(pixel_values=pixel_values).logits
    model.base_model.model.config._attn_implementation = "sdpa"
    torch.testing.assert_close(adapted_logits, eager_logits, rtol=1e-4, atol=1e-5)

    save_adapter(model, tmp_path / "adapter")
    fresh = tiny_model(num_tags=4, text_config=tiny_word_text_config())  # the original vocabulary: 4 tags
    loaded = load_adapter(fresh, tmp_path / "adapter")
    assert loaded.get_base_model().config.tag_names[-1] == "lesion"
    assert loaded.get_base_model().config.thresholds()[-1] == 0.5
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixel_values).logits, adapted_logits, rtol=0, atol=1e-6)

    merged = merge_adapter(loaded)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(pixel_values).logits, adapted_logits, rtol=1e-4, atol=1e-5)
    merged.save_pretrained(tmp_path / "merged")
    from transformers_ramplus import RamPlusModel

    reloaded = RamPlusModel.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values).logits, adapted_logits, rtol=1e-4, atol=1e-5)


def test_apply_lora_rejects_other_models():
    with pytest.raises(TypeError, match="RamPlusModel"):
        apply_lora(torch.nn.Linear(2, 2))


def test_finetune_and_evaluate_commands(tmp_path, capsys):
    """`ramplus finetune` (LoRA, new tag from descriptions, a broken image) then `ramplus evaluate` on its result."""
    import numpy as np
    from PIL import Image

    from transformers_ramplus import RamPlusImageProcessor, RamPlusModel, RamPlusProcessor
    from transformers_ramplus.cli.main import main
    from transformers_ramplus.training.metrics import mean_average_precision, read_annotations, score_images

    base = tiny_model(num_tags=3, text_config=tiny_word_text_config())
    base.config.id2label = {0: "red", 1: "green", 2: "blue"}
    base.config.label2id = {"red": 0, "green": 1, "blue": 2}
    base.save_pretrained(tmp_path / "base")
    tokenizer = tiny_word_tokenizer("a photo of red green blue lesion square spot".split())
    image_processor = RamPlusImageProcessor(size={"height": 64, "width": 64})
    RamPlusProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(tmp_path / "base")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    records, lines = [], []
    for index in range(8):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(images / f"{index}.png")
        tags = ["red"] + (["lesion"] if index % 2 else [])
        records.append({"file_name": f"{index}.png", "tags": tags, "caption": "a red square"})
        lines.append(f"{index}.png," + ",".join(tags))
    (images / "broken.png").write_bytes(b"not an image")
    records.append({"file_name": "broken.png", "tags": ["red"]})
    (images / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "descriptions.json").write_text(json.dumps({"lesion": ["a lesion", "a red spot"]}))
    (tmp_path / "annotations.txt").write_text("\n".join(lines) + "\nmissing.png,red\n")
    (tmp_path / "tags.txt").write_text("red\nlesion\nred\n")

    out = tmp_path / "finetuned"
    code = main([
        "finetune", str(tmp_path / "base"), str(out), "--train-folder", str(images), "--descriptions",
        str(tmp_path / "descriptions.json"), "--max-steps", "2", "--batch-size", "3", "--merge",
    ])
    assert code == 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "checkpoints" / "checkpoint-2").is_dir()
    # the Trainer's checkpoints are adapters that carry the new tag too
    checkpoint = load_adapter(RamPlusModel.from_pretrained(tmp_path / "base"), out / "checkpoints" / "checkpoint-2")
    assert checkpoint.get_base_model().config.tag_names == ["red", "green", "blue", "lesion"]
    merged = RamPlusModel.from_pretrained(out / "model").eval()
    assert merged.config.tag_names == ["red", "green", "blue", "lesion"]
    assert merged.config.thresholds()[-1] == 0.5
    # refusing to overwrite the result
    assert main(["finetune", str(tmp_path / "base"), str(out), "--train-folder", str(images), "--max-steps", "1"]) == 2

    capsys.readouterr()
    command = [
        "evaluate", str(out / "model"), "--images", str(images), "--annotations", str(tmp_path / "annotations.txt"),
        "--tag-list", str(tmp_path / "tags.txt"), "--cache", str(tmp_path / "scores.npz"),
    ]
    assert main(command + ["--calibrate-output", str(tmp_path / "calibrated")]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["num_images"] == 8 and report["num_skipped_images"] == 1 and report["num_classes"] == 3
    annotations = read_annotations(tmp_path / "annotations.txt", tmp_path / "tags.txt")
    scores, ok = score_images(merged, image_processor, [str(images / f"{i}.png") for i in range(8)], [0, 3, 0])
    expected, _ = mean_average_precision(scores, annotations.targets[:8])
    assert report["mAP"] == pytest.approx(expected, abs=1e-6)
    calibrated = RamPlusModel.from_pretrained(tmp_path / "calibrated").config.thresholds()
    assert calibrated != merged.config.thresholds()
    # the calibrated folder reloads a processor with the real tag names and the calibrated thresholds
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tmp_path / "calibrated")
    assert processor.tag_names == ["red", "green", "blue", "lesion"]
    assert processor.model_config.thresholds() == calibrated
    # both written folders carry the one remote-code bundle
    from transformers_ramplus.models.remote_code import AUTO_MAP, bundle_sources

    for folder in (out / "model", tmp_path / "calibrated"):
        assert {p.name for p in folder.glob("*.py")} == set(bundle_sources()), folder
        assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"] == AUTO_MAP["AutoModel"]
        assert "AutoProcessor" in json.loads((folder / "processor_config.json").read_text())["auto_map"]
        assert (folder / "tokenizer_config.json").is_file(), folder  # the text tower keeps its tokenizer
    assert main(command) == 0  # second run: cached scores
    captured = capsys.readouterr()
    assert "using cached scores" in captured.err and json.loads(captured.out)["mAP"] == report["mAP"]


def _adapter_with_new_tag(tmp_path):
    """A saved base model (4 tags), and a LoRA adapter trained after adding the tag "lesion", saved by peft itself."""
    from transformers_ramplus import RamPlusImageProcessor, RamPlusModel, RamPlusProcessor

    tokenizer = tiny_word_tokenizer("a photo of lesion scan".split())
    tiny_model(num_tags=4, text_config=tiny_word_text_config()).save_pretrained(tmp_path / "base")
    processor = RamPlusProcessor(image_processor=RamPlusImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer)
    processor.save_pretrained(tmp_path / "base")
    model = RamPlusModel.from_pretrained(tmp_path / "base")
    add_tags(model, {"lesion": ["a photo of lesion", "a scan"]}, tokenizer=tokenizer)
    lora = apply_lora(model)
    _train(lora)
    save_adapter(lora, tmp_path / "adapter", processor=processor)
    return lora, tmp_path / "base", tmp_path / "adapter"


def test_new_tags_travel_through_every_standard_loading_path(tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModel, pipeline

    from transformers_ramplus import RamPlusModel

    lora, base_dir, adapter_dir = _adapter_with_new_tag(tmp_path)
    names = ["tag 0", "tag 1", "tag 2", "tag 3", "lesion"]
    torch.manual_seed(4)
    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = lora(pixel_values=pixel_values).logits
    assert expected.shape == (2, 5)
    # peft's own modules_to_save carries the label embeddings (5 tags x 3 rows), tag_vocabulary.json the names
    weights = load_file(adapter_dir / "adapter_model.safetensors")
    assert {k: tuple(v.shape) for k, v in weights.items() if "tag_embeddings" in k} == {
        "base_model.model.tag_embeddings.label_embeds": (15, 24)
    }
    assert all(v.is_floating_point() for v in weights.values())
    stored = json.loads((adapter_dir / "tag_vocabulary.json").read_text())
    assert stored["names"] == names and stored["thresholds"][-1] == 0.5 and stored["description_counts"][-1] == 2
    assert not (adapter_dir / "tag_set.json").exists()

    def check(model, how):
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        assert inner.config.tag_names == names, how
        assert inner.config.thresholds()[-1] == 0.5, how
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(pixel_values=pixel_values).logits, expected, rtol=1e-5, atol=1e-5, msg=how)

    with pytest.raises(RuntimeError, match="label_embeds"):  # peft alone cannot know the new tags: it fails loudly
        PeftModel.from_pretrained(RamPlusModel.from_pretrained(base_dir), adapter_dir)
    base = RamPlusModel.from_pretrained(base_dir)
    assert base.load_adapter_vocabulary(adapter_dir) and not base.load_adapter_vocabulary(adapter_dir)
    check(PeftModel.from_pretrained(base, adapter_dir), "PeftModel.from_pretrained after load_adapter_vocabulary")
    check(load_adapter(RamPlusModel.from_pretrained(base_dir), adapter_dir), "adapters.load_adapter")
    plain = RamPlusModel.from_pretrained(base_dir)
    plain.load_adapter(str(adapter_dir))
    check(plain, "model.load_adapter")
    check(AutoModel.from_pretrained(adapter_dir), "AutoModel.from_pretrained(adapter_dir)")
    tagger = pipeline("zero-shot-image-tagging", model=str(adapter_dir), device="cpu")
    check(tagger.model, "pipeline(model=adapter_dir)")
    image = (np.random.default_rng(0).integers(0, 255, (64, 64, 3))).astype(np.uint8)
    result = tagger(image, threshold=0.0)
    assert {r["label"] for r in result} == set(names)
    with torch.no_grad():
        direct = torch.sigmoid(tagger.model(**tagger.image_processor(image, return_tensors="pt")).logits[0])
    assert {r["label"]: r["score"] for r in result}["lesion"] == pytest.approx(direct[-1].item(), abs=1e-6)


def test_adapters_without_new_tags_stay_small_and_configs_that_drop_tags_are_refused(tmp_path):
    from peft import LoraConfig, PeftModel
    from safetensors.torch import load_file

    model = apply_lora(tiny_model(num_tags=4))
    save_adapter(model, tmp_path / "adapter")
    weights = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert not any("tag_embeddings" in k for k in weights)
    assert not (tmp_path / "adapter" / "tag_vocabulary.json").exists()
    loaded = PeftModel.from_pretrained(tiny_model(num_tags=4), tmp_path / "adapter")
    assert loaded.get_base_model().config.num_tags == 4 and not loaded.get_base_model().vocabulary_changed
    # names without label embeddings in the weights are refused, naming the problem
    (tmp_path / "adapter" / "tag_vocabulary.json").write_text(json.dumps({"names": ["a", "b"]}))
    with pytest.raises(ValueError, match="no label embeddings"):
        tiny_model(num_tags=4).load_adapter_vocabulary(tmp_path / "adapter")

    changed = tiny_model(num_tags=4)
    new_embeds = torch.nn.functional.normalize(torch.randn(6, 3, 24), dim=-1)
    changed.set_vocabulary([f"new {i}" for i in range(6)], new_embeds)
    with pytest.raises(ValueError, match="tag_embeddings"):
        apply_lora(changed, LoraConfig(target_modules=["query_projection"], modules_to_save=["classifier"]))
    # a merged adapter is a plain model again: its vocabulary lives in its config and label_embeds
    merged = merge_adapter(apply_lora(changed))
    assert not any("modules_to_save" in k or "original_module" in k for k in merged.state_dict())
    assert merged.config.tag_names[-1] == "new 5"
    torch.testing.assert_close(merged.label_embeds, new_embeds.view(18, 24))


def test_finetune_command_trains_any_dataset_with_trainer_flags_and_evaluation(tmp_path, capsys):
    """`--dataset` an imagefolder of class subfolders (read by load_dataset), `--eval-dataset`, and TrainingArguments
    flags (gradient accumulation, warmup, bf16 on CPU, best checkpoint) parsed by HfArgumentParser."""
    from PIL import Image

    from transformers_ramplus import RamPlusImageProcessor, RamPlusModel, RamPlusProcessor
    from transformers_ramplus.cli.main import main

    base = tiny_model(num_tags=3)
    base.config.id2label = {0: "red", 1: "green", 2: "blue"}
    base.config.label2id = {"red": 0, "green": 1, "blue": 2}
    base.save_pretrained(tmp_path / "base")
    RamPlusImageProcessor(size={"height": 64, "width": 64}).save_pretrained(tmp_path / "base")
    colors = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    for split in ("train", "validation"):
        for name, color in colors.items():
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for index in range(2):
                Image.new("RGB", (40, 40), color).save(tmp_path / "data" / split / name / f"{index}.png")
    out = tmp_path / "run"
    code = main([
        "finetune", str(tmp_path / "base"), str(out), "--dataset", str(tmp_path / "data"), "--eval-split", "validation",
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
        "--warmup_ratio", "0.5", "--bf16", "--report_to", "none", "--save_steps", "1", "--load_best_model_at_end",
        "--lr_scheduler_type", "linear",
    ])
    assert code == 0
    summary = capsys.readouterr().err
    assert "evaluation:" in summary and "best checkpoint" in summary
    state = json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["best_metric"] is not None and any("eval_mAP" in e for e in state["log_history"])
    args = torch.load(out / "checkpoints" / "checkpoint-2" / "training_args.bin", weights_only=False)
    assert args.gradient_accumulation_steps == 2 and args.warmup_steps == 0.5 and args.bf16 and args.use_cpu
    assert args.lr_scheduler_type == "linear" and args.learning_rate == 1e-4 and args.metric_for_best_model == "mAP"
    assert (out / "adapter" / "preprocessor_config.json").is_file()
    fresh = RamPlusModel.from_pretrained(tmp_path / "base")
    fresh.load_adapter(str(out / "adapter"))
    assert fresh.config.tag_names == ["red", "green", "blue"]


def test_finetune_command_parses_every_training_argument():
    from transformers_ramplus.cli.main import build_parser
    from transformers_ramplus.cli.finetune import training_arguments

    argv = [
        "finetune", "base", "out", "--dataset", "user/dataset", "--push_to_hub", "--hub_model_id", "me/ramplus-ft",
        "--report_to", "tensorboard", "--warmup_ratio", "0.1", "--epochs", "3", "--batch-size", "4", "--full",
    ]
    args = build_parser(argv).parse_args(argv)
    parsed = training_arguments(args, has_eval=False)
    assert parsed.push_to_hub and parsed.hub_model_id == "me/ramplus-ft" and parsed.report_to == ["tensorboard"]
    assert parsed.num_train_epochs == 3 and parsed.per_device_train_batch_size == 4 and parsed.warmup_steps == 0.1
    assert parsed.learning_rate == 5e-6 and parsed.lr_scheduler_type == "cosine" and parsed.weight_decay == 0.05
    assert parsed.output_dir.endswith("checkpoints")
    with pytest.raises(SystemExit):
        build_parser(["finetune", "b", "o", "--dataset", "d", "--warmup_ratio", "x"]).parse_args(
            ["finetune", "b", "o", "--dataset", "d", "--warmup_ratio", "x"]
        )


def test_adapted_models_with_a_changed_vocabulary_deepcopy_pickle_and_change_it_together():
    import copy
    import io

    model = tiny_model(num_tags=3)
    model.set_vocabulary(["a", "b"], torch.nn.functional.normalize(torch.randn(2, 3, 24), dim=-1))
    lora = apply_lora(model)
    for restored in (copy.deepcopy(lora), torch.load(_pickled(lora, io.BytesIO()), weights_only=False)):
        inner = restored.get_base_model()
        assert inner.config.tag_names == ["a", "b"]
        torch.testing.assert_close(inner.tag_embeddings.modules_to_save["default"].label_embeds, model.label_embeds)
        assert inner.tag_embeddings.original_module.label_embeds.data_ptr() != inner.label_embeds.data_ptr()
    # set_vocabulary on an adapted model changes the config, the original embeddings and the adapter's copy at once
    three = torch.nn.functional.normalize(torch.randn(3, 2, 24), dim=-1)
    model.set_vocabulary(["x", "y", "z"], three)
    for module in (model.tag_embeddings.original_module, model.tag_embeddings.modules_to_save["default"]):
        torch.testing.assert_close(module.label_embeds, three.view(6, 24))
    with torch.no_grad():
        assert lora(pixel_values=torch.randn(1, 3, 64, 64)).logits.shape == (1, 3)


def _pickled(model, buffer):
    torch.save(model, buffer)
    buffer.seek(0)
    return buffer


def test_adapters_of_earlier_versions_fail_loudly_on_the_transformers_path(tmp_path):
    from transformers_ramplus import RamPlusModel, TagSet

    _, base_dir, adapter_dir = _adapter_with_new_tag(tmp_path)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    model = RamPlusModel.from_pretrained(base_dir)
    add_tags(model, {"lesion": ["a photo of lesion"]}, tokenizer=tiny_word_tokenizer("a photo of lesion".split()))
    model.vocabulary_changed = False  # earlier versions saved neither embeddings nor names with the adapter
    peft_model = apply_lora(model, default_lora_config())
    peft_model.save_pretrained(legacy)
    TagSet.from_vocabulary(model).save_pretrained(legacy)
    fresh = RamPlusModel.from_pretrained(base_dir)
    with pytest.raises(ValueError, match="training.adapters.load_adapter"):
        fresh.load_adapter(str(legacy))
    restored = load_adapter(RamPlusModel.from_pretrained(base_dir), legacy)
    assert restored.get_base_model().config.tag_names[-1] == "lesion"
