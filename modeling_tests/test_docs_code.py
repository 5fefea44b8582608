"""The documentation runs as written: every ```python and ```bash/```shell block of `README.md` and of the site's
pages (`docs/**/*.md`) is executed, in order, on tiny local models.

How a block is run:

- pages run one after the other: the README, then the pages in the order of the site's navigation (`nav` in
  mkdocs.yml), all in one scratch directory, so a page may use what an earlier one wrote (`/tmp/ram-plus-tiny`);
- in a copy of the repository (the files `git ls-files` lists, plus untracked ones that are not ignored), which is
  the working directory, as for a reader who cloned it; the blocks of one `## ` section of a page run in order and the
  section's Python blocks share one namespace (a reader's session), shell blocks run with `bash -e -o pipefail`;
- Hub ids are served by the Hub stand-in (`local_hub.py`, through `HF_ENDPOINT`): the authors' release
  (`xinyu1205/recognize-anything-plus-model`) is the golden tiny checkpoint with its 37-tag files, the CLIP text
  tower and the LLM are tiny random ones, the authors' description dataset a small synthetic file, and pushes land
  in a scratch folder; nothing reaches the network;
- `/tmp/...` and `/path/to/...` are rewritten to folders of the test's scratch directory, and the files a reader
  brings (`photo.jpg`, `photos/`, `scan.dcm`, `ram_plus_swin_large_14m.pth`, ...) are provided by `reader_files`;
- expensive commands get small arguments (`CHEAP_ARGUMENTS`); every entry must still match a page.

A Python block that starts with an import starts a fresh session (a forked process in which `transformers_ramplus`
is not imported yet), so a snippet that forgets `import transformers_ramplus` fails as it would for a reader who
pastes it; a block that starts otherwise continues the session of the section's previous Python block.

A block preceded by `<!-- readme-test: skip (reason) -->` is not run (at most `MAX_SKIPPED` of them, each with a
reason); `<!-- readme-test: raises NAME -->` expects the block to raise the exception NAME (a Python block);
`<!-- readme-test: without-package -->` runs a Python block in a process that cannot import `transformers_ramplus`
(remote code). The markers keep their `readme-test` name on every page.
Afterwards the repository copy must be unchanged apart from the reader's files: the examples must not overwrite
committed files (benchmark results) or leave outputs (`tags.jsonl`) in the clone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch
import yaml

from conftest import (
    FIXTURES_DIR,
    PROJECT_ROOT,
    TINY_DIR,
    _byte_alphabet,
    convert_golden_tiny,
    tiny_clip_tokenizer,
    tiny_text_config,
)
from local_hub import LocalHub, hub_env


DOCS_DIR = PROJECT_ROOT / "docs"
MKDOCS_CONFIG = PROJECT_ROOT / "mkdocs.yml"
RUN_LANGUAGES = {"python": "python", "py": "python", "bash": "bash", "shell": "bash", "sh": "bash", "console": "bash"}
# pip install and `make test` (this suite) in the README and on the site, the slow suite: listed by
# test_skipped_blocks_are_few
MAX_SKIPPED = 6
RELEASE = "xinyu1205/recognize-anything-plus-model"
DESCRIPTIONS_DATASET = "xinyu1205/recognize-anything-plus-model-tag-descriptions"
BLOCK_TIMEOUT = 300
DRIVER_TIMEOUT = 2700  # every page (about 4 CPU-minutes; far more on a loaded machine)

# page text -> the same command with small arguments, or with what the stand-ins need (appended right after the
# matched text). Each key must occur in a runnable block (test_cheap_arguments_match_the_pages), so a renamed command
# cannot silently run at full size.
CHEAP_ARGUMENTS = {
    "scripts/learning_run.py --output /tmp/ramplus-learning-run": " --quick",
    "scripts/medical_lora_recipe.py --output /tmp/ramplus-medical": " --train-size 8 --heldout-size 4 --epochs 1",
    "--model Qwen/Qwen2.5-0.5B-Instruct --output /tmp/my_descriptions.json": " --samples 1 --max-new-tokens 4",
    "--output /tmp/my_descriptions.json --samples 10 --seed 0": " --samples 1 --max-new-tokens 4",
    # the stand-in checkpoint has 37 tags, not the release's 4585 (whose tag files ship with the package)
    "ramplus convert ram_plus_swin_large_14m.pth": (
        " --tag-list ram_tag_list.txt --tag-list-chinese ram_tag_list_chinese.txt --thresholds ram_tag_list_threshold.txt"
    ),
}
# commands that are replaced outright (a full-size run that --quick stands for)
SMALL_BENCHMARK = "--quick --repeats 1 --num-images 2 --batch-size 2"
REPLACEMENTS = {
    # the full-size run is the --quick run's code at other sizes (run below, and in this block with small arguments)
    "benchmarks/bench_inference.py --repeats 3 --output /tmp/bench_inference.json": (
        f"benchmarks/bench_inference.py {SMALL_BENCHMARK} --no-onnx --output /tmp/bench_inference.json"
    ),
    # the command `make docs` runs (make's setup step would install packages into the copy)
    "make docs ": "NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true mkdocs build --strict --site-dir /tmp/site ",
}


# ---------------------------------------------------------------------------------------------------- parsing
def nav_pages(nav) -> list[str]:
    """The Markdown pages of an mkdocs `nav` (a list of paths, `{title: path}` and `{title: [...]}`), in order."""
    pages = []
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                pages.extend(nav_pages(value))
            elif value.endswith(".md"):
                pages.append(value)
    return pages


def documentation_pages() -> list[str]:
    """The pages whose blocks run, as paths relative to the repository, in reading order: the README, then the
    site's hand-written pages in the order of its navigation (generated pages such as api/ are not in docs/)."""
    nav = yaml.safe_load(MKDOCS_CONFIG.read_text(encoding="utf-8"))["nav"]
    written = [page for page in nav_pages(nav) if (DOCS_DIR / page).is_file()]
    return ["README.md", *(f"docs/{page}" for page in written)]


