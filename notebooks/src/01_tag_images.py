# Source of notebooks/01_tag_images.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Tag images with RAM++
#
# > **The outputs below come from a small random-weight model** (the project's tiny test checkpoint: the real model's
# > layout and 37 of its tag names, random weights), so the tags and scores are meaningless: only the code is real.
# > For the real RAM++ (4585 tags), change one line in the next cell:
# > `MODEL = "xinyu1205/recognize-anything-plus-model"` (downloaded and converted once, about 3 GB).
#
# This notebook tags two photographs with the `zero-shot-image-tagging` pipeline: the built-in tags in English and
# Chinese, their scores and per-tag thresholds, and pictures of the images with their tags.

# %%
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]  # pictures of photographs: small saved notebooks
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers RAM++ with transformers: Auto classes and the pipeline task

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
MODEL = tiny_models.tiny_model()  # the real model: MODEL = "xinyu1205/recognize-anything-plus-model"
IMAGES = [str(path) for path in tiny_models.IMAGES]  # two photographs (or your own paths, URLs, PIL images)

# %% [markdown]
# ## The pipeline
#
# `pipeline("zero-shot-image-tagging")` returns, per image, the tags whose score passes their threshold, highest
# score first.

# %%
from transformers import pipeline

tagger = pipeline("zero-shot-image-tagging", model=MODEL)
results = tagger(IMAGES)
for path, tags in zip(IMAGES, results):
    print(path.rsplit("/", 1)[-1], "->", len(tags), "tags")
    for tag in tags[:5]:
        print(f"   {tag['score']:.3f}  {tag['label']}")

# %% [markdown]
# ## English and Chinese names
#
# Built-in tags also have Chinese names (`language="zh"`).

# %%
english = tagger(IMAGES[0], top_k=5)
chinese = tagger(IMAGES[0], top_k=5, language="zh")
for en, zh in zip(english, chinese):
    print(f"{en['score']:.3f}  {en['label']:<20} {zh['label']}")

# %% [markdown]
# ## Scores and thresholds
#
# Every built-in tag has its own threshold (tuned by the authors; stored in the model's config). `threshold=` sets
# one threshold for all tags, `top_k=` keeps the best k. Below: every tag's score for the first image against its
# threshold; the tags above their threshold are the pipeline's answer.

# %%
import matplotlib.pyplot as plt
import torch
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained(MODEL).eval()
processor = AutoProcessor.from_pretrained(MODEL)
inputs = processor(images=IMAGES)
with torch.no_grad():
    scores = torch.sigmoid(model(**inputs).logits)[0]
thresholds = torch.tensor(model.config.thresholds())
names = model.config.tag_names
order = scores.argsort(descending=True)[:15].tolist()

fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(range(len(order)), scores[order], color=["tab:green" if scores[i] > thresholds[i] else "tab:gray" for i in order])
ax.scatter(range(len(order)), thresholds[order], marker="_", s=300, color="black", label="threshold of the tag")
ax.set_xticks(range(len(order)), [names[i] for i in order], rotation=60, ha="right", fontsize=8)
ax.set_ylabel("score")
ax.set_ylim(0, 1)
ax.legend(loc="lower left")
ax.set_title("15 best tags of the first image (green: above its threshold)")
fig.tight_layout()

# %%
print("per-tag thresholds:", len(tagger(IMAGES[0])), "tags")
print("one threshold 0.9: ", len(tagger(IMAGES[0], threshold=0.9)), "tags")
print("top 3:             ", [t["label"] for t in tagger(IMAGES[0], top_k=3)])

# %% [markdown]
# ## Images with their tags
#
# `transformers_ramplus.visualize` (the `visualize` extra: matplotlib) draws images with their tags and scores and
# returns matplotlib figures.

# %%
from transformers_ramplus.visualize import plot_tagged_images

plot_tagged_images(IMAGES, tagger(IMAGES, top_k=6), columns=2)
