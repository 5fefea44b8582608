"""`ramplus describe TAG... | --tags-file F --model M --output F.json`: LLM-written tag descriptions.

For each tag: "a photo of a {tag}." followed by N samples (default 10) of each of the paper's 5 prompts, sampled at
temperature 0.99 with at most 77 new tokens, from any transformers text-generation model (a local directory or a Hub
id; the model's chat template is used when it has one). The output is the original JSON format, a list of one-key
objects `{tag: [descriptions]}`, which `ramplus tag --descriptions` and `TagSet.from_model` read.

The file is rewritten atomically after every tag; rerunning with the same `--output` skips the tags it already holds.
Each tag is sampled with its own seed derived from `--seed` and the tag, so a resumed run gives the same
descriptions as an uninterrupted one.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from ..io.outputs import refuse_file_over_inputs
from ..models.ram_plus.processing_ram_plus import MAX_TEXT_TOKENS
from ..tags.files import read_tag_list
from ..tags.descriptions import load_descriptions, save_descriptions


# The prompts of the paper, "{}" is the tag.
PROMPTS: tuple[str, ...] = (
    "Describe concisely what a(n) {} looks like",
    "How can you identify a(n) {} concisely?",
    "What does a(n) {} look like concisely?",
    "What are the identifying characteristics of a(n) {}",
    "Please provide a concise description of the visual characteristics of {}",
)
PHOTO_TEMPLATE = "a photo of a {}."


def add_arguments(parser):
    parser.add_argument("tags", nargs="*", metavar="TAG", help="tags to describe")
    parser.add_argument("--tags-file", help="file with one tag per line (UTF-8; # comments ignored, blank lines are an error)")
    parser.add_argument("--model", required=True, help="text-generation model (directory or Hub id)")
    parser.add_argument("--output", "-o", required=True, help="JSON file to write ([{tag: [descriptions]}]); resumed when it exists")
    parser.add_argument("--samples", type=int, default=10, help="samples per prompt (default 10: 1 + 5 x 10 = 51 per tag)")
    parser.add_argument("--temperature", type=float, default=0.99, help="sampling temperature (default 0.99, as the paper)")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_TEXT_TOKENS, help=f"longest description in tokens (default {MAX_TEXT_TOKENS}, the text tower's context)")
    parser.add_argument("--seed", type=int, default=0, help="base random seed (each tag uses seed + crc32(tag))")
    parser.add_argument("--no-chat-template", action="store_true", help="feed the raw prompt even if the model has a chat template")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (Hub models that need it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def tag_seed(seed: int, tag: str) -> int:
    return (int(seed) + zlib.crc32(tag.encode("utf-8"))) % (2**32)


def prompt_inputs(tokenizer, prompt: str, use_chat_template: bool = True):
    """Token ids for one prompt: through the chat template when the tokenizer has one, else the raw text."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    return tokenizer(prompt, return_tensors="pt")


def clean_description(text: str) -> str:
    return " ".join(text.split())


def describe_tag(
    model,
    tokenizer,
    tag: str,
    num_samples: int = 10,
    temperature: float = 0.99,
    max_new_tokens: int = MAX_TEXT_TOKENS,
    seed: int = 0,
    use_chat_template: bool = True,
    prompts: Sequence[str] = PROMPTS,
) -> list[str]:
    """`["a photo of a {tag}.", *samples]`: `num_samples` sampled answers to each prompt (empty answers dropped)."""

    set_seed(tag_seed(seed, tag))
    descriptions = [PHOTO_TEMPLATE.format(tag)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = model.device
    for template in prompts:
        inputs = prompt_inputs(tokenizer, template.format(tag), use_chat_template)
        inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        with torch.no_grad():
            output = model.generate(
                **inputs,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=num_samples,
                pad_token_id=pad_id,
            )
        prompt_length = inputs["input_ids"].shape[1]
        for text in tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True):
            text = clean_description(text)
            if text:
                descriptions.append(text)
    return descriptions


def _read_tags(args) -> list[str]:
    tags = [t.strip() for t in args.tags if t.strip()]
    if args.tags_file:
        tags += read_tag_list(args.tags_file, "tags", comments=True)
    tags = list(dict.fromkeys(tags))
    if not tags:
        raise ValueError("name at least one tag (TAG... or --tags-file)")
    return tags


def run(args) -> int:
    if args.samples <= 0:
        raise ValueError(f"--samples must be positive, got {args.samples}")
    if args.max_new_tokens <= 0:
        raise ValueError(f"--max-new-tokens must be positive, got {args.max_new_tokens}")
    if args.temperature <= 0:
        raise ValueError(f"--temperature must be positive, got {args.temperature}")
    refuse_file_over_inputs(args.output, [args.tags_file, args.model])
    tags = _read_tags(args)
    results: dict[str, list[str]] = {}
    if os.path.isfile(args.output) and os.path.getsize(args.output) > 0:
        results = load_descriptions(args.output)
    todo = [tag for tag in tags if not results.get(tag)]
    if len(todo) < len(tags):
        sys.stderr.write(f"resuming: {len(tags) - len(todo)} of {len(tags)} tags already described in {args.output}\n")
    if not todo:
        return 0


    dtype = args.dtype if args.dtype == "auto" else getattr(torch, args.dtype, None)
    if dtype is None:
        raise ValueError(f"unknown --dtype {args.dtype!r}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, trust_remote_code=args.trust_remote_code)
    model.to(device).eval()
    for tag in tqdm(todo, desc="describing", unit="tag", file=sys.stderr, disable=True if args.no_progress else None):
        results[tag] = describe_tag(
            model,
            tokenizer,
            tag,
            num_samples=args.samples,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            use_chat_template=not args.no_chat_template,
        )
        save_descriptions(results, args.output)  # atomic: a crash keeps every finished tag
    sys.stderr.write(f"described {len(todo)} tag(s) -> {args.output}\n")
    return 0
