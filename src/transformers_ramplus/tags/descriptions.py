# Copyright 2026 The transformers-ramplus authors. Apache-2.0.
"""Tags given by descriptions: reading, selecting and writing description files (a local JSON, a folder, or a Hub
dataset or model repository, such as the authors' LLM descriptions of the 4585 built-in tags)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..io.atomic import atomic_write_json
from ..io.jsonfiles import load_json_file
from ..io.repo_ids import looks_like_repo_id


logger = logging.getLogger(__name__)


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
    return load_json_file(path, origin, what="descriptions file")


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
