"""The `palestra` command line: one thin module per command group, wired in `main.py`."""
