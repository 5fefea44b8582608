"""Encoding time of LLM tag descriptions: dynamic padding (sorted by length) vs padding every text to 77 tokens.

Uses a full-size random CLIP ViT-B/16 text tower (CLIPTextConfig defaults with projection_dim 512: width 512,
12 layers, 8 heads) inside a small random RAM++ (only the text tower matters here) and the 200 x 51 descriptions of
`openimages_rare_200_llm_tag_descriptions.json` (the first `--tags` tags; default 20 of 200, i.e. 1,020 texts, to
keep a CPU run short). The Hub is out of reach, so the tokenizer is a word-level one built offline from the texts
(CLIP's start/end tokens, punctuation split off): token counts approximate CLIP's BPE, the text tower's cost per
token is the real one. Both modes run in this process on the same texts; the ratio is what to compare.

    PYTHONPATH=src python benchmarks/bench_text_encoding.py [--tags 200] [--texts descriptions|templates]
        [--batch-size 256] [--repeats 1]

`--texts templates` times the names-only path instead (the prompt templates filled with the same tag names;
`--name-templates compact` for the earlier 14-template set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch


ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("RAMPLUS_DATA_DIR", ROOT.parent / "shared" / "data"))


def word_level_tokenizer(texts):
    """A word-level tokenizer over the words of `texts` (lower-cased, punctuation split off) with CLIP's
    `<|startoftext|>`/`<|endoftext|>` framing, built offline. Token counts approximate CLIP's BPE (which splits
    rare words into several pieces, so real counts are somewhat higher)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.Whitespace()
    words = set()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "<|unk|>": 2}
    for word in sorted(words):
        vocab[word] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        unk_token="<|unk|>",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=20, help="how many of the 200 tags to encode (x 51 texts; default 20)")
    parser.add_argument("--texts", choices=["descriptions", "templates"], default="descriptions",
                        help="the LLM descriptions (default) or the names-only prompt templates filled with the tags")
    parser.add_argument("--name-templates", choices=["ram_plus", "compact"], default="ram_plus",
                        help="with --texts templates: the authors' 63 templates (default) or the earlier 14")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import CLIPTextConfig

    from transformers_ramplus import RamPlusConfig, RamPlusModel
    from transformers_ramplus.tags.descriptions import load_descriptions
    from transformers_ramplus.tags.encoding import encode_texts

    descriptions = load_descriptions(DATA_DIR / "openimages_rare_200_llm_tag_descriptions.json")
    tags = list(descriptions)[: args.tags]
    if args.texts == "descriptions":
        texts = [text for tag in tags for text in descriptions[tag]]
    else:
        from transformers_ramplus.tags.templates import name_prompts

        texts = [text for tag in tags for text in name_prompts(tag, args.name_templates)]

    tokenizer = word_level_tokenizer(texts)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        projection_dim=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    tiny_vision = {"image_size": 64, "patch_size": 4, "embed_dim": 8, "depths": [1, 1], "num_heads": [1, 1], "window_size": 4}
    config = RamPlusConfig(vision_config=tiny_vision, text_config=text_config, hidden_size=32, num_attention_heads=4,
                           intermediate_size=64, descriptions_per_tag=1, id2label={0: "x"})
    torch.manual_seed(0)
    model = RamPlusModel(config).eval()
    c = model.text_model.config
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=77)["input_ids"]]
    print(
        f"text tower: hidden {c.hidden_size}, {c.num_hidden_layers} layers, {c.num_attention_heads} heads, projection "
        f"{c.projection_dim}; {len(tags)} tags, {args.texts}: {len(texts)} texts ({len(set(texts))} unique), tokens/text mean "
        f"{sum(lengths) / len(lengths):.1f}, max {max(lengths)}; batch {args.batch_size}; torch threads {torch.get_num_threads()}",
        flush=True,
    )
    print("load:", os.getloadavg(), flush=True)

    timings = {"longest": [], "max_length": []}
    outputs = {}
    for _ in range(args.repeats):
        for padding in ("max_length", "longest"):
            start = time.perf_counter()
            outputs[padding] = encode_texts(
                model, tokenizer, texts, batch_size=args.batch_size, padding=padding, use_cache=False, show_progress=False
            )
            timings[padding].append(time.perf_counter() - start)
            print(f"  {padding:>10}: {timings[padding][-1]:.2f} s", flush=True)
    difference = float((outputs["longest"] - outputs["max_length"]).abs().max())
    best = {k: min(v) for k, v in timings.items()}
    print(
        f"dynamic padding {best['longest']:.2f} s vs pad-to-77 {best['max_length']:.2f} s: "
        f"{best['max_length'] / best['longest']:.2f}x faster; max |difference| of embeddings {difference:.2e}"
    )
    print("load:", os.getloadavg(), flush=True)
    json.dump({"texts": len(texts), "seconds": timings, "max_abs_diff": difference}, sys.stderr)
    sys.stderr.write("\n")


if __name__ == "__main__":
    main()
