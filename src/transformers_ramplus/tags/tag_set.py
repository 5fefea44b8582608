# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tag sets: turn tag names (and optional descriptions) into the label embeddings RAM++ tags with.

* A tag that is in the model's built-in vocabulary reuses the model's trained label embeddings and tuned threshold
  (no text tower needed).
* A new tag given by name only is embedded as the authors' open-set code does: their 63 prompt templates filled with
  the processed name, each text encoded with the CLIP text tower and L2-normalized; the mean is L2-normalized again
  into one embedding (D = 1). The earlier 14-template set stays available as `templates="compact"`.
* A new tag given with its own descriptions (for example LLM-written, see `ramplus describe`, or the authors'
  descriptions of all 4585 built-in tags, read by Hub dataset id) gets one L2-normalized CLIP embedding per
  description; tags may have different numbers of descriptions (padded, with a mask that the model's re-weighting
  softmax respects).
* New tags default to threshold 0.5, as in the original open-set inference.

Text is encoded in batches with dynamic padding (texts sorted by token length, each batch padded to its longest
text), with a progress bar for large sets, and cached per text tower, so repeating a call with the same tags does no
text work.

This module imports only its sibling configuration module, the standard-library-only `atomic_io`, `transformers`,
`torch`, `safetensors`, `huggingface_hub` and `tqdm` (all dependencies of transformers), so it can ship as remote code
next to the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..io.atomic import atomic_file, atomic_write_json
from ..io.repo_ids import looks_like_repo_id
from ..models.ram_plus.configuration_ram_plus import validate_language, validate_threshold
from ..models.ram_plus.processing_ram_plus import MAX_TEXT_TOKENS


logger = logging.getLogger(__name__)

TAG_SET_CONFIG_NAME = "tag_set.json"
TAG_SET_WEIGHTS_NAME = "tag_set.safetensors"
NEW_TAG_THRESHOLD = 0.5

# ------------------------------------------------------------------------------------------ tags given by name
# A tag known only by its name gets ONE embedding: every prompt template is filled with the name, each filled text is
# encoded and L2-normalized, and the mean of those embeddings is L2-normalized again.
#
# "ram_plus" (the default) is the authors' ensemble, exactly: their 63 templates and their rules (see
# `ram_plus_name_prompts`). The templates and rules ship verbatim, with the authors' own outputs for 8 edge-case
# names, in `data/openset_name_ensemble.json` (`load_name_ensemble_data()`); the tuple below is the copy the code
# runs on (this module also runs as remote code, where only Python files travel), and the tests pin the two equal.
NAME_ENSEMBLE_FILE = "openset_name_ensemble.json"

RAM_PLUS_TEMPLATES: tuple[str, ...] = (
    "There is {article} {} in the scene.",
    "There is the {} in the scene.",
    "a photo of {article} {} in the scene.",
    "a photo of the {} in the scene.",
    "a photo of one {} in the scene.",
    "itap of {article} {}.",
    "itap of my {}.",
    "itap of the {}.",
    "a photo of {article} {}.",
    "a photo of my {}.",
    "a photo of the {}.",
    "a photo of one {}.",
    "a photo of many {}.",
    "a good photo of {article} {}.",
    "a good photo of the {}.",
    "a bad photo of {article} {}.",
    "a bad photo of the {}.",
    "a photo of a nice {}.",
    "a photo of the nice {}.",
    "a photo of a cool {}.",
    "a photo of the cool {}.",
    "a photo of a weird {}.",
    "a photo of the weird {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of a clean {}.",
    "a photo of the clean {}.",
    "a photo of a dirty {}.",
    "a photo of the dirty {}.",
    "a bright photo of {article} {}.",
    "a bright photo of the {}.",
    "a dark photo of {article} {}.",
    "a dark photo of the {}.",
    "a photo of a hard to see {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of {article} {}.",
    "a low resolution photo of the {}.",
    "a cropped photo of {article} {}.",
    "a cropped photo of the {}.",
    "a close-up photo of {article} {}.",
    "a close-up photo of the {}.",
    "a jpeg corrupted photo of {article} {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of {article} {}.",
    "a blurry photo of the {}.",
    "a pixelated photo of {article} {}.",
    "a pixelated photo of the {}.",
    "a black and white photo of the {}.",
    "a black and white photo of {article} {}.",
    "a plastic {}.",
    "the plastic {}.",
    "a toy {}.",
    "the toy {}.",
    "a plushie {}.",
    "the plushie {}.",
    "a cartoon {}.",
    "the cartoon {}.",
    "an embroidered {}.",
    "the embroidered {}.",
    "a painting of the {}.",
    "a painting of a {}.",
)