@dataclass
class Block:
    page: str  # path of the Markdown file, relative to the repository
    line: int  # 1-based line of the opening fence
    language: str  # "python" or "bash"
    code: str
    section: str  # the enclosing "## " heading
    heading: str  # the nearest heading of any level
    marker: str | None = None  # "skip", "raises" or "without-package"
    marker_argument: str = ""


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(?P<kind>skip|raises|without-package)\s*(?P<argument>.*?)\s*-->\s*$")


def parse_markdown(text: str, page: str) -> list[Block]:
    """The runnable fenced blocks of a Markdown text (python, bash, shell, sh, console), with their markers."""
    blocks, section, heading = [], "", ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence is None:
            if line.startswith("#"):
                title = line.lstrip("#").strip()
                heading = title
                if re.match(r"^##\s", line):
                    section = title
            index += 1
            continue
        indent, ticks, info = fence.group("indent"), fence.group("fence"), fence.group("info").strip()
        body, index = [], index + 1
        while index < len(lines) and not re.match(rf"^\s*{ticks}\s*$", lines[index]):
            body.append(lines[index][len(indent):] if lines[index].startswith(indent) else lines[index].lstrip())
            index += 1
        opening = index - len(body)  # 1-based line of the opening fence
        index += 1
        language = RUN_LANGUAGES.get(info.split()[0].lower() if info else "")
        if language is None:
            continue
        marker = argument = None
        previous = opening - 2
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0 and (found := _MARKER.match(lines[previous])):
            marker, argument = found.group("kind"), found.group("argument").strip()
        blocks.append(Block(page, opening, language, "\n".join(body) + "\n", section, heading, marker, argument or ""))
    return blocks


def parse_pages(root: Path = PROJECT_ROOT) -> list[Block]:
    """The runnable blocks of every page under `root`, in reading order."""
    return [
        block
        for page in documentation_pages()
        for block in parse_markdown((root / page).read_text(encoding="utf-8"), page)
    ]


