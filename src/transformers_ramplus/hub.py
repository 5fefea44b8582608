# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Load the authors' RAM++ and RAM releases (an original `.pth`, no `config.json`) by their Hub ids.

`resolve_original_checkpoint(repo_id, ...)` downloads the checkpoint with `hf_hub_download` (honouring `revision`,
`cache_dir`, `token`, `local_files_only` and `HF_HUB_OFFLINE`), converts it once and keeps the converted folder in the
Hugging Face cache, next to the download:

    <cache>/models--OWNER--NAME/ramplus-converted/<commit>/<key>/

where `key` hashes the repository id, the commit and the blob hashes of the checkpoint and tag files (and the
converter's format version). Later loads, offline ones included, use that folder. The repository's own tag files
(`ram_tag_list.txt`, `ram_tag_list_chinese.txt`, `ram_tag_list_threshold.txt`) are used when it has them, otherwise
the 4585-tag files shipped with this package.

`import transformers_ramplus` lets `from_pretrained` of the Auto classes and of the package's classes load the ids of
`ORIGINAL_REPOS` (`add_original_repo_aliases`): a dictionary look-up of the name, nothing else for any other name, so
loading any other model makes the same requests and raises the same errors as without the package. Other
original-format repositories: convert them with `ramplus convert`, or load them through the command line
(`resolve_model_name`), which also fails fast when the Hub is out of reach.

The package's own entry points (its classes' `from_pretrained`, `pipeline("zero-shot-image-tagging", model=...)`,
`load_tagger` and the command line) name what a folder or repository holds when it has no model in it
(`check_loadable`), instead of transformers' "Unrecognized model ... `model_type`"; the Auto classes called directly
keep transformers' errors.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

from filelock import FileLock
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name

from .io.atomic import atomic_write_text
from .io.repo_ids import looks_like_repo_id
from .models.ram_plus.convert_ram_plus import ConversionError, convert_checkpoint, load_original_state_dict


logger = logging.getLogger(__name__)

AUTHORS_REPO_ID = "xinyu1205/recognize-anything-plus-model"
AUTHORS_CHECKPOINT = "ram_plus_swin_large_14m.pth"
DEFAULT_MODEL = AUTHORS_REPO_ID
# known repositories holding an original-format checkpoint: id -> checkpoint file name
RAM_REPO_ID = "xinyu1205/recognize_anything_model"  # RAM (and Tag2Text); RAM uses the same 4585-tag files
RAM_CHECKPOINT = "ram_swin_large_14m.pth"
ORIGINAL_REPOS = {AUTHORS_REPO_ID: AUTHORS_CHECKPOINT, RAM_REPO_ID: RAM_CHECKPOINT}
TAG_FILES = ("ram_tag_list.txt", "ram_tag_list_chinese.txt", "ram_tag_list_threshold.txt")
# Tag2Text (same repository as RAM, named with `original_file=`): its 3429-tag list ships with the package, and the
# BERT tokenizer (bert-base-uncased, whose canonical id this is, plus [DEC] and [ENC]) comes from the Hub
TAG2TEXT_CHECKPOINT = "tag2text_swin_14m.pth"
TAG2TEXT_TAG_FILE = "tag2text_ori_tag_list.txt"
TAG2TEXT_TOKENIZER = "google-bert/bert-base-uncased"
# bump when the converter's output changes, so that cached conversions are redone
CONVERTED_FORMAT_VERSION = "1"
CONVERTED_SUBDIR = "ramplus-converted"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_resolved: dict[tuple, Path] = {}
_lock = threading.Lock()


class UnsupportedRepositoryError(OSError):
    """A Hub repository is neither a transformers model (`config.json`) nor an original RAM++ checkpoint (`.pth`)."""


class HubUnreachableError(OSError):
    """A name is not a local folder and the Hub could not be reached to look it up."""


def bundled_tag_files() -> dict[str, Path]:
    """The three files of the 4585-tag label system shipped with this package (name -> path)."""
    folder = Path(__file__).resolve().parent / "tags" / "data"
    return {name: folder / name for name in TAG_FILES}


def bundled_tag2text_tag_list() -> Path:
    """Tag2Text's 3429-tag list shipped with this package."""
    return Path(__file__).resolve().parent / "tags" / "data" / TAG2TEXT_TAG_FILE


def _is_tag2text_file(name) -> bool:
    return isinstance(name, str) and "tag2text" in os.path.basename(name).lower()


