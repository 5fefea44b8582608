"""Tag maps, caption files for training sets and keywords in photos (XMP sidecars, embedded XMP/IPTC)."""

import json
import logging
import os
import shutil
import struct
import subprocess

import pytest
from conftest import REFERENCE_IMAGES
from PIL import Image
from transformers import AutoConfig, pipeline

import transformers_ramplus  # noqa: F401
from transformers_ramplus.cli.main import main
from transformers_ramplus.inference.caption_files import CaptionWriter, caption_text
from transformers_ramplus.io.keywords import KeywordError, KeywordWriter, exiftool_path
from transformers_ramplus.io.xmp import Keywords, merge_keywords, read_sidecar, sidecar_for
from transformers_ramplus.tags.tag_map import TagMap


EXIFTOOL = exiftool_path()
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed (apt-get install libimage-exiftool-perl)")
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


def tags(*pairs):
    return [{"label": label, "score": score} for label, score in pairs]


# ------------------------------------------------------------------------------------------------ tag maps
def test_tag_map_renames_merges_drops_and_keeps():
    found = tags(("man", 0.9), ("woman", 0.95), ("text", 0.8), ("dog", 0.7), ("grass", 0.6))
    mapped = TagMap.from_dict({"rename": {"man": "person", "woman": "person", "dog": "Hund"}, "drop": ["text"]}).apply(found)
    assert mapped == tags(("person", 0.95), ("Hund", 0.7), ("grass", 0.6))  # synonyms merged: the higher score
    kept = TagMap.from_dict({"rename": {"dog": "Hund"}, "keep": ["Hund", "man"]}).apply(found)
    assert kept == tags(("man", 0.9), ("Hund", 0.7))  # keep names either the old or the new name
    assert TagMap.from_dict({"man": "person", "text": None, "grass": ""}).apply(found, top_k=2) == tags(("woman", 0.95), ("person", 0.9))
    # dropping a new name drops every tag renamed to it; renaming is one step
    assert TagMap.from_dict({"rename": {"man": "person"}, "drop": ["person"]}).apply(found)[0]["label"] == "woman"
    assert TagMap.from_dict({"a": "b", "b": "c"}).apply(tags(("a", 0.5))) == tags(("b", 0.5))


def test_tag_map_files_and_their_errors(tmp_path, caplog):
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("rename:\n  man: 人\ndrop: [text]\n", encoding="utf-8")
    json_file = tmp_path / "map.json"
    json_file.write_text(json.dumps({"rename": {"man": "人"}, "drop": ["text"]}), encoding="utf-8")
    assert TagMap.load(yaml_file).digest() == TagMap.load(json_file).digest()
    assert TagMap.coerce(str(yaml_file)).rename == {"man": "人"}
    for text, message in (
        ("rename: [a, b]\n", "rename"),
        ("rename:\n  man: 3\n", "new name of 'man'"),
        ("rename: {a: b}\nkeep: []\n", "keep.*empty"),
        ("rename: {a: b\n", "not valid YAML"),
        ("", "empty"),
    ):
        yaml_file.write_text(text)
        with pytest.raises(ValueError, match=message):
            TagMap.load(yaml_file)
    json_file.write_text("{'man': 'x'}")
    with pytest.raises(ValueError, match=r"map\.json.*not valid JSON"):
        TagMap.load(json_file)
    with pytest.raises(ValueError, match="no such file"):
        TagMap.load(tmp_path / "missing.yaml")
    with pytest.raises(TypeError, match="tag_map"):
        TagMap.coerce(3)
    with caplog.at_level(logging.WARNING):
        unknown = TagMap.from_dict({"rename": {"dgo": "dog"}, "drop": ["dog", "txet"]}).warn_unknown(["dog", "cat"])
    assert unknown == ["dgo", "txet"]
    assert "dgo" in caplog.text and "txet" in caplog.text


