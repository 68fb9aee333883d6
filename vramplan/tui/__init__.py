"""Textual TUI: explore plans interactively (`vramplan tui`). Imports Textual only when used."""


def create_app(model=None, gpu=None, output_dir=None):
    from .app import create_app as _create
    return _create(model, gpu, output_dir)
