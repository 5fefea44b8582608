"""Launched by test_training.py with `accelerate launch --cpu --num_processes 2`: a few RamPlusTrainer steps under
DDP (gloo); every rank writes a digest of its final weights and the trainer's logs."""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from conftest import tiny_model, tiny_word_text_config, tiny_word_tokenizer  # noqa: E402

from transformers_ramplus.training.data import RamPlusDataCollator, load_imagefolder_dataset  # noqa: E402
from transformers_ramplus.training.trainer import RamPlusTrainer, RamPlusTrainingArguments  # noqa: E402


def main(output: Path):
    folder = output / "data"
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(8):
        name = f"{index}.png"
        if not (folder / name).exists():
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / name)
        records.append({"file_name": name, "tags": ["tag 0"] if index % 2 else ["tag 1"], "caption": "a red square"})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    model = tiny_model(num_tags=3, text_config=tiny_word_text_config())
    dataset = load_imagefolder_dataset(folder, model.config.label2id)
    collator = RamPlusDataCollator(3, tokenizer=tiny_word_tokenizer("a red square".split()), image_size=64)
    args = RamPlusTrainingArguments(
        output_dir=str(output / "out"), per_device_train_batch_size=2, max_steps=3, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True, ddp_backend="gloo", use_cpu=True,
    )
    trainer = RamPlusTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train()
    rank = trainer.args.process_index
    digest = float(sum(p.detach().double().abs().sum() for p in model.parameters()))
    result = {"world_size": trainer.args.world_size, "digest": digest, "logs": trainer.state.log_history}
    (output / f"rank{rank}.json").write_text(json.dumps(result))
    import torch.distributed as dist

    if dist.is_initialized():  # an orderly end: a process group left to the interpreter's exit can abort there
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
