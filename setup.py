"""Build script kept for the layout's promise; the metadata lives in pyproject.toml."""

from setuptools import setup

setup()
