"""CLIP/SigLIP users: `hypothesis_template` in the tagging pipeline, `pipeline("zero-shot-image-classification")`."""

import pytest
import torch
from conftest import REFERENCE_IMAGES, tiny_text_model
from transformers import ZeroShotImageClassificationPipeline, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import transformers_ramplus  # noqa: F401  (registers the tagging task)
from transformers_ramplus import save_model_folder


IMAGES = [str(path) for path in REFERENCE_IMAGES]


@pytest.fixture(scope="module")
def text_tagger():
    model, tokenizer = tiny_text_model()
    return pipeline("zero-shot-image-tagging", model=model, tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="module")
def golden_classifier(converted_tiny):
    return pipeline("zero-shot-image-classification", model=str(converted_tiny), trust_remote_code=True, device="cpu")


def test_hypothesis_template_is_a_one_template_ensemble(text_tagger):
    labels = ["zebra stripes", "a wooden table"]
    template = "a blurry photo of {}."
    by_hypothesis = text_tagger(IMAGES[0], candidate_labels=labels, hypothesis_template=template, threshold=0.0)
    by_templates = text_tagger(IMAGES[0], candidate_labels=labels, templates=[template], threshold=0.0)
    assert by_hypothesis == by_templates
    default = text_tagger(IMAGES[0], candidate_labels=labels, threshold=0.0)
    assert {t["label"]: t["score"] for t in default} != {t["label"]: t["score"] for t in by_hypothesis}
    # the name of an ensemble, as `templates` takes it
    compact = text_tagger(IMAGES[0], candidate_labels=labels, hypothesis_template="compact", threshold=0.0)
    assert compact == text_tagger(IMAGES[0], candidate_labels=labels, templates="compact", threshold=0.0)
    # "{}": the labels as written (transformers' convention for labels that are already sentences)
    as_written = text_tagger(IMAGES[0], candidate_labels=labels, hypothesis_template="{}", threshold=0.0)
    assert len(as_written) == 2


@pytest.mark.parametrize(
    "bad, error",
    [("a photo of a cat", ValueError), ("", ValueError), (3, TypeError), ([], TypeError)],
)
def test_bad_hypothesis_template_is_named(text_tagger, bad, error):
    with pytest.raises(error, match="hypothesis_template"):
        text_tagger(IMAGES[0], candidate_labels=["zebra"], hypothesis_template=bad)


def test_hypothesis_template_and_other_templates_conflict(text_tagger):
    with pytest.raises(ValueError, match="not both"):
        text_tagger(IMAGES[0], candidate_labels=["zebra"], hypothesis_template="{}", templates="compact")


def test_classification_task_scores_are_the_golden_sigmoids(golden_classifier, reference_outputs):
    """Built-in labels through transformers' task name: every candidate label, sorted, scored as the authors' model."""
    names = golden_classifier.model.config.tag_names
    labels = [names[3], names[0], names[20], names[7]]
    expected = torch.sigmoid(reference_outputs["logits"])
    for image_index, image in enumerate(IMAGES):
        result = golden_classifier(image, candidate_labels=labels)
        assert [sorted(r) for r in result] == [["label", "score"]] * len(labels)
        assert {r["label"] for r in result} == set(labels)  # no threshold: every label
        scores = [r["score"] for r in result]
        assert scores == sorted(scores, reverse=True)
        for r in result:
            torch.testing.assert_close(
                torch.tensor(r["score"]), expected[image_index, names.index(r["label"])], atol=1e-4, rtol=0
            )
    # transformers' calling conventions: `image=` and a list of images
    assert golden_classifier(image=IMAGES[0], candidate_labels=labels) == golden_classifier(IMAGES[0], candidate_labels=labels)
    both = golden_classifier(IMAGES, candidate_labels=labels)
    assert len(both) == 2 and both[1] == golden_classifier(IMAGES[1], candidate_labels=labels)
    # top_k and threshold still apply when asked for
    assert golden_classifier(IMAGES[0], candidate_labels=labels, top_k=2) == golden_classifier(IMAGES[0], candidate_labels=labels)[:2]


def test_classification_task_needs_candidate_labels(golden_classifier):
    with pytest.raises(ValueError, match="candidate_labels"):
        golden_classifier(IMAGES[0])


def test_classification_task_with_new_labels_and_a_template(tmp_path):
    model, tokenizer = tiny_text_model()
    folder = save_model_folder(tmp_path / "tiny-text", model, tokenizer=tokenizer)
    classifier = pipeline("zero-shot-image-classification", model=str(folder), trust_remote_code=True, device="cpu")
    tagger = pipeline("zero-shot-image-tagging", model=str(folder), device="cpu")
    labels = ["zebra stripes", "a wooden table", "sky"]
    got = classifier(IMAGES[1], candidate_labels=labels, hypothesis_template="This is a photo of {}.")
    want = tagger(IMAGES[1], candidate_labels=labels, hypothesis_template="This is a photo of {}.", threshold=0.0)
    assert [r["label"] for r in got] == [r["label"] for r in want]
    torch.testing.assert_close(torch.tensor([r["score"] for r in got]), torch.tensor([r["score"] for r in want]))


def test_other_models_keep_transformers_own_pipeline():
    """The package never registers the classification task: CLIP and SigLIP load exactly as before."""
    impl = PIPELINE_REGISTRY.supported_tasks["zero-shot-image-classification"]["impl"]
    stock = "transformers.pipelines.zero_shot_image_classification.ZeroShotImageClassificationPipeline"
    assert impl in (ZeroShotImageClassificationPipeline, stock)