def _tokenizer_key(tokenizer) -> str:
    """What identifies a tokenizer in the cache key of a Tag2Text conversion: a Hub id as is, a folder by the hashes
    of its files, a loaded tokenizer by its vocabulary and special tokens."""
    if tokenizer is None:
        return f"hub:{TAG2TEXT_TOKENIZER}"
    if isinstance(tokenizer, (str, os.PathLike)):
        path = Path(tokenizer)
        if path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(file.relative_to(path).as_posix().encode() + b"\0" + _blob_hash(file).encode())
            return f"folder:{digest.hexdigest()}"
        return f"hub:{os.fspath(tokenizer)}"
    vocab = json.dumps(
        [sorted(tokenizer.get_vocab().items()), sorted(map(str, tokenizer.all_special_tokens))], ensure_ascii=True
    )
    return f"object:{hashlib.sha256(vocab.encode()).hexdigest()}"


def _load_tokenizer(tokenizer, cache_dir, token, offline):
    """The BERT tokenizer of a Tag2Text conversion: a loaded one as is, a folder or Hub id (default
    bert-base-uncased) through `AutoTokenizer` with the same cache, token and offline mode as the checkpoint."""
    from transformers import AutoTokenizer

    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    name = os.fspath(tokenizer) if tokenizer is not None else TAG2TEXT_TOKENIZER
    if os.path.isdir(name):
        return AutoTokenizer.from_pretrained(name)
    try:
        return AutoTokenizer.from_pretrained(name, cache_dir=cache_dir, token=token, local_files_only=offline)
    except OSError as error:
        raise OSError(
            f"Tag2Text needs a BERT tokenizer and {name!r} could not be loaded ({error}); pass tokenizer= (a folder or "
            "Hub id of bert-base-uncased)"
        ) from error


def _offline(local_files_only: bool) -> bool:
    return bool(local_files_only) or constants.is_offline_mode()


def _storage_folder(repo_id: str, cache_dir) -> Path:
    return Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")


def _cached_snapshot(repo_id: str, revision, cache_dir) -> tuple[str, list[str]] | None:
    """(commit, files) of the cached snapshot of `revision`, or None when it is not in the cache."""
    storage = _storage_folder(repo_id, cache_dir)
    revision = str(revision or "main")
    commit = revision if _COMMIT.match(revision) else None
    if commit is None:
        ref = storage / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snapshot = storage / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    files = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())
    return commit, files


def _remember_revision(repo_id: str, revision, commit: str, cache_dir) -> None:
    """Record `revision -> commit` in the cache (`refs/<revision>`, as huggingface_hub does), so that an offline load
    of the same revision finds the snapshot and the converted folder."""
    revision = str(revision or "main")
    if _COMMIT.match(revision) or not commit:
        return
    ref = _storage_folder(repo_id, cache_dir) / "refs" / revision
    try:
        if ref.is_file() and ref.read_text().strip() == commit:
            return
        atomic_write_text(ref, commit)
    except OSError as error:  # a read-only cache: offline loads of this revision will not find it
        logger.info("could not record %s@%s in the cache: %s", repo_id, revision, error)


def _probe_timeout() -> float:
    return float(constants.HF_HUB_ETAG_TIMEOUT)


def _list_repository(repo_id: str, revision, token) -> tuple[str, list[str]]:
    """(commit, files) from the Hub, in one request without retries. Raises huggingface_hub's errors."""

    info = HfApi().model_info(repo_id, revision=revision, token=token, timeout=_probe_timeout())
    return info.sha, sorted(sibling.rfilename for sibling in (info.siblings or []))


def _network_error(error: BaseException) -> bool:
    if isinstance(error, HfHubHTTPError):
        response = getattr(error, "response", None)
        return response is not None and response.status_code >= 500
    module = type(error).__module__
    return isinstance(error, (ConnectionError, TimeoutError)) or module.startswith(("httpx", "httpcore"))


def _checkpoint_name(repo_id: str, files: list[str]) -> str | None:
    known = ORIGINAL_REPOS.get(repo_id)
    if known in files:
        return known
    candidates = [f for f in files if f.endswith(".pth") and "/" not in f]
    if len(candidates) == 1 and _is_tag2text_file(candidates[0]):  # Tag2Text is loaded only when named
        raise UnsupportedRepositoryError(
            f"{repo_id} holds the Tag2Text checkpoint {candidates[0]} (and not {known or 'a RAM++ or RAM one'}"
            f"{' in the cache' if known else ''}); load it by naming it: original_file= (--original-file)"
        )
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise UnsupportedRepositoryError(
            f"{repo_id} holds several .pth files ({', '.join(candidates)}); convert the one you want with "
            f"`ramplus convert` and load the converted folder"
        )
    return None


