"""velocast pipeline: domains (weather, protein), data sources, stores, evaluation, query, CLI.

Dependencies point one way: ``flows -> pipeline -> models``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("velocast")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
