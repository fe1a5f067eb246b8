"""``python -m ruvector``: the ``ruvector`` command."""

from ruvector.cli import entry_point

if __name__ == "__main__":  # importing the module (stubtest, pydoc) runs nothing
    entry_point()
