"""Shared fixtures: tiny configs and the converted golden tiny model (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


PROJECT_ROOT = Path(__file__).resolve().parents[1]
# `precision="auto"` (the pipeline's and `ramplus tag`'s default) picks bf16 on a CPU with native bf16 (Intel AMX, AMD
# Zen 4 with AVX-512 BF16) and fp32 elsewhere. The golden comparisons need fp32 on every machine, so the suite runs
# "auto" as fp32 (subprocesses inherit it); tests of the choice itself fake the CPU and unset this
# (test_precision.py), and bf16/int8 are tested where they are asked for by name.
os.environ["RAMPLUS_PRECISION"] = "fp32"
# The golden tiny checkpoint, its outputs and losses and the two photos are vendored here (see fixtures/README.md),
# so that a bare clone runs the whole default suite.
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
REFERENCE_DIR = Path(os.environ.get("RAMPLUS_REFERENCE_DIR", FIXTURES_DIR))
# Optional extra data (benchmark tag lists, the 200 rare-tag descriptions) that is not vendored: tests that read it
# use the `shared_data_dir` fixture, which skips with a reason when the folder is absent.
SHARED_DIR = Path(os.environ.get("RAMPLUS_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
DATA_DIR = Path(os.environ.get("RAMPLUS_DATA_DIR", SHARED_DIR / "data"))
TINY_DIR = REFERENCE_DIR / "tiny"
RAM_TINY_DIR = REFERENCE_DIR / "ram_tiny"  # the golden tiny RAM (the predecessor model), see fixtures/README.md
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


def run_without_package(script: str, workdir) -> "subprocess.CompletedProcess":
    """Run `script` in a fresh offline Python process (own HF_HOME, no Hub access) from `workdir`: remote-code checks.

    The script itself blocks `transformers_ramplus` (`sys.modules[...] = None`) where the package must be absent."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=workdir,
        env={"HF_HOME": str(Path(workdir) / "hf_home"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def shared_data_dir():
    """The project's optional data folder (not vendored); skips, naming the path, when it is not there."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"optional data folder {DATA_DIR} not found (set RAMPLUS_DATA_DIR)")
    return DATA_DIR


def spread_model(seed: int = 0, **overrides):
    """A tiny random model whose logits spread over several units and whose attention is peaked, so that an error
    in the attention, the re-weighting or the batching moves the logits by far more than the tests' tolerances (a
    fresh tiny model gives near-constant logits, where such a bug changes them by ~1e-8)."""
    model = tiny_model(seed=seed, **overrides)
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)  # logits several units apart
        model.reweight_scale.fill_(2.0)  # sharper description weights than exp(log(1/0.07)) on random vectors
        model.image_projection.weight.mul_(10.0)  # image tokens that differ from each other
        model.query_projection.weight.mul_(10.0)  # tag queries that differ from each other
        for layer in model.decoder.layers:
            attention = layer.cross_attention
            for module in (attention.q_proj, attention.k_proj):  # peaked attention
                module.weight.mul_(8.0)
                module.bias.mul_(8.0)
            for module in (attention.v_proj, attention.o_proj):  # attention output that outweighs the residual
                module.weight.mul_(3.0)
    return model


@pytest.fixture
def model():
    return spread_model()


def load_golden(name: str):
    """A golden tensor file of `TINY_DIR`, failing (never skipping) when it is missing."""
    path = TINY_DIR / name
    if not path.is_file():
        pytest.fail(f"golden data not found at {path}; set RAMPLUS_REFERENCE_DIR")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def reference_outputs():
    return load_golden("reference_outputs.pt")


@pytest.fixture(scope="session")
def reference_losses():
    return load_golden("reference_losses.pt")


def convert_golden_tiny(output, *extra_args) -> Path:
    """Convert the golden original-format checkpoint with the `ramplus convert` command (tags, Chinese, thresholds)."""
    from transformers_ramplus.cli.main import main

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
            *extra_args,
        ]
    )
    assert code == 0
    return output


@pytest.fixture(scope="session")
def converted_tiny(tmp_path_factory):
    """The golden original-format checkpoint converted with the `ramplus convert` command."""
    return convert_golden_tiny(tmp_path_factory.mktemp("converted") / "ram_plus_tiny")


def convert_golden_ram_tiny(output, *extra_args) -> Path:
    """Convert the golden tiny RAM checkpoint with `ramplus convert` (the format is detected from its keys)."""
    from transformers_ramplus.cli.main import main

    files = [("--tag-list", "ram_tag_list.txt"), ("--tag-list-chinese", "ram_tag_list_chinese.txt"),
             ("--thresholds", "ram_tag_list_threshold.txt")]
    arguments = [argument for option, name in files for argument in (option, str(RAM_TINY_DIR / name))]
    assert main(["convert", str(RAM_TINY_DIR / "ram_original.pth"), str(output), *arguments, *extra_args]) == 0
    return output


@pytest.fixture(scope="session")
def converted_ram_tiny(tmp_path_factory):
    """The golden tiny RAM checkpoint converted with the `ramplus convert` command."""
    return convert_golden_ram_tiny(tmp_path_factory.mktemp("converted_ram") / "ram_tiny")


@pytest.fixture(scope="session")
def ram_reference_outputs():
    path = RAM_TINY_DIR / "reference_outputs.pt"
    if not path.is_file():
        pytest.fail(f"golden data not found at {path}; set RAMPLUS_REFERENCE_DIR")
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="session")
def ram_reference_losses():
    path = RAM_TINY_DIR / "reference_losses.pt"
    if not path.is_file():
        pytest.fail(f"golden data not found at {path}; set RAMPLUS_REFERENCE_DIR")
    return torch.load(path, weights_only=True)


# ------------------------------------------------------------------ tiny CLIP text tower + tokenizer
def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (bytes that print as themselves, the rest shifted past 255)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, shift = [], 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return chars


def tiny_clip_tokenizer():
    """A CLIP tokenizer over a tiny byte-level vocabulary (every byte, a few merges), built offline."""
    from transformers import CLIPTokenizer

    vocab = {}
    for char in _byte_alphabet():
        vocab[char] = len(vocab)
    for char in _byte_alphabet():
        vocab[char + "</w>"] = len(vocab)
    merges = [("t", "h"), ("th", "e</w>"), ("o", "f</w>"), ("i", "n</w>")]
    for left, right in merges:
        vocab[left + right] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges)


def tiny_text_config(tokenizer, projection_dim: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=projection_dim,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def tiny_text_model(seed: int = 0):
    """A tiny RAM++ (as `tiny_model`) carrying a tiny random CLIP text tower, and its tokenizer."""
    tokenizer = tiny_clip_tokenizer()
    model = tiny_model(seed=seed, text_config=tiny_text_config(tokenizer, projection_dim=24).to_dict())
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A transformers CLIP checkpoint directory (text tower with 512-d projection + tokenizer), like
    `openai/clip-vit-base-patch16` but tiny and random."""
    from transformers import CLIPTextModelWithProjection

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(0)
    text_model = CLIPTextModelWithProjection(tiny_text_config(tokenizer, projection_dim=512)).eval()
    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    text_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def converted_tiny_text(tmp_path_factory, tiny_clip_dir):
    """The golden tiny checkpoint converted with `ramplus convert --text-tower <tiny CLIP dir>`."""
    output = tmp_path_factory.mktemp("converted_text") / "ram_plus_tiny_text"
    return convert_golden_tiny(output, "--text-tower", str(tiny_clip_dir))
# ---------------------------------------------------------------- training helpers
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


def tiny_word_text_config(vocab_size=64, projection_dim=24):
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
