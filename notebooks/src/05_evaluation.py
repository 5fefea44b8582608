# Source of notebooks/05_evaluation.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Evaluation: precision-recall curves and threshold calibration
#
# > **The outputs below come from a small random-weight model** (a 32-pixel RAM++ with a tiny random CLIP text tower)
# > tagging synthetic pictures of coloured shapes zero-shot, so its scores are barely better than chance and the curves
# > show it: only the code is real. For the real RAM++ on your labelled images, convert the authors' release with its
# > text tower (`ramplus convert xinyu1205/recognize-anything-plus-model ram-plus-text --text-tower
# > openai/clip-vit-base-patch16`) and change one line in the next cell: `MODEL = "ram-plus-text"`.
#
# Steps: score a labelled set, compute mAP and precision-recall curves per tag, calibrate per-tag thresholds for F1 on
# one split and check them on another, store them in the model, and run the same with `ramplus evaluate`.

# %%
%matplotlib inline
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers RAM++ with transformers

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
MODEL = tiny_models.small_model()  # the real model: MODEL = "ram-plus-text" (see above)

# %% [markdown]
# ## A labelled set, scored
#
# Two labelled splits of 60 pictures (`metadata.jsonl`: the tags of each image): one to calibrate thresholds on, one
# to check them. The tags are new to the model, given by descriptions (open set, threshold 0.5).

# %%
import numpy as np
from transformers import AutoProcessor

from transformers_ramplus import RamPlusModel, TagSet
from transformers_ramplus.training.metrics import compute_metrics, mean_average_precision, score_images

processor = AutoProcessor.from_pretrained(MODEL)
model = RamPlusModel.from_pretrained(MODEL).eval()
TAGS = {"red thing": ["red", "a red shape"], "green thing": ["green", "a green shape"], "blue thing": ["blue", "a blue shape"]}
TagSet.from_model(model, TAGS, tokenizer=processor).apply_to(model)  # the tags join the model's vocabulary
tag_ids = [model.config.label2id[name] for name in TAGS]
names = list(TAGS)
colors = {"red": "red thing", "green": "green thing", "blue": "blue thing"}


def labelled_split(name, seed):
    folder = tiny_models.shapes_dataset(name, 60, seed=seed, tag_names=colors)
    images, tags = tiny_models.read_metadata(folder)
    scores, _ = score_images(model, processor.image_processor, [str(p) for p in images], tag_indices=tag_ids)
    return scores, np.array([[tag in image_tags for tag in names] for image_tags in tags], dtype=int)


calibration_scores, calibration_targets = labelled_split("calibration", seed=2)
test_scores, test_targets = labelled_split("test", seed=3)
mean_ap, per_tag_ap = mean_average_precision(test_scores, test_targets)
print(f"test mAP {mean_ap:.3f}; per tag:", {name: round(float(ap), 3) for name, ap in zip(names, per_tag_ap)})
print("chance (share of positives):", test_targets.mean(axis=0).round(3).tolist())

# %% [markdown]
# ## Precision-recall curves
#
# Sort the images by score; after each image, precision is the share of true tags so far and recall the share of all
# true tags found. AP (RAM++'s protocol) is the mean precision at the positive images.

# %%
import matplotlib.pyplot as plt


def precision_recall_curve(scores, truth):
    hits = truth[np.argsort(-scores, kind="stable")]
    found = np.cumsum(hits)
    return found / np.arange(1, len(hits) + 1), found / max(hits.sum(), 1)


fig, ax = plt.subplots(figsize=(5, 4))
for column, (name, ap) in enumerate(zip(names, per_tag_ap)):
    precision, recall = precision_recall_curve(test_scores[:, column], test_targets[:, column])
    ax.plot(recall, precision, label=f"{name} (AP {ap:.2f})", color=name.split()[0])
    ax.axhline(test_targets[:, column].mean(), color=name.split()[0], linestyle=":", linewidth=1)
ax.set_xlabel("recall")
ax.set_ylabel("precision")
ax.set_xlim(0, 1)
ax.set_ylim(0, 1.05)
ax.legend(loc="lower left", fontsize=8)
ax.set_title("test split (dotted: chance)")
fig.tight_layout()

# %% [markdown]
# ## Threshold calibration
#
# `calibrate_thresholds` picks, per tag, the threshold that maximizes F1 on a labelled set. Calibrate on one split and
# measure on another: thresholds fitted to the same images they are measured on look better than they are.

# %%
from transformers_ramplus.training.metrics import calibrate_thresholds, write_thresholds

current = np.array([model.config.thresholds()[i] for i in tag_ids])
calibrated, calibration_f1 = calibrate_thresholds(calibration_scores, calibration_targets, default=current)
print("thresholds:", {name: (float(old), float(new)) for name, old, new in zip(names, current, calibrated)})
for label, thresholds in (("current (0.5) ", current), ("calibrated    ", calibrated)):
    test = compute_metrics(test_scores, test_targets, thresholds)
    print(f"{label} test CF1 {test['CF1']:.3f}  OF1 {test['OF1']:.3f}  CP {test['CP']:.3f}  CR {test['CR']:.3f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
candidates = np.linspace(0.01, 0.99, 99)
for column, name in enumerate(names):
    f1 = []
    for threshold in candidates:
        predicted = calibration_scores[:, column] > threshold
        hits = (predicted & (calibration_targets[:, column] == 1)).sum()
        f1.append(2 * hits / (predicted.sum() + calibration_targets[:, column].sum() + 1e-9))
    ax.plot(candidates, f1, color=name.split()[0], label=name)
    ax.axvline(calibrated[column], color=name.split()[0], linestyle="--", linewidth=1)
ax.set_xlabel("threshold")
ax.set_ylabel("F1 on the calibration split")
ax.legend(fontsize=8)
ax.set_title("F1 against threshold (dashed: calibrated)")
fig.tight_layout()

# %% [markdown]
# `write_thresholds` stores them in the model's config: the processor, the pipeline and `ramplus tag` use them from
# then on, and `save_pretrained` keeps them.

# %%
write_thresholds(model.config, calibrated, tag_indices=tag_ids)
print({name: model.config.thresholds()[i] for name, i in zip(names, tag_ids)})

# %% [markdown]
# ## The same from the command line
#
# `ramplus evaluate` scores an image folder against an annotation file (`image,tag1,tag2` lines) and a tag list, and
# writes the metrics as JSON; `--calibrate-output DIR` also saves the model with calibrated thresholds.

# %%
import json
import subprocess
import sys

folder = tiny_models.shapes_dataset("cli", 30, seed=4, tag_names=colors)
images, tags = tiny_models.read_metadata(folder)
(folder / "annotations.txt").write_text("".join(f"{path.name},{','.join(t)}\n" for path, t in zip(images, tags)))
(folder / "tags.txt").write_text("\n".join(names) + "\n")
(folder / "descriptions.json").write_text(json.dumps(TAGS))
command = [sys.executable, "-m", "transformers_ramplus.cli.main", "evaluate", MODEL, "--images", ".",
           "--annotations", "annotations.txt", "--tag-list", "tags.txt", "--descriptions", "descriptions.json",
           "--no-cache", "--output", "metrics.json"]
result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
print("exit code", result.returncode)
print(json.dumps({key: round(value, 3) if isinstance(value, float) else value
                  for key, value in json.loads((folder / "metrics.json").read_text()).items()}, indent=1))
