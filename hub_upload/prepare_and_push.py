"""Stage a RAM++ model for the Hugging Face Hub, verify it, and push it with huggingface_hub's HfApi.

    python hub_upload/prepare_and_push.py SOURCE REPO_ID [--checkpoint ORIGINAL.pth] [--staging DIR] [--dry-run]
        [--bf16] [--private] [--create-pr] [--revision BRANCH] [--commit-message MSG] [--image IMG ...]
        [--space SPACE_ID]

SOURCE is a converted model folder, a Hub id of one, or the Hub id of an original-format release (such as
`xinyu1205/recognize-anything-plus-model`, converted on the fly). The tool

1. loads SOURCE and writes the staging folder with the project's one model-folder writer: weights (safetensors; bf16
   with `--bf16`), configs, processor, and the remote-code bundle (`auto_map`, `custom_pipelines`), so the repository
   works with this package, with `trust_remote_code=True` without it, and with `pipeline("image-classification")`;
2. verifies the staged folder: its logits on a few images against the model built straight from the original
   checkpoint before conversion (`--checkpoint`, or the release's own `.pth`), and against SOURCE; a staged folder
   that disagrees beyond 1e-4 (fp32) is never uploaded;
3. writes `handler.py` (the Inference Endpoints handler: the Hub's zero-shot-image-classification format) and
   the model card with `huggingface_hub.ModelCard`/`ModelCardData` (license, library_name, pipeline_tag, tags,
   base_model = the authors' repository, the paper, usage, the verification figures);
4. pushes with `HfApi.create_repo` + `HfApi.upload_folder` (`--create-pr` opens a pull request instead of committing
   to the branch). `--dry-run` stops after step 3 and keeps the staging folder. Authentication is huggingface_hub's
   (`hf auth login` or `HF_TOKEN`).
5. with `--space SPACE_ID`, stages the web demo as a Gradio Space in `STAGING-space` (`app.py` from this folder with
   REPO_ID filled in, requirements.txt, the Space card) and pushes it after the model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch


AUTHORS_REPO_ID = "xinyu1205/recognize-anything-plus-model"
PAPER = "https://arxiv.org/abs/2310.15200"
PIPELINE_TAG = "image-classification"  # a stock task this repository serves (multi-label, sigmoid per tag)
FP32_TOLERANCE = 1e-4
CITATION = """@article{huang2023open,
  title={Open-Set Image Tagging with Multi-Grained Text Supervision},
  author={Huang, Xinyu and Huang, Yi-Jie and Zhang, Youcai and Tian, Weiwei and Feng, Rui and Zhang, Yuejie and Xie, Yanchun and Li, Yaqian and Zhang, Lei},
  journal={arXiv preprint arXiv:2310.15200},
  year={2023}
}"""


def verification_images(paths=None, size: int = 384) -> list:
    """The images the staged folder is checked on: the given files, else three seeded synthetic images."""
    if paths:
        return [str(p) for p in paths]
    generator = torch.Generator().manual_seed(0)
    noise = (torch.rand(size, size, 3, generator=generator) * 255).to(torch.uint8)
    ramp = torch.linspace(0, 255, size).to(torch.uint8)
    gradient = torch.stack([ramp.expand(size, size), ramp.expand(size, size).T, 255 - ramp.expand(size, size)], -1)
    return [noise.numpy(), gradient.contiguous().numpy(), torch.full((size // 2, size, 3), 128, dtype=torch.uint8).numpy()]


def _logits(model, processor, images) -> torch.Tensor:
    pixel_values = processor(images=images, return_tensors="pt")["pixel_values"].to(model.dtype)
    with torch.no_grad():
        return model.eval()(pixel_values=pixel_values).logits.float()


def original_model(checkpoint, config):
    """A model built straight from the original checkpoint's tensors (the key mapping, no file written)."""
    from transformers_ramplus import RamPlusModel
    from transformers_ramplus.models.ram_plus.convert_ram_plus import convert_state_dict, load_original_state_dict

    state, _ = convert_state_dict(load_original_state_dict(checkpoint), config)
    model = RamPlusModel(config)
    if "label_embeds" in state:  # the checkpoint layout's key; the model keeps it in its tag_embeddings module
        state["tag_embeddings.label_embeds"] = state.pop("label_embeds")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("relative_position_index") and not k.startswith("text_model.")]
    if missing or unexpected:
        raise ValueError(f"the original checkpoint does not fill the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def _decisions(logits, thresholds) -> torch.Tensor:
    return torch.sigmoid(logits) > torch.as_tensor(thresholds, dtype=torch.float32)


def verify(staging, source_model, processor, checkpoint=None, images=None, bf16=False) -> dict:
    """Compare the staged folder's logits with the original checkpoint's (before conversion) and SOURCE's."""
    from transformers_ramplus import RamPlusModel

    images = verification_images(images, processor.image_processor.size["height"])
    staged = RamPlusModel.from_pretrained(staging, dtype=torch.bfloat16 if bf16 else torch.float32)
    staged_logits = _logits(staged, processor, images)
    reference = _logits(source_model, processor, images)
    figures = {
        "images": len(images),
        "dtype": "bfloat16" if bf16 else "float32",
        "max_abs_logit_diff_vs_source": float((staged_logits - reference).abs().max()),
    }
    if checkpoint is not None:
        original = _logits(original_model(checkpoint, source_model.config), processor, images)
        figures["max_abs_logit_diff_vs_original_checkpoint"] = float((staged_logits - original).abs().max())
        figures["checkpoint"] = os.path.basename(os.fspath(checkpoint))
        reference = original
    thresholds = source_model.config.thresholds()
    same = _decisions(staged_logits, thresholds) == _decisions(reference, thresholds)
    figures["identical_tag_decisions"] = f"{int(same.sum())}/{same.numel()}"
    worst = max(v for k, v in figures.items() if k.startswith("max_abs"))
    if not bf16 and worst > FP32_TOLERANCE:
        raise ValueError(f"the staged folder's logits differ by {worst:.3g} (> {FP32_TOLERANCE}) from the reference")
    return figures


def model_card(config, repo_id: str, figures: dict, base_model: str = AUTHORS_REPO_ID):
    """The model card, built with huggingface_hub's ModelCard and ModelCardData."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        base_model=base_model,
        tags=["ram-plus", "recognize-anything", "image-tagging", "multi-label", "open-set", "transformers-ramplus",
              "custom_code", "arxiv:2310.15200"],
    )
    vision = config.vision_config
    thresholds = "tuned per tag" if config.tag_thresholds is not None else f"{config.default_threshold} for all tags"
    checks = "\n".join(f"| {key} | {value} |" for key, value in figures.items())
    body = f"""
# {repo_id.split("/")[-1]}

RAM++ (Recognize Anything Plus, [Open-Set Image Tagging with Multi-Grained Text Supervision]({PAPER})) as a native
Hugging Face transformers model, converted from [{base_model}](https://huggingface.co/{base_model}) with
the `transformers-ramplus` package. The numerics are the authors'.

- Image encoder: Swin (embed_dim {vision.embed_dim}, depths {list(vision.depths)}), {vision.image_size} px
- Vocabulary: {config.num_tags} tags x {config.descriptions_per_tag} CLIP description embeddings{", with Chinese names" if config.tag_names_chinese else ""}
- Per-tag thresholds: {thresholds}
- Text tower for new tags: {"bundled (CLIP)" if config.text_config is not None else "not bundled (built-in tags only)"}

## Usage

With the package (`pip install transformers-ramplus`): tags above their tuned thresholds.

```python
import transformers_ramplus
from transformers import pipeline

tagger = pipeline("zero-shot-image-tagging", model="{repo_id}")
tagger("photo.jpg")                       # [{{"label": ..., "score": ...}}, ...]
tagger("photo.jpg", candidate_labels=["dog", "beach"], threshold=0.5)
```

Without the package, the code in this repository (`trust_remote_code=True`):

```python
from transformers import AutoModel, AutoProcessor, pipeline

tagger = pipeline("zero-shot-image-tagging", model="{repo_id}", trust_remote_code=True)
model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
tags = processor.post_process_image_tagging(model(**processor(images=["photo.jpg"])))
```

The stock `{PIPELINE_TAG}` task (multi-label: a sigmoid per tag over `id2label`, the top k):

```python
from transformers import pipeline

classifier = pipeline("{PIPELINE_TAG}", model="{repo_id}", trust_remote_code=True)
classifier("photo.jpg", top_k=10)
```

## Verification

Measured while staging this folder: its logits on {figures.get("images")} images against the model built from the
original checkpoint before conversion.

| check | value |
|---|---|
{checks}

## License and citation

Apache-2.0, as the authors' release ([recognize-anything](https://github.com/xinyu1205/recognize-anything)).

```bibtex
{CITATION}
```
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


def prepare(source, staging_dir, repo_id: str, checkpoint=None, bf16: bool = False, images=None) -> dict:
    """Load SOURCE, stage it (model folder + remote code + card) in `staging_dir` and verify it. Returns the figures."""
    import transformers_ramplus  # noqa: F401  (registers RAM++ and the original-format loading)
    from transformers_ramplus import RamPlusModel, RamPlusProcessor, save_model_folder
    from transformers_ramplus.hub import download_original_checkpoint, looks_like_repo_id, ORIGINAL_REPOS

    source = os.fspath(source)
    if os.path.isdir(source) and not (Path(source) / "config.json").is_file():
        raise ValueError(f"{source!r} has no config.json: convert a checkpoint first (ramplus convert)")
    if not os.path.isdir(source) and not looks_like_repo_id(source):
        raise ValueError(f"{source!r} is neither a model folder nor a Hub repository id")
    if checkpoint is None and source in ORIGINAL_REPOS:
        checkpoint = download_original_checkpoint(source)[0]
    model = RamPlusModel.from_pretrained(source, dtype=torch.float32).eval()
    processor = RamPlusProcessor.from_pretrained(source)
    logits = _logits(model, processor, verification_images(None, processor.image_processor.size["height"])[:1])
    if logits.shape != (1, model.config.num_tags) or not torch.isfinite(logits).all():
        raise ValueError(f"{source!r} does not produce finite logits for {model.config.num_tags} tags")
    processor.post_process_image_tagging(logits)  # names and thresholds are consistent

    staging_dir = Path(staging_dir)
    if staging_dir.exists() and any(staging_dir.iterdir()):
        raise ValueError(f"staging directory {os.fspath(staging_dir)!r} is not empty")
    staging_dir.mkdir(parents=True, exist_ok=True)
    to_save = copy.deepcopy(model).to(torch.bfloat16) if bf16 else model
    save_model_folder(staging_dir, to_save, processor=processor)
    del to_save
    figures = verify(staging_dir, model, processor, checkpoint=checkpoint, images=images, bf16=bf16)
    model_card(model.config, repo_id, figures).save(staging_dir / "README.md")
    # Inference Endpoints: the custom handler (the Hub's zero-shot-image-classification format, tags without labels)
    shutil.copyfile(Path(__file__).resolve().parent / "handler.py", staging_dir / "handler.py")
    (staging_dir / "verification.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


SPACE_PLACEHOLDER = "__RAMPLUS_MODEL_REPO__"


def prepare_space(space_dir, model_repo_id: str, package_spec: str = "transformers-ramplus[demo]") -> Path:
    """Stage the web demo as a Gradio Space in `space_dir` (which must be empty or new): `app.py` (this folder's, with
    the model repository `model_repo_id` filled in), `requirements.txt` and the Space card (README.md)."""
    from huggingface_hub import SpaceCard, SpaceCardData

    if not model_repo_id or any(c in model_repo_id for c in "\"'\n\r\\"):
        raise ValueError(f"not a model repository id for the Space: {model_repo_id!r}")
    space_dir = Path(space_dir)
    if space_dir.exists() and any(space_dir.iterdir()):
        raise ValueError(f"Space staging directory {os.fspath(space_dir)!r} is not empty")
    space_dir.mkdir(parents=True, exist_ok=True)
    app = (Path(__file__).resolve().parent / "app.py").read_text(encoding="utf-8")
    if SPACE_PLACEHOLDER not in app:
        raise ValueError("hub_upload/app.py lost its model placeholder")
    (space_dir / "app.py").write_text(app.replace(SPACE_PLACEHOLDER, model_repo_id), encoding="utf-8")
    (space_dir / "requirements.txt").write_text(f"{package_spec}\n", encoding="utf-8")
    data = SpaceCardData(sdk="gradio", app_file="app.py", license="apache-2.0", models=[model_repo_id],
                         tags=["image-tagging", "ram-plus"])
    card = SpaceCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n# RAM++ image tagging\n\n"
                                   f"The web demo of [{model_repo_id}](https://huggingface.co/{model_repo_id}) "
                                   "(transformers-ramplus `ramplus demo`).\n")
    card.save(space_dir / "README.md")
    return space_dir


def push_space(space_dir, space_id: str, private: bool = False, api=None):
    """Create the Space (Gradio SDK; kept if it exists) and upload `space_dir` to it."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    return api.upload_folder(repo_id=space_id, repo_type="space", folder_path=os.fspath(space_dir),
                             commit_message="Upload the RAM++ web demo (transformers-ramplus)")


def push(staging_dir, repo_id: str, private: bool = False, revision: str | None = None, message: str | None = None,
         create_pr: bool = False, api=None):
    """`create_repo` (kept if it exists), the branch when `revision` names one, then `upload_folder`."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=os.fspath(staging_dir),
        revision=revision,
        commit_message=message or "Upload RAM++ (transformers-ramplus)",
        create_pr=create_pr,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="converted folder, Hub id of one, or Hub id of an original-format release")
    parser.add_argument("repo_id", help="the Hub repository to create or update, e.g. your-name/ram-plus")
    parser.add_argument("--checkpoint", help="the original .pth the folder was converted from (for the verification)")
    parser.add_argument("--staging", help="staging directory (default: a temporary one)")
    parser.add_argument("--dry-run", action="store_true", help="stage and verify only; keep the staging directory")
    parser.add_argument("--bf16", action="store_true", help="store the weights in bfloat16 (half the size)")
    parser.add_argument("--image", action="append", help="image to verify on (repeatable; default: synthetic ones)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--revision", help="branch to upload to (or to open the pull request against)")
    parser.add_argument("--commit-message")
    parser.add_argument("--space", metavar="SPACE_ID", help="also stage (and push) the web demo as a Gradio Space "
                        "showing REPO_ID, staged in STAGING-space")
    args = parser.parse_args(argv)

    staging = Path(args.staging) if args.staging else Path(tempfile.mkdtemp(prefix="ramplus-upload-"))
    try:
        figures = prepare(args.source, staging, args.repo_id, checkpoint=args.checkpoint, bf16=args.bf16,
                          images=args.image)
        sys.stdout.write(f"staged {staging}: {json.dumps(figures)}\n")
        space = None
        if args.space:
            space = prepare_space(Path(f"{staging}-space"), args.repo_id)
            sys.stdout.write(f"staged the Space {args.space} in {space}\n")
        if args.dry_run:
            sys.stdout.write("dry run: nothing uploaded\n")
            return 0
        info = push(staging, args.repo_id, private=args.private, revision=args.revision,
                    message=args.commit_message, create_pr=args.create_pr)
        sys.stdout.write(f"uploaded: {getattr(info, 'pr_url', None) or getattr(info, 'commit_url', info)}\n")
        if space is not None:
            info = push_space(space, args.space, private=args.private)
            sys.stdout.write(f"uploaded the Space: {getattr(info, 'commit_url', info)}\n")
    except (ValueError, OSError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    finally:
        if not args.dry_run and not args.staging:
            shutil.rmtree(staging, ignore_errors=True)
            if args.space:
                shutil.rmtree(f"{staging}-space", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
