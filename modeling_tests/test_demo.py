"""The web demo without a browser: the "your own tags" box, the tag table, what `TaggingDemo` answers (the pipeline's
tags, Chinese names from the model's Chinese tag list), its errors, and the Space staged by hub_upload (`--space`).
The browser test is test_demo_browser.py (slow)."""

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import REFERENCE_IMAGES
from test_tag2text import T2T_DIR, converted_t2t  # noqa: F401  (the golden tiny Tag2Text, a fixture)

from transformers_ramplus.serving.demo import TaggingDemo, parse_own_tags, tags_html


HUB_UPLOAD = Path(__file__).resolve().parents[1] / "hub_upload" / "prepare_and_push.py"
PHOTO = REFERENCE_IMAGES[1]


def test_parse_own_tags():
    assert parse_own_tags("") is None and parse_own_tags("  \n ") is None
    assert parse_own_tags("dog, cat ,dog") == ["dog", "cat"]
    assert parse_own_tags("dog\n\ncat\n") == ["dog", "cat"]
    assert parse_own_tags("dog: a furry pet\ndog: barks\ncat") == {"dog": ["a furry pet", "barks"], "cat": ["cat"]}
    with pytest.raises(ValueError, match="no name"):
        parse_own_tags(": a thing without a name")


def test_tags_html_escapes_names():
    page = tags_html([{"label": "<script>x</script>", "chinese": "狗", "score": 0.5}])
    assert "<script>" not in page and "&lt;script&gt;" in page and "狗" in page and "0.5000" in page
    assert "ramplus-no-tags" in tags_html([])


@pytest.fixture(scope="module")
def demo(converted_tiny):
    return TaggingDemo(str(converted_tiny), device="cpu")


def test_demo_tags_are_the_pipelines(demo):
    from PIL import Image

    image = Image.open(PHOTO)
    want = demo.tagger(str(PHOTO))
    got = demo.tag(image)
    assert [t["label"] for t in got.tags] == [t["label"] for t in want] and want
    assert all(abs(a["score"] - b["score"]) < 1e-6 for a, b in zip(got.tags, want))
    tag_set = demo.tagger.get_tag_set(None)
    chinese = dict(zip(tag_set.names, tag_set.labels("zh")))
    assert [t["chinese"] for t in got.tags] == [chinese[t["label"]] for t in want]
    assert got.caption is None  # RAM++ writes no captions
    # your own tags (names of the tiny vocabulary: the tiny model has no text tower for new names)
    own = demo.tag(image, threshold=0.0, own_tags="abacus\nbelly")
    assert sorted(t["label"] for t in own.tags) == ["abacus", "belly"]
    assert [t["chinese"] for t in own.tags] == [chinese[t["label"]] for t in own.tags]
    figure = demo.heatmap(image, own.tags[0]["label"], own_tags="abacus\nbelly")
    assert figure.axes


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda d: d.tag(None), "no image"),
        (lambda d: d.tag(str(PHOTO), threshold=2.0), "threshold"),
        (lambda d: d.heatmap(str(PHOTO), "belly", own_tags="abacus"), "not one of your tags"),
        (lambda d: d.heatmap(None, "dog"), "tag an image first"),
    ],
)
def test_demo_errors_are_named(demo, call, words):
    with pytest.raises(ValueError, match=words):
        call(demo)


def test_too_large_image_is_named(demo, monkeypatch):
    from PIL import Image

    image = Image.new("RGB", (20, 10))
    assert demo.tag(image, threshold=0.99).caption is None  # the default limit lets it through
    monkeypatch.setattr(demo, "max_image_pixels", 100)
    with pytest.raises(ValueError, match="too large: 20x10 pixels"):
        demo.tag(image)
    with pytest.raises(ValueError, match="too large"):
        demo.heatmap(image, "belly")


def test_bad_image_file_is_named(demo, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises((ValueError, OSError)):
        demo.tag(str(bad))


def _hub_upload():
    spec = importlib.util.spec_from_file_location("prepare_and_push_demo", HUB_UPLOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_space_is_staged(tmp_path):
    module = _hub_upload()
    space = module.prepare_space(tmp_path / "space", "someone/ram-plus")
    app = (space / "app.py").read_text()
    assert '"someone/ram-plus"' in app and module.SPACE_PLACEHOLDER not in app
    compile(app, "app.py", "exec")
    assert "transformers-ramplus[demo]" in (space / "requirements.txt").read_text()
    card = (space / "README.md").read_text()
    assert "sdk: gradio" in card and "app_file: app.py" in card and "someone/ram-plus" in card
    with pytest.raises(ValueError, match="not empty"):
        module.prepare_space(space, "someone/ram-plus")
    with pytest.raises(ValueError, match="not a model repository id"):
        module.prepare_space(tmp_path / "other", 'x"; import os; "')


def test_cli_without_gradio_says_how_to_install(monkeypatch, capsys, converted_tiny):
    from transformers_ramplus.cli.main import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    assert main(["demo", "--model", str(converted_tiny)]) == 2
    assert "pip install 'transformers-ramplus[demo]'" in capsys.readouterr().err
    assert main(["demo", "--model", str(converted_tiny), "--port", "70000"]) == 2


def test_tag2text_demo_shows_the_golden_captions(converted_t2t):  # noqa: F811  (the fixture imported above)
    """A captioning model: the demo's caption of a golden photo is the golden caption (the one `ramplus tag
    --captions` writes), and the own-tags box is refused (Tag2Text has no open set)."""
    import json

    from PIL import Image

    meta = json.loads((T2T_DIR / "reference_meta.json").read_text())
    demo = TaggingDemo(str(converted_t2t), device="cpu")
    assert demo.captioning and not demo.open_set
    assert demo.tag(Image.open(REFERENCE_IMAGES[0])).caption == meta["captions"][0]  # one photo: generation is slow here
    with pytest.raises(ValueError, match="built-in tags only"):
        demo.tag(Image.open(REFERENCE_IMAGES[0]), own_tags="dog")


def test_several_images_keep_the_good_ones(demo, tmp_path):
    from transformers_ramplus.serving.demo import many_html

    bad = tmp_path / "broken <1>.jpg"
    bad.write_bytes(b"not a jpeg")
    results = demo.tag_many([PHOTO, bad, REFERENCE_IMAGES[0]])
    assert [name for name, _ in results] == [PHOTO.name, bad.name, REFERENCE_IMAGES[0].name]
    assert isinstance(results[1][1], str) and not isinstance(results[0][1], str) and not isinstance(results[2][1], str)
    assert [t["label"] for t in results[0][1].tags] == [t["label"] for t in demo.tagger(str(PHOTO))]
    page = many_html(results)
    assert "broken &lt;1&gt;.jpg" in page and "ramplus-error" in page and page.count('class="ramplus-tags"') == 2
