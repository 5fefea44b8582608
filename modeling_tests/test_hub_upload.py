"""hub_upload tooling: a dry run validates and stages a converted model, with remote code that loads offline."""

import importlib.util
import textwrap
from pathlib import Path

import pytest

from conftest import run_without_package

HUB_UPLOAD = Path(__file__).resolve().parents[1] / "hub_upload" / "prepare_and_push.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("prepare_and_push", HUB_UPLOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_stages_weights_card_and_remote_code(tmp_path, converted_tiny):
    tool = load_tool()
    staging = tmp_path / "staging"
    assert tool.main([str(converted_tiny), "someone/ram-plus-tiny", "--staging", str(staging), "--dry-run", "--remote-code"]) == 0
    names = {p.name for p in staging.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "preprocessor_config.json", "README.md"} <= names
    assert {"modeling_ram_plus.py", "configuration_ram_plus.py", "image_processing_ram_plus.py"} <= names
    card = (staging / "README.md").read_text()
    assert "someone/ram-plus-tiny" in card and "37 tags x 51" in card and "Chinese" in card
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["transformers_ramplus"] = None
        import torch
        from transformers import AutoImageProcessor, AutoModel
        model = AutoModel.from_pretrained({str(staging)!r}, trust_remote_code=True).eval()
        processor = AutoImageProcessor.from_pretrained({str(staging)!r}, trust_remote_code=True)
        pixels = processor(images=[torch.zeros(20, 30, 3, dtype=torch.uint8)], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            assert model(pixel_values=pixels).logits.shape == (1, 37)
        print("remote-ok")
        """
    )
    result = run_without_package(script, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "remote-ok" in result.stdout


def test_refuses_a_directory_that_is_not_a_model(tmp_path):
    tool = load_tool()
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty"), "someone/x", "--staging", str(tmp_path / "s"), "--dry-run"]) == 2
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