def test_pipeline_tag_map(converted_tiny, caplog):
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny))
    image = str(REFERENCE_IMAGES[0])
    plain = tagger(image, threshold=0.0, top_k=6)
    first, second, third = (t["label"] for t in plain[:3])
    tag_map = {"rename": {first: "merged", third: "merged"}, "drop": [second], "keep": ["merged", plain[3]["label"]]}
    with caplog.at_level(logging.WARNING):
        mapped = tagger(image, threshold=0.0, top_k=6, tag_map=tag_map)
    assert [t["label"] for t in mapped] == ["merged", plain[3]["label"]]
    assert mapped[0]["score"] == pytest.approx(plain[0]["score"])
    # the map is applied before top_k: two tags survive although the first 3 were merged/dropped
    assert len(tagger(image, threshold=0.0, top_k=2, tag_map={"drop": [first, second]})) == 2
    zh = tagger(image, threshold=0.0, top_k=3, language="zh", tag_map={"not a tag": "x"})
    assert len(zh) == 3 and "not a tag" in caplog.text
    with pytest.raises(ValueError, match="raw_scores"):
        tagger(image, raw_scores=True, tag_map={"a": "b"})


# ------------------------------------------------------------------------------------------------ captions
def test_caption_text():
    found = tags(("tennis racket", 0.9), ("man", 0.8), ("a, b", 0.7))
    assert caption_text(found) == "tennis racket, man, a b"
    assert caption_text(found, caption="A man  plays tennis.", prefix="sks person, photo", max_tags=2,
                        spacing="underscores") == "sks person, photo, A man plays tennis., tennis_racket, man"
    with pytest.raises(ValueError, match="caption-spacing"):
        caption_text(found, spacing="dashes")


def test_caption_writer_keeps_existing_files_and_refuses_clashes(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "b.txt").write_text("my own caption")
    writer = CaptionWriter(prefix="sks")
    assert writer.write(str(tmp_path / "a.jpg"), tags(("dog", 0.9))).startswith("wrote")
    assert (tmp_path / "a.txt").read_text() == "sks, dog"
    with pytest.raises(ValueError, match="already the caption file"):
        writer.write(str(tmp_path / "a.png"), tags(("cat", 0.9)))
    assert "kept" in writer.write(str(tmp_path / "b.jpg"), tags(("dog", 0.9)))
    assert (tmp_path / "b.txt").read_text() == "my own caption"
    assert CaptionWriter(overwrite=True).write(str(tmp_path / "b.jpg"), tags(("dog", 0.9))).startswith("wrote")
    assert (tmp_path / "b.txt").read_text() == "dog"
    dry = CaptionWriter(dry_run=True, extension="caption")
    assert dry.write(str(tmp_path / "b.jpg"), tags(("dog", 0.9))) == f"would write {tmp_path / 'b.caption'}: dog"
    assert not (tmp_path / "b.caption").exists()
    for bad in ("", "a/b", ".", "png", ".JPG", ".xmp"):  # an image extension would let captions replace images
        with pytest.raises(ValueError, match="caption-extension"):
            CaptionWriter(extension=bad)
    with pytest.raises(ValueError, match="max-tags"):
        CaptionWriter(max_tags=0)


# ------------------------------------------------------------------------------------------------ XMP sidecars
USER_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="5" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmp:Rating="4">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li><rdf:li>dog</rdf:li></rdf:Bag></dc:subject>
   <darktable:history><rdf:Seq><rdf:li darktable:operation="exposure"/></rdf:Seq></darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_merge_never_removes_a_user_keyword():
    before = Keywords(subject=["holiday", "dog"], hierarchical=["places|Rome"], iptc=["holiday"])
    first = merge_keywords(before, tags(("dog", 0.9), ("grass", 0.8)), scores=True)
    assert first.after.subject == ["holiday", "dog", "grass"] and first.after.ours == ["grass"]  # dog was the user's
    assert first.after.hierarchical == ["places|Rome", "ramplus|dog", "ramplus|grass"]
    assert first.after.iptc == ["holiday", "dog", "grass"] and first.after.scores == ["dog=0.9000", "grass=0.8000"]
    second = merge_keywords(first.after, tags(("cat", 0.9)))
    assert second.after.subject == ["holiday", "dog", "cat"]  # the user's dog stays, our grass is replaced
    assert second.removed == ["grass"] and second.added == ["cat"]
    assert second.after.hierarchical == ["places|Rome", "ramplus|cat"]
    assert not merge_keywords(second.after, tags(("cat", 0.9))).changed  # a rerun with the same tags changes nothing


