"""Package layout that pyproject.toml cannot say: the labs ship as `iiotlab_labs`.

`labs/` stays at the repository root (DESIGN.md's layout) and is installed as the package
`iiotlab_labs`, so `grader.catalog` finds the built-in labs with importlib.resources in a
wheel and in an editable install alike. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

PACKAGES = ["iiotlab*", "simulators*", "edge_gateway*", "iiot_platform*", "grader*"]

setup(
    packages=[*find_namespace_packages(include=PACKAGES), "iiotlab_labs"],
    package_dir={"iiotlab_labs": "labs"},
)
