# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Pictures of tagging results, drawn with matplotlib (the `visualize` extra: `pip install "transformers-ramplus[visualize]"`).

* [`plot_tags`]: one image with its tags and scores.
* [`plot_tagged_images`]: several images with their tags, in a grid.
* [`plot_heatmaps`]: where each tag looks: the image and one heatmap overlay per tag (from
  [`RamPlusModel.tag_heatmaps`]), in a grid.

Every function returns a `matplotlib.figure.Figure` built without pyplot (no global figure state, no window, any
backend): a notebook shows it when it is a cell's value; `figure.savefig("out.png")` writes it.
Images are anything the image processor reads (paths, URLs, PIL images, numpy arrays). Tag names are drawn with
matplotlib's default font, which has no Chinese glyphs: pass English names, or set a CJK font in `matplotlib.rcParams`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .models.ram_plus.image_processing_ram_plus import load_image


EXTRA_HINT = 'pip install "transformers-ramplus[visualize]"'


def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"transformers_ramplus.visualize draws with matplotlib, which is not installed: {EXTRA_HINT} "
            "(or pip install matplotlib)"
        ) from error
    return Figure


def _image(image):
    """An RGB numpy array of `image` (path, URL, PIL image, array...)."""

    return np.asarray(load_image(image))


def _tag_lines(tags, max_tags: int | None) -> list[str]:
    """`tags`: pipeline results (`[{"label", "score"}]`), names, or `(name, score)` pairs."""
    if tags is None:
        return []
    if isinstance(tags, (str, Mapping)):
        tags = [tags]
    lines = []
    for tag in list(tags)[: max_tags if max_tags is not None else None]:
        if isinstance(tag, Mapping):
            label, score = tag.get("label"), tag.get("score")
        elif isinstance(tag, (tuple, list)) and len(tag) == 2:
            label, score = tag
        else:
            label, score = tag, None
        lines.append(str(label) if score is None else f"{label}  {float(score):.2f}")
    total = len(tags)
    if max_tags is not None and total > max_tags:
        lines.append(f"(+{total - max_tags} more)")
    return lines


def _draw_image(ax, pixels, title=None, tags=None, max_tags=None, fontsize=8):
    ax.imshow(pixels)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(str(title), fontsize=fontsize + 1)
    lines = _tag_lines(tags, max_tags)
    if tags is not None:
        ax.text(
            0.02,
            0.98,
            "\n".join(lines) if lines else "(no tags)",
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=fontsize,
            family="monospace",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.75, "edgecolor": "none"},
        )


