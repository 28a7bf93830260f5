"""One module per CLI verb. Each defines NAME, EXAMPLES (the lines that end its --help) and `command` (a Typer
function whose docstring is its --help). Options several verbs share come from _options.py, fixed choices from
hicmd/choices.py. Heavy imports go inside `command`."""
