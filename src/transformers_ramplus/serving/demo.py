# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""The web demo (`ramplus demo`, Gradio; the `demo` extra): upload or paste an image, see its tags in English and
Chinese with their scores, move the threshold, tag with your own tags (names, or `name: description`), draw the
heatmap of a chosen tag, and read the caption of a captioning model (Tag2Text).

Everything goes through the same `zero-shot-image-tagging` pipeline as `ramplus tag` and `ramplus serve`
(`inference.tagging.load_tagger`); the heatmap is `RamPlusModel.tag_heatmaps` drawn by `visualize.plot_heatmaps`,
the caption is `inference.tag_files.caption_images`. Gradio is imported only when the demo is built.
"""

from __future__ import annotations

import html
import io
import os
from dataclasses import dataclass

from ..inference.tagging import load_tagger
from ..models.ram_plus.image_processing_ram_plus import DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class DemoResult:
    """The tags of one image: `tags` as `[{"label", "chinese", "score"}]` (best first) and the `caption` (or None)."""

    tags: list
    caption: str | None = None


def parse_own_tags(text: str | None):
    """The demo's "your own tags" box as the pipeline's `candidate_labels`: one tag a line (or comma-separated on
    one line); `name: description` lines make a mapping name -> descriptions. None when the box is empty."""
    if not text or not text.strip():
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and ":" not in lines[0]:
        lines = [part.strip() for part in lines[0].split(",") if part.strip()]
    if not any(":" in line for line in lines):
        return list(dict.fromkeys(lines))
    described: dict[str, list[str]] = {}
    for line in lines:
        name, _, description = line.partition(":")
        name, description = name.strip(), description.strip()
        if not name:
            raise ValueError(f"a tag line has no name before its ':': {line!r}")
        described.setdefault(name, [])
        if description:
            described[name].append(description)
    for name, descriptions in described.items():
        if not descriptions:
            described[name] = [name]  # a bare name among described tags: its name is its description
    return described


class TaggingDemo:
    """One model behind the demo's controls (usable without Gradio: `tag`, `heatmap`)."""

    def __init__(self, model, device=None, precision=None, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS):
        self.tagger, self.model_name = load_tagger(model, device=device, precision=precision)
        self.max_image_pixels = max_image_pixels
        self.captioning = getattr(self.tagger.model.config, "model_type", None) == "tag2text"
        self.open_set = not self.captioning  # Tag2Text's tag embeddings are learned: built-in tags only

    def _chinese(self, tag_set) -> dict:
        try:
            return dict(zip(tag_set.names, tag_set.labels("zh")))
        except ValueError:  # converted without Chinese names
            return {}

    def tag(self, image, threshold: float | None = None, own_tags: str | None = None, top_k: int | None = None) -> DemoResult:
        """Tag `image` (a PIL image, a path or URL) as the pipeline does: `threshold` None uses the model's per-tag
        thresholds; `own_tags` is the text of the "your own tags" box."""
        if image is None:
            raise ValueError("no image: upload or paste one")
        self._check_size(image)
        labels = parse_own_tags(own_tags)
        if labels is not None and not self.open_set:
            raise ValueError("this model (Tag2Text) tags with its built-in tags only; clear 'your own tags'")
        options = {"threshold": threshold, "top_k": top_k}
        if labels is not None:
            options["candidate_labels"] = labels
        results = self.tagger(image, **{k: v for k, v in options.items() if v is not None})
        chinese = self._chinese(self.tagger.get_tag_set(labels))
        tags = [{"label": t["label"], "chinese": chinese.get(t["label"], t["label"]), "score": float(t["score"])} for t in results]
        caption = None
        if self.captioning:
            from ..inference.tag_files import caption_images

            loaded = self.tagger.image_processor.load_image(image, 0) if not hasattr(image, "convert") else image
            caption = caption_images(self.tagger, [loaded.convert("RGB")], [results])[0]
        return DemoResult(tags=tags, caption=caption)

    def tag_many(self, paths, threshold: float | None = None, own_tags: str | None = None) -> list:
        """Tag several image files: `[(file name, DemoResult or the message of why it failed)]`, in order; a file
        that cannot be read is reported and the others are tagged."""
        if parse_own_tags(own_tags) is not None and not self.open_set:  # the options' error, not a file's
            raise ValueError("this model (Tag2Text) tags with its built-in tags only; clear 'your own tags'")
        if threshold is not None and not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        results = []
        for path in paths or []:
            name = os.path.basename(str(path))
            try:
                results.append((name, self.tag(str(path), threshold=threshold, own_tags=own_tags)))
            except (ValueError, TypeError, OSError) as error:  # this file's: report it, tag the others
                results.append((name, str(error)))
        return results

    def _check_size(self, image) -> None:
        size = getattr(image, "size", None)
        if size and self.max_image_pixels and size[0] * size[1] > self.max_image_pixels:
            raise ValueError(f"the image is too large: {size[0]}x{size[1]} pixels (at most {self.max_image_pixels})")

    def heatmap(self, image, tag: str, own_tags: str | None = None):
        """The heatmap figure (matplotlib `Figure`) of `tag` over `image`: where the model looks for it."""
        from ..visualize import plot_heatmaps

        if image is None or not tag:
            raise ValueError("tag an image first, then choose one of its tags")
        self._check_size(image)
        model = self.tagger.model
        if not hasattr(model, "tag_heatmaps"):
            raise ValueError(f"{type(model).__name__} draws no heatmaps")
        labels = parse_own_tags(own_tags)
        if labels is None:
            tags, row = [tag], 0
        else:
            tags = self.tagger.get_tag_set(labels)
            if tag not in tags.names:
                raise ValueError(f"{tag!r} is not one of your tags")
            row = list(tags.names).index(tag)
        if not hasattr(image, "convert"):
            image = self.tagger.image_processor.load_image(image, 0)
        image = image.convert("RGB")
        pixel_values = self.tagger.image_processor([image], return_tensors="pt")["pixel_values"].to(model.device)
        output = model.tag_heatmaps(pixel_values, tags=tags)
        score = float(output.logits[0, row].float().sigmoid())
        thumbnail = image.copy()
        thumbnail.thumbnail((512, 512))
        return plot_heatmaps(thumbnail, output.heatmaps[0, [row]].float(), tag_names=[tag], scores=[score], columns=1, size=5.0,
                             show_image=False)