def _blob_hash(path: Path) -> str:
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs":
        return real.name
    digest = hashlib.sha256()
    with open(real, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe_files(files: list[str]) -> str:
    if not files:
        return "no files"
    shown = ", ".join(files[:15])
    return shown + (f" and {len(files) - 15} more" if len(files) > 15 else "")


def resolve_original_checkpoint(
    repo_id: str,
    revision: str | None = None,
    cache_dir=None,
    token=None,
    local_files_only: bool = False,
    force_download: bool = False,
    strict: bool = True,
    original_file: str | None = None,
    tokenizer=None,
) -> Path | None:
    """
    The converted folder of an original-format Hub repository, converting it on first use.

    Returns `None` when the repository is a transformers model (it has a `config.json`): load it normally. With
    `strict=True` a repository that holds neither raises [`UnsupportedRepositoryError`] naming what it holds; with
    `strict=False` it returns `None`. Errors of the Hub (unknown repository or revision, no network and nothing
    cached) are huggingface_hub's.

    `original_file` names the checkpoint in a repository that holds several (`tag2text_swin_14m.pth` in
    `xinyu1205/recognize_anything_model`). A Tag2Text checkpoint (its file name says `tag2text`) is converted with the
    3429-tag list shipped with the package (or the repository's `tag2text_ori_tag_list.txt`) and `tokenizer` (a
    folder, Hub id or loaded BERT tokenizer; default bert-base-uncased); the cache key includes the file and the
    tokenizer.
    """
    return _resolve(
        repo_id, revision, cache_dir, token, local_files_only, force_download, strict, original_file, tokenizer
    )[0]


def _locate(repo_id, revision, cache_dir, token, local_files_only, strict, original_file=None):
    """
    Look the repository up (one request without retries, or the cache when offline or unreachable).
    Returns (kind, commit, files, checkpoint name, offline): kind is "transformers", "original", "converted-only"
    (offline, checkpoint gone from the cache but a converted copy exists) or "neither".
    """
    offline = _offline(local_files_only)
    listing = None
    if not offline:
        try:
            listing = _list_repository(repo_id, revision, token)
        except Exception as error:  # noqa: BLE001
            if not _network_error(error):
                raise
            listing = _cached_snapshot(repo_id, revision, cache_dir)
            if listing is None and _any_converted(repo_id, revision, cache_dir, original_file) is None:
                raise HubUnreachableError(
                    f"could not reach the Hugging Face Hub to look up {repo_id!r} ({type(error).__name__}: {error}) "
                    "and it is not in the cache; check the network, or set HF_HUB_OFFLINE=1 to use cached files only"
                ) from error
            offline = True
    else:
        listing = _cached_snapshot(repo_id, revision, cache_dir)
    if listing is None:
        if _any_converted(repo_id, revision, cache_dir, original_file) is not None:
            return "converted-only", None, [], original_file, True

        raise LocalEntryNotFoundError(
            f"{repo_id!r} (revision {revision or 'main'}) is not in the cache and offline mode is on "
            "(HF_HUB_OFFLINE=1 or local_files_only=True): load it once with the network"
        )
    commit, files = listing
    if not offline:
        _remember_revision(repo_id, revision, commit, cache_dir)
    if "config.json" in files:
        return "transformers", commit, files, None, offline
    if original_file is not None:  # the caller names the file (repositories holding several checkpoints)
        if original_file not in files:
            if offline and _any_converted(repo_id, commit, cache_dir, original_file) is not None:
                return "converted-only", commit, files, original_file, True
            raise UnsupportedRepositoryError(
                f"{repo_id} (revision {revision or 'main'}) has no file {original_file!r}; it holds {_describe_files(files)}"
            )
        return "original", commit, files, original_file, offline
    checkpoint = _checkpoint_name(repo_id, files)
    if checkpoint is None:
        if offline and _any_converted(repo_id, commit, cache_dir) is not None:
            return "converted-only", commit, files, None, True
        if strict:
            raise UnsupportedRepositoryError(
                f"{repo_id} (revision {revision or 'main'}) is neither a transformers model (no config.json) nor an "
                f"original RAM++ checkpoint (no .pth file); it holds {_describe_files(files)}"
            )
        return "neither", commit, files, None, offline
    return "original", commit, files, checkpoint, offline


def _download(repo_id, commit, files, checkpoint, cache_dir, token, offline, force_download):
    """(checkpoint path, {tag file name: path}, where the tags come from)."""

    def download(filename):
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=commit,
                cache_dir=cache_dir,
                token=token,
                local_files_only=offline,
                force_download=force_download,
            )
        )

    checkpoint_path = download(checkpoint)
    repo_tags = [name for name in TAG_FILES if name in files]
    if TAG_FILES[0] in repo_tags:  # the repository's own label system (only its files, never mixed with ours)
        return checkpoint_path, {name: download(name) for name in repo_tags}, f"the tag files of {repo_id}"
    return checkpoint_path, bundled_tag_files(), "the 4585-tag files shipped with transformers-ramplus"


