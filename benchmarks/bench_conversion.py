"""Full-size conversion check: build a random RAM++ checkpoint in the authors' layout, convert it, load it, tag.

    python benchmarks/bench_conversion.py [--workdir DIR] [--extra-gib 1.7] [--keep]

The checkpoint has the released model's shapes (Swin-L/384, 4585 tags x 51 descriptions) plus
`--extra-gib` of tensors the converter does not know (the released file is ~3.0 GB for ~1.27 GiB of needed
weights). Conversion runs in a child process (`ramplus convert`), so its wall time and peak RSS are its own.
Results go to `benchmarks/results/conversion.json` and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def original_state_dict(
    embed_dim=192,
    depths=(2, 2, 18, 2),
    num_heads=(6, 12, 24, 48),
    window=12,
    image_size=384,
    num_tags=4585,
    descriptions=51,
    hidden=768,
    layers=2,
    intermediate=3072,
    text_dim=512,
    extra_bytes=0,
    seed=0,
) -> dict[str, torch.Tensor]:
    """Random tensors with the key names and shapes of the authors' checkpoint."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.02

    state = {
        "label_embed": torch.nn.functional.normalize(torch.randn(num_tags * descriptions, text_dim, generator=generator), dim=-1),
        "reweight_scale": torch.tensor(2.6593),
        "visual_encoder.patch_embed.proj.weight": rand(embed_dim, 3, 4, 4),
        "visual_encoder.patch_embed.proj.bias": rand(embed_dim),
        "visual_encoder.patch_embed.norm.weight": 1 + rand(embed_dim),
        "visual_encoder.patch_embed.norm.bias": rand(embed_dim),
    }
    resolution = image_size // 4
    for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
        dim = embed_dim * 2**stage
        windows = (resolution // window) ** 2
        for block in range(depth):
            prefix = f"visual_encoder.layers.{stage}.blocks.{block}."
            if block % 2 == 1 and resolution > window:
                state[prefix + "attn_mask"] = torch.zeros(windows, window * window, window * window)
            state[prefix + "norm1.weight"] = 1 + rand(dim)
            state[prefix + "norm1.bias"] = rand(dim)
            state[prefix + "attn.relative_position_bias_table"] = rand((2 * window - 1) ** 2, heads)
            state[prefix + "attn.relative_position_index"] = torch.zeros(window * window, window * window, dtype=torch.long)
            state[prefix + "attn.qkv.weight"] = rand(3 * dim, dim)
            state[prefix + "attn.qkv.bias"] = rand(3 * dim)
            state[prefix + "attn.proj.weight"] = rand(dim, dim)
            state[prefix + "attn.proj.bias"] = rand(dim)
            state[prefix + "norm2.weight"] = 1 + rand(dim)
            state[prefix + "norm2.bias"] = rand(dim)
            state[prefix + "mlp.fc1.weight"] = rand(4 * dim, dim)
            state[prefix + "mlp.fc1.bias"] = rand(4 * dim)
            state[prefix + "mlp.fc2.weight"] = rand(dim, 4 * dim)
            state[prefix + "mlp.fc2.bias"] = rand(dim)
        if stage < len(depths) - 1:
            prefix = f"visual_encoder.layers.{stage}.downsample."
            state[prefix + "reduction.weight"] = rand(2 * dim, 4 * dim)
            state[prefix + "norm.weight"] = 1 + rand(4 * dim)
            state[prefix + "norm.bias"] = rand(4 * dim)
            resolution //= 2
    width = embed_dim * 2 ** (len(depths) - 1)
    state["visual_encoder.norm.weight"] = 1 + rand(width)
    state["visual_encoder.norm.bias"] = rand(width)
    state["image_proj.weight"] = rand(text_dim, width)
    state["image_proj.bias"] = rand(text_dim)
    state["wordvec_proj.weight"] = rand(hidden, text_dim)
    state["wordvec_proj.bias"] = rand(hidden)
    for layer in range(layers):
        prefix = f"tagging_head.encoder.layer.{layer}."
        for name, shape in (("query", (hidden, hidden)), ("key", (hidden, text_dim)), ("value", (hidden, text_dim))):
            state[prefix + f"crossattention.self.{name}.weight"] = rand(*shape)
            state[prefix + f"crossattention.self.{name}.bias"] = rand(shape[0])
        state[prefix + "crossattention.output.dense.weight"] = rand(hidden, hidden)
        state[prefix + "crossattention.output.dense.bias"] = rand(hidden)
        state[prefix + "crossattention.output.LayerNorm.weight"] = 1 + rand(hidden)
        state[prefix + "crossattention.output.LayerNorm.bias"] = rand(hidden)
        state[prefix + "intermediate.dense.weight"] = rand(intermediate, hidden)
        state[prefix + "intermediate.dense.bias"] = rand(intermediate)
        state[prefix + "output.dense.weight"] = rand(hidden, intermediate)
        state[prefix + "output.dense.bias"] = rand(hidden)
        state[prefix + "output.LayerNorm.weight"] = 1 + rand(hidden)
        state[prefix + "output.LayerNorm.bias"] = rand(hidden)
    state["fc.weight"] = rand(1, hidden)
    state["fc.bias"] = rand(1)
    if extra_bytes > 0:  # tensors the converter does not know, like the released file's extras
        rows = extra_bytes // (4 * 4096)
        state["text_encoder.extra.weight"] = torch.zeros(rows, 4096)
    return state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", help="where to write the checkpoint and the converted model (default: a temp dir)")
    parser.add_argument("--extra-gib", type=float, default=1.7, help="GiB of unknown tensors added to the checkpoint")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "conversion.json"))
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ramplus-conversion-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / "ram_plus_swin_large_random.pth"
    converted = workdir / "converted"
    shutil.rmtree(converted, ignore_errors=True)
    results = {}
    try:
        start = time.perf_counter()
        state = original_state_dict(extra_bytes=int(args.extra_gib * 2**30))
        torch.save({"model": state}, checkpoint)
        del state
        results["checkpoint_gib"] = checkpoint.stat().st_size / 2**30
        results["build_checkpoint_s"] = time.perf_counter() - start

        data = Path(os.environ.get("RAMPLUS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
        command = [sys.executable, "-m", "transformers_ramplus.cli.main", "convert", str(checkpoint), str(converted)]
        if (data / "ram_tag_list.txt").is_file():
            command += [
                "--tag-list", str(data / "ram_tag_list.txt"),
                "--tag-list-chinese", str(data / "ram_tag_list_chinese.txt"),
                "--thresholds", str(data / "ram_tag_list_threshold.txt"),
            ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(command, check=True)
        results["convert_s"] = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        results["convert_peak_rss_gib"] = max(peak_kib, before) / 2**20
        results["converted_gib"] = sum(p.stat().st_size for p in converted.iterdir()) / 2**30

        from transformers_ramplus import RamPlusModel, RamPlusProcessor

        start = time.perf_counter()
        model = RamPlusModel.from_pretrained(converted).eval()
        results["from_pretrained_s"] = time.perf_counter() - start
        processor = RamPlusProcessor.from_pretrained(converted)
        image = Path(__file__).resolve().parents[2] / "shared" / "reference" / "images" / "demo2.jpg"
        inputs = processor(images=[str(image)] if image.is_file() else [torch.rand(3, 384, 384)])
        start = time.perf_counter()
        with torch.no_grad():
            outputs = model(**inputs)
        results["tag_one_image_s"] = time.perf_counter() - start
        tags = processor.post_process_image_tagging(outputs, top_k=5)[0]
        results["num_tags"] = model.config.num_tags
        results["top5"] = [tag["label"] for tag in tags]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(k) for k in results)
    for key, value in results.items():
        shown = f"{value:.2f}" if isinstance(value, float) else value
        sys.stdout.write(f"{key:<{width}}  {shown}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
