"""Shared fixtures: tiny configs and the converted golden tiny model (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("RAMPLUS_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
REFERENCE_DIR = Path(os.environ.get("RAMPLUS_REFERENCE_DIR", SHARED_DIR / "reference"))
DATA_DIR = Path(os.environ.get("RAMPLUS_DATA_DIR", SHARED_DIR / "data"))
TINY_DIR = REFERENCE_DIR / "tiny"
IMAGES_DIR = REFERENCE_DIR / "images"
REFERENCE_IMAGES = [IMAGES_DIR / "openset_example.jpg", IMAGES_DIR / "demo2.jpg"]


def tiny_config(num_tags: int = 5, descriptions_per_tag: int = 3, **overrides):
    """A very small random RAM++ (Swin 16-wide at 64 px, decoder 32-wide)."""
    from transformers_ramplus import RamPlusConfig

    vision = {
        "image_size": 64,
        "patch_size": 4,
        "embed_dim": 8,
        "depths": [1, 2],
        "num_heads": [1, 2],
        "window_size": 4,
        "drop_path_rate": 0.0,
    }
    kwargs = dict(
        vision_config=vision,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        text_embed_dim=24,
        descriptions_per_tag=descriptions_per_tag,
        id2label={i: f"tag {i}" for i in range(num_tags)},
    )
    kwargs.update(overrides)
    return RamPlusConfig(**kwargs)


def tiny_model(seed: int = 0, **overrides):
    from transformers_ramplus import RamPlusModel

    torch.manual_seed(seed)
    model = RamPlusModel(tiny_config(**overrides))
    # randomize LayerNorms and biases too, so that a mis-wired module cannot hide
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


@pytest.fixture
def model():
    return tiny_model()


@pytest.fixture(scope="session")
def reference_outputs():
    path = TINY_DIR / "reference_outputs.pt"
    if not path.is_file():
        pytest.fail(f"golden data not found at {path}; set RAMPLUS_REFERENCE_DIR")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def converted_tiny(tmp_path_factory):
    """The golden original-format checkpoint converted with the `ramplus convert` command."""
    from transformers_ramplus.cli import main

    output = tmp_path_factory.mktemp("converted") / "ram_plus_tiny"
    code = main(
        [
            "convert",
            str(TINY_DIR / "ram_plus_original.pth"),
            str(output),
            "--tag-list",
            str(TINY_DIR / "ram_tag_list.txt"),
            "--tag-list-chinese",
            str(TINY_DIR / "ram_tag_list_chinese.txt"),
            "--thresholds",
            str(TINY_DIR / "ram_tag_list_threshold.txt"),
        ]
    )
    assert code == 0
    return output


# ---------------------------------------------------------------- training helpers (issue 4)
def tiny_word_tokenizer(words=()):
    """An offline word-level tokenizer shaped like CLIP's (bos/eos added, pad id 0), for tiny text towers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    base = ["[PAD]", "[UNK]", "<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(base + sorted(set(words) - set(base)))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 2), ("<|endoftext|>", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
    )


def tiny_text_config(vocab_size=64, projection_dim=24):
    """A tiny CLIP text tower config matching `tiny_word_tokenizer` (eos id 3) and `tiny_config` (width 24)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "projection_dim": projection_dim,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "pad_token_id": 0,
    }