def download_original_checkpoint(
    repo_id: str, revision=None, cache_dir=None, token=None, local_files_only=False, original_file=None
):
    """
    Download the original checkpoint of a Hub repository (and its tag files, else the bundled 4585-tag files):
    `(checkpoint_path, {tag file name: path})`. `original_file` names the checkpoint in a repository that holds
    several (e.g. `tag2text_swin_14m.pth`). Raises [`UnsupportedRepositoryError`] for a transformers model
    repository or one that holds neither format.
    """
    kind, commit, files, checkpoint, offline = _locate(
        repo_id, revision, cache_dir, token, local_files_only, True, original_file
    )
    if kind == "transformers":
        raise UnsupportedRepositoryError(
            f"{repo_id} is already a transformers model (it has a config.json); load it with from_pretrained"
        )
    if kind != "original":
        raise UnsupportedRepositoryError(f"the checkpoint of {repo_id} is not in the cache (offline mode is on)")
    path, tags, _ = _download(repo_id, commit, files, checkpoint, cache_dir, token, offline, False)
    if _is_tag2text_file(checkpoint):
        tags = _tag2text_tag_files(repo_id, commit, files, cache_dir, token, offline)[0]
    return path, {name: os.fspath(p) for name, p in tags.items()}


def _resolve(
    repo_id, revision, cache_dir, token, local_files_only, force_download, strict, original_file=None, tokenizer=None
) -> tuple[Path | None, bool]:
    """(converted folder or None, whether the cache was used without the Hub)."""
    tag2text = _is_tag2text_file(original_file)
    tokenizer_key = _tokenizer_key(tokenizer) if tag2text else None
    memo_key = (
        repo_id,
        str(revision or "main"),
        os.fspath(cache_dir) if cache_dir else None,
        original_file,
        tokenizer_key,
        _offline(local_files_only),
    )
    with _lock:
        # resolved earlier in this process (force_download too: one forced download and conversion per process)
        if memo_key in _resolved and _complete(_resolved[memo_key]):
            return _resolved[memo_key], memo_key[-1]
    kind, commit, files, checkpoint, offline = _locate(
        repo_id, revision, cache_dir, token, local_files_only, strict, original_file
    )
    if kind == "transformers" or kind == "neither":
        return None, offline
    if kind == "converted-only":
        return _any_converted(repo_id, commit or revision, cache_dir, original_file), True
    tag2text = tag2text or _is_tag2text_file(checkpoint)
    if tag2text:
        checkpoint_path = _download(repo_id, commit, files, checkpoint, cache_dir, token, offline, force_download)[0]
        tag_paths, tag_source = _tag2text_tag_files(repo_id, commit, files, cache_dir, token, offline)
        tokenizer_key = tokenizer_key or _tokenizer_key(tokenizer)
    else:
        checkpoint_path, tag_paths, tag_source = _download(
            repo_id, commit, files, checkpoint, cache_dir, token, offline, force_download
        )
    key_lines = [CONVERTED_FORMAT_VERSION, repo_id, commit, f"{checkpoint}:{_blob_hash(checkpoint_path)}"]
    key_lines += [f"{name}:{_blob_hash(path)}" for name, path in sorted(tag_paths.items())]
    if tag2text:
        key_lines.append(f"tokenizer:{tokenizer_key}")
    key = hashlib.sha256("\n".join(key_lines).encode()).hexdigest()[:16]
    target = _storage_folder(repo_id, cache_dir) / CONVERTED_SUBDIR / commit / key
    def converter(checkpoint_path, tag_paths, overwrite):
        if tag2text:
            return functools.partial(
                _convert_tag2text_into, target, checkpoint_path, tag_paths[TAG2TEXT_TAG_FILE], overwrite,
                lambda: _load_tokenizer(tokenizer, cache_dir, token, offline),
            )
        return functools.partial(_convert_into, target, checkpoint_path, tag_paths, overwrite)

    _record_source(target, checkpoint)
    try:
        converted = (force_download or not _complete(target)) and converter(
            checkpoint_path, tag_paths, force_download
        )()
    except ConversionError as error:
        # an unreadable cached checkpoint (a truncated download, a full disk): download it again once when the
        # Hub serves another file, else say which cached file it is and how to clear it
        _check_cached_checkpoint(repo_id, commit, checkpoint, checkpoint_path, token, offline, error)
        if tag2text:
            checkpoint_path = _download(repo_id, commit, files, checkpoint, cache_dir, token, offline, True)[0]
        else:
            checkpoint_path, tag_paths, tag_source = _download(
                repo_id, commit, files, checkpoint, cache_dir, token, offline, True
            )
        try:
            converted = converter(checkpoint_path, tag_paths, True)()
        except ConversionError as again:
            raise ConversionError(
                f"{repo_id}: {checkpoint}, downloaded again from the Hub into {checkpoint_path}, still cannot be "
                f"converted: {again}"
            ) from again
    if converted:
        logger.warning(
            "converted %s (%s at revision %s, tags from %s) to a transformers model once; cached in %s, which "
            "later loads use (offline too)",
            repo_id,
            checkpoint,
            commit[:10],
            tag_source,
            target,
        )
    else:
        logger.info("loading %s from its converted copy in %s", repo_id, target)
    with _lock:
        _resolved[memo_key] = target
    return target, offline


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_cached_checkpoint(repo_id, commit, checkpoint, path, token, offline, error) -> None:
    """The cached `checkpoint` of `repo_id` at `path` failed to convert with `error`. Returns when the Hub serves
    a different file (its etag, the sha256 of an LFS file, differs from the cached content's): the caller downloads
    it again, once. Raises a [`ConversionError`] naming the cached file and how to clear it when offline or the Hub
    is out of reach, and one saying the Hub's own file is not a checkpoint when the cached copy is the Hub's."""
    clear = (
        f"delete it (`rm {os.path.realpath(path)}`, or `hf cache delete` and pick {repo_id}) and load again with the "
        "network to download it anew"
    )
    if offline:
        raise ConversionError(
            f"the cached checkpoint of {repo_id} ({checkpoint} at {path}) cannot be converted: {error}. It may be "
            f"damaged (an interrupted download, a full disk): {clear}"
        ) from error
    try:
        remote = get_hf_file_metadata(
            hf_hub_url(repo_id, checkpoint, revision=commit), token=token, timeout=_probe_timeout()
        ).etag
        local = _sha256(os.path.realpath(path))
    except Exception as failure:  # noqa: BLE001  (the Hub out of reach: the cached file is all we know)
        raise ConversionError(
            f"the cached checkpoint of {repo_id} ({checkpoint} at {path}) cannot be converted: {error}. The Hub "
            f"could not be asked for its copy ({type(failure).__name__}: {failure}); if the file is damaged, {clear}"
        ) from error
    if remote and remote.strip('"').removeprefix("W/").strip('"') == local:
        raise ConversionError(
            f"{repo_id}: the Hub's {checkpoint} (revision {commit[:10]}, cached at {path}, identical to the Hub's "
            f"copy) cannot be converted: {error}"
        ) from error
    logger.warning(
        "the cached %s of %s (%s) cannot be converted (%s) and differs from the Hub's copy: downloading it again",
        checkpoint,
        repo_id,
        path,
        error,
    )


