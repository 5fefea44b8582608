"""Tag descriptions by Hub dataset id (load_descriptions, TagSet.from_descriptions, `ramplus tag --descriptions`),
against the local Hub stand-in on 127.0.0.1: download and cache, file choice, revisions, clear errors."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REFERENCE_IMAGES
from transformers_ramplus.tags.descriptions import (
    AUTHORS_DESCRIPTIONS_FILE,
    AUTHORS_DESCRIPTIONS_REPO,
    load_descriptions,
    resolve_descriptions_file,
)

local_hub = pytest.importorskip("local_hub", reason="needs the local Hub stand-in modeling_tests/local_hub.py")

TESTS_DIR = Path(__file__).resolve().parent

# descriptions of the tiny models' built-in tags, in the authors' format ("a photo of a {tag}." first)
TINY_DESCRIPTIONS = [
    {f"tag {i}": [f"a photo of a tag {i}.", f"thing number {i} seen from afar", f"a small object {i} on a table"]}
    for i in range(5)
]


def run_with_hub(datasets: dict, home, script: str) -> subprocess.CompletedProcess:
    """Run `script` in a fresh interpreter that first starts a local Hub serving `datasets` ({repo id: folder}) as
    `hub` and points huggingface_hub at it (HF_ENDPOINT is read at import, so this must happen in a new process).
    The script may call `hub.__exit__()` to take the Hub away (its port then refuses connections)."""
    served = {repo_id: str(folder) for repo_id, folder in datasets.items()}
    prelude = f"""
import os, sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from local_hub import LocalHub, hub_env
hub = LocalHub().__enter__()
for repo_id, folder in {served!r}.items():
    hub.add_dataset(repo_id, folder)