def test_xmp_sidecar_merges_with_the_users_sidecar(tmp_path):
    image = tmp_path / "IMG_1.JPG"
    shutil.copy(REFERENCE_IMAGES[0], image)
    sidecar = tmp_path / "IMG_1.JPG.xmp"
    sidecar.write_text(USER_SIDECAR, encoding="utf-8")
    writer = KeywordWriter("xmp-sidecar", scores=True)
    message = writer.write(str(image), tags(("dog", 0.9), ("草地", 0.8)))
    assert message.startswith("wrote 3 keyword(s) to") and "草地" in message
    _, found = read_sidecar(str(sidecar))
    assert found.subject == ["holiday", "dog", "草地"] and found.ours == ["草地"]
    text = sidecar.read_text(encoding="utf-8")
    assert 'xmp:Rating="4"' in text and "darktable:operation" in text and "darktable:xmp_version" in text  # kept
    writer.write(str(image), tags(("cat", 0.7)))
    _, found = read_sidecar(str(sidecar))
    assert found.subject == ["holiday", "dog", "cat"] and found.hierarchical == ["ramplus|cat"]
    stamp = sidecar.stat().st_mtime_ns
    assert writer.write(str(image), tags(("cat", 0.7))).startswith("keywords unchanged")
    assert sidecar.stat().st_mtime_ns == stamp  # nothing to change: not rewritten
    # stem naming (Lightroom) and a clash between two images of one run
    stem = KeywordWriter("xmp-sidecar", sidecar_naming="stem")
    stem.write(str(image), tags(("cat", 0.7)))
    assert (tmp_path / "IMG_1.xmp").exists() and sidecar_for(image, "stem") == str(tmp_path / "IMG_1.xmp")
    with pytest.raises(KeywordError, match="already the sidecar"):
        stem.write(str(tmp_path / "IMG_1.CR2"), tags(("dog", 0.7)))
    if EXIFTOOL:  # another program reads what was written
        listing = subprocess.run([EXIFTOOL, "-j", "-G1", "-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject", str(sidecar)], capture_output=True, check=True)
        found = json.loads(listing.stdout)[0]
        assert found["XMP-dc:Subject"] == ["holiday", "dog", "cat"] and found["XMP-lr:HierarchicalSubject"] == "ramplus|cat"


def test_xmp_sidecar_errors_leave_files_as_they_are(tmp_path):
    image = tmp_path / "a.jpg"
    shutil.copy(REFERENCE_IMAGES[0], image)
    sidecar = tmp_path / "a.jpg.xmp"
    writer = KeywordWriter("xmp-sidecar")
    for text, message in (("<x:xmpmeta", "not valid XML"), ("<html><body/></html>", "not XMP")):
        sidecar.write_text(text)
        with pytest.raises(KeywordError, match=message):
            writer.write(str(image), tags(("dog", 0.9)))
        assert sidecar.read_text() == text
    sidecar.write_text(USER_SIDECAR)
    sidecar.chmod(0o444)
    try:
        if not os.access(sidecar, os.W_OK):  # root may write anyway
            with pytest.raises(KeywordError, match="read-only"):
                writer.write(str(image), tags(("dog", 0.9)))
            assert sidecar.read_text() == USER_SIDECAR
    finally:
        sidecar.chmod(0o644)
    dry = KeywordWriter("xmp-sidecar", dry_run=True)
    assert dry.write(str(image), tags(("cat", 0.9))).startswith("would write 3 keyword(s)")
    assert sidecar.read_text() == USER_SIDECAR


