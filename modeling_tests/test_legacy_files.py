"""Files written by earlier versions (`fixtures/legacy/`, see its README) load with the same logits and vocabulary."""

import json

import pytest
import torch
from peft import PeftModel

from transformers_ramplus import RamPlusModel
from transformers_ramplus.training.adapters import load_adapter

from conftest import FIXTURES_DIR, load_golden


LEGACY_DIR = FIXTURES_DIR / "legacy"


@pytest.fixture(scope="module")
def expected_logits():
    return torch.load(LEGACY_DIR / "expected_logits.pt", weights_only=True)


@pytest.fixture(scope="module")
def expected_vocabularies():
    return json.loads((LEGACY_DIR / "expected_vocabularies.json").read_text(encoding="utf-8"))


def _base():
    return RamPlusModel.from_pretrained(LEGACY_DIR / "base").eval()


def _check(model, name, pixel_values, expected_logits, expected_vocabularies):
    inner = model.get_base_model() if isinstance(model, PeftModel) else model
    vocabulary = expected_vocabularies[name]
    assert inner.config.tag_names == vocabulary["tag_names"], name
    assert inner.config.thresholds() == vocabulary["thresholds"], name
    assert inner.config.tag_names_chinese == vocabulary["tag_names_chinese"], name
    assert inner.config.tag_description_counts == vocabulary["tag_description_counts"], name
    with torch.no_grad():
        logits = model.eval()(pixel_values=pixel_values).logits
    torch.testing.assert_close(logits, expected_logits[name], rtol=0, atol=1e-5, msg=name)


@pytest.mark.parametrize("name", ["base", "merged"])
def test_legacy_model_folders_load(name, expected_logits, expected_vocabularies):
    model = RamPlusModel.from_pretrained(LEGACY_DIR / name)
    _check(model, name, expected_logits["pixel_values_64"], expected_logits, expected_vocabularies)


def test_legacy_converted_folder_loads(expected_logits, expected_vocabularies):
    model = RamPlusModel.from_pretrained(LEGACY_DIR / "converted")
    pixel_values = load_golden("reference_outputs.pt")["pixel_values"]
    _check(model, "converted", pixel_values, expected_logits, expected_vocabularies)


@pytest.mark.parametrize("name", ["adapter", "adapter_base_vocabulary"])
@pytest.mark.parametrize("how", ["load_adapter", "PeftModel.from_pretrained", "model.load_adapter"])
def test_legacy_adapters_load_with_their_vocabulary(name, how, expected_logits, expected_vocabularies):
    adapter_dir = LEGACY_DIR / name
    if how == "load_adapter":
        model = load_adapter(_base(), adapter_dir)
    elif how == "PeftModel.from_pretrained":  # peft's own loading, after installing the adapter's vocabulary
        base = _base()
        base.load_adapter_vocabulary(adapter_dir)
        model = PeftModel.from_pretrained(base, adapter_dir)
    else:
        model = _base()
        model.load_adapter(str(adapter_dir))
    _check(model, name, expected_logits["pixel_values_64"], expected_logits, expected_vocabularies)