# "compact": this package's earlier 14-template set, filled as written (`fill_template`).
COMPACT_TEMPLATES: tuple[str, ...] = (
    "a photo of {article} {}.",
    "There is the {} in the scene.",
    "There is {article} {} in the scene.",
    "This is {article} {} in the scene.",
    "This is the {} in the scene.",
    "This is one {} in the scene.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a close-up photo of the {}.",
    "a cropped photo of the {}.",
    "a bright photo of the {}.",
    "a blurry photo of the {}.",
    "a photo of one {}.",
    "itap of the {}.",
)

NAME_TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"ram_plus": RAM_PLUS_TEMPLATES, "compact": COMPACT_TEMPLATES}
DEFAULT_NAME_TEMPLATES = "ram_plus"
_TEMPLATE_FIELDS = re.compile(r"(\{article\}|\{\})")  # the two fields a template may hold


def ram_plus_article(name: str) -> str:
    """The authors' article: `"an"` when the ORIGINAL name (before any processing) starts with a lower-case vowel
    letter (a, e, i, o, u), else `"a"` — so "Aerial photography" gets "a" and "egg" gets "an"."""
    return "an" if name[:1] in ("a", "e", "i", "o", "u") else "a"


def ram_plus_name(name: str) -> str:
    """The authors' name processing: lower-cased, `_` -> space, `/` -> " or ", every trailing `.` removed."""
    return name.lower().replace("_", " ").replace("/", " or ").rstrip(".")


def ram_plus_name_prompts(name: str) -> list[str]:
    """The 63 texts the authors' open-set code encodes for a tag known only by `name`, in template order: each
    template is filled with the processed name (`ram_plus_name`) and the article of the original name
    (`ram_plus_article`), and "This is " is put in front of every filled text that starts with "a" or "the" (so any
    text starting with the letter a: "a photo...", "an embroidered...")."""
    if not isinstance(name, str):
        raise TypeError(f"tag names must be strings, got {type(name).__name__}: {name!r:.80}")
    processed = ram_plus_name(name)
    if not processed.strip():
        raise ValueError(f"tag name {name!r} is empty once processed (lower-cased, '_' and '/' replaced, trailing '.' removed)")
    article = ram_plus_article(name)
    texts = []
    for template in RAM_PLUS_TEMPLATES:
        # fill "{article}" and "{}" in one left-to-right pass (like str.format), so braces in a name stay as they are
        text = "".join(
            article if part == "{article}" else processed if part == "{}" else part
            for part in _TEMPLATE_FIELDS.split(template)
        )
        texts.append("This is " + text if text.startswith(("a", "the")) else text)
    return texts


def indefinite_article(word: str) -> str:
    """`"an"` before a vowel letter (either case), else `"a"` (the rule of `fill_template`)."""
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"


def fill_template(template: str, tag: str) -> str:
    """Fill one of your own templates as written: `"{}"` becomes the tag, `"{article}"` "a"/"an"."""
    return "".join(
        indefinite_article(tag) if part == "{article}" else tag if part == "{}" else part
        for part in _TEMPLATE_FIELDS.split(template)
    )


def resolve_name_templates(templates=None) -> str | tuple[str, ...]:
    """Check a `templates` argument: `None` (the default, "ram_plus"), the name of a built-in set ("ram_plus",
    "compact"), or a sequence of your own templates (each containing `"{}"`). Returns the name or the tuple."""
    if templates is None:
        return DEFAULT_NAME_TEMPLATES
    if isinstance(templates, str):
        if templates not in NAME_TEMPLATE_SETS:
            raise ValueError(
                f"unknown template set {templates!r}: use one of {sorted(NAME_TEMPLATE_SETS)} or a list of templates "
                "containing '{}'"
            )
        return templates
    templates = tuple(templates)
    if not templates or not all(isinstance(t, str) and "{}" in t for t in templates):
        raise ValueError(f"`templates` must be non-empty strings that contain '{{}}', got {templates!r:.200}")
    return templates