env = hub_env(hub, {str(home)!r})
os.environ.clear()
os.environ.update(env)
"""
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def repos(tmp_path_factory, converted_tiny_text):
    root = tmp_path_factory.mktemp("dataset_repos")
    authors = root / "authors"
    authors.mkdir()
    (authors / "README.md").write_text("LLM tag descriptions\n")
    (authors / AUTHORS_DESCRIPTIONS_FILE).write_text(json.dumps(TINY_DESCRIPTIONS))
    names = json.loads((converted_tiny_text / "config.json").read_text())["id2label"]
    chosen = [names["1"], names["3"]]
    converted = root / "converted"
    converted.mkdir()
    (converted / "descriptions.json").write_text(
        json.dumps([{name: [f"a photo of a {name}.", f"what a {name} looks like"]} for name in chosen])
    )
    several = root / "several"
    several.mkdir()
    (several / "a.json").write_text(json.dumps([{"kite": ["a toy in the sky"]}]))
    (several / "b.json").write_text(json.dumps([{"zebra": ["a striped horse"]}]))
    broken = root / "broken"
    broken.mkdir()
    (broken / "descriptions.json").write_text("[{\"kite\": [\"a toy")
    shape = root / "shape"
    shape.mkdir()
    (shape / "descriptions.json").write_text(json.dumps([{"kite": 3}]))
    return {"authors": authors, "converted": converted, "several": several, "broken": broken, "shape": shape,
            "chosen": chosen}


def test_descriptions_by_hub_dataset_id(repos, converted_tiny_text, tmp_path):
    image = str(REFERENCE_IMAGES[0])
    script = f"""
        import json
        import pytest, torch
        from conftest import tiny_text_model
        from transformers_ramplus import TagSet, load_descriptions
        from transformers_ramplus.tags.encoding import encode_texts
        from transformers_ramplus.cli.main import main

        # the only JSON file of a dataset repository, found without a file name; downloaded into the HF cache
        got = load_descriptions("authors/tag-descriptions")
        assert got == {{k: v for e in {TINY_DESCRIPTIONS!r} for k, v in e.items()}}, got
        # a file name and a revision
        assert load_descriptions("someone/several", "b.json", revision="v1.0") == {{"zebra": ["a striped horse"]}}
        # clear errors
        with pytest.raises(ValueError, match=r"several JSON files \\['a.json', 'b.json'\\].*filename"):
            load_descriptions("someone/several")
        with pytest.raises(ValueError, match=r"has no file 'c.json' [(]its JSON files: [[]'a.json', 'b.json'[]][)]"):
            load_descriptions("someone/several", "c.json")
        with pytest.raises(ValueError, match="someone/broken/descriptions.json.*not valid JSON"):
            load_descriptions("someone/broken")
        with pytest.raises(ValueError, match="someone/shape/descriptions.json.*'kite' must be a list of strings"):
            load_descriptions("someone/shape")
        with pytest.raises(ValueError, match="no dataset repository 'nobody/nothing'.*repo_type='model'"):
            load_descriptions("nobody/nothing")
        with pytest.raises(ValueError, match="no model repository"):
            load_descriptions("authors/tag-descriptions", repo_type="model")

        # the descriptions of built-in tags rebuild the built-in rows: make the tiny model's vocabulary the CLIP
        # embeddings of these descriptions (as the released model's label_embed is), then read them by Hub id
        model, tokenizer = tiny_text_model()
        model.eval()
        TagSet.from_model(model, got, tokenizer=tokenizer).apply_to(model, keep_existing=False)
        chosen = TagSet.from_descriptions(model, "authors/tag-descriptions", ["tag 3", "tag 1"], tokenizer=tokenizer)
        assert chosen.names == ["tag 3", "tag 1"] and chosen.thresholds == [0.5, 0.5]
        rows = model.label_embeds.view(5, 3, -1)
        torch.testing.assert_close(chosen.label_embeds, rows[[3, 1]], atol=1e-5, rtol=1e-5)
        pixel_values = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            closed = model(pixel_values=pixel_values).logits
            opened = model(pixel_values=pixel_values, **chosen.model_inputs(model)).logits
        torch.testing.assert_close(opened, closed[:, [3, 1]], atol=1e-5, rtol=1e-5)
        every = TagSet.from_descriptions(model, "authors/tag-descriptions", tokenizer=tokenizer)
        assert every.names == [f"tag {{i}}" for i in range(5)]

        # the command line, with the descriptions of chosen built-in tags of a converted model
        code = main(["tag", {image!r}, "--model", {str(converted_tiny_text)!r}, "--descriptions", "someone/converted",
                     "--descriptions-file", "descriptions.json", "--descriptions-revision", "main",
                     "--labels", *{repos["chosen"]!r}, "--threshold", "0.0", "--no-progress",
                     "--output", {str(tmp_path / "tags.jsonl")!r}])
        assert code == 0, code
        several = [r.split()[1] for r in hub.requests if "someone/several" in r]
        assert any(path == "/datasets/someone/several/resolve/v1.0/b.json" for path in several), several
        assert all(path.startswith(("/datasets/", "/api/datasets/")) for path in several), several

        # cached: with the Hub gone (connection refused), the same id still loads, with and without a file name
        hub.__exit__()
        names = [f"tag {{i}}" for i in range(5)]
        assert list(load_descriptions("authors/tag-descriptions")) == names
        assert list(load_descriptions("authors/tag-descriptions", {AUTHORS_DESCRIPTIONS_FILE!r})) == names
        assert list(load_descriptions("authors/tag-descriptions", local_files_only=True)) == names
        # never downloaded, Hub unreachable: a clear error, no hang
        with pytest.raises(ConnectionError, match="could not be reached.*cache holds no copy"):
            load_descriptions("someone/never-downloaded")
        with pytest.raises(ConnectionError, match="could not be reached.*cache holds no copy"):
            load_descriptions("someone/never-downloaded", "d.json")  # asked first: no minutes of download retries
        with pytest.raises(ConnectionError, match="offline mode is on.*cache holds no copy"):
            load_descriptions("someone/never-downloaded", "d.json", local_files_only=True)
        print("hub-descriptions-ok")
    """
    datasets = {"authors/tag-descriptions": repos["authors"]}
    datasets.update({f"someone/{name}": repos[name] for name in ("converted", "several", "broken", "shape")})
    result = run_with_hub(datasets, tmp_path / "hf", script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hub-descriptions-ok" in result.stdout

    # the command line's scores equal the pipeline's with the same descriptions, read locally
    import transformers_ramplus  # noqa: F401
    from transformers import pipeline

    record = json.loads((tmp_path / "tags.jsonl").read_text().splitlines()[0])
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny_text), device="cpu")
    expected = tagger(image, candidate_labels=load_descriptions(repos["converted"] / "descriptions.json"), threshold=0.0)
    assert sorted(t["label"] for t in record["tags"]) == sorted(repos["chosen"])
    got = {t["label"]: t["score"] for t in record["tags"]}
    assert got == pytest.approx({t["label"]: t["score"] for t in expected}, abs=1e-5)


def test_local_files_folders_and_what_is_not_a_hub_id(tmp_path):
    folder = tmp_path / "descs"
    folder.mkdir()
    (folder / "d.json").write_text(json.dumps(TINY_DESCRIPTIONS[:2]))
    assert list(load_descriptions(folder)) == ["tag 0", "tag 1"]  # a folder with one JSON file
    assert list(load_descriptions(folder, "d.json")) == ["tag 0", "tag 1"]
    (folder / "e.json").write_text("[]")
    with pytest.raises(ValueError, match="several JSON files"):
        load_descriptions(folder)
    with pytest.raises(ValueError, match="is a file"):
        load_descriptions(folder / "d.json", "d.json")
    with pytest.raises(ValueError, match="local path"):
        load_descriptions(folder, "d.json", revision="v1")
    # missing paths are not sent to the Hub
    for missing in ("my_descriptions.json", "./owner/name", str(tmp_path / "nothing" / "x"), "a/b/c", Path("owner/name")):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            resolve_descriptions_file(missing)
    with pytest.raises(ValueError, match="repo_type"):
        resolve_descriptions_file("owner/name", repo_type="space")
    (tmp_path / "latin1.json").write_bytes('[{"caf\xe9": ["x"]}]'.encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.json.*not UTF-8"):
        load_descriptions(tmp_path / "latin1.json")
    (tmp_path / "number.json").write_text("3")
    with pytest.raises(ValueError, match="number.json.*expected a list"):
        load_descriptions(tmp_path / "number.json")
    assert AUTHORS_DESCRIPTIONS_REPO == "xinyu1205/recognize-anything-plus-model-tag-descriptions"
