"""Reading Kubernetes manifests given on the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


class ManifestError(Exception):
    """A manifest file that cannot be read or is not YAML objects."""


def load_documents(path: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path`` (``-`` is standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ManifestError(f"{path}: {error.strerror}") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from None
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict):
            raise ManifestError(f"{path}: document {index + 1} is not a mapping")
    return documents
