"""Small random-weight RAM++ models and data for the example notebooks: nothing is downloaded.

The notebooks run on these so that they execute anywhere in seconds (and in the test suite). Their outputs are
therefore those of RANDOM weights: tags, scores and heatmaps show how the code works, not what RAM++ sees. Each
notebook names the one line to change for the real model.

- `tiny_model()`: the project's golden tiny checkpoint (`modeling_tests/fixtures/tiny`: random weights in the
  authors' layout, made with their code; 37 real tag names with Chinese names and tuned-looking thresholds), converted
  with `ramplus convert` exactly as the real `ram_plus_swin_large_14m.pth` is. Same geometry as the real model
  (384 px input, 12x12 image tokens), tiny widths.
- `tiny_model(text_tower=True)`: the same with a tiny random CLIP text tower and tokenizer bundled (`--text-tower`), so
  that new tags can be embedded from names and descriptions.
- `shapes_dataset(...)`: an image folder of coloured shapes with a `metadata.jsonl` of their tags, for fine-tuning
  and evaluation.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "modeling_tests" / "fixtures"
IMAGES = [FIXTURES / "images" / "demo2.jpg", FIXTURES / "images" / "openset_example.jpg"]
_WORK = Path(tempfile.mkdtemp(prefix="ramplus-notebook-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)
_MODELS: dict = {}


def work_dir(name: str) -> Path:
    """A fresh scratch folder (removed when the kernel exits)."""
    folder = _WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def _tiny_clip(folder: Path, projection_dim: int = 512) -> Path:
    """A CLIP text tower (random, 2 layers of width 32) and a byte-level CLIP tokenizer."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet, shifted = [], 0
    for byte in range(256):  # byte-level BPE's stand-ins of the 256 bytes: printable ones as themselves
        if byte in printable:
            alphabet.append(chr(byte))
        else:
            alphabet.append(chr(256 + shifted))
            shifted += 1
    tokens = alphabet + [char + "</w>" for char in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=projection_dim, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    )
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_model(text_tower: bool = False) -> str:
    """The golden tiny RAM++ converted into a scratch folder (with a tiny CLIP text tower if asked); its path."""
    if text_tower not in _MODELS:
        from transformers_ramplus.cli.main import main

        tiny = FIXTURES / "tiny"
        output = work_dir("ram-plus-tiny-text" if text_tower else "ram-plus-tiny")
        arguments = [
            "convert", str(tiny / "ram_plus_original.pth"), str(output),
            "--tag-list", str(tiny / "ram_tag_list.txt"),
            "--tag-list-chinese", str(tiny / "ram_tag_list_chinese.txt"),
            "--thresholds", str(tiny / "ram_tag_list_threshold.txt"),
        ]
        if text_tower:
            arguments += ["--text-tower", str(_tiny_clip(work_dir("tiny-clip")))]
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()) as messages:  # the converter's report is not the point here
            code = main(arguments)
        if code != 0:
            raise RuntimeError(f"converting the tiny checkpoint failed:\n{messages.getvalue()}")
        _MODELS[text_tower] = str(output)
    return _MODELS[text_tower]


COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 230)}


