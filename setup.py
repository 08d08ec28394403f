"""The one build step pyproject.toml cannot say: the top-level `conf/` and `experiments/`
(where a Hydra user looks for them) go into the wheel inside the package, as `dlrun/conf/` and
`dlrun/experiments/`, because a pip or pipx install has no checkout beside it
(dlrun/layout.py finds either)."""

from setuptools import find_packages, setup

SHIPPED = {"dlrun.conf": "conf", "dlrun.experiments": "experiments"}

setup(packages=[*find_packages(include=["dlrun", "dlrun.*"]), *SHIPPED], package_dir=SHIPPED)
