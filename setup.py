"""The one compiled module: `bridge.codec._speedups` (see bridge/codec/_speedups.c).

Everything else is in pyproject.toml. The module is optional: without a C compiler the install still
succeeds and the bridge uses the Python transcoder, which writes the same bytes more slowly.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("bridge.codec._speedups", ["bridge/codec/_speedups.c"], optional=True)])
