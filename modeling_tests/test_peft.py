"""LoRA: default config, only adapter (and modules_to_save) parameters change, save/load, merge."""

import pytest
import torch

from transformers_ramplus.peft_utils import (
    apply_lora,
    default_lora_config,
    load_adapter,
    merge_adapter,
    save_adapter,
    trainable_parameter_names,
)
from transformers_ramplus.training import add_tags

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
    import json

    import numpy as np
    from PIL import Image

    from transformers_ramplus import RamPlusImageProcessor, RamPlusModel, RamPlusProcessor
    from transformers_ramplus.cli import main
    from transformers_ramplus.evaluation import mean_average_precision, read_annotations, score_images

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
    from transformers_ramplus.remote_code import AUTO_MAP, bundle_files

    for folder in (out / "model", tmp_path / "calibrated"):
        assert {p.name for p in folder.glob("*.py")} == {p.name for p in bundle_files()}, folder
        assert json.loads((folder / "config.json").read_text())["auto_map"]["AutoModel"] == AUTO_MAP["AutoModel"]
        assert "AutoProcessor" in json.loads((folder / "processor_config.json").read_text())["auto_map"]
        assert (folder / "tokenizer_config.json").is_file(), folder  # the text tower keeps its tokenizer
    assert main(command) == 0  # second run: cached scores
    captured = capsys.readouterr()
    assert "using cached scores" in captured.err and json.loads(captured.out)["mAP"] == report["mAP"]