def _tag2text_tag_files(repo_id, commit, files, cache_dir, token, offline) -> tuple[dict, str]:
    """Tag2Text's tag list: the repository's `tag2text_ori_tag_list.txt`, else the one shipped with the package."""
    if TAG2TEXT_TAG_FILE in files:
        path = hf_hub_download(
            repo_id, TAG2TEXT_TAG_FILE, revision=commit, cache_dir=cache_dir, token=token, local_files_only=offline
        )
        return {TAG2TEXT_TAG_FILE: Path(path)}, f"the tag list of {repo_id}"
    return {TAG2TEXT_TAG_FILE: bundled_tag2text_tag_list()}, "the 3429-tag list shipped with transformers-ramplus"


def _source_file(target: Path) -> Path:
    return target.parent / f"{target.name}.source"


def _record_source(target: Path, checkpoint: str) -> None:
    """Remember which checkpoint file a converted folder comes from (beside it), so that an offline load of a
    repository holding several checkpoints picks the right converted copy."""
    source = _source_file(target)
    try:
        if not (source.is_file() and source.read_text().strip() == checkpoint):
            source.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(source, checkpoint)
    except OSError as error:
        logger.info("could not record the source of %s: %s", target, error)


def _convert_tag2text_into(target: Path, checkpoint_path: Path, tag_list: Path, overwrite: bool, tokenizer) -> bool:
    """Tag2Text's conversion under a file lock (`tokenizer`: a callable giving the tokenizer, called only when the
    conversion runs); False when another process finished it meanwhile."""
    from .models.tag2text.convert_tag2text import convert_checkpoint as convert_tag2text

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(os.fspath(target) + ".lock"):
        if _complete(target) and not overwrite:
            return False
        convert_tag2text(checkpoint_path, target, tag_list=tag_list, tokenizer=tokenizer(), overwrite=True)
    return True


def label_rows(checkpoint_path) -> int | None:
    """Rows of `label_embed` in an original checkpoint (tags x descriptions), or None when it cannot be read."""

    try:
        state = load_original_state_dict(checkpoint_path)
    except ConversionError:
        return None
    tensor = state.get("label_embed")
    return int(tensor.shape[0]) if tensor is not None and tensor.dim() == 2 else None