# ------------------------------------------------------------------------------------------------ embedded
def _jpeg_scan(data: bytes) -> bytes:
    """The entropy-coded image data of a JPEG: everything from its first SOS segment on (the metadata segments
    before it are skipped by their lengths)."""
    position = 2
    while data[position + 1] != 0xDA:
        position += 2 + struct.unpack(">H", data[position + 2 : position + 4])[0]
    return data[position:]


def _chunks(data: bytes, start: int, header: str, little: bool):
    position = start
    while position + 8 <= len(data):
        if little:
            kind, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
            yield kind, data[position + 8 : position + 8 + size]
            position += 8 + size + (size & 1)
        else:
            size, kind = struct.unpack(">I", data[position : position + 4])[0], data[position + 4 : position + 8]
            yield kind, data[position + 8 : position + 8 + size]
            position += 12 + size


def image_data(path) -> bytes:
    """The bytes of the encoded pixels (not the metadata) of a JPEG, PNG, WebP or TIFF file."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".jpg":
        return _jpeg_scan(data)
    if suffix == ".png":
        return b"".join(body for kind, body in _chunks(data, 8, "png", False) if kind == b"IDAT")
    if suffix == ".webp":
        return b"".join(body for kind, body in _chunks(data, 12, "riff", True) if kind in (b"VP8 ", b"VP8L", b"ALPH"))
    with Image.open(path) as image:  # TIFF: the strips, read at their offsets
        offsets, counts = image.tag_v2[273], image.tag_v2[279]
    return b"".join(data[o : o + c] for o, c in zip(offsets, counts))


def exiftool_keywords(*paths):
    """The keyword fields of `paths` as ExifTool lists them (one dict per file; one ExifTool run for all)."""
    listing = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-charset", "iptc=UTF8", "-XMP-dc:Subject", "-IPTC:Keywords", "-XMP-lr:HierarchicalSubject",
         *map(str, paths)],
        capture_output=True, check=True,
    )
    found = [{k: v if isinstance(v, list) else [v] for k, v in entry.items() if k != "SourceFile"} for entry in json.loads(listing.stdout)]
    return found if len(paths) > 1 else found[0]


@needs_exiftool
def test_embedded_keywords_keep_the_pixels_and_the_users_keywords(tmp_path):
    suffixes = (".jpg", ".tif", ".png", ".webp")  # IPTC in JPEG and TIFF; XMP in all four
    paths = [tmp_path / f"photo{suffix}" for suffix in suffixes]
    with Image.open(REFERENCE_IMAGES[1]) as image:
        for path in paths:
            image.convert("RGB").resize((64, 48)).save(path)
    user = ["-XMP-dc:Subject=holiday", "-XMP-dc:Subject=dog"]  # keywords another program wrote
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *user, "-IPTC:Keywords=holiday", *map(str, paths[:2])], check=True)
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *user, *map(str, paths[2:])], check=True)
    pixels, stamp = [image_data(path) for path in paths], 1_600_000_000
    for path in paths:
        os.utime(path, (stamp, stamp))
        path.chmod(0o640)
    writer = KeywordWriter("embedded")
    for path in paths:
        assert writer.write(str(path), tags(("dog", 0.9), ("草地", 0.8))).startswith("wrote")
    for path, found in zip(paths, exiftool_keywords(*paths)):
        assert found["XMP-dc:Subject"] == ["holiday", "dog", "草地"], path
        assert found["XMP-lr:HierarchicalSubject"] == ["ramplus|dog", "ramplus|草地"]
        assert found.get("IPTC:Keywords") == (["holiday", "dog", "草地"] if path.suffix in (".jpg", ".tif") else None)
    for path, data in zip(paths, pixels):
        assert image_data(path) == data, path  # the encoded pixels, byte for byte
        assert path.stat().st_mtime == stamp and (path.stat().st_mode & 0o777) == 0o640
    for path in paths:  # a rerun replaces our keywords only
        writer.write(str(path), tags(("cat", 0.9)))
        again = writer.read_embedded(str(path))
        assert again.subject == ["holiday", "dog", "cat"] and again.ours == ["cat"]
        assert again.iptc == (["holiday", "dog", "cat"] if path.suffix in (".jpg", ".tif") else None)
    assert [image_data(path) for path in paths] == pixels
    before = paths[0].read_bytes()
    assert KeywordWriter("embedded", dry_run=True).write(str(paths[0]), tags(("bird", 0.9))).startswith("would write")
    assert paths[0].read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in paths)  # no temporary left behind
    writer.close()


@needs_exiftool
def test_embedded_keyword_errors(tmp_path):
    writer = KeywordWriter("embedded")
    raw = tmp_path / "IMG_1.CR2"
    raw.write_bytes(b"raw")
    with pytest.raises(KeywordError, match="not JPEG, TIFF, PNG or WebP.*xmp-sidecar"):
        writer.write(str(raw), tags(("dog", 0.9)))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe1\x00\x10garbage" + b"\x00" * 20)
    with pytest.raises(KeywordError, match="corrupt.jpg"):
        writer.write(str(corrupt), tags(("dog", 0.9)))
    assert corrupt.read_bytes().startswith(b"\xff\xd8\xff\xe1\x00\x10garbage")
    assert sorted(os.listdir(tmp_path)) == ["IMG_1.CR2", "corrupt.jpg"]


def test_embedded_without_exiftool_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("RAMPLUS_EXIFTOOL", raising=False)
    with pytest.raises(ValueError, match="needs ExifTool.*libimage-exiftool-perl"):
        KeywordWriter("embedded")


# ------------------------------------------------------------------------------------------------ ramplus tag
def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_cli_tag_map_captions_and_sidecars(converted_tiny, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in REFERENCE_IMAGES:
        shutil.copy(path, photos / path.name)
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    (photos / "openset_example.jpg.xmp").write_text(USER_SIDECAR, encoding="utf-8")
    (photos / "demo2.jpg.xmp").write_text("<broken")  # cannot be merged: demo2's record is an error
    names = AutoConfig.from_pretrained(converted_tiny).tag_names
    tag_map = tmp_path / "map.json"  # every tag renamed, plus a name the model does not have
    tag_map.write_text(json.dumps({"rename": {**{n: f"my {n}" for n in names}, "not-a-tag": "x"}}), encoding="utf-8")
    # no --extensions: the folder walk itself leaves out the sidecars and (with --write-captions) the caption files
    base = ["tag", str(photos), "--model", str(converted_tiny), "--threshold", "0.0", "--top-k", "5"]
    output = tmp_path / "tags.jsonl"
    run = base + ["-o", str(output), "--tag-map", str(tag_map), "--write-captions", "txt", "--caption-prefix", "sks",
                  "--write-keywords", "xmp-sidecar"]
    assert main(run) == 1  # the broken image and the broken sidecar
    err = capsys.readouterr().err
    assert "not-a-tag" in err and "1 name(s)" in err and "keywords written to 1 XMP sidecar(s)" in err
    records = {r["path"]: r for r in read_jsonl(output)}
    assert sorted(os.path.basename(path) for path in records) == ["broken.jpg", "demo2.jpg", "openset_example.jpg"]
    mapped = records[str(photos / "openset_example.jpg")]["tags"]
    assert len(mapped) == 5 and all(t["label"].startswith("my ") for t in mapped)
    assert "error" in records[str(photos / "broken.jpg")]
    assert "not valid XML" in records[str(photos / "demo2.jpg")]["error"]
    assert (photos / "demo2.jpg.xmp").read_text() == "<broken"
    caption = (photos / "openset_example.txt").read_text(encoding="utf-8")
    assert caption == "sks, " + ", ".join(t["label"] for t in mapped)
    assert not (photos / "broken.txt").exists() and not (photos / "broken.jpg.xmp").exists()
    _, found = read_sidecar(str(photos / "openset_example.jpg.xmp"))
    assert found.subject == ["holiday", "dog"] + [t["label"] for t in mapped]
    # --dry-run lists the changes and writes nothing
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    assert main(base + ["--write-keywords", "xmp-sidecar", "--write-captions", "txt", "--overwrite", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "would write 7 keyword(s)" in err and "dry run: nothing was written" in err
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    assert main(base + ["--dry-run", "-o", str(tmp_path / "x.jsonl"), "--write-captions", "txt"]) == 2
    assert main(base + ["--dry-run"]) == 2
    # a changed map is refused on resume; the refusal names it
    tag_map.write_text(json.dumps({"rename": {names[0]: "hound"}}), encoding="utf-8")
    assert main(run) == 2
    assert "--tag-map" in capsys.readouterr().err


def test_tag_dataset_applies_the_tag_map(converted_tiny, tmp_path):
    datasets = pytest.importorskip("datasets")
    from transformers_ramplus import tag_dataset

    paths = [str(p) for p in REFERENCE_IMAGES]
    dataset = datasets.Dataset.from_dict({"image": paths})
    names = AutoConfig.from_pretrained(converted_tiny).tag_names
    tag_map = {"rename": {names[0]: "first", names[1]: "first"}, "drop": names[2:10]}
    tagged = tag_dataset(dataset, str(converted_tiny), threshold=0.0, top_k=4, chinese=True, tag_map=tag_map,
                         load_from_cache_file=False)
    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny))
    for row, path in zip(tagged, paths):
        expected = tagger(path, threshold=0.0, top_k=4, tag_map=tag_map)
        assert row["tags"] == [t["label"] for t in expected] and row["scores"] == pytest.approx([t["score"] for t in expected], abs=1e-4)
        assert not set(row["tags"]) & set(names[:10]) and len(row["tags_zh"]) == 4


@needs_exiftool
def test_cli_embedded_keywords_resume(converted_tiny, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(REFERENCE_IMAGES[0], photos / "a.jpg")
    read_only = photos / "b.jpg"
    shutil.copy(REFERENCE_IMAGES[1], read_only)
    read_only.chmod(0o444)
    with Image.open(REFERENCE_IMAGES[0]) as image:  # readable, but no embedded keywords in BMP: an error record
        image.convert("RGB").resize((32, 32)).save(photos / "c.bmp")
    pixels = image_data(photos / "a.jpg")
    output = tmp_path / "tags.jsonl"
    run = ["tag", str(photos), "--model", str(converted_tiny), "--threshold", "0.0", "--top-k", "3", "-o", str(output),
           "--write-keywords", "embedded", "--keyword-scores"]
    writable = os.access(read_only, os.W_OK)  # root may write a read-only file
    assert main(run) == 1
    records = {os.path.basename(r["path"]): r for r in read_jsonl(output)}
    keywords = exiftool_keywords(photos / "a.jpg")
    assert keywords["XMP-dc:Subject"] == keywords["IPTC:Keywords"] == [t["label"] for t in records["a.jpg"]["tags"]]
    assert image_data(photos / "a.jpg") == pixels
    assert "not JPEG, TIFF, PNG or WebP" in records["c.bmp"]["error"]
    if not writable:
        assert "read-only" in records["b.jpg"]["error"]
    capsys.readouterr()
    assert main(run) == 1  # the keywords changed a.jpg's size: it is not tagged again
    assert f"resuming: {2 if writable else 1} of 3" in capsys.readouterr().err