def name_prompts(name: str, templates=None) -> list[str]:
    """The texts whose normalized mean embeds a tag known only by `name`: the authors' 63 (`templates=None` or
    `"ram_plus"`, see `ram_plus_name_prompts`), or a template set filled as written (`"compact"`, or your own
    sequence; see `fill_template`)."""
    templates = resolve_name_templates(templates)
    if templates == "ram_plus":
        return ram_plus_name_prompts(name)
    if isinstance(templates, str):
        templates = NAME_TEMPLATE_SETS[templates]
    return [fill_template(template, name) for template in templates]


def load_name_ensemble_data() -> dict:
    """The authors' name ensemble as shipped in the package (`data/openset_name_ensemble.json`): `templates`,
    `rules`, `examples` (the exact texts their code produces for 8 edge-case names) and `openimages_rare_unseen`."""
    path = Path(__file__).resolve().parent / "data" / NAME_ENSEMBLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{os.fspath(path)!r} is missing: the package was installed without its data files")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ----------------------------------------------------------------------------------------- description files
# The authors' LLM descriptions of all 4585 built-in tags (51 per tag, the format of the 200 rare tags' file).
AUTHORS_DESCRIPTIONS_REPO = "xinyu1205/recognize-anything-plus-model-tag-descriptions"
AUTHORS_DESCRIPTIONS_FILE = "ram_tag_list_4585_llm_tag_descriptions.json"

def _pick_json(files: Sequence[str], where: str) -> str:
    candidates = sorted(f for f in files if f.lower().endswith(".json") and not Path(f).name.startswith("."))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(f"{where} holds no JSON file of tag descriptions (files: {sorted(files)[:20]})")
    raise ValueError(
        f"{where} holds several JSON files {candidates[:20]}; say which one holds the descriptions (`filename=`, "
        "or `--descriptions-file` on the command line)"
    )


def resolve_descriptions_file(
    source,
    filename: str | None = None,
    *,
    repo_type: str = "dataset",
    revision: str | None = None,
    token=None,
    cache_dir=None,
    local_files_only: bool = False,
) -> tuple[Path, str]:
    """
    Find a descriptions JSON file: `source` is a local file, a local folder (with `filename`, or holding exactly one
    JSON file), or a Hub repository id (a dataset by default; `repo_type="model"` for a model repository), from which
    `filename` (needed only when the repository holds several JSON files) is downloaded at `revision` with
    `hf_hub_download` into the Hugging Face cache (later calls reuse it, also offline).

    Returns the local path and a name for messages (`"owner/name/file.json"` for the Hub).
    """
    text = os.fspath(source)
    local = Path(text).expanduser()
    if revision is not None and (local.is_file() or local.is_dir()):
        raise ValueError(f"`revision` applies to a Hub repository, but {text!r} is a local path")
    if local.is_file():
        if filename is not None:
            raise ValueError(f"`filename` picks a file inside a folder or Hub repository, but {text!r} is a file")
        return local, text
    if local.is_dir():
        if filename is None:
            files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
            filename = _pick_json(files, f"folder {text!r}")
        path = local / filename
        if not path.is_file():
            raise FileNotFoundError(f"folder {text!r} has no descriptions file {filename!r}")
        return path, os.fspath(path)
    if not isinstance(source, str) or not looks_like_repo_id(text, require_owner=True):  # a Path is never a Hub id
        raise FileNotFoundError(f"descriptions file {text!r} does not exist")
    if repo_type not in ("dataset", "model"):
        raise ValueError(f"`repo_type` must be 'dataset' or 'model', got {repo_type!r}")
    return _download_descriptions(text, filename, repo_type, revision, token, cache_dir, local_files_only)