def _complete(folder: Path) -> bool:
    """A converted folder that is whole: config.json, and model.safetensors as long as its header says (a damaged
    or truncated copy is converted again)."""
    weights = folder / "model.safetensors"
    if not (folder / "config.json").is_file() or not weights.is_file():
        return False
    try:
        with open(weights, "rb") as stream:
            header_size = int.from_bytes(stream.read(8), "little")
            header = json.loads(stream.read(header_size))
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        return weights.stat().st_size == 8 + header_size + end
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _any_converted(repo_id: str, revision, cache_dir, original_file=None) -> Path | None:
    """Offline and without the checkpoint in the cache: the newest converted copy of that commit, if any (of
    `original_file`, else of the repository's known checkpoint, when the copies record their source)."""
    root = _storage_folder(repo_id, cache_dir) / CONVERTED_SUBDIR
    revision = str(revision or "main")
    commit = revision
    if not _COMMIT.match(revision):
        ref = _storage_folder(repo_id, cache_dir) / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    folder = root / commit
    if not folder.is_dir():
        return None
    done = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _complete(p)]  # no temp dirs

    def source(path):
        file = _source_file(path)
        return file.read_text().strip() if file.is_file() else None

    if original_file is not None:  # copies of that file only (copies of earlier versions record nothing)
        default = original_file == ORIGINAL_REPOS.get(repo_id)
        done = [p for p in done if source(p) == original_file or (default and source(p) is None)]
    else:  # a Tag2Text copy is only ever loaded when named
        done = [p for p in done if not _is_tag2text_file(source(p))]
    return max(done, key=lambda p: p.stat().st_mtime) if done else None


def _convert_into(target: Path, checkpoint_path: Path, tag_paths: dict, overwrite: bool) -> bool:
    """Convert under a file lock; False when another process finished the same conversion meanwhile."""


    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(os.fspath(target) + ".lock"):
        if _complete(target) and not overwrite:
            return False  # another process converted it while we waited
        started = time.monotonic()
        convert_checkpoint(
            checkpoint_path,
            target,
            tag_list=tag_paths.get(TAG_FILES[0]),
            tag_list_chinese=tag_paths.get(TAG_FILES[1]),
            thresholds=tag_paths.get(TAG_FILES[2]),
            overwrite=True,
        )
        logger.debug("conversion took %.1f s", time.monotonic() - started)
    return True


# ---------------------------------------------------------------------------------------------------- aliases
_HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "original_file", "tokenizer")


def _converted_folder(name, kwargs) -> Path:
    """The converted folder of a known original-format repository (`ORIGINAL_REPOS`)."""
    hub = {key: kwargs.get(key) for key in _HUB_KWARGS if kwargs.get(key) is not None}
    if not _is_tag2text_file(hub.get("original_file")):
        hub.pop("tokenizer", None)  # e.g. AutoProcessor's own tokenizer= for RAM
    if "token" not in hub and kwargs.get("use_auth_token") is not None:
        hub["token"] = kwargs["use_auth_token"]
    return resolve_original_checkpoint(name, strict=True, **hub)


def _without_hub_kwargs(kwargs: dict) -> dict:
    # the converted folder is local: revision/cache/token options no longer apply to it; original_file (and, for
    # Tag2Text, the tokenizer) chose what was converted
    drop = {"revision", "force_download", "code_revision", "original_file"}
    if _is_tag2text_file(kwargs.get("original_file")):
        drop.add("tokenizer")
    return {k: v for k, v in kwargs.items() if k not in drop}


_REACHABLE: dict[tuple, bool] = {}  # (endpoint, repo id, revision) already looked up in this process


# what a folder or repository needs for `from_pretrained` of the package's classes (and its pipeline task) to load it
_LOADABLE = ("config.json", "adapter_config.json", "preprocessor_config.json", "processor_config.json")
_PIPELINE_TASK = "zero-shot-image-tagging"  # models.remote_code.TASK (imported there from the model modules)


def check_loadable(name: str, files: list[str], revision=None) -> None:
    """Raise [`UnsupportedRepositoryError`] naming what `name` (a folder or Hub repository holding `files`) holds
    and what a model needs, when it has none of the files `from_pretrained` reads (instead of transformers'
    "Unrecognized model ... `model_type`" or "no file named model.safetensors")."""
    if any(f in files for f in _LOADABLE):
        return
    where = f"{name} (revision {revision})" if revision else name
    checkpoints = [f for f in files if f.endswith(".pth")]
    if checkpoints:
        raise UnsupportedRepositoryError(
            f"{where} holds an original checkpoint ({', '.join(checkpoints[:5])}) but no config.json: convert it with "
            f"`ramplus convert {name} OUT_DIR` (add --original-file NAME when it holds several) and load OUT_DIR"
        )
    raise UnsupportedRepositoryError(
        f"{where} is neither a transformers model (no config.json) nor an original RAM++ checkpoint (no .pth file); "
        f"it holds {_describe_files(files)}"
    )


