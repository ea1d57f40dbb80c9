"""``python -m tp4emu``: the ``tp4emu`` command line."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
