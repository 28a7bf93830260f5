"""One module per CLI verb. Each defines NAME and `command` (a Typer function whose docstring is its --help).
Heavy imports go inside `command`."""