def shape_image(colors: list[str], rng: np.random.Generator, size: int = 96) -> Image.Image:
    """A noisy grey picture with one filled shape per colour in `colors`."""
    pixels = rng.normal(128, 25, (size, size, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for color in colors:
        radius = int(rng.integers(size // 4, size // 2))
        x, y = (int(v) for v in rng.integers(radius, size - radius, 2))
        box = (x - radius, y - radius, x + radius, y + radius)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=COLORS[color])
        else:
            draw.rectangle(box, fill=COLORS[color])
    return image


def shapes_dataset(name: str, count: int, seed: int = 0, tag_names: dict | None = None) -> Path:
    """An image folder of `count` pictures of coloured shapes and a `metadata.jsonl` with their tags (each colour
    present, named by `tag_names[colour]`, default the colour name: 1 or 2 colours per picture)."""
    tag_names = tag_names or {color: color for color in COLORS}
    rng = np.random.default_rng(seed)
    folder = work_dir(name)
    folder.mkdir(parents=True)
    lines = []
    for index in range(count):
        colors = sorted(rng.choice(list(COLORS), size=int(rng.integers(1, 3)), replace=False).tolist())
        file_name = f"{index:03d}.png"
        shape_image(colors, rng).save(folder / file_name)
        lines.append(json.dumps({"file_name": file_name, "tags": [tag_names[c] for c in colors]}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def read_metadata(folder: Path) -> tuple[list[Path], list[list[str]]]:
    """The image paths and tag lists of a `shapes_dataset` folder."""
    rows = [json.loads(line) for line in (Path(folder) / "metadata.jsonl").read_text().splitlines() if line.strip()]
    return [Path(folder) / row["file_name"] for row in rows], [row["tags"] for row in rows]


SMALL_TAGS = ["sky", "tree", "car", "person", "building"]


def small_model(image_size: int = 32) -> str:
    """A fresh random RAM++ much smaller than the golden one (input `image_size` px, Swin width 16, decoder width
    64, 5 tags) with a tiny CLIP text tower: fine-tuning it takes seconds on a CPU. Saved to a scratch folder; its
    path."""
    key = ("small", image_size)
    if key not in _MODELS:
        import torch
        from transformers import AutoTokenizer, CLIPTextConfig

        from transformers_ramplus import RamPlusConfig, RamPlusImageProcessor, RamPlusModel, RamPlusProcessor

        clip = _tiny_clip(work_dir("small-clip"), projection_dim=64)
        text_config = CLIPTextConfig.from_pretrained(clip)
        config = RamPlusConfig(
            vision_config={"image_size": image_size, "patch_size": 4, "embed_dim": 16, "depths": [2, 2],
                           "num_heads": [2, 4], "window_size": 4, "drop_path_rate": 0.0},
            text_config=text_config.to_dict(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, text_embed_dim=64, descriptions_per_tag=1,
            id2label=dict(enumerate(SMALL_TAGS)),
        )
        torch.manual_seed(0)
        model = RamPlusModel(config)
        model.text_model.load_state_dict(type(model.text_model).from_pretrained(clip).state_dict())
        tokenizer = AutoTokenizer.from_pretrained(clip)
        from transformers_ramplus import TagSet

        TagSet.from_model(model, SMALL_TAGS, tokenizer=tokenizer, use_builtin=False, templates=["a photo of a {}."]).apply_to(model, keep_existing=False)
        model.vocabulary_changed = False  # the model's own vocabulary, saved with it
        output = work_dir("ram-plus-small")
        model.save_pretrained(output)
        size = {"height": image_size, "width": image_size}
        RamPlusProcessor(RamPlusImageProcessor(size=size), tokenizer).save_pretrained(output)
        _MODELS[key] = str(output)
    return _MODELS[key]


def _convert(key, name: str, arguments: list[str]) -> str:
    """Convert with `ramplus convert ARGUMENTS... OUTPUT` into a scratch folder once per kernel; its path."""
    if key not in _MODELS:
        import contextlib
        import io

        from transformers_ramplus.cli.main import main

        output = work_dir(name)
        with contextlib.redirect_stderr(io.StringIO()) as messages:  # the converter's report is not the point here
            code = main(["convert", arguments[0], str(output), *arguments[1:]])
        if code != 0:
            raise RuntimeError(f"converting {arguments[0]} failed:\n{messages.getvalue()}")
        _MODELS[key] = str(output)
    return _MODELS[key]


def tiny_ram(text_tower: bool = False) -> str:
    """The golden tiny RAM (`modeling_tests/fixtures/ram_tiny`: random weights in the authors' RAM layout, 37 tags),
    converted as the real `ram_swin_large_14m.pth` is (with a tiny CLIP text tower if asked, for new tags)."""
    tiny = FIXTURES / "ram_tiny"
    arguments = [
        str(tiny / "ram_original.pth"),
        "--tag-list", str(tiny / "ram_tag_list.txt"),
        "--tag-list-chinese", str(tiny / "ram_tag_list_chinese.txt"),
        "--thresholds", str(tiny / "ram_tag_list_threshold.txt"),
    ]
    if text_tower:
        arguments += ["--text-tower", str(_tiny_clip(work_dir("tiny-clip-ram")))]
    return _convert(("ram", text_tower), "ram-tiny-text" if text_tower else "ram-tiny", arguments)


def tiny_tag2text() -> str:
    """The golden tiny Tag2Text (`modeling_tests/fixtures/tag2text_tiny`: random weights in the authors' layout, the
    real 3429-tag list, a small synthetic BERT vocabulary), converted as the real `tag2text_swin_14m.pth` is."""
    tiny = FIXTURES / "tag2text_tiny"
    arguments = [
        str(tiny / "tag2text_original.pth"),
        "--tag-list", str(tiny / "tag2text_ori_tag_list.txt"),
        "--tokenizer", str(tiny / "tokenizer"),
        "--text-heads", "4",
    ]
    return _convert("tag2text", "tag2text-tiny", arguments)
