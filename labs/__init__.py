"""The built-in labs, installed as the package `iiotlab_labs` (see setup.py).

Each lab is a folder `<id>/` holding lab.yaml, its READMEs, starter/, solution/ and
mutants/; `grader.catalog` finds them with importlib.resources.
"""
