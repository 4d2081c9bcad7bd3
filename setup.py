"""Packages for setuptools: ``agent*`` plus ``agent.conf``, the top-level ``conf/`` folder
shipped inside the wheel (``pyproject.toml`` maps the folder and its YAML files; a mapped folder
cannot be found by ``packages.find``, so it is listed here). Everything else is in
``pyproject.toml``."""

from setuptools import find_packages, setup

PACKAGES = find_packages(include=["agent", "agent.*"])
setup(packages=[name.replace("agent", "dopa_rl", 1) for name in PACKAGES] + ["dopa_rl.conf"])
