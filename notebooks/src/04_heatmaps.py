# Source of notebooks/04_heatmaps.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Heatmaps: where each tag looks
#
# > **The outputs below come from a small random-weight model** (the project's tiny test checkpoint: the real model's
# > layout, 384-pixel input and 12x12 image tokens, but random weights), so the maps do not follow objects: only the
# > code is real. For the real RAM++, change one line in the next cell:
# > `MODEL = "xinyu1205/recognize-anything-plus-model"`.
#
# RAM++ decides each tag with a decoder whose tag query attends to the image tokens. `model.tag_heatmaps` returns
# that cross-attention per image and tag over the 12x12 grid of image tokens (the global token left out), averaged
# over heads and layers or for chosen ones, resized to the image if asked; `transformers_ramplus.visualize` draws it.

# %%
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]  # pictures of photographs: small saved notebooks
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers RAM++ with transformers

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
MODEL = tiny_models.tiny_model()  # the real model: MODEL = "xinyu1205/recognize-anything-plus-model"
IMAGES = [str(path) for path in tiny_models.IMAGES]

# %%
from PIL import Image
from transformers import AutoModel, AutoProcessor, pipeline

model = AutoModel.from_pretrained(MODEL).eval()
processor = AutoProcessor.from_pretrained(MODEL)
image = Image.open(IMAGES[0])
tags = pipeline("zero-shot-image-tagging", model=MODEL)(image, top_k=4)
print([t["label"] for t in tags])

# %% [markdown]
# ## Heatmaps of an image's tags
#
# Tags are given by name or index in the model's vocabulary (or as a `TagSet`, for new tags). The maps come on the
# 12x12 token grid; `plot_heatmaps` stretches them over the image, as the processor stretched the image to 384x384.

# %%
inputs = processor(images=[image])
out = model.tag_heatmaps(inputs["pixel_values"], tags=[t["label"] for t in tags])
print(out.tag_names, tuple(out.heatmaps.shape), "= (images, tags, rows, columns)")
print("attention on the global token, per tag:", [f"{v:.3f}" for v in out.global_attention[0].tolist()])

# %%
from transformers_ramplus.visualize import plot_heatmaps

plot_heatmaps(image, out, tags=tags, columns=5)

# %% [markdown]
# `target_sizes` (one `(height, width)` per image, as in transformers' post-processing) resizes the maps to the
# original images (bilinear) and returns one `(tags, height, width)` tensor per image.

# %%
resized = model.tag_heatmaps(inputs["pixel_values"], tags=[t["label"] for t in tags], target_sizes=[image.size[::-1]])
print("image", image.size[::-1], "-> maps", tuple(resized.heatmaps[0].shape))

# %% [markdown]
# ## The token grid, layers and heads
#
# The maps are attention probabilities: with the global token's share they sum to 1 (`normalize="sum"` rescales each map to sum to 1, `"max"` to peak at 1). `layers=` and
# `heads=` pick what is averaged (default: all).

# %%
grid = model.tag_heatmaps(inputs["pixel_values"], tags=tags[0]["label"])
print(f"grid + global token: {float(grid.heatmaps.sum() + grid.global_attention.sum()):.4f}")

import torch

per_layer = [model.tag_heatmaps(inputs["pixel_values"], tags=tags[0]["label"], layers=layer) for layer in (0, 1)]
per_head = [model.tag_heatmaps(inputs["pixel_values"], tags=tags[0]["label"], heads=head) for head in range(4)]
maps = torch.cat([o.heatmaps[0] for o in per_layer + per_head])
titles = ["layer 0", "layer 1"] + [f"head {head}" for head in range(4)]
plot_heatmaps(image, maps, tag_names=titles, columns=3, show_image=False)

# %% [markdown]
# ## New tags too
#
# A `TagSet` mixes built-in and new tags (embedded through a CLIP text tower, so this part uses the tiny model with
# one; the real one: a folder converted with `--text-tower`, see the open-set notebook).

# %%
from transformers_ramplus import TagSet

TEXT_MODEL = tiny_models.tiny_model(text_tower=True)  # the real model: a folder converted with --text-tower
text_model = AutoModel.from_pretrained(TEXT_MODEL).eval()
tag_set = TagSet.from_model(text_model, ["belly", "christmas tree", "snow"], tokenizer=AutoProcessor.from_pretrained(TEXT_MODEL))
open_set = text_model.tag_heatmaps(inputs["pixel_values"], tags=tag_set)
plot_heatmaps(image, open_set, columns=4)

# %% [markdown]
# ## From the command line
#
# `ramplus tag --heatmaps DIR` writes one PNG per image (the image with its tags, and a heatmap per tag:
# `--heatmap-tags N` for each image's N best tags, or `--heatmap-tags "snow,tree"` by name), next to the usual
# results; a resumed run redoes the images whose PNG is missing.

# %%
import io
import shutil
import subprocess
import sys

from IPython.display import Image as Picture

work = tiny_models.work_dir("cli")
(work / "photos").mkdir(parents=True)
for path in IMAGES:
    shutil.copy(path, work / "photos")
command = [sys.executable, "-m", "transformers_ramplus.cli.main", "tag", "photos", "--model", MODEL, "--top-k", "3",
           "--heatmaps", "maps", "--heatmap-tags", "2", "--no-progress"]
result = subprocess.run(command, cwd=work, capture_output=True, text=True)
print("exit code", result.returncode)
print(result.stdout)
print(sorted(path.name for path in (work / "maps").glob("*.png")))
png = next((work / "maps").glob("demo2-*.png"))
jpeg = io.BytesIO()
Image.open(png).convert("RGB").save(jpeg, "JPEG", quality=85)
Picture(jpeg.getvalue())  # the PNG, shown as a JPEG to keep this notebook small
