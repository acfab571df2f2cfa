"""Importing an optional dependency on first use, with one error that says what needs it and what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import"]


def optional_import(module: str, *, needed_by: str, extra: str) -> ModuleType:
    """``importlib.import_module(module)``; without it, ``ImportError("<needed_by> needs <module>: pip install
    'lrmon[<extra>]'")``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{needed_by} needs {module.split('.')[0]}: pip install 'lrmon[{extra}]'") from error
