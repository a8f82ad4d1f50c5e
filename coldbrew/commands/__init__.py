"""The CLI's sub-commands: each module parses its arguments (``add_arguments``) and calls a subsystem (``run``).

May import: any package, lazily inside ``run`` so that ``coldbrew serve`` pays only for what it serves.
"""


def add_model_uri(parser, help: str) -> None:
    """The optional ``MODEL_URI`` of the commands that run a function or server on a model (lab, serve)."""
    parser.add_argument("model_uri", nargs="?", metavar="MODEL_URI", help=help)
