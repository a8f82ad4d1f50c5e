"""The CLI's sub-commands: each module parses its arguments (``add_arguments``) and calls a subsystem (``run``).

May import: any package, lazily inside ``run`` so that ``coldbrew serve`` pays only for what it serves.
"""
