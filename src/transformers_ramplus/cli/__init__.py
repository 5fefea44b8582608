"""The `ramplus` command line: argument parsing and printing only (see `transformers_ramplus.cli.main.COMMANDS`)."""
