"""Sub-commands of the `ramplus` command line (see `transformers_ramplus.cli.main.COMMANDS`)."""

import contextlib


@contextlib.contextmanager
def reading(description: str):
    """Failures while reading an input (a model folder, a tag set) are input-file errors (exit 2), not crashes:
    library errors such as a truncated safetensors file become a `ValueError` naming `description`."""
    try:
        yield
    except (OSError, ValueError, TypeError):
        raise
    except Exception as error:
        raise ValueError(f"{description}: {type(error).__name__}: {error}") from error
