"""Prepare a converted RAM++ directory for the Hugging Face Hub and upload it.

    python hub_upload/prepare_and_push.py CONVERTED_DIR REPO_ID [--staging DIR] [--dry-run] [--private]
        [--remote-code] [--revision BRANCH] [--commit-message MSG]

Steps: load the model and processor from CONVERTED_DIR and check that they tag an image (a broken directory is
never uploaded); re-save them as safetensors into a staging directory, with `--remote-code` also the modeling,
configuration and image-processing files plus `auto_map` so that `trust_remote_code=True` users need no package;
write a model card (README.md); then `create_repo` + `upload_folder` (skipped with `--dry-run`, which keeps the
staging directory for inspection). Authentication is huggingface_hub's (`hf auth login` or `HF_TOKEN`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch


CARD_TEMPLATE = """---
license: apache-2.0
library_name: transformers
pipeline_tag: zero-shot-image-classification
tags:
- ram-plus
- recognize-anything
- image-tagging
- open-set
- transformers-ramplus
---

# {title}

RAM++ (Recognize Anything Plus, [arXiv 2310.15200](https://arxiv.org/abs/2310.15200)), converted to a native
Hugging Face transformers model with [transformers-ramplus](https://pypi.org/project/transformers-ramplus/).
The numerics are those of the authors' model (`xinyu1205/recognize-anything`, Apache-2.0).

- Image encoder: Swin (embed_dim {embed_dim}, depths {depths}), {image_size} px
- Vocabulary: {num_tags} tags x {descriptions} CLIP description embeddings{chinese}
- Per-tag thresholds: {thresholds}
- Text tower for open-set tags: {text_tower}

## Usage

```python
import torch
import transformers_ramplus  # pip install transformers-ramplus
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}").eval()
processor = AutoProcessor.from_pretrained("{repo_id}")
inputs = processor(images=["photo.jpg"])
with torch.no_grad():
    outputs = model(**inputs)
print(processor.post_process_image_tagging(outputs)[0])   # [{{"label": ..., "score": ...}}, ...]
```
{remote_code}
## Citation

```bibtex
@article{{huang2023open,
  title={{Open-Set Image Tagging with Multi-Grained Text Supervision}},
  author={{Huang, Xinyu and Huang, Yi-Jie and Zhang, Youcai and Tian, Weiwei and Feng, Rui and Zhang, Yuejie and Xie, Yanchun and Li, Yaqian and Zhang, Lei}},
  journal={{arXiv preprint arXiv:2310.15200}},
  year={{2023}}
}}
```
"""

REMOTE_CODE_NOTE = """
Without the package, `trust_remote_code=True` loads the model code shipped in this repository:

```python
from transformers import AutoModel, AutoImageProcessor
model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
image_processor = AutoImageProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
```
"""


def model_card(model, repo_id: str, remote_code: bool) -> str:
    config = model.config
    vision = config.vision_config
    thresholds = "tuned per tag" if config.tag_thresholds is not None else f"{config.default_threshold} for all tags"
    return CARD_TEMPLATE.format(
        title=repo_id.split("/")[-1],
        repo_id=repo_id,
        embed_dim=vision.embed_dim,
        depths=list(vision.depths),
        image_size=vision.image_size,
        num_tags=config.num_tags,
        descriptions=config.descriptions_per_tag,
        chinese=", with Chinese names" if config.tag_names_chinese else "",
        thresholds=thresholds,
        text_tower="bundled (CLIP)" if config.text_config is not None else "not bundled (built-in tags only)",
        remote_code=REMOTE_CODE_NOTE.format(repo_id=repo_id) if remote_code else "",
    )


def prepare(converted_dir, staging_dir, repo_id: str, remote_code: bool = False) -> Path:
    """Validate `converted_dir` and write an upload-ready copy (weights, configs, card) to `staging_dir`."""
    from transformers_ramplus import RamPlusImageProcessor, RamPlusModel, RamPlusProcessor

    converted_dir = Path(converted_dir)
    if not (converted_dir / "config.json").is_file():
        raise ValueError(f"{os.fspath(converted_dir)!r} has no config.json: convert a checkpoint first")
    model = RamPlusModel.from_pretrained(converted_dir).eval()
    processor = RamPlusProcessor.from_pretrained(converted_dir)
    size = processor.image_processor.size
    with torch.no_grad():
        pixel_values = processor(images=[torch.zeros(size["height"], size["width"], 3, dtype=torch.uint8)])["pixel_values"]
        logits = model(pixel_values=pixel_values).logits
    if logits.shape != (1, model.config.num_tags) or not torch.isfinite(logits).all():
        raise ValueError(f"{os.fspath(converted_dir)!r} does not produce finite logits for {model.config.num_tags} tags")
    processor.post_process_image_tagging(logits)  # names and thresholds are consistent

    staging_dir = Path(staging_dir)
    if staging_dir.exists() and any(staging_dir.iterdir()):
        raise ValueError(f"staging directory {os.fspath(staging_dir)!r} is not empty")
    staging_dir.mkdir(parents=True, exist_ok=True)
    if remote_code:
        model.config.register_for_auto_class()
        model.register_for_auto_class("AutoModel")
        RamPlusImageProcessor.register_for_auto_class("AutoImageProcessor")
    model.save_pretrained(staging_dir)
    processor.save_pretrained(staging_dir)
    processor.image_processor.save_pretrained(staging_dir)
    (staging_dir / "README.md").write_text(model_card(model, repo_id, remote_code), encoding="utf-8")
    return staging_dir


def push(staging_dir, repo_id: str, private: bool = False, revision: str | None = None, message: str | None = None):
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(staging_dir),
        revision=revision,
        commit_message=message or "Upload RAM++ converted with transformers-ramplus",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("converted_dir")
    parser.add_argument("repo_id")
    parser.add_argument("--staging", help="staging directory (default: a temporary one)")
    parser.add_argument("--dry-run", action="store_true", help="prepare and validate only; keep the staging directory")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--remote-code", action="store_true", help="ship the model code for trust_remote_code users")
    parser.add_argument("--revision", help="branch to upload to")
    parser.add_argument("--commit-message")
    args = parser.parse_args(argv)

    staging = Path(args.staging) if args.staging else Path(tempfile.mkdtemp(prefix="ramplus-upload-"))
    try:
        prepare(args.converted_dir, staging, args.repo_id, remote_code=args.remote_code)
        if args.dry_run:
            sys.stdout.write(f"prepared {staging} (dry run, nothing uploaded)\n")
            return 0
        info = push(staging, args.repo_id, private=args.private, revision=args.revision, message=args.commit_message)
        sys.stdout.write(f"uploaded to {info}\n")
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    finally:
        if not args.dry_run and not args.staging:
            shutil.rmtree(staging, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