def _grid(count: int, columns: int, panel: float, aspect: float = 1.0):
    """A figure of `count` panels, `panel` inches wide and `aspect` (height / width) as high, plus room for titles."""
    if isinstance(columns, bool) or not isinstance(columns, int) or columns <= 0:
        raise ValueError(f"`columns` must be a positive integer, got {columns!r}")
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure = _figure_class()(figsize=(panel * columns, (panel * min(max(aspect, 0.25), 4.0) + 0.35) * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[count:]:
        ax.set_axis_off()
    return figure, axes


def plot_tags(image, tags, title: str | None = None, max_tags: int | None = 12, size: float = 4.0):
    """
    Draw `image` with its tags and scores (a box in its top-left corner).

    Args:
        image: a path, URL, PIL image or numpy array.
        tags: the image's tags: a pipeline result (`[{"label": ..., "score": ...}]`), names, or `(name, score)` pairs.
        title: a title above the image.
        max_tags: list at most this many tags (the rest are counted).
        size: the figure's size in inches.

    Returns:
        `matplotlib.figure.Figure`
    """
    pixels = _image(image)
    figure, axes = _grid(1, 1, size, pixels.shape[0] / pixels.shape[1])
    _draw_image(axes[0], pixels, title, tags if tags is not None else [], max_tags)
    return figure


def plot_tagged_images(images, results, titles=None, columns: int = 3, max_tags: int | None = 8, size: float = 3.5):
    """
    Draw several images with their tags, in a grid (`columns` per row).

    Args:
        images: a list of images (paths, URLs, PIL images, numpy arrays).
        results: one tag list per image (e.g. the pipeline's output for `images`).
        titles: optional title per image (default: the file name of path inputs).

    Returns:
        `matplotlib.figure.Figure`
    """
    images = list(images) if isinstance(images, (list, tuple)) else [images]
    results = list(results)
    if not images:
        raise ValueError("no images to draw")
    if len(results) != len(images):
        raise ValueError(f"{len(images)} images but {len(results)} results")
    if titles is None:
        titles = [_file_name(image) for image in images]
    elif len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    pixels = [_image(image) for image in images]
    aspect = max(p.shape[0] / p.shape[1] for p in pixels)
    figure, axes = _grid(len(images), columns, size, aspect)
    for ax, image, tags, title in zip(axes, pixels, results, titles):
        _draw_image(ax, image, title, tags if tags is not None else [], max_tags)
    return figure


def _file_name(image) -> str | None:
    if isinstance(image, str) or hasattr(image, "__fspath__"):
        return str(image).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return None


def _as_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def plot_heatmaps(
    image,
    heatmaps,
    tag_names: Sequence[str] | None = None,
    scores: Sequence[float] | None = None,
    image_index: int = 0,
    tags=None,
    columns: int = 5,
    alpha: float = 0.5,
    cmap: str = "jet",
    scale: str = "each",
    show_image: bool = True,
    size: float = 2.5,
):
    """
    Draw where each tag looks: `image`, then one overlay per tag of its heatmap on the image (a grid, `columns` per
    row), titled with the tag's name and score.

    Args:
        image: the image the heatmaps are of (a path, URL, PIL image or numpy array), at any size: each heatmap is
            stretched over it, as the processor stretched the image to its square input.
        heatmaps: a [`RamPlusHeatmapOutput`] (from `model.tag_heatmaps`; `image_index` picks the image, names and
            scores come from it), or a `(num_tags, height, width)` tensor or array.
        tag_names / scores: per-tag names and scores (taken from a `RamPlusHeatmapOutput` when not given).
        tags: tags to list on the image panel (e.g. the image's pipeline result); default: none listed.
        alpha: opacity of the heatmaps.
        scale: `"each"` (every map from 0 to its own peak: where each tag looks) or `"shared"` (one scale for all
            maps: which tag attends most sharply).
        show_image: add the plain image as the first panel.

    Returns:
        `matplotlib.figure.Figure`
    """
    if hasattr(heatmaps, "heatmaps") and hasattr(heatmaps, "logits"):  # a RamPlusHeatmapOutput
        output = heatmaps
        heatmaps = output.heatmaps[image_index]
        tag_names = output.tag_names if tag_names is None else tag_names
        if scores is None and output.logits is not None:
            scores = 1.0 / (1.0 + np.exp(-_as_numpy(output.logits[image_index])))
    maps = _as_numpy(heatmaps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"`heatmaps` must be (num_tags, height, width) for one image, got shape {maps.shape}")
    count = maps.shape[0]
    for what, values in (("tag_names", tag_names), ("scores", scores)):
        if values is not None and len(values) != count:
            raise ValueError(f"{count} heatmaps but {len(values)} {what}")
    if scale not in ("each", "shared"):
        raise ValueError(f"`scale` must be 'each' or 'shared', got {scale!r}")
    pixels = _image(image)
    height, width = pixels.shape[:2]
    figure, axes = _grid(count + bool(show_image), columns, size, height / width)
    if show_image:
        _draw_image(axes[0], pixels, "image", tags, None if tags is None else 12)
    shared_peak = float(maps.max()) if count else 1.0
    for index in range(count):
        ax = axes[index + bool(show_image)]
        ax.imshow(pixels)
        peak = shared_peak if scale == "shared" else float(maps[index].max())
        ax.imshow(
            maps[index],
            cmap=cmap,
            alpha=alpha,
            vmin=0.0,
            vmax=peak if peak > 0 else 1.0,
            extent=(0, width, height, 0),
            interpolation="bilinear",
        )
        ax.set_xticks([])
        ax.set_yticks([])
        name = tag_names[index] if tag_names is not None else f"tag {index}"
        ax.set_title(name if scores is None else f"{name}  {float(scores[index]):.2f}", fontsize=9)
    return figure


__all__ = ["plot_heatmaps", "plot_tagged_images", "plot_tags"]
