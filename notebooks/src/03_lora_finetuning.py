# Source of notebooks/03_lora_finetuning.ipynb (built and executed by `make notebooks`; see build_notebooks.py).

# %% [markdown]
# # Domain fine-tuning with LoRA: new tags
#
# > **The outputs below come from a small random-weight model** (a 32-pixel RAM++ with a tiny random CLIP text tower,
# > so that training takes seconds on a CPU) and synthetic pictures of coloured shapes. The numbers show the workflow,
# > not what the real model reaches. For the real RAM++, convert the authors' release with its text tower
# > (`ramplus convert xinyu1205/recognize-anything-plus-model ram-plus-text --text-tower openai/clip-vit-base-patch16`),
# > change one line in the next cell, `MODEL = "ram-plus-text"`, and use your own image folder.
#
# Steps: add new tags (known by descriptions) to the model's vocabulary, measure held-out mAP zero-shot, fine-tune
# with LoRA, measure again (per tag), save the adapter, and load it back.

# %%
%matplotlib inline
import datasets
import transformers

import tiny_models  # small random-weight models built from the project's test fixtures (nothing is downloaded)
import transformers_ramplus  # registers RAM++ with transformers

transformers.logging.disable_progress_bar()  # keeps the saved outputs short
datasets.disable_progress_bars()
MODEL = tiny_models.small_model()  # the real model: MODEL = "ram-plus-text" (see above)

# %% [markdown]
# ## Data
#
# An image folder with a `metadata.jsonl` (`{"file_name": "000.png", "tags": ["red thing"]}` per line): 64 pictures
# for training and 60 held out. Any `datasets` image dataset works too (see the README's "Fine-tuning").

# %%
from PIL import Image

NEW_TAGS = {"red": "red thing", "green": "green thing", "blue": "blue thing"}
train_folder = tiny_models.shapes_dataset("train", 64, seed=0, tag_names=NEW_TAGS)
heldout_folder = tiny_models.shapes_dataset("heldout", 60, seed=1, tag_names=NEW_TAGS)
heldout_images, heldout_tags = tiny_models.read_metadata(heldout_folder)
print((train_folder / "metadata.jsonl").read_text().splitlines()[:3])

strip = Image.new("RGB", (96 * 6, 96))
for index, path in enumerate(heldout_images[:6]):
    strip.paste(Image.open(path), (96 * index, 0))
display(strip)  # noqa: F821 (IPython's display)
print(heldout_tags[:6])

# %% [markdown]
# ## New tags, and the zero-shot baseline
#
# `add_tags` stores the new tags in the model's vocabulary, each embedded from its descriptions through the frozen
# CLIP text tower (threshold 0.5). Before any training, RAM++ can already tag them: that is open-set tagging.

# %%
import numpy as np
from transformers import AutoProcessor

from transformers_ramplus import RamPlusModel
from transformers_ramplus.training.metrics import mean_average_precision, score_images
from transformers_ramplus.training.trainer import add_tags

processor = AutoProcessor.from_pretrained(MODEL)
model = RamPlusModel.from_pretrained(MODEL)
descriptions = {name: [color, f"a {color} shape", f"something {color}"] for color, name in NEW_TAGS.items()}
new_ids = add_tags(model, descriptions, tokenizer=processor)
print(model.config.num_tags, "tags:", model.config.tag_names)

names = list(NEW_TAGS.values())
targets = np.array([[name in tags for name in names] for tags in heldout_tags], dtype=int)
paths = [str(path) for path in heldout_images]


def heldout_ap(model):
    scores, _ = score_images(model.eval(), processor.image_processor, paths, tag_indices=new_ids)
    return mean_average_precision(scores, targets)


before_map, before_ap = heldout_ap(model)
print(f"held-out mAP of the new tags, zero-shot: {before_map:.3f} (chance: {targets.mean(axis=0).mean():.3f})")

