"""Readers for the reading-process tests: module-level, so that spawned processes can unpickle them."""

import os

from transformers_ramplus.models.ram_plus.image_processing_ram_plus import load_image


def crash_on_marked(item, index):
    """`load_image`, except that an input whose name holds "crash" ends its process at once (a crashing decoder)."""
    if "crash" in os.fspath(item):
        os._exit(3)
    return load_image(item, index)
