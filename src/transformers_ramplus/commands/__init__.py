"""Sub-commands of the `ramplus` command line (see `transformers_ramplus.cli.COMMANDS`)."""