# %% [markdown]
# ## LoRA fine-tuning
#
# `apply_lora` wraps the model with a `LoraConfig` from `default_lora_config`: LoRA on the decoder and the
# projections, the classifier trained fully, the tag vocabulary saved with the adapter. Here the image encoder stays
# frozen (`vision=False`: the fastest, for tags on familiar images); the default (`vision=True`) also adapts the image
# encoder's attention, for images far from photographs (medical scans, say). `RamPlusTrainer` trains with RAM++'s
# tagging loss; `ramplus finetune` does the same from the command line.

# %%
from transformers_ramplus.training.data import RamPlusDataCollator, load_training_dataset, prepare_dataset
from transformers_ramplus.training.adapters import apply_lora, default_lora_config
from transformers_ramplus.training.trainer import RamPlusTrainer, RamPlusTrainingArguments

raw, image_root = load_training_dataset(str(train_folder))
train_dataset = prepare_dataset(raw, model.config.label2id, image_root=image_root)
collator = RamPlusDataCollator(model.config.num_tags, image_processor=processor.image_processor, seed=0)

lora_model = apply_lora(model, default_lora_config(vision=False, save_vocabulary=model.vocabulary_changed))
lora_model.print_trainable_parameters()
arguments = RamPlusTrainingArguments(
    output_dir=str(tiny_models.work_dir("run")), max_steps=32, per_device_train_batch_size=8, learning_rate=1e-2,
    lr_scheduler_type="constant", logging_steps=10, save_strategy="no", disable_tqdm=True, seed=0,
    dataloader_pin_memory=False,
)
trainer = RamPlusTrainer(model=lora_model, args=arguments, train_dataset=train_dataset, data_collator=collator)
history = trainer.train()
print(f"trained {history.global_step} steps, final training loss {trainer.state.log_history[-2]['loss']:.2f}")

# %%
after_map, after_ap = heldout_ap(lora_model)
print(f"held-out mAP of the new tags: {before_map:.3f} zero-shot -> {after_map:.3f} after LoRA")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3))
positions = np.arange(len(names))
ax.bar(positions - 0.2, before_ap, width=0.4, label=f"zero-shot (mAP {before_map:.2f})", color="tab:gray")
ax.bar(positions + 0.2, after_ap, width=0.4, label=f"after LoRA (mAP {after_map:.2f})", color="tab:green")
ax.axhline(targets.mean(), color="black", linestyle=":", label="chance")
ax.set_xticks(positions, names)
ax.set_ylabel("held-out AP")
ax.set_ylim(0, 1.05)
ax.legend(loc="lower right", fontsize=8)
ax.set_title("average precision per new tag")
fig.tight_layout()

# %% [markdown]
# ## Save the adapter and load it back
#
# The adapter folder holds the LoRA weights *and* the new tags (the label embeddings in `adapter_model.safetensors`,
# the names and thresholds in `tag_vocabulary.json`), so loading it gives the fine-tuned tagger: `load_adapter` on the
# base model, `AutoModel.from_pretrained(adapter)` or `pipeline(model=adapter)` (with peft's own
# `PeftModel.from_pretrained`, call `base.load_adapter_vocabulary(adapter)` first).

# %%
from transformers_ramplus.training.adapters import save_adapter

adapter_folder = tiny_models.work_dir("adapter")
save_adapter(lora_model, adapter_folder, processor=processor)
print(sorted(path.name for path in adapter_folder.iterdir()))

base = RamPlusModel.from_pretrained(MODEL)  # the base model: 5 tags
print("base model:", base.config.num_tags, "tags")
base.load_adapter(str(adapter_folder))
print("with the adapter:", base.config.num_tags, "tags, the new ones:", base.config.tag_names[-3:])
reloaded_map, _ = heldout_ap(base)
print(f"held-out mAP with the reloaded adapter: {reloaded_map:.3f}")

# %%
from transformers import pipeline

tagger = pipeline("zero-shot-image-tagging", model=str(adapter_folder))
for path, tags, truth in zip(paths[:4], tagger(paths[:4], candidate_labels=names), heldout_tags[:4]):
    print(path.rsplit("/", 1)[-1], "true:", truth, "scores:", {t["label"]: round(t["score"], 2) for t in tags})