def tags_html(tags: list) -> str:
    """The tags as an HTML table (one row per tag: English, Chinese, score), names escaped."""
    if not tags:
        return '<p id="ramplus-no-tags">no tags above the threshold</p>'
    rows = "".join(
        f'<tr class="ramplus-tag"><td class="en">{html.escape(t["label"])}</td><td class="zh">{html.escape(t["chinese"])}</td>'
        f'<td class="score">{t["score"]:.4f}</td></tr>'
        for t in tags
    )
    return f'<table id="ramplus-tags"><thead><tr><th>tag</th><th>中文</th><th>score</th></tr></thead><tbody>{rows}</tbody></table>'


def many_html(results: list) -> str:
    """`TaggingDemo.tag_many`'s results as HTML: each file's name, then its tag table or its error."""
    parts = []
    for name, result in results:
        parts.append(f'<h4 class="ramplus-file">{html.escape(name)}</h4>')
        if isinstance(result, str):
            parts.append(f'<p class="ramplus-error">{html.escape(result)}</p>')
        else:
            if result.caption:
                parts.append(f'<p class="ramplus-caption">{html.escape(result.caption)}</p>')
            parts.append(tags_html(result.tags).replace('id="ramplus-tags"', 'class="ramplus-tags"').replace(
                'id="ramplus-no-tags"', 'class="ramplus-no-tags"'))
    return "".join(parts) or "<p>no files</p>"


def _figure_image(figure):
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def require_gradio():
    """The `gradio` module, or an ImportError that says how to install it."""
    try:
        import gradio
    except ImportError as error:
        raise ImportError("the web demo needs Gradio: pip install 'transformers-ramplus[demo]'") from error
    return gradio


