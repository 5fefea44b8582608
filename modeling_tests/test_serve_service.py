"""The serving worker's batch (`TaggingService`, no HTTP): the images of a batch are read by several threads, and
every answer is still the single-image pipeline result of its own image, in its own place."""

import pytest
from conftest import REFERENCE_IMAGES


@pytest.mark.parametrize("read_threads", [1, 3])
def test_threaded_reading_keeps_each_image_in_its_place(converted_tiny, read_threads):
    from transformers import pipeline

    from transformers_ramplus.serving.requests import ImageInput, TagRequest
    from transformers_ramplus.serving.service import TaggingService

    tagger = pipeline("zero-shot-image-tagging", model=str(converted_tiny), device="cpu")
    expected = {path.name: tagger(str(path)) for path in REFERENCE_IMAGES}
    service = TaggingService(str(converted_tiny), device="cpu", read_threads=read_threads)
    assert service.read_threads == read_threads
    photos = [ImageInput(path.name, data=path.read_bytes()) for path in REFERENCE_IMAGES]
    broken = ImageInput("broken.jpg", data=b"\xff\xd8 not a jpeg")
    requests = [
        TagRequest([photos[1], broken, photos[0]]),
        TagRequest([photos[0]]),
        TagRequest([broken]),
        TagRequest([photos[1], photos[1]], {"threshold": 0.0}),  # other options: its own forward pass
    ]
    answers = service.answer(requests)
    assert [answer.status for answer in answers] == [200, 200, 400, 200]
    first = answers[0].body["results"]
    assert [record["path"] for record in first] == [photos[1].name, "broken.jpg", photos[0].name]
    assert "error" in first[1] and "broken.jpg" in first[1]["error"]

    def same(got, want):
        return [t["label"] for t in got] == [t["label"] for t in want] and all(
            abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(got, want))

    assert same(first[0]["tags"], expected[photos[1].name])
    assert same(first[2]["tags"], expected[photos[0].name])
    assert same(answers[1].body["results"][0]["tags"], expected[photos[0].name])
    assert "broken.jpg" in answers[2].body["error"]
    everything = tagger(str(REFERENCE_IMAGES[1]), threshold=0.0)
    assert [same(record["tags"], everything) for record in answers[3].body["results"]] == [True, True]
    assert len(everything) > len(expected[photos[1].name])  # the threshold option reached its own group
