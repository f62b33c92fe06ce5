"""Real datasets shipped with edgekit (see README.md here for sources and licences).

The stored ``.npz`` files are read by :mod:`edgekit.data`; ``build_datasets.py`` regenerates them
from the original distributions. Nothing here is imported by ``import edgekit``.
"""
