# Source of notebooks/02_open_set.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Open-set tagging: your own tags
#
# > **The outputs below come from small random-weight models** (the project's tiny test checkpoint with a tiny random
# > CLIP text tower), so the tags and scores are meaningless: only the code is real. For the real RAM++, convert the
# > authors' release once with the CLIP text tower that embeds new tags:
# >
# > ```bash
# > ramplus convert xinyu1205/recognize-anything-plus-model ram-plus-text --text-tower openai/clip-vit-base-patch16
# > ```
# >
# > and change one line in the next cell: `MODEL = "ram-plus-text"`.
#
# RAM++ tags with *label embeddings*: CLIP text embeddings of each tag's name or descriptions. A `TagSet` builds them
# for any tags: built-in tags reuse the trained embeddings and thresholds, new tags are embedded by name (the
# authors' 63 prompt templates) or from your descriptions, and both mix in one set, which can be saved and shared.

# %%
%matplotlib inline
%config InlineBackend.figure_formats = ["jpeg"]  # pictures of photographs: small saved notebooks
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers RAM++ with transformers: Auto classes and the pipeline task

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
MODEL = tiny_models.tiny_model(text_tower=True)  # the real model: MODEL = "ram-plus-text" (see above)
IMAGES = [str(path) for path in tiny_models.IMAGES]

# %%
import torch
from transformers import AutoModel, AutoProcessor

from transformers_ramplus import TagSet

model = AutoModel.from_pretrained(MODEL).eval()
processor = AutoProcessor.from_pretrained(MODEL)  # carries the CLIP tokenizer
print(model.config.num_tags, "built-in tags, for example", model.config.tag_names[:4])

# %% [markdown]
# ## Tags by name: built-in and new, mixed
#
# `belly` and `monastery` are built-in (trained embeddings, tuned thresholds); `christmas market` and `race car` are
# new: each is embedded through the text tower with the prompt-template ensemble and gets threshold 0.5.

# %%
by_name = TagSet.from_model(model, ["belly", "christmas market", "monastery", "race car"], tokenizer=processor)
print(by_name)
for name, index, threshold in zip(by_name.names, by_name.builtin_indices, by_name.thresholds):
    print(f"  {name:<18} {'built-in #' + str(index) if index is not None else 'new':<14} threshold {threshold:.2f}")

# %% [markdown]
# ## Tags with descriptions
#
# A tag can come with descriptions (for example written by an LLM: `ramplus describe`); each is embedded and RAM++
# weighs them per image. Tags may have different numbers of descriptions, and `None` takes a tag by name.

# %%
described = TagSet.from_model(
    model,
    {
        "christmas market": ["stalls with lights around a decorated tree", "people shopping at wooden huts in winter"],
        "race car": ["a car with a painted number on its door", "dented cars racing on a dirt track", "a demolition derby"],
        "belly": None,  # by name: the built-in tag
    },
    tokenizer=processor,
)
print(described, "descriptions per tag:", described.description_counts)

# %% [markdown]
# ## Tagging with a tag set
#
# The pipeline takes a tag set (or the names or mapping directly) as `candidate_labels`; the model takes
# `tag_set.model_inputs(model)`.

# %%
from transformers import pipeline

tagger = pipeline("zero-shot-image-tagging", model=MODEL)
for tags in (by_name, described):
    results = tagger(IMAGES, candidate_labels=tags, threshold=0.0)
    for path, result in zip(IMAGES, results):
        print(path.rsplit("/", 1)[-1], {t["label"]: round(t["score"], 3) for t in result})

inputs = processor(images=IMAGES)
with torch.no_grad():
    logits = model(**inputs, **described.model_inputs(model)).logits  # (images, tags)
print(torch.sigmoid(logits))

# %% [markdown]
# ## Save, reload, share
#
# `save_pretrained` writes `tag_set.json` (names, descriptions, thresholds) and `tag_set.safetensors` (the
# embeddings); `from_pretrained` reads a folder or a Hub repository (`push_to_hub` shares one). A reloaded set needs
# no text tower: its embeddings are stored.

# %%
folder = tiny_models.work_dir("my-tag-set")
described.save_pretrained(folder)
print(sorted(path.name for path in folder.iterdir()))

reloaded = TagSet.from_pretrained(folder)
print(reloaded, reloaded.names)
with torch.no_grad():
    again = model(**inputs, **reloaded.model_inputs(model)).logits
print("same scores after reloading:", torch.equal(again, logits))

# %% [markdown]
# ## Pictures
#
# The images with their open-set tags (`transformers_ramplus.visualize`).

# %%
from transformers_ramplus.visualize import plot_tagged_images

plot_tagged_images(IMAGES, tagger(IMAGES, candidate_labels=reloaded, threshold=0.0), columns=2)
