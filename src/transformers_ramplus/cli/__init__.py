"""Sub-commands of the `ramplus` command line (see `transformers_ramplus.cli.main.COMMANDS`)."""

from ..hub import reading  # noqa: F401  (the commands' reading errors: exit 2, not 3)