def prepare_code(code: str, scratch: Path) -> str:
    """A block as the harness runs it: small arguments, and /tmp and /path/to inside the scratch directory."""
    for text, replacement in REPLACEMENTS.items():
        code = code.replace(text, replacement)
    for text, arguments in CHEAP_ARGUMENTS.items():
        code = code.replace(text, text + arguments)
    code = re.sub(r"(?<![\w./~-])/tmp/", f"{scratch}/tmp/", code)
    code = re.sub(r"(?<![\w./~-])/path/to/", f"{scratch}/path/to/", code)
    return code


# ---------------------------------------------------------------------------------------------------- unit tests
def test_parser_finds_blocks_markers_and_sections():
    text = textwrap.dedent(
        """\
        # Title
        ## First
        ```python
        x = 1
        ```
        ### Sub
        <!-- readme-test: skip (needs a GPU) -->

        ```bash
        nvidia-smi
        ```
        ```text
        not run
        ```
        ## Second
        - a list item:

          ```python
          y = 2
          ```
        <!-- readme-test: raises ValueError -->
        ```py
        raise ValueError
        ```
        """
    )
    blocks = parse_markdown(text, "docs/page.md")
    assert {block.page for block in blocks} == {"docs/page.md"}
    assert [(b.line, b.language, b.section, b.heading, b.marker) for b in blocks] == [
        (3, "python", "First", "First", None),
        (9, "bash", "First", "Sub", "skip"),
        (18, "python", "Second", "Second", None),
        (22, "python", "Second", "Second", "raises"),
    ]
    assert blocks[1].marker_argument == "(needs a GPU)" and blocks[3].marker_argument == "ValueError"
    assert blocks[2].code == "y = 2\n"  # the list item's indentation is removed


def test_prepare_code_moves_tmp_and_placeholders_into_the_scratch_folder(tmp_path):
    code = prepare_code("ramplus tag x --output /tmp/tags.jsonl --model /path/to/m  # not a/tmp/path", tmp_path)
    assert f"--output {tmp_path}/tmp/tags.jsonl" in code and f"--model {tmp_path}/path/to/m" in code
    assert "a/tmp/path" in code


def test_nav_pages_are_read_in_order():
    nav = [{"Home": "index.md"}, {"Guides": [{"A": "guides/a.md"}, "guides/b.md"]}, {"Nb": "notebooks/x.ipynb"}]
    assert nav_pages(nav) == ["index.md", "guides/a.md", "guides/b.md"]
    pages = documentation_pages()
    assert pages[0] == "README.md" and "docs/index.md" in pages and len(pages) == len(set(pages))


def test_cheap_arguments_match_the_pages():
    """Every substitution still finds its command, so no example silently runs at full size (or not at all)."""
    code = "".join(block.code for block in parse_pages() if block.marker != "skip")
    missing = [text for text in [*CHEAP_ARGUMENTS, *REPLACEMENTS] if text not in code]
    assert not missing, f"documented commands changed; update CHEAP_ARGUMENTS/REPLACEMENTS in {__file__}: {missing}"


def test_skipped_blocks_are_few_and_say_why():
    blocks = parse_pages()
    skipped = [block for block in blocks if block.marker == "skip"]
    unexplained = [f"{b.page}:{b.line}" for b in skipped if not re.fullmatch(r"\(.+\)", b.marker_argument)]
    assert not unexplained, f"{unexplained}: write `<!-- readme-test: skip (the reason) -->`"
    listing = "\n".join(f"  {b.page}:{b.line} ({b.section}) {b.marker_argument}" for b in skipped)
    assert len(skipped) <= MAX_SKIPPED, f"{len(skipped)} blocks are skipped (at most {MAX_SKIPPED}):\n{listing}"
    assert sum(block.marker is None for block in blocks) >= 40  # the pages' examples are found at all
    assert {block.page for block in blocks} >= {"README.md", "docs/guides/tagging.md"}