def _folder_files(folder) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
    except OSError:
        return []


def _check_own_entry_point(name, kwargs) -> None:
    """For the package's own classes and pipeline task: a local folder (or, see `_fail_fast_if_unreachable`, a Hub
    repository) holding no model gets a message listing what it holds."""
    if isinstance(name, str) and not kwargs.get("subfolder") and os.path.isdir(name):
        check_loadable(name, _folder_files(name))


def _fail_fast_if_unreachable(name, kwargs) -> None:
    """
    Before transformers downloads a Hub id that is not in the cache, look it up once (one request, no retries) and
    raise `HubUnreachableError` at once when the Hub cannot be reached, instead of transformers' ~25 s of retries per
    file. Names already cached, offline mode and local folders are left alone; any other answer (found, not found,
    private) lets transformers go on and report it as it does.
    """

    if not isinstance(name, str) or not looks_like_repo_id(name) or _offline(kwargs.get("local_files_only", False)):
        return
    revision, cache_dir = kwargs.get("revision"), kwargs.get("cache_dir")
    key = (constants.ENDPOINT, name, revision)
    if key in _REACHABLE or _cached_snapshot(name, revision, cache_dir) is not None:
        return
    try:
        _, files = _list_repository(name, revision, kwargs.get("token") or kwargs.get("use_auth_token"))
        if not kwargs.get("subfolder"):
            check_loadable(name, files, revision)
    except UnsupportedRepositoryError:
        raise
    except Exception as error:  # noqa: BLE001  (only a network failure is ours to report)
        if _network_error(error):
            raise HubUnreachableError(
                f"{name!r} is not a local folder, and the Hugging Face Hub ({constants.ENDPOINT}) could not be reached "
                f"to load it as a model id ({type(error).__name__}: {error}); nothing is cached for it. If it is a "
                "folder, check the path; if it is a Hub id, check the network, or set HF_HUB_OFFLINE=1 to use only "
                "the local cache"
            ) from None
    _REACHABLE[key] = True


def _alias(function, bind: bool, fail_fast: bool):
    """`from_pretrained` that loads the converted folder for the ids of `ORIGINAL_REPOS` (and, for the Auto classes,
    costs any other name one dictionary look-up: no request, no changed error, no retry). `fail_fast` (the package's
    own classes): a Hub id that is not cached is looked up once first, failing at once when the Hub is out of reach."""

    @functools.wraps(function)
    def from_pretrained(*args, **kwargs):
        position = 1 if bind else 0
        name = args[position] if len(args) > position else None
        if isinstance(name, str) and name in ORIGINAL_REPOS and not kwargs.get("subfolder"):
            folder = _converted_folder(name, kwargs)
            if folder is not None:  # the repository has become a transformers model: load it as one
                args = (*args[:position], os.fspath(folder), *args[position + 1 :])
                kwargs = _without_hub_kwargs(kwargs)
        elif fail_fast or kwargs.get("_from_pipeline") == _PIPELINE_TASK:  # the package's own entry points
            _check_own_entry_point(name, kwargs)
            _fail_fast_if_unreachable(name, kwargs)
        return function(*args, **kwargs)

    from_pretrained.__ramplus_alias__ = True
    return from_pretrained


def add_original_repo_aliases(*owners, fail_fast: bool = False) -> None:
    """Let `from_pretrained` of `owners` (the Auto classes, or with `fail_fast` the package's own classes) load the
    authors' original-format repositories by id (idempotent). Only the exact ids of `ORIGINAL_REPOS` are handled."""
    for owner in owners:
        static = inspect.getattr_static(owner, "from_pretrained")
        function = getattr(static, "__func__", static)
        if getattr(function, "__ramplus_alias__", False):
            continue
        if isinstance(static, classmethod):
            setattr(owner, "from_pretrained", classmethod(_alias(function, True, fail_fast)))
        elif isinstance(static, staticmethod):
            setattr(owner, "from_pretrained", staticmethod(_alias(function, False, fail_fast)))


# ---------------------------------------------------------------------------------------------------- CLI
@contextlib.contextmanager
def reading(description: str):
    """Failures while reading an input (a model folder, a tag set) are input-file errors, not crashes: library
    errors such as a truncated safetensors file become a `ValueError` naming `description`."""
    try:
        yield
    except (OSError, ValueError, TypeError):
        raise
    except Exception as error:
        raise ValueError(f"{description}: {type(error).__name__}: {error}") from error


