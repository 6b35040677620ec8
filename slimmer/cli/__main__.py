"""``python -m slimmer.cli``: the ``slim`` command."""

from slimmer.cli import main

main()