# ---------------------------------------------------------------------------------------------------- stand-ins
def _copy_repository(destination: Path) -> None:
    """The files of a clone: tracked and untracked-but-not-ignored ones (the working tree as it is)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, check=True, timeout=60,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = None
    if listed is None:  # not a git checkout: everything but the usual build and cache folders
        ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "build", "dist")
        shutil.copytree(PROJECT_ROOT, destination, ignore=ignore, symlinks=True)
        return
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _ignored_by_git(names: list[str]) -> list[str]:
    """The paths among `names` that the project's .gitignore ignores (outputs a clone never commits)."""
    if not names:
        return []
    try:
        done = subprocess.run(["git", "-C", str(PROJECT_ROOT), "check-ignore", "--no-index", "--stdin"],
                              input="\n".join(names), capture_output=True, text=True, timeout=60)
    except OSError:
        return []
    return done.stdout.split()


def _snapshot(root: Path) -> dict[str, str]:
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts or path.is_dir():
            continue
        files[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "other"
    return files


def _tiny_clip(folder: Path) -> None:
    """A CLIP text tower with a 512-d projection and its tokenizer (`openai/clip-vit-base-patch16`, tiny)."""
    from transformers import CLIPTextModelWithProjection

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(0)
    CLIPTextModelWithProjection(tiny_text_config(tokenizer, projection_dim=512)).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _tiny_llm(folder: Path) -> None:
    """A tiny random causal LM with a byte-level tokenizer (stands in for Qwen/Qwen2.5-0.5B-Instruct)."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    vocab = {char: index for index, char in enumerate(_byte_alphabet())}
    vocab["<|endoftext|>"] = len(vocab)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=[])
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=16, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _descriptions(tags, count=3) -> list:
    """The authors' list format: [{tag: [descriptions]}, ...]."""
    return [{tag: [f"a photo of a {tag}.", *[f"a {tag} seen from side {i}." for i in range(count - 1)]]} for tag in tags]


def _dicom(path: Path) -> None:
    """A small 16-bit CT-like slice with a soft-tissue window."""
    import numpy as np
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID, dataset.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    rows = np.linspace(0, 2000, 64 * 64, dtype=np.uint16).reshape(64, 64)
    dataset.Rows, dataset.Columns = rows.shape
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
    dataset.RescaleIntercept, dataset.RescaleSlope = -1024, 1
    dataset.WindowCenter, dataset.WindowWidth = 40, 400
    dataset.PixelData = rows.tobytes()
    dataset.save_as(path, enforce_file_format=True)


def reader_files(repo: Path, scratch: Path) -> set[str]:
    """The files a reader brings to the examples, written into the clone (returned as paths relative to it) and
    next to it (`../shared/data`: the project's optional data folder)."""
    from PIL import Image

    images = FIXTURES_DIR / "images"
    provided = {}
    provided["photo.jpg"] = images / "demo2.jpg"
    provided["photos/demo2.jpg"] = images / "demo2.jpg"
    provided["photos/openset_example.jpg"] = images / "openset_example.jpg"
    provided["ram_plus_swin_large_14m.pth"] = TINY_DIR / "ram_plus_original.pth"
    for name in ("ram_tag_list.txt", "ram_tag_list_chinese.txt", "ram_tag_list_threshold.txt"):
        provided[name] = TINY_DIR / name
    for relative, source in provided.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, repo / relative)
    Image.open(images / "openset_example.jpg").save(repo / "a.jpg")
    written = {"a.jpg"}

    tag_names = (TINY_DIR / "ram_tag_list.txt").read_text(encoding="utf-8").split("\n")[:3]
    texts = {
        "openimages_rare_200_llm_tag_descriptions.json": json.dumps(_descriptions(["red panda", "lighthouse", "kite"])),
        "my_tags.txt": "red panda\nlighthouse\n",
        "my_descriptions.json": json.dumps(_descriptions(["red panda", "lighthouse"])),
        "annots.txt": f"demo2,{tag_names[0]},{tag_names[1]}\nopenset_example,{tag_names[2]}\n",
        "taglist.txt": "\n".join(tag_names) + "\n",
    }
    for name, text in texts.items():
        (repo / name).write_text(text, encoding="utf-8")
        written.add(name)
    _dicom(repo / "scan.dcm")
    _tiny_llm(repo / "my-local-llm")
    written |= {"scan.dcm"} | {p.relative_to(repo).as_posix() for p in (repo / "my-local-llm").iterdir()}

    (scratch / "tmp").mkdir(exist_ok=True)  # the pages' /tmp
    # /path/to/... placeholders
    convert_golden_tiny(scratch / "path" / "to" / "converted-ram-plus")
    benchmark_images = scratch / "path" / "to" / "benchmark" / "images"
    benchmark_images.mkdir(parents=True)
    shutil.copy(images / "demo2.jpg", benchmark_images / "demo2.jpg")
    shutil.copy(images / "openset_example.jpg", benchmark_images / "openset_example.jpg")
    # ../shared/data/benchmarks: an annotation file of the ImageNet-Multi format (indices), 50 images x 1000 tags
    benchmarks = scratch / "shared" / "data" / "benchmarks"
    benchmarks.mkdir(parents=True)
    (benchmarks / "imagenet_multi_1000_taglist.txt").write_text("".join(f"class {i}\n" for i in range(1000)))
    (benchmarks / "imagenet_multi_1000_annots_first50.txt").write_text(
        "".join(f"image_{i}.JPEG,{i} {i + 500}\n" for i in range(50))
    )
    return set(provided) | written


