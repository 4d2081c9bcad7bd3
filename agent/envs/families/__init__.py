"""The built-in env families, one module each; importing the package registers every module in
it (so a new family is one file here)."""

from __future__ import annotations

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
