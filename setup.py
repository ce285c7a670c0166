"""The one compiled module: `bridge.codec._speedups`, from bridge/codec/csrc/ (module.c says what it does).

Everything else is in pyproject.toml. The module is optional: without a C compiler the install still
succeeds and the bridge uses the Python transcoder, which writes the same bytes more slowly.
"""

from pathlib import Path

from setuptools import Extension, setup

SOURCES = sorted(str(path) for path in Path("bridge/codec/csrc").glob("*.c"))

setup(
    ext_modules=[
        Extension(
            "bridge.codec._speedups",
            SOURCES,
            include_dirs=["bridge/codec/csrc"],
            depends=["bridge/codec/csrc/avro.h"],
            optional=True,
        )
    ]
)
