# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tag sets: turn tag names (and optional descriptions) into the label embeddings RAM++ tags with.

* A tag that is in the model's built-in vocabulary reuses the model's trained label embeddings and tuned threshold
  (no text tower needed).
* A new tag given by name only is embedded as the authors' open-set code does (`templates.py`): their 63 prompt
  templates filled with the processed name, each text encoded with the CLIP text tower and L2-normalized; the mean is
  L2-normalized again into one embedding (D = 1). The earlier 14-template set stays available as
  `templates="compact"`.
* A new tag given with its own descriptions (`descriptions.py`: for example LLM-written, see `ramplus describe`, or
  the authors' descriptions of all 4585 built-in tags, read by Hub dataset id) gets one L2-normalized CLIP embedding
  per description; tags may have different numbers of descriptions (padded, with a mask that the model's re-weighting
  softmax respects).
* New tags default to threshold 0.5, as in the original open-set inference.

Texts are encoded by `encoding.py` (batched, cached per text tower).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import HfApi, hf_hub_download
from safetensors.torch import load_file, save_file

from ..io.atomic import atomic_file
from ..io.jsonfiles import check_json_file
from ..models.ram_plus.configuration_ram_plus import validate_language, validate_threshold
from .descriptions import load_descriptions, select_descriptions, write_json_atomic
from .encoding import encode_texts, tokenizer_for_model
from .templates import name_prompts, resolve_name_templates


logger = logging.getLogger(__name__)

TAG_SET_CONFIG_NAME = "tag_set.json"
TAG_SET_WEIGHTS_NAME = "tag_set.safetensors"
NEW_TAG_THRESHOLD = 0.5

# ------------------------------------------------------------------------------------------------------ tag sets
class TagSet:
    """
    A set of tags ready for RAM++: names, label embeddings, per-tag description mask and thresholds.

    Build one with [`TagSet.from_model`] (built-in tags, new names, and/or tags with descriptions, mixed freely), save
    it with [`TagSet.save_pretrained`] (`tag_set.safetensors` + `tag_set.json`), load it with
    [`TagSet.from_pretrained`] (a directory or a Hub repository), and tag with `model(pixel_values,
    **tag_set.model_inputs(model))`.

    Attributes:
        names (`list[str]`): tag names, in output order.
        label_embeds (`torch.FloatTensor` of shape `(num_tags, D, text_embed_dim)` or `None`): L2-normalized rows;
            `None` for a set made only of built-in tags (the model's own rows are used through `tag_indices`).
        description_mask (`torch.BoolTensor` of shape `(num_tags, D)` or `None`): real rows (`None`: all).
        thresholds (`list[float]`): decision threshold per tag (built-in: the model's tuned one; new: 0.5).
        descriptions (`list[list[str] | None]`): the texts encoded per tag (`None` for built-in tags).
        builtin_indices (`list[int | None]`): index in the model's vocabulary of each built-in tag, else `None`.
        chinese_names (`list[str | None]`): Chinese names of built-in tags, when the model knows them.
    """

    def __init__(
        self,
        names: Sequence[str],
        label_embeds: torch.Tensor | None = None,
        description_mask: torch.Tensor | None = None,
        thresholds: Sequence[float] | None = None,
        descriptions: Sequence[Sequence[str] | None] | None = None,
        builtin_indices: Sequence[int | None] | None = None,
        chinese_names: Sequence[str | None] | None = None,
    ):
        names = [str(n) for n in names]
        if not names:
            raise ValueError("a tag set needs at least one tag")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tag names must be unique, duplicated: {duplicates[:10]}")
        num_tags = len(names)

        def per_tag(values, what, default):
            if values is None:
                return [default] * num_tags
            values = list(values)
            if len(values) != num_tags:
                raise ValueError(f"`{what}` has {len(values)} entries for {num_tags} tags")
            return values

        self.names = names
        self.builtin_indices = [None if i is None else int(i) for i in per_tag(builtin_indices, "builtin_indices", None)]
        self.descriptions = [None if d is None else list(d) for d in per_tag(descriptions, "descriptions", None)]
        self.chinese_names = per_tag(chinese_names, "chinese_names", None)
        self.thresholds = [
            validate_threshold(value, f"threshold of tag {name!r}")
            for name, value in zip(names, per_tag(thresholds, "thresholds", NEW_TAG_THRESHOLD))
        ]
        if label_embeds is None:
            missing = [n for n, i in zip(names, self.builtin_indices) if i is None]
            if missing:
                raise ValueError(f"tags {missing[:10]} are not built-in, so the tag set needs their `label_embeds`")
            if description_mask is not None:
                raise ValueError("`description_mask` needs `label_embeds`")
        else:
            if not isinstance(label_embeds, torch.Tensor) or label_embeds.dim() != 3 or label_embeds.shape[0] != num_tags:
                shape = tuple(label_embeds.shape) if isinstance(label_embeds, torch.Tensor) else type(label_embeds).__name__
                raise ValueError(f"`label_embeds` must be a (num_tags={num_tags}, D, dim) tensor, got {shape}")
            if description_mask is not None:
                description_mask = torch.as_tensor(description_mask).bool()
                if description_mask.shape != label_embeds.shape[:2]:
                    raise ValueError(
                        f"`description_mask` must have shape {tuple(label_embeds.shape[:2])}, got {tuple(description_mask.shape)}"
                    )
                empty = [names[i] for i in (~description_mask.any(dim=1)).nonzero().flatten().tolist()]
                if empty:
                    raise ValueError(f"tags without any description: {empty[:10]}")
                if bool(description_mask.all()):
                    description_mask = None
        self.label_embeds = label_embeds
        self.description_mask = description_mask

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        builtin = sum(i is not None for i in self.builtin_indices)
        width = None if self.label_embeds is None else tuple(self.label_embeds.shape)
        return f"TagSet({len(self)} tags, {builtin} built-in, label_embeds={width})"

    @property
    def is_builtin_subset(self) -> bool:
        """True when every tag is built-in and no embeddings are stored: tagging uses `tag_indices`."""
        return self.label_embeds is None

    @property
    def description_counts(self) -> list[int] | None:
        if self.label_embeds is None:
            return None
        if self.description_mask is None:
            return [self.label_embeds.shape[1]] * len(self)
        return self.description_mask.sum(dim=1).tolist()

    def labels(self, language: str = "en") -> list[str]:
        """Output names: English, or Chinese (`"zh"`) for built-in tags that have one (new tags keep their name)."""
        if validate_language(language) == "en":
            return list(self.names)
        if all(c is None for c in self.chinese_names) and any(i is not None for i in self.builtin_indices):
            raise ValueError("no Chinese tag names are known: the model was converted without them")
        return [c.strip() if c else n for n, c in zip(self.names, self.chinese_names)]

    # ------------------------------------------------------------------ model inputs
    def _check_model(self, model) -> None:
        tag_names = model.config.tag_names
        for name, index in zip(self.names, self.builtin_indices):
            if index is not None and (index >= len(tag_names) or tag_names[index] != name):
                raise ValueError(
                    f"tag set entry {name!r} refers to built-in tag #{index}, which this model does not have; build "
                    "the tag set from this model"
                )
        if self.label_embeds is not None and self.label_embeds.shape[-1] != model.config.text_embed_dim:
            raise ValueError(
                f"tag set embeddings have width {self.label_embeds.shape[-1]}, the model needs {model.config.text_embed_dim}"
            )

    def model_inputs(self, model) -> dict:
        """Keyword arguments for `model(...)`: `tag_indices` for built-in tags only, else `label_embeds` (+ mask)."""
        self._check_model(model)
        device = model.label_embeds.device
        if self.label_embeds is None:
            return {"tag_indices": torch.tensor(self.builtin_indices, dtype=torch.long, device=device)}
        inputs = {"label_embeds": self.label_embeds.to(device=device, dtype=model.query_projection.weight.dtype)}
        if self.description_mask is not None:
            inputs["description_mask"] = self.description_mask.to(device)
        return inputs

    # ------------------------------------------------------------------ construction
    @classmethod
    def builtin(cls, model, tags: Iterable[str | int] | None = None) -> "TagSet":
        """The built-in tags (all, or the named/indexed subset) of `model`: no text work, tuned thresholds."""
        config = model.config
        if tags is None:
            indices = list(range(config.num_tags))
        else:
            indices = []
            for tag in tags:
                if isinstance(tag, int) and not isinstance(tag, bool):
                    if not 0 <= tag < config.num_tags:
                        raise ValueError(f"built-in tag index {tag} is outside [0, {config.num_tags})")
                    indices.append(tag)
                elif tag in config.label2id:
                    indices.append(config.label2id[tag])
                else:
                    raise ValueError(f"{tag!r} is not a built-in tag of this model")
        thresholds = config.thresholds()
        chinese = config.tag_names_chinese
        names = config.tag_names
        return cls(
            names=[names[i] for i in indices],
            thresholds=[thresholds[i] for i in indices],
            builtin_indices=indices,
            chinese_names=[chinese[i] for i in indices] if chinese is not None else None,
        )

    @classmethod
    def from_model(
        cls,
        model,
        tags=None,
        tokenizer=None,
        templates: str | Sequence[str] | None = None,
        use_builtin: bool = True,
        batch_size: int = 256,
        show_progress: bool | None = None,
        padding: str = "longest",
        use_cache: bool = True,
    ) -> "TagSet":
        """
        Build a tag set for `model`.

        Args:
            tags: `None` (all built-in tags); a list of tag names (built-in names reuse the trained embeddings, other
                names are embedded with the prompt `templates`); or a mapping `tag -> descriptions` (a list of
                texts, each encoded and L2-normalized; an empty list or `None` treats the tag like a bare name). Also
                accepts the original description-file format (a list of one-key objects).
            tokenizer: the CLIP tokenizer (or a processor that carries one), needed only for new tags.
            templates: how names without descriptions are embedded: `None` or `"ram_plus"` (default: the authors'
                63-template ensemble with their name processing, exactly as their open-set code; see
                [`ram_plus_name_prompts`]), `"compact"` (this package's earlier 14 templates), or a sequence of your
                own templates filled as written (`"{}"` is the tag, `"{article}"` becomes "a"/"an"). Each filled
                text is encoded and L2-normalized, and their mean, L2-normalized again, is the tag's one embedding.
            use_builtin: reuse the built-in embeddings for names in the model's vocabulary (set `False` to embed
                every name with the templates).
            batch_size / show_progress / padding / use_cache: text encoding options (see [`encode_texts`]).
        """
        if tags is None:
            return cls.builtin(model)
        if isinstance(tags, str):
            tags = [tags]
        if isinstance(tags, Mapping) or (isinstance(tags, list) and tags and isinstance(tags[0], Mapping)):
            entries = [(name, texts or None) for name, texts in load_descriptions(tags).items()]
        else:
            entries = []
            for tag in tags:
                if not isinstance(tag, str):
                    raise TypeError(f"tag names must be strings, got {type(tag).__name__}: {tag!r:.80}")
                entries.append((tag, None))
        if not entries:
            raise ValueError("`tags` is empty; pass None for all built-in tags")
        for name, _ in entries:
            if not name.strip():
                raise ValueError(f"tag names must be non-empty, got {name!r}")
        templates = resolve_name_templates(templates)
        if tokenizer is not None and hasattr(tokenizer, "image_processor"):  # a processor: use its tokenizer
            tokenizer = getattr(tokenizer, "tokenizer", None)

        config = model.config
        label2id = config.label2id if use_builtin else {}
        builtin_rows = model.label_embeds.detach().view(config.num_tags, config.descriptions_per_tag, -1)
        builtin_mask = model.builtin_description_mask()
        thresholds_all = config.thresholds()
        chinese_all = config.tag_names_chinese

        # gather every text to encode first, so that one batched pass does all the text work
        texts: list[str] = []
        plan = []  # (kind, payload) per tag
        for name, descriptions in entries:
            if descriptions is None and name in label2id:
                plan.append(("builtin", label2id[name]))
            elif descriptions is None:
                filled = name_prompts(name, templates)
                plan.append(("template", (len(texts), len(filled))))
                texts.extend(filled)
            else:
                plan.append(("descriptions", (len(texts), len(descriptions))))
                texts.extend(descriptions)
        if all(kind == "builtin" for kind, _ in plan):
            return cls.builtin(model, [index for _, index in plan])

        if tokenizer is None:
            tokenizer = tokenizer_for_model(model)
        embeds = encode_texts(
            model, tokenizer, texts, batch_size=batch_size, padding=padding, show_progress=show_progress, use_cache=use_cache
        )
        rows: list[torch.Tensor] = []
        names, thresholds, descriptions_out, builtin_indices, chinese = [], [], [], [], []
        for (name, descriptions), (kind, payload) in zip(entries, plan):
            names.append(name)
            if kind == "builtin":
                row = builtin_rows[payload].float().cpu()
                rows.append(row if builtin_mask is None else row[builtin_mask[payload].cpu()])  # its real rows
                thresholds.append(thresholds_all[payload])
                descriptions_out.append(None)
                builtin_indices.append(payload)
                chinese.append(chinese_all[payload] if chinese_all is not None else None)
                continue
            start, count = payload
            block = embeds[start : start + count]
            if kind == "template":
                block = F.normalize(block.mean(dim=0, keepdim=True), dim=-1)
                descriptions_out.append(None)
            else:
                descriptions_out.append(list(descriptions))
            rows.append(block)
            thresholds.append(NEW_TAG_THRESHOLD)
            builtin_indices.append(None)
            chinese.append(None)
        label_embeds, mask = _pad_rows(rows, embeds.shape[-1])
        tag_set = cls(
            names=names,
            label_embeds=label_embeds,
            description_mask=mask,
            thresholds=thresholds,
            descriptions=descriptions_out,
            builtin_indices=builtin_indices,
            chinese_names=chinese,
        )
        tag_set.templates = templates
        return tag_set

    @classmethod
    def from_descriptions(
        cls,
        model,
        source,
        tags: Iterable[str] | str | None = None,
        *,
        filename: str | None = None,
        repo_type: str = "dataset",
        revision: str | None = None,
        token=None,
        cache_dir=None,
        local_files_only: bool = False,
        **options,
    ) -> "TagSet":
        """
        Build a tag set from tag descriptions in a file, a folder or a Hub repository (a dataset by default; read with
        [`load_descriptions`], which takes `filename`, `repo_type`, `revision`, `token`, `cache_dir` and
        `local_files_only`): every tag the file describes, or only `tags`, in that order (a tag the file does not
        describe is taken by name: built-in, or embedded with the name templates). Every described tag gets one
        embedding per description and threshold 0.5, as in the authors' open-set inference. `options` go to
        [`TagSet.from_model`] (`tokenizer`, `templates`, `batch_size`, ...).

        Example, the authors' descriptions of chosen built-in tags:

        ```python
        TagSet.from_descriptions(model, AUTHORS_DESCRIPTIONS_REPO, ["dog", "cat"], filename=AUTHORS_DESCRIPTIONS_FILE,
                                 tokenizer=processor)
        ```
        """
        descriptions = load_descriptions(
            source,
            filename,
            repo_type=repo_type,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        return cls.from_model(model, select_descriptions(descriptions, tags, origin=os.fspath(source)), **options)

    @classmethod
    def from_vocabulary(cls, model) -> "TagSet":
        """The model's whole built-in vocabulary *with* its embeddings (e.g. to save the tags of a fine-tuned model
        next to an adapter, or to move them to another model with [`TagSet.apply_to`])."""
        config = model.config
        embeds = model.label_embeds.detach().float().cpu().view(config.num_tags, config.descriptions_per_tag, -1)
        mask = model.builtin_description_mask()
        return cls(
            names=config.tag_names,
            label_embeds=embeds.clone(),
            description_mask=None if mask is None else mask.cpu(),
            thresholds=config.thresholds(),
            chinese_names=config.tag_names_chinese,
        )

    def _rows(self, model) -> list[torch.Tensor]:
        """The real description rows of every tag, `(count, dim)` each (built-in tags read from `model`)."""
        self._check_model(model)
        if self.label_embeds is None:
            builtin = TagSet.from_vocabulary(model)
            return [builtin._rows(model)[i] for i in self.builtin_indices]
        embeds = self.label_embeds.detach().float().cpu()
        if self.description_mask is None:
            return list(embeds)
        return [row[mask] for row, mask in zip(embeds, self.description_mask.cpu())]

    def apply_to(self, model, keep_existing: bool = True) -> list[int]:
        """
        Make these tags part of `model`'s stored vocabulary (it then tags them without any extra input, saves and
        reloads them, and fine-tunes on them).

        `keep_existing=True` extends the current vocabulary (a tag whose name already exists is replaced in place);
        `False` replaces it. Thresholds come from the set (0.5 for new tags, the tuned value for built-in ones).
        Returns the ids of this set's tags in the new vocabulary.
        """
        config = model.config
        new_rows = self._rows(model)
        if keep_existing:
            current = TagSet.from_vocabulary(model)
            names, rows, thresholds = list(current.names), current._rows(model), list(current.thresholds)
            chinese = list(config.tag_names_chinese) if config.tag_names_chinese is not None else None
        else:
            names, rows, thresholds = [], [], []
            chinese = [] if any(c is not None for c in self.chinese_names) else None
        for name, row, threshold, chinese_name in zip(self.names, new_rows, self.thresholds, self.chinese_names):
            if name in names:
                position = names.index(name)
                rows[position], thresholds[position] = row, threshold
                if chinese is not None and chinese_name is not None:
                    chinese[position] = chinese_name
                continue
            names.append(name)
            rows.append(row)
            thresholds.append(threshold)
            if chinese is not None:
                chinese.append(chinese_name if chinese_name is not None else name)
        stacked, mask = _pad_rows(rows, config.text_embed_dim)
        depth = stacked.shape[1]
        counts = mask.sum(dim=1).tolist()
        model.set_vocabulary(
            names,
            stacked,
            thresholds=thresholds,
            chinese_names=chinese,
            description_counts=None if all(c == depth for c in counts) else counts,
        )
        return [names.index(name) for name in self.names]

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, save_directory, push_to_hub: bool = False, repo_id: str | None = None, **hub_kwargs):
        """Write `tag_set.json` (names, descriptions, thresholds, built-in indices, Chinese names) and, when the set
        has embeddings, `tag_set.safetensors` (`label_embeds` and `description_mask`). Files are written to
        temporary names and moved into place. With `push_to_hub=True` the folder is uploaded to `repo_id`."""

        save_directory = Path(save_directory)
        if save_directory.is_file():
            raise ValueError(f"{os.fspath(save_directory)!r} is a file; `save_pretrained` needs a directory")
        save_directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": "ramplus-tag-set",
            "version": 1,
            "names": self.names,
            "thresholds": self.thresholds,
            "descriptions": self.descriptions,
            "builtin_indices": self.builtin_indices,
            "chinese_names": self.chinese_names,
            "templates": _templates_to_json(getattr(self, "templates", None)),
            "has_embeddings": self.label_embeds is not None,
        }
        weights = save_directory / TAG_SET_WEIGHTS_NAME
        if self.label_embeds is not None:
            tensors = {"label_embeds": self.label_embeds.detach().float().cpu().contiguous()}
            mask = self.description_mask
            if mask is None:
                mask = torch.ones(self.label_embeds.shape[:2], dtype=torch.bool)
            tensors["description_mask"] = mask.to(torch.uint8).contiguous()
            with atomic_file(weights, "path") as temporary:
                save_file(tensors, os.fspath(temporary), metadata={"format": "pt"})
        elif weights.exists():
            weights.unlink()
        write_json_atomic(save_directory / TAG_SET_CONFIG_NAME, meta)
        if push_to_hub:
            self.push_to_hub(repo_id or save_directory.name, folder=save_directory, **hub_kwargs)
        return save_directory

    def push_to_hub(self, repo_id: str, folder=None, commit_message: str = "Upload RAM++ tag set", private=None, token=None, **kwargs):
        """Upload the tag set to a Hub repository (created when missing)."""

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type=kwargs.pop("repo_type", None))
        with tempfile.TemporaryDirectory() as scratch:
            if folder is None:
                folder = self.save_pretrained(Path(scratch) / "tag_set")
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=os.fspath(folder),
                allow_patterns=[TAG_SET_CONFIG_NAME, TAG_SET_WEIGHTS_NAME],
                commit_message=commit_message,
                **kwargs,
            )

    @classmethod
    def from_pretrained(cls, path_or_repo_id, revision: str | None = None, token=None, cache_dir=None, local_files_only=False) -> "TagSet":
        """Load a tag set from a directory written by [`TagSet.save_pretrained`] or from a Hub repository id."""

        path = Path(path_or_repo_id)
        if path.is_dir():
            config_file = path / TAG_SET_CONFIG_NAME
            if not config_file.is_file():
                raise ValueError(f"{os.fspath(path)!r} holds no {TAG_SET_CONFIG_NAME}; it is not a saved tag set")
            weights_file = path / TAG_SET_WEIGHTS_NAME
        else:

            kwargs = dict(revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only)
            config_file = Path(hf_hub_download(os.fspath(path_or_repo_id), TAG_SET_CONFIG_NAME, **kwargs))
            weights_file = None
        try:
            check_json_file(config_file)
            with open(config_file, encoding="utf-8") as handle:
                meta = json.load(handle)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{os.fspath(config_file)!r} is not a valid tag set file (corrupt JSON: {error})") from error
        if not isinstance(meta, dict) or meta.get("format") != "ramplus-tag-set":
            raise ValueError(f"{os.fspath(config_file)!r} is not a RAM++ tag set file")
        names = meta.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{os.fspath(config_file)!r} is corrupt: `names` must be a non-empty list of tag names")
        label_embeds = description_mask = None
        if meta.get("has_embeddings"):
            if weights_file is None:
                weights_file = Path(hf_hub_download(os.fspath(path_or_repo_id), TAG_SET_WEIGHTS_NAME, **kwargs))
            if not weights_file.is_file():
                raise ValueError(f"the tag set needs {os.fspath(weights_file)!r}, which is missing")
            try:
                tensors = load_file(os.fspath(weights_file))
                label_embeds = tensors["label_embeds"]
            except Exception as error:  # truncated or foreign safetensors files raise the library's own errors
                raise ValueError(f"{os.fspath(weights_file)!r} is corrupt or not a tag set's weights: {error!r}") from error
            if label_embeds.ndim != 3 or label_embeds.shape[0] != len(names) or not torch.isfinite(label_embeds).all():
                raise ValueError(
                    f"{os.fspath(weights_file)!r} is corrupt: `label_embeds` of shape {tuple(label_embeds.shape)} for "
                    f"{len(names)} tags, or with NaN/infinite values"
                )
            description_mask = tensors.get("description_mask")
            description_mask = None if description_mask is None else description_mask.bool()
        try:
            tag_set = cls(
                names=names,
                label_embeds=label_embeds,
                description_mask=description_mask,
                thresholds=meta.get("thresholds"),
                descriptions=meta.get("descriptions"),
                builtin_indices=meta.get("builtin_indices"),
                chinese_names=meta.get("chinese_names"),
            )
        except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as error:
            raise ValueError(f"the tag set in {os.fspath(config_file.parent)!r} is corrupt: {error}") from error
        if meta.get("templates"):
            templates = meta["templates"]
            tag_set.templates = templates if isinstance(templates, str) else tuple(templates)
        return tag_set


