# Source of notebooks/07_tag2text.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Tags and captions with Tag2Text
#
# > **The outputs below come from a small random-weight model** (the project's tiny Tag2Text test checkpoint: the
# > real model's layout and 3429-tag list, a small synthetic vocabulary, random weights), so the tags and captions are
# > meaningless word salad: only the code is real. For the real Tag2Text, change one line in the next cell:
# > `MODEL = "xinyu1205/recognize_anything_model"` and load it with `original_file="tag2text_swin_14m.pth"`
# > (converted once with bert-base-uncased).
#
# Tag2Text tags an image (3429 tags) and writes a caption guided by the tags: the predicted ones, or tags you give
# (controllable captioning).

# %%
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]  # pictures of photographs: small saved notebooks
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers Tag2Text with transformers: Auto classes and pipelines

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
MODEL = tiny_models.tiny_tag2text()  # the real model: MODEL = "xinyu1205/recognize_anything_model"
LOAD = {}  # for the real model: LOAD = {"original_file": "tag2text_swin_14m.pth"}
IMAGES = [str(path) for path in tiny_models.IMAGES]

# %% [markdown]
# ## Tags, then captions from them
#
# `post_process_image_tagging` applies the per-tag thresholds and drops the tags the authors never output;
# `generate` writes a caption from the predicted tags (beam search with the released defaults, saved in
# `generation_config.json`).

# %%
import torch
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained(MODEL, **LOAD).eval()
processor = AutoProcessor.from_pretrained(MODEL, **LOAD)
inputs = processor(images=IMAGES)
with torch.no_grad():
    tags = processor.post_process_image_tagging(model(**inputs))
captions = processor.batch_decode(model.generate(pixel_values=inputs["pixel_values"]))
for path, image_tags, caption in zip(IMAGES, tags, captions):
    print(path.rsplit("/", 1)[-1])
    print("  tags:   ", processor.format_tags(image_tags)[:70], "...")
    print("  caption:", caption)

# %% [markdown]
# ## Captions from tags you give
#
# `tags=` takes one entry per image (a list of words or a `" | "`-joined string, any words); the caption follows
# them. Every caption of a batch equals the one of its image alone.

# %%
specified = [["dog", "grass", "ball"], "kitchen | woman | cook"]
ids = model.generate(pixel_values=inputs["pixel_values"], tags=specified)
for wanted, caption in zip(specified, processor.batch_decode(ids)):
    print(wanted, "->", caption)

# %% [markdown]
# ## Pictures with tags and captions

# %%
import matplotlib.pyplot as plt
from PIL import Image

fig, axes = plt.subplots(1, len(IMAGES), figsize=(10, 4.5))
for ax, path, image_tags, caption in zip(axes, IMAGES, tags, captions):
    ax.imshow(Image.open(path))
    ax.axis("off")
    ax.set_title(", ".join(t["label"] for t in image_tags[:4]) + "\n" + caption[:45], fontsize=8)
fig.tight_layout()
