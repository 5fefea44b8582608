"""The package's one tagging loop (`inference.tagging`): the pipeline's `raw_scores`, `tag_batches` (unreadable
inputs are their own errors), the device choice and the option checks every entry point shares."""

import numpy as np
import pytest
import torch

from conftest import REFERENCE_IMAGES
from transformers_ramplus.inference.tagging import check_options, load_tagger, tag_batches
from transformers_ramplus.pipelines.zero_shot_image_tagging import resolve_device
from transformers_ramplus.training.metrics import score_images


IMAGES = [str(path) for path in REFERENCE_IMAGES]


@pytest.fixture(scope="module")
def tagger(converted_tiny):
    return load_tagger(str(converted_tiny), device="cpu")[0]


def test_raw_scores_are_what_the_tags_are_cut_from(tagger):
    tag_set = tagger.get_tag_set(None)
    raw = tagger(IMAGES, raw_scores=True)
    tags = tagger(IMAGES, threshold=0.4)
    for scores, result in zip(raw, tags):
        assert scores.dtype == torch.float32 and scores.shape == (len(tag_set),)
        expected = {name for name, score in zip(tag_set.names, scores.tolist()) if score > 0.4}
        assert {t["label"] for t in result} == expected
        by_name = dict(zip(tag_set.names, scores.tolist()))
        assert all(abs(by_name[t["label"]] - t["score"]) < 1e-6 for t in result)


def test_tag_batches_keeps_order_and_records_unreadable_inputs(tagger, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    items = [IMAGES[0], str(bad), IMAGES[1], str(tmp_path / "missing.png"), IMAGES[0]]
    batches = list(tag_batches(tagger, items, threshold=0.0, top_k=3, batch_size=2, indices=[10, 11, 12, 13, 14]))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    tagged = [t for batch in batches for t in batch]
    assert [t.index for t in tagged] == list(range(5))
    assert [t.error is None for t in tagged] == [True, False, True, False, True]
    assert "11" in tagged[1].error and "bad.jpg" in tagged[1].error  # the position given in `indices`
    expected = tagger(IMAGES, threshold=0.0, top_k=3)
    for got, want in zip([tagged[0], tagged[2], tagged[4]], [expected[0], expected[1], expected[0]]):
        assert [t["label"] for t in got.result] == [t["label"] for t in want]
        assert np.allclose([t["score"] for t in got.result], [t["score"] for t in want], atol=1e-5)
    with pytest.raises(ValueError, match="bad.jpg"):
        list(tag_batches(tagger, items, on_error="raise"))


def test_score_images_repeats_columns_and_skips_unreadable(converted_tiny, tagger, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    model = tagger.model
    scores, ok = score_images(model, tagger.image_processor, [IMAGES[0], str(bad), IMAGES[1]], tag_indices=[2, 0, 2])
    assert ok.tolist() == [True, False, True] and np.isnan(scores[1]).all()
    assert np.array_equal(scores[ok][:, 0], scores[ok][:, 2])  # a repeated class gets the same scores
    raw = tagger([IMAGES[0], IMAGES[1]], raw_scores=True)
    np.testing.assert_allclose(scores[ok], torch.stack(raw)[:, [2, 0, 2]].numpy(), atol=1e-5)


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(-1) == torch.device("cpu")
    assert resolve_device(torch.device("meta")) == torch.device("meta")
    with pytest.raises(TypeError, match="device"):
        resolve_device(1.5)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device() == torch.device("cpu") and resolve_device(1) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device() == torch.device("cuda:1")  # the launcher's local rank, modulo the GPUs
    assert resolve_device(rank=4) == torch.device("cuda:0") and resolve_device(1) == torch.device("cuda:1")


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"threshold": "high"}, TypeError, "threshold"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"language": "fr"}, ValueError, "language"),
        ({"precision": "fp16"}, ValueError, "precision"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"on_error": "ignore"}, ValueError, "on_error"),
    ],
)
def test_check_options(options, error, message):
    with pytest.raises(error, match=message):
        check_options(**options)


def test_check_options_returns_what_the_pipeline_takes():
    assert check_options(threshold=1, top_k=2, language="zh") == (1.0, 2, "zh")
    assert check_options() == (None, None, "en")