def hub_repositories(scratch: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Model and dataset repositories the pages name, as tiny local folders."""
    clip, llm, descriptions = scratch / "hub" / "clip", scratch / "hub" / "llm", scratch / "hub" / "descriptions"
    for folder in (clip, llm, descriptions):
        folder.mkdir(parents=True)
    _tiny_clip(clip)
    _tiny_llm(llm)
    (descriptions / "ram_tag_list_4585_llm_tag_descriptions.json").write_text(
        json.dumps(_descriptions(["dog", "cat", "traffic light"])), encoding="utf-8"
    )
    models = {RELEASE: TINY_DIR, "openai/clip-vit-base-patch16": clip, "Qwen/Qwen2.5-0.5B-Instruct": llm}
    return models, {DESCRIPTIONS_DATASET: descriptions}


# ---------------------------------------------------------------------------------------------------- the run
# `ramplus` on the blocks' PATH: hands the command to the driver's fork server (a process that imported the package
# once: ~3 s of imports saved per command), or runs the installed `ramplus` when the command sets a Hub variable
# (HF_*) that the server read at its start.
SHIM = r'''#!{python} -S
import json, os, socket, struct, sys

hub = {{k: v for k, v in os.environ.items() if k.startswith("HF_")}}
if hub != json.loads(os.environ.get("RAMPLUS_DOCS_HUB_ENV", "{{}}")) or not os.path.exists(
        os.environ.get("RAMPLUS_DOCS_FORKSERVER", "")):
    os.execv({ramplus!r}, [{ramplus!r}, *sys.argv[1:]])
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.connect(os.environ["RAMPLUS_DOCS_FORKSERVER"])
message = json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
socket.send_fds(connection, [struct.pack("!Q", len(message)) + message], [0, 1, 2])
answer = b""
while chunk := connection.recv(64):
    answer += chunk
sys.exit(int(answer or b"1"))
'''


DRIVER = r'''
import contextlib, io, json, os, subprocess, sys, time, traceback

import torch, transformers  # noqa: F401 - imported once; every section forks from here, before transformers_ramplus

WITHOUT_PACKAGE = "import sys\nsys.modules['transformers_ramplus'] = None  # the package is not installed\n"


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def run_block(block, namespace, result):
    if block["language"] == "python" and block["marker"] != "without-package":
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(Tee(sys.stdout, printed)):
                exec(compile(block["code"], f"{block['page']}:{block['line']}", "exec"), namespace)
        except BaseException as exception:  # noqa: BLE001 - reported with its traceback
            names = {cls.__name__ for cls in type(exception).__mro__}
            if block["marker"] == "raises" and block["marker_argument"] in names:
                result["raised"] = f"{type(exception).__name__}: {exception}"
            else:
                result["error"] = "".join(traceback.format_exception(exception))[-6000:]
                return
        finally:
            result["stdout"] = printed.getvalue()[-20000:]
        if block["marker"] == "raises" and "raised" not in result:
            result["error"] = f"expected {block['marker_argument']}, nothing was raised"
        return
    if block["language"] == "python":
        command = [sys.executable, "-c", WITHOUT_PACKAGE + block["code"]]
    else:
        command = ["bash", "-e", "-o", "pipefail", "-c", block["code"]]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=block["timeout"])
    except subprocess.TimeoutExpired as timeout:
        result["error"] = f"timed out after {timeout.timeout} s"
        return
    output = done.stdout + done.stderr
    print(output, flush=True)
    result["output"] = output[-20000:]
    if done.returncode != 0:
        result["error"] = f"exit status {done.returncode}\n" + output[-6000:]


def run_section(section, report):
    namespace = {"__name__": "__main__"}
    results = []
    failed = False
    for block in section["blocks"]:
        result = {"page": block["page"], "line": block["line"], "section": section["name"]}
        results.append(result)
        if block["marker"] == "skip":
            result["status"] = "skipped"
        elif failed:
            result["status"] = "not run: an earlier block of its session failed"
        else:
            print(f"\n===== {block['page']}:{block['line']} ({section['name']}) =====", flush=True)
            start = time.perf_counter()
            run_block(block, namespace, result)
            sys.stdout.flush()
            sys.stderr.flush()
            result["seconds"] = round(time.perf_counter() - start, 2)
            result["status"] = "failed" if "error" in result else "passed"
            failed = "error" in result
        with open(report, "w") as handle:
            json.dump(results, handle)


def sessions(section):
    """A Python block that starts with an import starts a new session; other blocks continue the current one."""
    groups = []
    for block in section["blocks"]:
        lines = [line for line in block["code"].splitlines() if line.strip() and not line.lstrip().startswith("#")]
        starts_fresh = block["language"] == "python" and bool(lines) and lines[0].startswith(("import ", "from "))
        if not groups or starts_fresh:
            groups.append({"name": section["name"], "blocks": []})
        groups[-1]["blocks"].append(block)
    return groups


def serve_ramplus(address):
    """The `ramplus` commands of the blocks, each run in a fork of this process, which imported the package once.

    The `ramplus` on the blocks' PATH (SHIM) sends its arguments, working directory, environment and standard
    streams here; a forked child runs `transformers_ramplus.cli.main.main` with them and sends back the exit status."""
    import array, signal, socket, struct
    import transformers_ramplus.cli.main  # noqa: F401 - the import a command would pay for
    from transformers_ramplus.cli.main import main

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(8)
    while True:
        connection, _ = server.accept()
        if os.fork() != 0:
            connection.close()
            continue
        server.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the command's own subprocesses are waited for as usual
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
        size = struct.unpack("!Q", message[:8])[0]
        message = message[8:]
        while len(message) < size:
            message += connection.recv(size - len(message))
        request = json.loads(message)
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["ramplus", *request["argv"]]
        try:
            code = main(request["argv"])
        except SystemExit as exit:  # argparse: --help, usage errors
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 2)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        connection.sendall(str(int(code or 0)).encode())
        connection.close()
        os._exit(0)


plan = json.load(open(sys.argv[1]))
server = None
if os.environ.get("RAMPLUS_DOCS_FORKSERVER"):
    server = os.fork()
    if server == 0:
        try:
            serve_ramplus(os.environ["RAMPLUS_DOCS_FORKSERVER"])
        finally:
            os._exit(1)
everything = []
for number, session in enumerate(s for section in plan for s in sessions(section)):
    report = f"{sys.argv[2]}.{number}"
    pid = os.fork()
    if pid == 0:  # a fresh session: transformers_ramplus is imported by the blocks themselves
        code = 0
        try:
            run_section(session, report)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
    if os.path.exists(report):
        everything.extend(json.load(open(report)))
    json.dump(everything, open(sys.argv[2], "w"), indent=1)  # after every session: a timeout keeps what ran
if server:
    os.kill(server, 9)
'''



@pytest.fixture(scope="module")
def docs_run(tmp_path_factory):
    return run_pages(tmp_path_factory.mktemp("docs"))


def run_pages(scratch: Path):
    """Runs every block once; returns (blocks, results by (page, line), driver output, repository changes)."""
    repo = scratch / "repo"
    repo.mkdir()
    _copy_repository(repo)
    before = _snapshot(repo)
    provided = reader_files(repo, scratch)
    models, datasets = hub_repositories(scratch)

    blocks = parse_pages(repo)
    sections: dict[str, list] = {}
    for block in blocks:
        entry = asdict(block)
        entry["code"] = prepare_code(block.code, scratch)
        entry["timeout"] = BLOCK_TIMEOUT
        sections.setdefault(f"{block.page}: {block.section}", []).append(entry)
    plan = scratch / "plan.json"
    plan.write_text(json.dumps([{"name": name, "blocks": items} for name, items in sections.items()]))
    (scratch / "driver.py").write_text(DRIVER)
    report = scratch / "results.json"

    home = scratch / "home"
    home.mkdir()
    with LocalHub(uploads_dir=scratch / "hub-uploads") as hub:
        for repo_id, folder in models.items():
            hub.add_repo(repo_id, folder)
        for repo_id, folder in datasets.items():
            hub.add_dataset(repo_id, folder)
        env = hub_env(hub, scratch / "hf")
        env.update(
            HOME=str(home),
            XDG_CACHE_HOME=str(home / ".cache"),
            MPLCONFIGDIR=str(home / ".matplotlib"),
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")]),
            PYTHONDONTWRITEBYTECODE="1",
            TOKENIZERS_PARALLELISM="false",
        )
        # the clone's own package, as after `pip install -e .` in it (an installed copy elsewhere, e.g. the editable
        # install of another checkout, would otherwise be the code that runs)
        env["PYTHONPATH"] = str(repo / "src")
        env.pop("RAMPLUS_MODEL", None)
        ramplus = Path(sys.executable).parent / "ramplus"
        if ramplus.is_file() and hasattr(socket, "send_fds"):
            shim = scratch / "bin" / "ramplus"
            shim.parent.mkdir()
            shim.write_text(SHIM.format(python=sys.executable, ramplus=str(ramplus)))
            shim.chmod(0o755)
            env["PATH"] = os.pathsep.join([str(shim.parent), env["PATH"]])
            env["RAMPLUS_DOCS_FORKSERVER"] = str(scratch / "ramplus.sock")
            env["RAMPLUS_DOCS_HUB_ENV"] = json.dumps({k: v for k, v in env.items() if k.startswith("HF_")})
        log = scratch / "driver.log"
        with open(log, "w") as handle:
            driver = subprocess.Popen([sys.executable, str(scratch / "driver.py"), str(plan), str(report)], cwd=repo,
                                      env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                driver.wait(timeout=DRIVER_TIMEOUT)
            except subprocess.TimeoutExpired:  # the blocks that did not run are reported as such
                os.killpg(driver.pid, 9)
                driver.wait()
    done = subprocess.CompletedProcess(driver.args, driver.returncode, log.read_text(errors="replace"), "")
    results = {(r["page"], r["line"]): r for r in json.loads(report.read_text())} if report.is_file() else {}
    after = _snapshot(repo)
    changed = sorted(
        name for name in set(before) | set(after)
        if before.get(name) != after.get(name) and name not in provided
    )
    new = [name for name in changed if name not in before]
    changed = sorted(set(changed) - set(_ignored_by_git(new)))
    return blocks, results, done, changed


def _page_sections() -> list[tuple[str, str]]:
    seen = []
    for block in parse_pages():
        if (block.page, block.section) not in seen:
            seen.append((block.page, block.section))
    return seen


@pytest.mark.slow  # runs every documented block: ~6 CPU-minutes (`make test-docs`, CI)
@pytest.mark.parametrize(("page", "section"), _page_sections(), ids=[f"{p}::{s}" for p, s in _page_sections()])
def test_documented_section_runs(docs_run, page, section):
    blocks, results, done, _ = docs_run
    assert results, f"the documentation driver did not run:\n{done.stdout[-4000:]}"
    problems = []
    for block in blocks:
        if (block.page, block.section) != (page, section):
            continue
        result = results.get((block.page, block.line))
        if result is None:
            problems.append(f"{block.page}:{block.line}: never ran (driver stopped or timed out)\n"
                            f"{done.stdout[-3000:]}")
        elif result["status"] not in ("passed", "skipped"):
            problems.append(f"{block.page}:{block.line} ({block.heading}): {result['status']}\n"
                            f"{result.get('error', '')}")
    assert not problems, "\n\n".join(problems)


@pytest.mark.slow  # runs every documented block: ~6 CPU-minutes (`make test-docs`, CI)
def test_documented_examples_leave_the_repository_as_it_was(docs_run):
    """No committed file is overwritten and no output is left in the clone (outputs go to /tmp or a named folder)."""
    _, results, done, changed = docs_run
    assert results, done.stdout[-4000:]
    assert not changed, f"running the documented examples changed these files of the repository: {changed}"


# what a user must not see from a `ramplus` command (deliverable "quiet, helpful output"; see test_quiet_output.py)
LIBRARY_NOISE = (
    "FutureWarning",
    "DeprecationWarning",
    "torchvision is not installed",
    "Loading weights",
    "Writing model shards",
    "[torch.onnx]",
    "pin_memory",
    "Traceback",
)


@pytest.mark.slow  # runs every documented block: ~6 CPU-minutes (`make test-docs`, CI)
def test_documented_commands_print_no_library_noise(docs_run):
    """The `ramplus` commands of the pages, run as a user runs them, print no library deprecations, loading bars
    or tracebacks."""
    blocks, results, done, _ = docs_run
    assert results, done.stdout[-4000:]
    noisy = []
    for block in blocks:
        result = results.get((block.page, block.line), {})
        if block.language != "bash" or "ramplus " not in block.code or "output" not in result:
            continue
        found = [noise for noise in LIBRARY_NOISE if noise in result["output"]]
        if found:
            noisy.append(f"{block.page}:{block.line}: {found}\n{result['output'][-3000:]}")
    assert not noisy, "\n\n".join(noisy)


_LABEL = re.compile(r"""['"]label['"]:\s*['"]([^'"]+)['"]""")


@pytest.mark.slow  # runs every documented block: ~6 CPU-minutes (`make test-docs`, CI)
def test_printed_tags_match_the_comments(docs_run):
    """`print(...)  # [{'label': 'X', ...}, ...]`: the first tag printed is the one the comment shows."""
    blocks, results, done, _ = docs_run
    assert results, done.stdout[-4000:]
    wrong, checked = [], 0
    for block in blocks:
        result = results.get((block.page, block.line), {})
        if block.language != "python" or "stdout" not in result:
            continue
        prints = [line for line in block.code.splitlines() if line.lstrip().startswith("print(")]
        expected = [_LABEL.search(line.partition("#")[2]) for line in prints]
        if not any(expected):
            continue
        outputs = result["stdout"].splitlines()
        if len(outputs) != len(prints):
            wrong.append(f"{block.page}:{block.line}: {len(prints)} print() calls gave {len(outputs)} lines")
            continue
        for line, match, output in zip(prints, expected, outputs):
            if match is None:
                continue
            checked += 1
            first = _LABEL.search(output)
            if first is None or first.group(1) != match.group(1):
                wrong.append(f"{block.page}:{block.line}: `{line.strip()}` printed {output[:200]}")
    assert not wrong, "\n".join(wrong)
    assert checked, "no `print(...)  # [{'label': ...}]` comment found in the pages"
