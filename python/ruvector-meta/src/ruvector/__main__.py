"""``python -m ruvector``: the ``ruvector`` command."""

from ruvector.cli import entry_point

entry_point()