def _download_descriptions(repo_id, filename, repo_type, revision, token, cache_dir, local_files_only):
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_type} repository {repo_id!r}" + (f" (revision {revision!r})" if revision else "")
    hub = f"the Hub ({constants.ENDPOINT})"
    offline = local_files_only or constants.HF_HUB_OFFLINE

    def list_remote_files():
        """The repository's files, asked with a short timeout; `None` plus the error when the Hub does not answer."""
        try:
            info = HfApi(token=token).repo_info(
                repo_id, repo_type=repo_type, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT
            )
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise
        except Exception as error:  # unreachable, offline, timed out
            return None, error
        return [sibling.rfilename for sibling in (info.siblings or [])], None

    try:
        if filename is None:
            files, listing_error = (None, None) if offline else list_remote_files()
            if files is None:  # fall back to the copy in the local cache
                try:
                    folder = snapshot_download(
                        repo_id, repo_type=repo_type, revision=revision, cache_dir=cache_dir, local_files_only=True
                    )
                except LocalEntryNotFoundError:
                    reason = f"{hub} could not be reached ({listing_error})" if listing_error else "offline mode is on"
                    raise ConnectionError(
                        f"cannot list the files of {where}: {reason}, and the local cache holds no copy of it"
                    ) from listing_error
                files = [p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()]
            filename = _pick_json(files, where)
        elif not offline:
            cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision, repo_type=repo_type)
            if not isinstance(cached, str):
                # not downloaded yet: ask the Hub (short timeout) before hf_hub_download, which retries for minutes
                files, listing_error = list_remote_files()
                if files is None:
                    raise ConnectionError(
                        f"cannot download {filename!r} from {where}: {hub} could not be reached ({listing_error}), and "
                        "the local cache holds no copy of it"
                    ) from listing_error
                if filename not in files:
                    found = sorted(f for f in files if f.lower().endswith(".json"))
                    raise ValueError(f"{where} has no file {filename!r} (its JSON files: {found[:20]})")
        path = hf_hub_download(
            repo_id,
            filename,
            repo_type=repo_type,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
    except RepositoryNotFoundError as error:
        other = "model" if repo_type == "dataset" else "dataset"
        raise ValueError(
            f"{repo_id!r} is not a local file or folder, and {hub} has no {where} (or it is private or gated: log in or "
            f"pass a token; for a {other} repository pass repo_type={other!r} / --descriptions-repo-type {other})"
        ) from error
    except RevisionNotFoundError as error:
        raise ValueError(f"{repo_type} repository {repo_id!r} has no revision {revision!r}") from error
    except LocalEntryNotFoundError as error:
        state = "offline mode is on" if offline else f"{hub} could not be reached"
        raise ConnectionError(
            f"cannot download {filename!r} from {where}: {state}, and the local cache holds no copy of it"
        ) from error
    except EntryNotFoundError as error:
        raise ValueError(f"{where} has no file {filename!r}") from error
    return Path(path), f"{repo_id}/{filename}"


def _read_descriptions_json(path: Path, origin: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"descriptions file {origin!r} is not valid JSON: {error}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"descriptions file {origin!r} is not UTF-8 text: {error}") from error


def load_descriptions(
    source,
    filename: str | None = None,
    *,
    repo_type: str = "dataset",
    revision: str | None = None,
    token=None,
    cache_dir=None,
    local_files_only: bool = False,
) -> dict[str, list[str]]:
    """Read tag descriptions: the original JSON format (a list of one-key objects `{tag: [descriptions]}`, as in
    `openimages_rare_200_llm_tag_descriptions.json`) or a plain `{tag: [descriptions]}` object, from a local file,
    a local folder, or a Hub repository id (a dataset by default, downloaded and cached; see
    [`resolve_descriptions_file`] for `filename`, `repo_type`, `revision`, ...), or an in-memory list/mapping.
    Returns an insertion-ordered `{tag: [descriptions]}`.

    Example: the authors' descriptions of all 4585 built-in tags,
    `load_descriptions(AUTHORS_DESCRIPTIONS_REPO, AUTHORS_DESCRIPTIONS_FILE)`."""
    if isinstance(source, (str, os.PathLike)):
        path, origin = resolve_descriptions_file(
            source,
            filename,
            repo_type=repo_type,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        source = _read_descriptions_json(path, origin)
    else:
        if filename is not None or revision is not None:
            raise ValueError("`filename` and `revision` apply to a file, folder or Hub id, not to in-memory descriptions")
        origin = "descriptions"
    items: list[tuple] = []
    if isinstance(source, Mapping):
        items = list(source.items())
    elif isinstance(source, list):
        for position, entry in enumerate(source):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ValueError(f"{origin}: entry {position} must be a one-key object {{tag: [descriptions]}}, got {entry!r:.80}")
            items.extend(entry.items())
    else:
        error = ValueError if origin != "descriptions" else TypeError  # a file's content vs. a caller's argument
        raise error(f"{origin}: expected a list of {{tag: [descriptions]}} objects or a mapping, got {type(source).__name__}")
    result: dict[str, list[str]] = {}
    for tag, descriptions in items:
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"{origin}: tag names must be non-empty strings, got {tag!r}")
        if descriptions is None:
            descriptions = []
        elif isinstance(descriptions, str):
            descriptions = [descriptions]
        elif isinstance(descriptions, tuple):
            descriptions = list(descriptions)
        if not isinstance(descriptions, list) or not all(isinstance(d, str) for d in descriptions):
            raise ValueError(f"{origin}: the descriptions of {tag!r} must be a list of strings")
        if tag in result:
            raise ValueError(f"{origin}: tag {tag!r} appears more than once")
        result[tag] = list(descriptions)
    return result


def select_descriptions(descriptions: Mapping[str, Sequence[str]], tags=None, origin: str = "the descriptions"):
    """`{tag: descriptions}` for `tags` (in that order, duplicates dropped; `None`: every described tag). A tag that
    `descriptions` lacks maps to `None` (taken by name), with a warning naming it."""
    if tags is None:
        if not descriptions:
            raise ValueError(f"{origin} describes no tags")
        return dict(descriptions)
    if isinstance(tags, str):
        tags = [tags]
    tags = list(dict.fromkeys(tags))
    if not tags:
        raise ValueError("`tags` is empty; pass None for every described tag")
    missing = [tag for tag in tags if tag not in descriptions]
    if missing:
        logger.warning(f"{len(missing)} tag(s) not described in {origin}, taken by name: {missing[:10]}")
    return {tag: (list(descriptions[tag]) if tag in descriptions else None) for tag in tags}


def write_json_atomic(path, data) -> None:
    """Write JSON to `path` atomically (see `atomic_io`: never half-written, honours the umask)."""
    atomic_write_json(path, data)


def save_descriptions(descriptions: Mapping[str, Sequence[str]], path) -> None:
    """Write `{tag: [descriptions]}` in the original format (a list of one-key objects), atomically."""
    write_json_atomic(path, [{tag: list(texts)} for tag, texts in descriptions.items()])


# ----------------------------------------------------------------------------------------------- text encoding
_TEXT_CACHES: "weakref.WeakKeyDictionary[torch.nn.Module, dict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _text_cache(text_model) -> dict[str, torch.Tensor]:
    with _CACHE_LOCK:
        cache = _TEXT_CACHES.get(text_model)
        if cache is None:
            cache = {}
            _TEXT_CACHES[text_model] = cache
        return cache


def clear_text_cache(model=None) -> None:
    """Forget cached text embeddings (of one model's text tower, or of all)."""
    with _CACHE_LOCK:
        if model is None:
            _TEXT_CACHES.clear()
        else:
            _TEXT_CACHES.pop(getattr(model, "text_model", model), None)


def tokenizer_for_model(model):
    """The CLIP tokenizer saved next to a model loaded with `from_pretrained` (as `ramplus convert --text-tower`
    writes it), or `None` when there is none."""
    if getattr(model, "text_model", None) is None:
        return None
    name = getattr(model, "name_or_path", None)
    if not name:
        return None
    if os.path.isdir(name) and not any(
        os.path.isfile(os.path.join(name, f)) for f in ("tokenizer_config.json", "tokenizer.json", "vocab.json")
    ):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError):
        return None


def _require_text_tower(model, tokenizer, texts_needed: int):
    if getattr(model, "text_model", None) is None:
        raise ValueError(
            f"{texts_needed} text(s) of new tags need the CLIP text tower, but this model has none; use built-in tags, "
            "load a tag set saved with its embeddings, or convert the model with `ramplus convert --text-tower "
            "openai/clip-vit-base-patch16`"
        )
    if tokenizer is None:
        raise ValueError(
            "new tags need the CLIP tokenizer: pass `tokenizer=` (or a processor that carries one); a model converted "
            "with `--text-tower` saves it next to the weights"
        )


def encode_texts(
    model,
    tokenizer,
    texts: Sequence[str],
    batch_size: int = 256,
    padding: str = "longest",
    show_progress: bool | None = None,
    use_cache: bool = True,
    description: str = "encoding text",
) -> torch.Tensor:
    """L2-normalized CLIP text embeddings `(len(texts), text_embed_dim)` (float32, CPU) from `model.text_model`.

    Texts are deduplicated, looked up in the per-text-tower cache, and the missing ones are tokenized once (truncated
    to 77 tokens), sorted by length and encoded in batches of `batch_size`. `padding="longest"` pads each batch to its
    longest text (dynamic padding); `padding="max_length"` pads every text to 77 tokens (as the original does).
    `show_progress=None` shows a progress bar (stderr) when there is more than one batch.
    """
    if padding not in ("longest", "max_length"):
        raise ValueError(f"`padding` must be 'longest' or 'max_length', got {padding!r}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}: {text!r:.80}")
    width = model.config.text_embed_dim
    if not texts:
        return torch.zeros(0, width)
    text_model = getattr(model, "text_model", None)
    cache = _text_cache(text_model) if (use_cache and text_model is not None) else {}
    missing = list(dict.fromkeys(t for t in texts if t not in cache))
    if missing:
        _require_text_tower(model, tokenizer, len(missing))
        encoded = tokenizer(missing, truncation=True, max_length=MAX_TEXT_TOKENS, padding=False)["input_ids"]
        order = sorted(range(len(missing)), key=lambda i: len(encoded[i]))
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has neither a pad nor an end-of-text token to pad with")
        device = next(text_model.parameters()).device
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        if show_progress is None:
            show_progress = len(batches) > 1
        from tqdm.auto import tqdm

        fresh: dict[str, torch.Tensor] = {}
        with torch.no_grad(), tqdm(total=len(missing), desc=description, unit="text", disable=not show_progress) as bar:
            for batch in batches:
                length = MAX_TEXT_TOKENS if padding == "max_length" else max(len(encoded[i]) for i in batch)
                input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(batch), length), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids = encoded[index]
                    input_ids[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
                    attention_mask[row, : len(ids)] = 1
                embeds = model.encode_text(input_ids.to(device), attention_mask.to(device)).float().cpu()
                for row, index in enumerate(batch):
                    fresh[missing[index]] = embeds[row].clone()
                bar.update(len(batch))
        if use_cache and text_model is not None:
            cache.update(fresh)
        else:
            cache = {**cache, **fresh}
    return torch.stack([cache[t] for t in texts]).reshape(len(texts), width)


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
        from safetensors.torch import save_file

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
        from huggingface_hub import HfApi

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
        from safetensors.torch import load_file

        path = Path(path_or_repo_id)
        if path.is_dir():
            config_file = path / TAG_SET_CONFIG_NAME
            if not config_file.is_file():
                raise ValueError(f"{os.fspath(path)!r} holds no {TAG_SET_CONFIG_NAME}; it is not a saved tag set")
            weights_file = path / TAG_SET_WEIGHTS_NAME
        else:
            from huggingface_hub import hf_hub_download

            kwargs = dict(revision=revision, token=token, cache_dir=cache_dir, local_files_only=local_files_only)
            config_file = Path(hf_hub_download(os.fspath(path_or_repo_id), TAG_SET_CONFIG_NAME, **kwargs))
            weights_file = None
        try:
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
