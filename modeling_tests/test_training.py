"""RamPlusTrainer: loss components, frozen parts, exact resume, tags-only data, custom tag sets."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from transformers_ramplus import RamPlusModel, TagSet
from transformers_ramplus.evaluation import mean_average_precision
from transformers_ramplus.data import ImageProcessorTransform, RamPlusDataCollator, load_imagefolder_dataset
from transformers_ramplus.training import (
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
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("text_model") or k == "label_embeds"}
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