def check_adapter_base(folder) -> None:
    """A local adapter folder (`adapter_config.json`, no `config.json`) whose `base_model_name_or_path` is a local
    path that no longer exists (the base model moved) is an error naming that field, instead of huggingface_hub's
    "Repo id must be in the form ..."."""
    folder = os.fspath(folder)
    config = os.path.join(folder, "adapter_config.json")
    if os.path.isfile(os.path.join(folder, "config.json")) or not os.path.isfile(config):
        return
    try:
        with open(config, encoding="utf-8") as handle:
            base = json.load(handle).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError, RecursionError) as error:
        raise ValueError(f"cannot read {config!r} ({type(error).__name__}: {error})") from None
    if not isinstance(base, str) or not base:
        raise ValueError(f"{config!r} names no base model (`base_model_name_or_path`)")
    if os.path.isdir(base) or (looks_like_repo_id(base) and not base.startswith(("/", ".", "~"))):
        return
    raise ValueError(
        f"the adapter {folder!r} was trained on the base model {base!r} (`base_model_name_or_path` in "
        "adapter_config.json), which is not a folder here nor a Hub id: if the base model moved, edit that field to "
        "its new place (a folder or a Hub id)"
    )


def resolve_model_name(name: str, revision=None, token=None, original_file=None) -> tuple[str, dict]:
    """
    For command-line tools: `(name_or_folder, extra_kwargs)` to pass to `pipeline`/`from_pretrained`, failing within
    seconds with a message naming both possibilities when `name` is neither a local folder nor reachable on the Hub.

    A local folder is returned as is; a path that does not exist is an error; a Hub id is looked up with one request
    (no retries): an original-format repository gives its converted folder, a transformers repository its id; when
    the Hub cannot be reached (or `HF_HUB_OFFLINE` is set) the cached snapshot folder is used, otherwise the error
    says so.
    """
    if original_file is not None and os.path.exists(name):
        raise ValueError(
            f"--original-file names a checkpoint in a Hub repository; --model {name!r} is a local path (convert a .pth "
            "with `ramplus convert` and pass the folder)"
        )
    if os.path.isdir(name):
        check_adapter_base(name)
        check_loadable(name, _folder_files(name))
        return name, {}
    if os.path.exists(name):
        raise ValueError(f"--model {name!r} is a file, not a model folder (convert a .pth with `ramplus convert`)")
    if not looks_like_repo_id(name):
        raise ValueError(
            f"--model {name!r} is neither a local folder (no such directory) nor a valid Hugging Face Hub id "
            "(owner/name)"
        )
    try:
        folder, offline = _resolve(name, revision, None, token, False, False, True, original_file)
    except HubUnreachableError as error:
        cause = error.__cause__ or error
        raise HubUnreachableError(
            f"--model {name!r} is not a local folder, and the Hugging Face Hub could not be reached to look it up as "
            f"a model id ({type(cause).__name__}: {cause}); nothing is cached for it. If it is a folder, check the "
            "path; if it is a Hub id, check the network, or set HF_HUB_OFFLINE=1 to use only the local cache"
        ) from None
    except Exception as error:  # noqa: BLE001
        if isinstance(error, RepositoryNotFoundError):
            raise ValueError(
                f"--model {name!r} is neither a local folder (no such directory) nor a model repository on the "
                "Hugging Face Hub (not found, or private without a token)"
            ) from None
        if isinstance(error, RevisionNotFoundError):
            raise ValueError(f"--model {name!r}: revision {revision!r} not found on the Hub") from None
        if isinstance(error, LocalEntryNotFoundError):
            raise ValueError(
                f"--model {name!r} is not a local folder, and as a Hub id it is not in the cache while offline mode "
                "is on (HF_HUB_OFFLINE=1): check the path, or load it once with the network"
            ) from None
        raise
    if folder is not None:
        return os.fspath(folder), {}
    if offline:  # the Hub is out of reach (or HF_HUB_OFFLINE): the cached snapshot, a plain local folder
        listing = _cached_snapshot(name, revision, None)
        if listing is not None:
            return os.fspath(_storage_folder(name, None) / "snapshots" / listing[0]), {}
    return name, {}


__all__ = [
    "AUTHORS_REPO_ID",
    "DEFAULT_MODEL",
    "HubUnreachableError",
    "UnsupportedRepositoryError",
    "TAG2TEXT_TOKENIZER",
    "bundled_tag2text_tag_list",
    "bundled_tag_files",
    "check_adapter_base",
    "check_loadable",
    "add_original_repo_aliases",
    "reading",
    "resolve_model_name",
    "resolve_original_checkpoint",
]
