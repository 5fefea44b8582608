"""Parity with the authors' implementation on the golden tiny checkpoint."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from transformers import AutoImageProcessor, AutoModel, AutoProcessor
from transformers_ramplus import RamPlusModel, RamPlusProcessor
from transformers_ramplus.models.ram_plus.convert_ram_plus import ConversionError, convert_checkpoint, load_original_state_dict

from conftest import REFERENCE_IMAGES, TINY_DIR


@pytest.fixture(scope="module")
def converted_model(converted_tiny):
    return RamPlusModel.from_pretrained(converted_tiny).eval()


def test_converted_directory_layout(converted_tiny):
    names = {p.name for p in converted_tiny.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "processor_config.json"} <= names
    assert not any(name.startswith(".") for name in names)
    config = json.loads((converted_tiny / "config.json").read_text())
    assert config["model_type"] == "ram_plus" and len(config["id2label"]) == 37
    assert len(config["tag_thresholds"]) == 37 and config["tag_thresholds"][7] == 0.8
    assert config["tag_names_chinese"][0].startswith("三维CG渲染")
    weights = load_file(converted_tiny / "model.safetensors")
    assert weights["label_embeds"].shape == (37 * 51, 512)
    assert not any("relative_position_index" in k or "attn_mask" in k for k in weights)


def test_pixel_values_match_the_original_transform(converted_tiny, reference_outputs):
    processor = AutoProcessor.from_pretrained(converted_tiny)
    assert isinstance(processor, RamPlusProcessor)
    pixel_values = processor(images=[str(p) for p in REFERENCE_IMAGES])["pixel_values"]
    torch.testing.assert_close(pixel_values, reference_outputs["pixel_values"], atol=1e-5, rtol=0)
    image_processor = AutoImageProcessor.from_pretrained(converted_tiny)
    from PIL import Image

    with Image.open(REFERENCE_IMAGES[1]) as image:
        single = image_processor(image, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(single[0], reference_outputs["pixel_values"][1], atol=1e-5, rtol=0)


def test_intermediates_match(converted_model, reference_outputs):
    with torch.no_grad():
        vision = converted_model.vision_model(pixel_values=reference_outputs["pixel_values"])
        tokens = torch.cat([vision.pooler_output.unsqueeze(1), vision.last_hidden_state], dim=1)
        image_embeds = converted_model.get_image_embeds(reference_outputs["pixel_values"])
    torch.testing.assert_close(tokens, reference_outputs["vision_tokens"], atol=1e-4, rtol=0)
    torch.testing.assert_close(image_embeds, reference_outputs["image_embeds"], atol=1e-4, rtol=0)


def test_closed_set_logits_match(converted_model, reference_outputs):
    with torch.no_grad():
        logits = converted_model(pixel_values=reference_outputs["pixel_values"]).logits
    torch.testing.assert_close(logits, reference_outputs["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_open_set_logits_match(converted_tiny, reference_outputs, implementation):
    model = AutoModel.from_pretrained(converted_tiny, attn_implementation=implementation).eval()
    per_tag = int(reference_outputs["openset_descriptions_per_tag"])
    with torch.no_grad():
        logits = model(
            pixel_values=reference_outputs["pixel_values"],
            label_embeds=reference_outputs["openset_label_embeds"],
            descriptions_per_tag=per_tag,
        ).logits
    torch.testing.assert_close(logits, reference_outputs["openset_logits"], atol=1e-4, rtol=0)


def test_post_processed_tags_equal_the_original_strings(converted_tiny, converted_model, reference_outputs):
    meta = json.loads((TINY_DIR / "reference_meta.json").read_text(encoding="utf-8"))
    processor = RamPlusProcessor.from_pretrained(converted_tiny)
    with torch.no_grad():
        outputs = converted_model(pixel_values=reference_outputs["pixel_values"])
    for language, key in (("en", "tags"), ("zh", "tags_chinese")):
        tags = processor.post_process_image_tagging(outputs, language=language, sort_by="index")
        # the original joins names with " | "; its Chinese file pads some names with spaces, which we strip
        expected = [[name.strip() for name in line.split(" | ")] for line in meta[key]]
        assert [[t["label"] for t in image] for image in tags] == expected
    assert [processor.format_tags(t) for t in processor.post_process_image_tagging(outputs, sort_by="index")] == meta["tags"]
    # the default order is by score, and open-set tags at the original's 0.5 threshold
    by_score = processor.post_process_image_tagging(outputs)
    assert {t["label"] for t in by_score[1]} == set(meta["tags"][1].split(" | "))
    assert [t["score"] for t in by_score[1]] == sorted((t["score"] for t in by_score[1]), reverse=True)
    with torch.no_grad():
        open_logits = converted_model(
            pixel_values=reference_outputs["pixel_values"],
            label_embeds=reference_outputs["openset_label_embeds"],
            descriptions_per_tag=50,
        ).logits
    names = [f"openset tag {i}" for i in range(7)]
    open_tags = processor.post_process_image_tagging(open_logits, threshold=0.5, tag_names=names, sort_by="index")
    assert [processor.format_tags(t) for t in open_tags] == meta["openset_tags"]


def test_conversion_refuses_to_overwrite_and_reports_errors(tmp_path, converted_tiny):
    with pytest.raises(ConversionError, match="already exists"):
        convert_checkpoint(TINY_DIR / "ram_plus_original.pth", converted_tiny)
    state = load_original_state_dict(TINY_DIR / "ram_plus_original.pth")
    broken = dict(state)
    del broken["fc.bias"]
    broken["some.extra.weight"] = torch.zeros(2)
    path = tmp_path / "broken.pth"
    torch.save({"model": broken}, path)
    with pytest.raises(ConversionError, match="missing") as info:
        convert_checkpoint(path, tmp_path / "out")
    assert "classifier.bias" in str(info.value)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["broken.pth"]
    wrong = dict(state)
    wrong["image_proj.weight"] = torch.zeros(512, 64)
    torch.save({"model": wrong}, path)
    with pytest.raises(ConversionError, match="image_proj.weight"):
        convert_checkpoint(path, tmp_path / "out")


def test_unknown_keys_are_listed_and_skipped_and_old_prefix_works(tmp_path, reference_outputs):
    state = load_original_state_dict(TINY_DIR / "ram_plus_original.pth")
    renamed = {k.replace("tagging_head.", "vision_multi."): v for k, v in state.items()}
    renamed["text_encoder.embeddings.weight"] = torch.zeros(3, 3)
    path = tmp_path / "old.pth"
    torch.save({"model": renamed}, path)
    report = convert_checkpoint(path, tmp_path / "out", tag_list=TINY_DIR / "ram_tag_list.txt")
    assert report.unknown_keys == ["text_encoder.embeddings.weight"]
    model = RamPlusModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        logits = model(pixel_values=reference_outputs["pixel_values"]).logits
    torch.testing.assert_close(logits, reference_outputs["logits"], atol=1e-4, rtol=0)


def test_variant_mismatch_is_an_error(tmp_path):
    with pytest.raises(ConversionError, match="embed_dim"):
        convert_checkpoint(TINY_DIR / "ram_plus_original.pth", tmp_path / "out", variant="swin_l")


def test_overwrite_replaces_atomically(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    (target / "tokenizer.json").write_text("{}")  # from an earlier conversion with a text tower
    convert_checkpoint(TINY_DIR / "ram_plus_original.pth", target, overwrite=True)
    names = sorted(p.name for p in target.iterdir())
    assert "tokenizer.json" not in names and "model.safetensors" in names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_overwrite_never_deletes_what_it_did_not_write(tmp_path):
    from transformers_ramplus.models.ram_plus.convert_ram_plus import ConversionError

    # the output folder holds the input checkpoint: refused, before any work
    folder = tmp_path / "work"
    folder.mkdir()
    checkpoint = folder / "ram_plus.pth"
    shutil.copy(TINY_DIR / "ram_plus_original.pth", checkpoint)
    with pytest.raises(ConversionError, match="holds the input"):
        convert_checkpoint(checkpoint, folder, overwrite=True)
    with pytest.raises(ConversionError, match="holds the input"):
        convert_checkpoint(TINY_DIR / "ram_plus_original.pth", tmp_path, overwrite=True, tag_list=None, thresholds=None, tag_list_chinese=folder / ".." / "work" / "ram_plus.pth")
    assert checkpoint.read_bytes() == (TINY_DIR / "ram_plus_original.pth").read_bytes()
    # a folder of the user's own files: refused, nothing touched, no temporary left behind
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConversionError, match="notes.txt"):
        convert_checkpoint(TINY_DIR / "ram_plus_original.pth", mine, overwrite=True)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "work"]
    # a file as the output folder: refused, kept, and no `.NAME.old-PID` left
    a_file = tmp_path / "file"
    a_file.write_text("data")
    with pytest.raises(ConversionError, match="is a file"):
        convert_checkpoint(TINY_DIR / "ram_plus_original.pth", a_file, overwrite=True)
    assert a_file.read_text() == "data" and sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine", "work"]


def test_converted_folder_honours_umask_and_stale_temporaries_are_cleaned(tmp_path):
    import os
    import subprocess
    import sys

    # a run killed while writing leaves `.NAME.tmp-PID-*`; a later run removes it (that PID no longer runs)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".model.tmp-{dead}-0badc0de"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    old = os.umask(0o022)
    try:
        convert_checkpoint(TINY_DIR / "ram_plus_original.pth", tmp_path / "model")
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "model").iterdir())


def test_cli_entry_point(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "transformers_ramplus.cli.main", "convert", str(TINY_DIR / "ram_plus_original.pth"), str(tmp_path / "m")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "converted 140 tensors" in result.stderr
    again = subprocess.run(
        [sys.executable, "-m", "transformers_ramplus.cli.main", "convert", str(TINY_DIR / "ram_plus_original.pth"), str(tmp_path / "m")],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
