"""RamPlusTrainer: loss components, frozen parts, exact resume, tags-only data, custom tag sets."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from transformers_ramplus import RamPlusModel, TagSet
from transformers_ramplus.training.metrics import mean_average_precision
from transformers_ramplus.training.data import ImageProcessorTransform, RamPlusDataCollator, load_imagefolder_dataset
from transformers_ramplus.training.trainer import (
    RamPlusTrainer,
    RamPlusTrainingArguments,
    add_tags,
    compute_tagging_metrics,
)

from conftest import tiny_model, tiny_word_text_config, tiny_word_tokenizer


WORDS = "a red green blue square circle image of".split()
COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(0)
    records = []
    for index in range(8):
        color = list(COLORS)[index % 3]
        array = rng.integers(0, 60, (48, 48, 3), dtype=np.uint8)
        array[8:40, 8:40] = COLORS[color]
        Image.fromarray(array).save(root / f"{index}.png")
        records.append({"file_name": f"{index}.png", "tags": [color], "caption": f"a {color} square"})
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return root


def _model(seed=0):
    model = tiny_model(seed=seed, num_tags=3, text_config=tiny_word_text_config())
    model.config.id2label = {0: "red", 1: "green", 2: "blue"}
    model.config.label2id = {"red": 0, "green": 1, "blue": 2}
    return model


def _model_without_text_tower():
    return tiny_model(num_tags=3)


def _args(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    defaults.update(kwargs)
    return RamPlusTrainingArguments(**defaults)


def _teacher():
    torch.manual_seed(5)
    config = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16,
        patch_size=8, projection_dim=24,
    )
    return CLIPVisionModelWithProjection(config)


def test_trainer_full_objective_updates_only_trainable_parts(folder, tmp_path):
    model = _model()
    teacher = _teacher()
    dataset = load_imagefolder_dataset(folder, model.config.label2id)
    tokenizer = tiny_word_tokenizer(WORDS)
    collator = RamPlusDataCollator(3, tokenizer=tokenizer, image_size=64, teacher_size=16)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("text_model") or k == "tag_embeddings.label_embeds"}
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    trainable_before = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    trainer = RamPlusTrainer(
        model=model, args=_args(tmp_path, max_steps=3), train_dataset=dataset, data_collator=collator,
        teacher_model=teacher, loss_weights={"distillation": 2.0},
    )
    assert trainer.args.weight_decay == 0.05
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3
    for entry in logs:
        assert {"tag_loss", "alignment_loss", "distillation_loss", "skipped_images"} <= set(entry)
        expected = entry["tag_loss"] + entry["alignment_loss"] + 2.0 * entry["distillation_loss"]
        assert entry["loss"] == pytest.approx(expected, rel=1e-3)
    state = model.state_dict()
    for key, value in frozen.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key], rtol=0, atol=0)
    changed = [k for k, v in model.named_parameters() if v.requires_grad and not torch.equal(v, trainable_before[k])]
    assert any(k.startswith("decoder.") for k in changed) and any(k.startswith("vision_model.") for k in changed)
    assert all(not p.requires_grad for p in model.text_model.parameters())


def test_trainer_tags_only_data_lowers_the_loss(folder, tmp_path):
    model = _model(seed=1)
    dataset = load_imagefolder_dataset(folder, model.config.label2id)
    collator = RamPlusDataCollator(3, transform=ImageProcessorTransform(size=64))  # no tokenizer: tag loss only
    eval_batch = RamPlusDataCollator(3, train=False, image_size=64)([dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        before = model(eval_batch["pixel_values"], labels=eval_batch["labels"]).loss.item()
    trainer = RamPlusTrainer(
        model=model, args=_args(tmp_path, max_steps=12, learning_rate=3e-3), train_dataset=dataset,
        data_collator=collator, compute_metrics=compute_tagging_metrics,
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all("alignment_loss" not in e and "distillation_loss" not in e for e in logs)
    assert all(e["loss"] == pytest.approx(e["tag_loss"], rel=1e-4) for e in logs)
    model.eval()
    with torch.no_grad():
        after = model(eval_batch["pixel_values"], labels=eval_batch["labels"]).loss.item()
    assert after < 0.7 * before
    metrics = trainer.evaluate(dataset)
    with torch.no_grad():
        scores = torch.sigmoid(model(eval_batch["pixel_values"]).logits).numpy()
    assert metrics["eval_mAP"] == pytest.approx(mean_average_precision(scores, eval_batch["labels"].numpy())[0])
    assert metrics["eval_loss"] == pytest.approx(after, rel=1e-4)  # one eval batch of 8: the sum over its images


def test_trainer_skips_a_batch_of_broken_images(tmp_path):
    model = _model()
    trainer = RamPlusTrainer(model=model, args=_args(tmp_path, max_steps=1))
    batch = {"pixel_values": torch.zeros(0, 3, 1, 1), "labels": torch.zeros(0, 3), "num_skipped_images": torch.tensor(2)}
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    assert loss.item() == 0.0 and trainer.num_skipped_images == 2


def _final_params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_resume_from_checkpoint_continues_exactly(folder, tmp_path):
    dataset = load_imagefolder_dataset(folder, {"red": 0, "green": 1, "blue": 2})
    tokenizer = tiny_word_tokenizer(WORDS)

    def run(output_dir, resume=None):
        model = _model(seed=2)
        collator = RamPlusDataCollator(3, tokenizer=tokenizer, image_size=64)  # random crops, flips, jitter, dropout
        args = _args(
            tmp_path, output_dir=str(output_dir), max_steps=4, per_device_train_batch_size=3, save_strategy="steps",
            save_steps=2, lr_scheduler_type="cosine",
        )
        trainer = RamPlusTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
        trainer.train(resume_from_checkpoint=resume)
        return _final_params(model), trainer

    straight, _ = run(tmp_path / "a")
    resumed, trainer = run(tmp_path / "b", resume=str(tmp_path / "a" / "checkpoint-2"))
    assert trainer.state.global_step == 4
    differ = {k: (resumed[k] - v).abs().max().item() for k, v in straight.items() if not torch.equal(resumed[k], v)}
    assert not differ, differ


def test_add_tags_extend_replace_and_tag_set_file(tmp_path):
    model = _model()
    tokenizer = tiny_word_tokenizer(WORDS)
    descriptions = {"circle": ["a circle", "a red circle"], "square": ["a square"]}
    old_embeds = model.label_embeds.clone()
    ids = add_tags(model, descriptions, tokenizer=tokenizer)
    assert ids == [3, 4] and model.config.tag_names == ["red", "green", "blue", "circle", "square"]
    assert model.config.thresholds()[3:] == [0.5, 0.5]
    assert model.config.tag_description_counts == [3, 3, 3, 2, 1]
    stored = model.label_embeds.view(5, 3, 24)
    torch.testing.assert_close(stored[:3].reshape(-1, 24), old_embeds)
    tokens = tokenizer(["a circle", "a red circle"], padding=True, return_tensors="pt")
    torch.testing.assert_close(stored[3, :2], model.encode_text(tokens["input_ids"], tokens["attention_mask"]))
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64)).logits
    assert logits.shape == (1, 5)
    # reload keeps the vocabulary
    model.save_pretrained(tmp_path / "extended")
    reloaded = RamPlusModel.from_pretrained(tmp_path / "extended")
    assert reloaded.config.tag_names == model.config.tag_names
    torch.testing.assert_close(reloaded.label_embeds, model.label_embeds)
    # a saved tag set (the same format as open-set tagging) replaces the whole vocabulary
    TagSet.from_model(model, descriptions, tokenizer=tokenizer).save_pretrained(tmp_path / "tags")
    ids = add_tags(model, TagSet.from_pretrained(tmp_path / "tags"), keep_existing=False)
    assert ids == [0, 1]
    assert model.config.tag_names == ["circle", "square"] and model.config.thresholds() == [0.5, 0.5]
    assert model.config.tag_description_counts == [2, 1]
    torch.testing.assert_close(model.label_embeds.view(2, 2, 24)[0], stored[3, :2])
    with pytest.raises(ValueError, match="text tower|tokenizer"):
        add_tags(_model_without_text_tower(), ["a brand new tag"])


def test_accelerate_launch_two_processes_gloo(tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo) on one machine: both ranks train in sync.

    accelerate's `--cpu` launcher needs mpirun for several processes; its torchrun launcher (`--multi_gpu`) starts the
    two local processes, and `use_cpu=True, ddp_backend="gloo"` in the worker's arguments gives CPU DDP over gloo."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).parent / "accelerate_worker.py"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    env.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"})
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517", str(worker), str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["digest"] == pytest.approx(ranks[1]["digest"], rel=1e-9)  # DDP kept the replicas identical
    logs = [e for e in ranks[0]["logs"] if "loss" in e]
    assert len(logs) == 3 and all("tag_loss" in e and "alignment_loss" in e for e in logs)


def _image_dataset(folder, with_broken=False):
    """A `datasets` dataset as `load_dataset("imagefolder")` or a Hub dataset gives it: decoded `image` column, tags
    by name, captions."""
    import datasets

    records = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    rows = {
        "image": [str(folder / r["file_name"]) for r in records],
        "tags": [r["tags"] for r in records],
        "caption": [r["caption"] for r in records],
    }
    features = datasets.Features(
        {"image": datasets.Image(), "tags": datasets.Sequence(datasets.Value("string")), "caption": datasets.Value("string")}
    )
    dataset = datasets.Dataset.from_dict(rows, features=features)
    assert isinstance(dataset[0]["image"], Image.Image)  # decoded by datasets
    return dataset


def test_collator_reads_image_columns_and_tags_by_name_or_id(folder):
    dataset = _image_dataset(folder)
    label2id = {"red": 0, "green": 1, "blue": 2}
    collator = RamPlusDataCollator(3, image_size=64, label2id=label2id, train=False)
    rows = [dataset[i] for i in range(3)]  # PIL images (decoded by datasets), tags by name
    batch = collator(rows)
    torch.testing.assert_close(batch["labels"], torch.eye(3))
    by_id = collator([{"image_path": str(folder / "0.png"), "label_ids": [0]}, {"image": {"bytes": (folder / "1.png").read_bytes(), "path": None}, "label_ids": [1]}])
    torch.testing.assert_close(by_id["pixel_values"], batch["pixel_values"][:2])
    torch.testing.assert_close(by_id["labels"], torch.eye(3)[:2])
    with pytest.raises(ValueError, match="'purple' is not in the model's vocabulary"):
        collator([{"image": rows[0]["image"], "tags": ["purple"]}])
    # the evaluation transform is the image processor itself: the pixels inference sees
    from transformers_ramplus import RamPlusImageProcessor

    processor = RamPlusImageProcessor(size={"height": 64, "width": 64})
    torch.testing.assert_close(batch["pixel_values"], processor([r["image"] for r in rows], return_tensors="pt")["pixel_values"])


def test_lora_training_on_an_image_dataset_with_evaluation_and_checkpoints_that_keep_new_tags(folder, tmp_path):
    from peft import PeftModel

    from transformers_ramplus.training.data import prepare_dataset
    from transformers_ramplus.training.adapters import apply_lora

    tokenizer = tiny_word_tokenizer(WORDS + ["circle"])
    base = _model(seed=3)
    base.save_pretrained(tmp_path / "base")
    model = RamPlusModel.from_pretrained(tmp_path / "base")
    add_tags(model, {"circle": ["a circle", "a red circle"]}, tokenizer=tokenizer)
    raw = _image_dataset(folder)
    dataset = prepare_dataset(raw, model.config.label2id)
    assert dataset.column_names == ["image", "label_ids", "captions", "sample_id"]
    assert dataset[0]["image"]["path"].endswith("0.png")  # left undecoded: the collator reads (and skips) images
    collator = RamPlusDataCollator(model.config.num_tags, tokenizer=tokenizer, image_size=64)
    args = _args(
        tmp_path, max_steps=2, per_device_train_batch_size=4, per_device_eval_batch_size=8, learning_rate=3e-3,
        save_strategy="steps", save_steps=1, eval_strategy="steps", eval_steps=1, load_best_model_at_end=True,
        metric_for_best_model="mAP", greater_is_better=True,
    )
    trainer = RamPlusTrainer(
        model=apply_lora(model), args=args, train_dataset=dataset, eval_dataset=dataset, data_collator=collator,
        compute_metrics=compute_tagging_metrics,
    )
    assert not trainer.eval_data_collator.train  # evaluation never sees augmented images
    trainer.train()
    evaluations = [e for e in trainer.state.log_history if "eval_mAP" in e]
    assert len(evaluations) == 2 and all({"eval_CP", "eval_CR", "eval_CF1", "eval_loss"} <= set(e) for e in evaluations)
    assert trainer.state.best_model_checkpoint is not None
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first["eval_loss"] == second["eval_loss"] and first["eval_mAP"] == second["eval_mAP"]  # deterministic
    batch = trainer.eval_data_collator([dataset[i] for i in range(len(dataset))])
    trainer.model.eval()
    with torch.no_grad():
        direct = trainer.model(**{k: v for k, v in batch.items() if k != "num_skipped_images"}).loss.item()
    assert first["eval_loss"] == pytest.approx(direct, rel=1e-4)  # tag + alignment loss of unaugmented images

    # every intermediate checkpoint is an adapter that carries the new tag
    checkpoint = tmp_path / "out" / "checkpoint-1"
    fresh = RamPlusModel.from_pretrained(tmp_path / "base")
    assert fresh.config.num_tags == 3
    assert fresh.load_adapter_vocabulary(checkpoint)  # the checkpoint's tag_vocabulary.json, before peft loads it
    loaded = PeftModel.from_pretrained(fresh, checkpoint)
    assert loaded.get_base_model().config.tag_names == ["red", "green", "blue", "circle"]
    other = RamPlusModel.from_pretrained(tmp_path / "base")
    other.load_adapter(str(checkpoint))
    assert other.config.tag_names[-1] == "circle"
    with torch.no_grad():
        torch.testing.assert_close(other.eval()(batch["pixel_values"]).logits, loaded.eval()(pixel_values=batch["pixel_values"]).logits, rtol=1e-5, atol=1e-5)
