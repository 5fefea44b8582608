"""`ramplus describe` with a tiny random causal LM built offline."""

import json

import pytest
import torch

from conftest import _byte_alphabet
from transformers_ramplus.cli.main import main
from transformers_ramplus.cli.describe import PROMPTS, prompt_inputs, tag_seed
from transformers_ramplus.tags.descriptions import load_descriptions


def tiny_tokenizer():
    from transformers import GPT2Tokenizer

    vocab = {char: index for index, char in enumerate(_byte_alphabet())}
    vocab["<|endoftext|>"] = len(vocab)
    return GPT2Tokenizer(vocab=vocab, merges=[])


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tiny_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("lm") / "tiny-gpt2"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


ARGS = ["--samples", "1", "--max-new-tokens", "6", "--no-progress"]


def test_describe_writes_the_original_format(tiny_lm, tmp_path):
    output = tmp_path / "descriptions.json"
    assert main(["describe", "red panda", "kite", "--model", str(tiny_lm), "--output", str(output), *ARGS]) == 0
    data = json.loads(output.read_text())
    assert [list(entry) for entry in data] == [["red panda"], ["kite"]]
    for entry in data:
        (tag, texts), = entry.items()
        assert texts[0] == f"a photo of a {tag}."
        assert len(texts) == 1 + len(PROMPTS) * 1
        assert all(isinstance(t, str) and t == t.strip() and t for t in texts)
    assert [p.name for p in tmp_path.iterdir()] == ["descriptions.json"]  # no temporary file left
    # seeded: the same seed gives the same text, another seed other text
    again = tmp_path / "again.json"
    main(["describe", "kite", "--model", str(tiny_lm), "--output", str(again), *ARGS])
    assert load_descriptions(again)["kite"] == load_descriptions(output)["kite"]
    other = tmp_path / "other.json"
    main(["describe", "kite", "--model", str(tiny_lm), "--output", str(other), *ARGS, "--seed", "7"])
    assert load_descriptions(other)["kite"][1:] != load_descriptions(output)["kite"][1:]
    assert tag_seed(0, "kite") != tag_seed(7, "kite")


def test_describe_resumes(tiny_lm, tmp_path, capsys):
    output = tmp_path / "descriptions.json"
    output.write_text(json.dumps([{"red panda": ["written before"]}]))
    tags_file = tmp_path / "tags.txt"
    tags_file.write_text("# tags\nred panda\nkite\n")
    assert main(["describe", "--tags-file", str(tags_file), "--model", str(tiny_lm), "--output", str(output), *ARGS]) == 0
    assert "1 of 2 tags already described" in capsys.readouterr().err
    result = load_descriptions(output)
    assert result["red panda"] == ["written before"]
    full = tmp_path / "full.json"
    main(["describe", "kite", "--model", str(tiny_lm), "--output", str(full), *ARGS])
    assert result["kite"] == load_descriptions(full)["kite"]  # per-tag seeds: resumed == uninterrupted


def test_chat_template_is_used_when_present():
    tokenizer = tiny_tokenizer()
    plain = prompt_inputs(tokenizer, "What does a(n) kite look like concisely?")
    tokenizer.chat_template = (
        "{% for m in messages %}User: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    chat = prompt_inputs(tokenizer, "What does a(n) kite look like concisely?")
    assert tokenizer.decode(chat["input_ids"][0]) == "User: What does a(n) kite look like concisely?\nAssistant:"
    assert tokenizer.decode(plain["input_ids"][0]) == "What does a(n) kite look like concisely?"
    raw = prompt_inputs(tokenizer, "x", use_chat_template=False)
    assert tokenizer.decode(raw["input_ids"][0]) == "x"


def test_describe_usage_errors(tiny_lm, tmp_path, capsys):
    assert main(["describe", "--model", str(tiny_lm), "--output", str(tmp_path / "d.json")]) == 2
    assert "at least one tag" in capsys.readouterr().err
    assert main(["describe", "kite", "--model", str(tiny_lm), "--output", str(tmp_path / "d.json"), "--samples", "0"]) == 2
