# Source of notebooks/06_ram.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Tag images with RAM
#
# > **The outputs below come from a small random-weight model** (the project's tiny RAM test checkpoint: the real
# > model's layout and 37 of its tag names, random weights), so the tags and scores are meaningless: only the code is
# > real. For the real RAM (4585 tags), change one line in the next cell:
# > `MODEL = "xinyu1205/recognize_anything_model"` (its `ram_swin_large_14m.pth`, downloaded and converted once).
#
# RAM is RAM++'s predecessor ("Recognize Anything: A Strong Image Tagging Model"): the same image encoder and tagging
# head, one text embedding per tag and no re-weighting. Everything below works as it does for RAM++: the pipeline,
# per-tag thresholds, Chinese names, pictures, and new tags by name (open set).

# %%
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]  # pictures of photographs: small saved notebooks
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers RAM with transformers: Auto classes and the pipeline task

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
MODEL = tiny_models.tiny_ram(text_tower=True)  # the real model: MODEL = "xinyu1205/recognize_anything_model"
IMAGES = [str(path) for path in tiny_models.IMAGES]  # two photographs (or your own paths, URLs, PIL images)

# %% [markdown]
# ## The pipeline, in English and Chinese
#
# `pipeline("zero-shot-image-tagging")` returns, per image, the tags whose score passes their threshold.

# %%
from transformers import AutoModel, pipeline

model = AutoModel.from_pretrained(MODEL)
print(type(model).__name__, "-", model.config.num_tags, "tags, one embedding each")
tagger = pipeline("zero-shot-image-tagging", model=MODEL)
english = tagger(IMAGES[0], top_k=5)
chinese = tagger(IMAGES[0], top_k=5, language="zh")
for en, zh in zip(english, chinese):
    print(f"{en['score']:.3f}  {en['label']:<20} {zh['label']}")

# %% [markdown]
# ## Images with their tags

# %%
from transformers_ramplus.visualize import plot_tagged_images

plot_tagged_images(IMAGES, tagger(IMAGES, top_k=6), columns=2)

# %% [markdown]
# ## Open set: new tags by name
#
# A tag the model does not know is embedded from its name with the authors' 63 prompt templates (this needs the CLIP
# text tower, bundled at conversion with `ramplus convert ... --text-tower openai/clip-vit-base-patch16`). New tags
# and built-in ones mix in one `candidate_labels` list; new tags get the threshold 0.5.

# %%
import matplotlib.pyplot as plt

labels = ["belly", "christmas market", "monastery", "race car"]
results = tagger(IMAGES, candidate_labels=labels, threshold=0.0)
fig, axes = plt.subplots(1, len(IMAGES), figsize=(9, 2.5), sharey=True)
for ax, path, result in zip(axes, IMAGES, results):
    scores = {t["label"]: t["score"] for t in result}
    ax.barh(labels, [scores[name] for name in labels], color="tab:blue")
    ax.set_xlim(0, 1)
    ax.set_title(path.rsplit("/", 1)[-1], fontsize=9)
axes[0].set_xlabel("score")
fig.tight_layout()