def build_demo(demo: TaggingDemo, title: str | None = None):
    """The Gradio `Blocks` of `demo` (not launched)."""
    gr = require_gradio()

    def on_tag(image, use_model_thresholds, threshold, own_tags):
        try:
            result = demo.tag(image, threshold=None if use_model_thresholds else float(threshold), own_tags=own_tags)
        except (ValueError, TypeError, OSError) as error:
            raise gr.Error(str(error))
        choices = [t["label"] for t in result.tags]
        return (
            tags_html(result.tags),
            gr.update(choices=choices, value=choices[0] if choices else None),
            gr.update(value=result.caption or "", visible=demo.captioning),
        )

    def on_heatmap(image, tag, own_tags):
        try:
            return _figure_image(demo.heatmap(image, tag, own_tags))
        except (ValueError, TypeError, OSError) as error:
            raise gr.Error(str(error))

    def on_many(files, use_model_thresholds, threshold, own_tags):
        try:
            threshold = None if use_model_thresholds else float(threshold)
            return many_html(demo.tag_many([getattr(f, "name", f) for f in files or []], threshold=threshold, own_tags=own_tags))
        except (ValueError, TypeError, OSError) as error:
            raise gr.Error(str(error))

    with gr.Blocks(title=title or "RAM++ image tagging") as blocks:
        gr.Markdown(f"# {html.escape(title or 'RAM++ image tagging')}\nModel: `{html.escape(str(demo.model_name))}`")
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="pil", sources=["upload", "clipboard"], label="image (upload or paste)", elem_id="ramplus-image")
                use_model_thresholds = gr.Checkbox(value=True, label="the model's per-tag thresholds", elem_id="ramplus-model-thresholds")
                threshold = gr.Slider(0.0, 1.0, value=0.68, step=0.01, label="threshold (when not the model's)", elem_id="ramplus-threshold")
                own_tags = gr.Textbox(
                    lines=3, label="your own tags (one a line; 'name: description' for descriptions; empty: built-in tags)",
                    elem_id="ramplus-own-tags", interactive=demo.open_set,
                )
                run = gr.Button("Tag", variant="primary", elem_id="ramplus-run")
            with gr.Column():
                caption = gr.Textbox(label="caption", visible=demo.captioning, elem_id="ramplus-caption")
                tags = gr.HTML(elem_id="ramplus-tags-box")
                chosen = gr.Dropdown(choices=[], label="heatmap of tag", elem_id="ramplus-heatmap-tag")
                draw = gr.Button("Heatmap", elem_id="ramplus-draw")
                heatmap = gr.Image(type="pil", label="heatmap", elem_id="ramplus-heatmap", interactive=False)
        with gr.Accordion("several images", open=False, elem_id="ramplus-several"):
            files = gr.File(file_count="multiple", file_types=["image"], label="images", elem_id="ramplus-files")
            run_many = gr.Button("Tag all", elem_id="ramplus-run-many")
            many = gr.HTML(elem_id="ramplus-many")
        inputs = [image, use_model_thresholds, threshold, own_tags]
        run_many.click(on_many, [files, use_model_thresholds, threshold, own_tags], many)
        run.click(on_tag, inputs, [tags, chosen, caption])
        image.upload(on_tag, inputs, [tags, chosen, caption])
        draw.click(on_heatmap, [image, chosen, own_tags], heatmap)
    return blocks


def launch_demo(model, host: str = "127.0.0.1", port: int = 7860, device=None, precision=None, share: bool = False, title=None):
    """Load `model`, build the demo and serve it until interrupted."""
    require_gradio()  # before the model loads
    blocks = build_demo(TaggingDemo(model, device=device, precision=precision), title=title)
    blocks.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, share=share, show_error=True)


__all__ = ["DemoResult", "TaggingDemo", "build_demo", "launch_demo", "many_html", "parse_own_tags", "require_gradio", "tags_html"]
