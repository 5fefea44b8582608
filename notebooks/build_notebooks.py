"""Build and execute the example notebooks (outputs are stored in the .ipynb files).

    python notebooks/build_notebooks.py            # all notebooks
    python notebooks/build_notebooks.py convert    # those whose name contains "convert"

Needs `pip install nbformat nbclient ipykernel`; runs in the notebooks/ directory, reading the project's test data
from ../../shared (override with RAMPLUS_SHARED_DIR).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

NOTEBOOKS = {
    "01_convert_and_tag.ipynb": [
        ("markdown", """# Convert the authors' RAM++ checkpoint and tag images

This notebook converts a checkpoint in the authors' format with `ramplus convert`, loads it with the Auto classes,
and tags two photographs with the built-in vocabulary (English and Chinese names, per-tag thresholds, scores) and
with open-set label embeddings. It uses the tiny golden checkpoint of the project's test data (random weights made
with the authors' code), so the tags themselves are meaningless; with `ram_plus_swin_large_14m.pth` the same
steps give the real model."""),
        ("code", """import os, shutil, subprocess, sys
from pathlib import Path

SHARED = Path(os.environ.get("RAMPLUS_SHARED_DIR", Path.cwd().parents[1] / "shared"))
TINY = SHARED / "reference" / "tiny"
IMAGES = [SHARED / "reference" / "images" / "openset_example.jpg", SHARED / "reference" / "images" / "demo2.jpg"]
OUT = Path("/tmp/ram-plus-tiny-notebook")
shutil.rmtree(OUT, ignore_errors=True)
result = subprocess.run(
    [sys.executable, "-m", "transformers_ramplus.cli", "convert", str(TINY / "ram_plus_original.pth"), str(OUT),
     "--tag-list", str(TINY / "ram_tag_list.txt"), "--tag-list-chinese", str(TINY / "ram_tag_list_chinese.txt"),
     "--thresholds", str(TINY / "ram_tag_list_threshold.txt")],
    capture_output=True, text=True, check=True)
print(result.stderr)
print(sorted(p.name for p in OUT.iterdir()))"""),
        ("code", """import torch
import transformers_ramplus  # registers RAM++ with the Auto classes
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained(OUT).eval()
processor = AutoProcessor.from_pretrained(OUT)
print(type(model).__name__, model.config.num_tags, "tags x", model.config.descriptions_per_tag, "descriptions")
inputs = processor(images=[str(p) for p in IMAGES])
print(inputs["pixel_values"].shape)
with torch.no_grad():
    outputs = model(**inputs)
print(outputs.logits.shape, outputs.image_embeds.shape)"""),
        ("code", """for path, tags, tags_zh in zip(IMAGES, processor.post_process_image_tagging(outputs, top_k=5),
                                processor.post_process_image_tagging(outputs, top_k=5, language="zh")):
    print(path.name)
    for tag, tag_zh in zip(tags, tags_zh):
        print(f"  {tag['score']:.3f}  {tag['label']}  /  {tag_zh['label']}")"""),
        ("markdown", """The original prints the tags above their per-tag thresholds in vocabulary order, joined by `" | "`;
`sort_by="index"` and `format_tags` reproduce that string exactly (the test suite checks it against the strings the
authors' code produced)."""),
        ("code", """import json
meta = json.loads((TINY / "reference_meta.json").read_text())
ours = [processor.format_tags(t) for t in processor.post_process_image_tagging(outputs, sort_by="index")]
print(ours[1])
print("identical to the original:", ours == meta["tags"])"""),
        ("markdown", """## Open set: any label embeddings

`label_embeds` replaces the built-in vocabulary for one call. Here: the golden open-set embeddings (7 tags x 50
descriptions, CLIP-style unit vectors) at the original's open-set threshold 0.5."""),
        ("code", """reference = torch.load(TINY / "reference_outputs.pt", weights_only=True)
with torch.no_grad():
    open_outputs = model(pixel_values=inputs["pixel_values"], label_embeds=reference["openset_label_embeds"],
                         descriptions_per_tag=50)
print("max |logits - original|:", (open_outputs.logits - reference["openset_logits"]).abs().max().item())
names = [f"openset tag {i}" for i in range(7)]
print(processor.post_process_image_tagging(open_outputs, threshold=0.5, tag_names=names, top_k=3))"""),
    ],
}


def build(name: str, cells) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in cells:
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        notebook.cells.append(make(source))
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    target = HERE / name
    temporary = target.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, temporary)
    temporary.replace(target)
    sys.stdout.write(f"executed {target}\n")


def main(argv=None) -> int:
    patterns = (argv if argv is not None else sys.argv[1:]) or [""]
    for name, cells in NOTEBOOKS.items():
        if any(pattern in name for pattern in patterns):
            build(name, cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
