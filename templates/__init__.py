"""Starter projects that ``faaspool new <lambda|gcf|azure> DIR`` copies.

Each folder is one platform's project. ``{{name}}`` and ``{{faaspool_version}}`` in its
files are filled in when it is copied.
"""
