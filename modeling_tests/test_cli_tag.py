"""`ramplus tag`: folders with bad files, output formats, resume."""

import csv
import json
import shutil

import pytest

from conftest import REFERENCE_IMAGES
import transformers_ramplus  # noqa: F401
from transformers import pipeline
from transformers_ramplus.cli.main import main


@pytest.fixture
def folder(tmp_path):
    """Two good images, a truncated JPEG, a zero-byte file and a text file (plus one good image in a subfolder)."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for path in REFERENCE_IMAGES:
        shutil.copy(path, root / path.name)
    data = REFERENCE_IMAGES[1].read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image\n")
    shutil.copy(REFERENCE_IMAGES[0], root / "sub" / "nested.jpg")
    return root


BAD = {"truncated.jpg", "empty.png", "notes.txt"}
GOOD = {path.name for path in REFERENCE_IMAGES}


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def name_of(record):
    return record["path"].replace("\\", "/").split("/")[-1]


def test_folder_with_bad_files(converted_tiny, folder, tmp_path, capsys):
    output = tmp_path / "tags.jsonl"
    code = main(["tag", str(folder), "--model", str(converted_tiny), "--output", str(output), "--top-k", "4", "--threshold", "0.0", "--batch-size", "2"])
    assert code == 1  # some inputs failed
    err = capsys.readouterr().err
    records = read_jsonl(output)
    assert {name_of(r) for r in records} == GOOD | BAD  # not recursive: the subfolder is not walked
    for record in records:
        if name_of(record) in BAD:
            assert "error" in record and "tags" not in record
            assert name_of(record) in err
    # the good images got the same tags as the pipeline gives
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    for record in records:
        if name_of(record) in GOOD:
            expected = tagger(record["path"], threshold=0.0, top_k=4)
            assert [t["label"] for t in record["tags"]] == [t["label"] for t in expected]
            assert [round(t["score"], 5) for t in record["tags"]] == [round(t["score"], 5) for t in expected]


def test_resume_skips_finished_images(converted_tiny, folder, tmp_path, capsys):
    output = tmp_path / "tags.jsonl"
    args = ["tag", str(folder), "--model", str(converted_tiny), "--output", str(output), "--extensions", "jpg,jpeg"]
    assert main(args) == 1  # the truncated JPEG fails; the png and txt are not taken
    first = read_jsonl(output)
    assert {name_of(r) for r in first} == GOOD | {"truncated.jpg"}
    # mark a finished record, add a new image and simulate a crash that cut a line short
    finished = next(r for r in first if name_of(r) == REFERENCE_IMAGES[0].name)
    lines = output.read_text().splitlines()
    lines = [json.dumps({**finished, "tags": [{"label": "sentinel", "score": 1.0}]}) if json.loads(l)["path"] == finished["path"] else l for l in lines]
    output.write_text("\n".join(lines) + "\n" + '{"path": "' + str(folder / "new.jpg") + '", "ta')
    shutil.copy(REFERENCE_IMAGES[1], folder / "new.jpg")
    (folder / "truncated.jpg").unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "2 of 3 images already have results" in capsys.readouterr().err
    # the line cut by the "crash" was dropped (and new.jpg redone): every line is a whole record
    records = [json.loads(line) for line in output.read_text().splitlines()]
    names = [name_of(r) for r in records if "error" not in r]
    assert sorted(names) == sorted(GOOD | {"new.jpg"})  # each finished image exactly once
    assert next(r for r in records if r["path"] == finished["path"])["tags"][0]["label"] == "sentinel"


def test_csv_json_and_text_formats(converted_tiny, folder, tmp_path, capsys):
    images = [str(folder / name) for name in sorted(GOOD)] + [str(folder / "notes.txt")]
    common = ["--model", str(converted_tiny), "--threshold", "0.0", "--top-k", "2"]
    assert main(["tag", *images, *common, "--output", str(tmp_path / "t.csv")]) == 1
    with open(tmp_path / "t.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [name_of(r) for r in rows] == sorted(GOOD) + ["notes.txt"]
    assert all(len(r["labels"].split(" | ")) == 2 and r["error"] == "" for r in rows[:2])
    assert rows[2]["labels"] == "" and "notes.txt" in rows[2]["error"]
    # rerun: nothing good is redone, the header is not repeated
    main(["tag", *images, *common, "--output", str(tmp_path / "t.csv")])
    assert (tmp_path / "t.csv").read_text().count("path,labels,scores,error") == 1
    assert main(["tag", *images[:2], *common, "--output", str(tmp_path / "t.json")]) == 0
    array = json.loads((tmp_path / "t.json").read_text())
    assert [name_of(r) for r in array] == sorted(GOOD) and all(len(r["tags"]) == 2 for r in array)
    capsys.readouterr()
    assert main(["tag", images[1], *common, "--language", "zh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(images[1] + "\t") and out.count(" | ") == 1


def test_own_labels_and_descriptions(converted_tiny_text, folder, tmp_path):
    names = json.loads((converted_tiny_text / "config.json").read_text())["id2label"]
    builtin = names["5"]
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_text(json.dumps([{"zebra": ["a striped horse", "black and white stripes"]}, {"kite": ["a toy in the sky"]}]))
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text(f"# my tags\n{builtin}\nzebra\nlantern\n\n")
    output = tmp_path / "own.jsonl"
    image = str(folder / REFERENCE_IMAGES[1].name)
    code = main(["tag", image, "--model", str(converted_tiny_text), "--labels-file", str(labels_file), "--descriptions", str(descriptions), "--threshold", "0.0", "--output", str(output)])
    assert code == 0
    (record,) = read_jsonl(output)
    assert {t["label"] for t in record["tags"]} == {builtin, "zebra", "lantern"}
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny_text), device="cpu")
    expected = tagger(image, candidate_labels={builtin: None, "zebra": ["a striped horse", "black and white stripes"], "lantern": None}, threshold=0.0)
    assert {t["label"]: round(t["score"], 5) for t in record["tags"]} == {t["label"]: round(t["score"], 5) for t in expected}
    # descriptions alone: every tag of the file
    output2 = tmp_path / "desc.jsonl"
    assert main(["tag", image, "--model", str(converted_tiny_text), "--descriptions", str(descriptions), "--threshold", "0.0", "--output", str(output2)]) == 0
    assert {t["label"] for t in read_jsonl(output2)[0]["tags"]} == {"zebra", "kite"}
    # a saved tag set
    tagger.get_tag_set({"kite": ["a toy in the sky"], builtin: None}).save_pretrained(tmp_path / "my-set")
    output3 = tmp_path / "set.jsonl"
    assert main(["tag", image, "--model", str(converted_tiny_text), "--tag-set", str(tmp_path / "my-set"), "--threshold", "0.0", "--output", str(output3)]) == 0
    from_set = read_jsonl(output3)[0]["tags"]
    from_desc = {t["label"]: t["score"] for t in read_jsonl(output2)[0]["tags"]}
    assert [t["label"] for t in from_set if t["label"] == "kite"] == ["kite"]
    # the same tag decoded in sets of different shapes: equal up to fp32 summation order
    assert abs(next(t["score"] for t in from_set if t["label"] == "kite") - from_desc["kite"]) < 1e-5


def test_usage_errors(converted_tiny, folder, capsys, monkeypatch):
    monkeypatch.delenv("RAMPLUS_MODEL", raising=False)
    assert main(["tag", str(folder)]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["tag", str(folder), "--model", str(converted_tiny), "--labels", "no such tag"]) == 2
    assert "text tower" in capsys.readouterr().err
    assert main(["tag", str(folder), "--model", str(converted_tiny), "--batch-size", "0"]) == 2