def _templates_to_json(templates):
    """`templates` as stored in `tag_set.json`: the name of a built-in set, a list of templates, or `[]` (none)."""
    if templates is None:
        return []
    return templates if isinstance(templates, str) else list(templates)


def _pad_rows(rows: Sequence[torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-tag `(count, width)` description rows into `(tags, max count, width)` (zero padding) and the
    `(tags, max count)` mask of the real rows."""
    depth = max(row.shape[0] for row in rows)
    stacked = torch.zeros(len(rows), depth, width)
    mask = torch.zeros(len(rows), depth, dtype=torch.bool)
    for index, row in enumerate(rows):
        stacked[index, : row.shape[0]] = row
        mask[index, : row.shape[0]] = True
    return stacked, mask


def _freeze(tags):
    """A hashable key for a `tags` argument (list of names, mapping to descriptions, or None)."""
    if tags is None:
        return None
    if isinstance(tags, str):
        return ("names", (tags,))
    if isinstance(tags, Mapping):
        return ("mapping", tuple((k, None if v is None else tuple([v] if isinstance(v, str) else v)) for k, v in tags.items()))
    items = list(tags)
    if items and isinstance(items[0], Mapping):
        return _freeze(load_descriptions(items))
    return ("names", tuple(items))


__all__ = [
    "AUTHORS_DESCRIPTIONS_FILE",
    "AUTHORS_DESCRIPTIONS_REPO",
    "COMPACT_TEMPLATES",
    "DEFAULT_NAME_TEMPLATES",
    "NAME_TEMPLATE_SETS",
    "NEW_TAG_THRESHOLD",
    "RAM_PLUS_TEMPLATES",
    "TagSet",
    "clear_text_cache",
    "encode_texts",
    "load_descriptions",
    "load_name_ensemble_data",
    "name_prompts",
    "ram_plus_name_prompts",
    "resolve_descriptions_file",
    "save_descriptions",
    "select_descriptions",
]
