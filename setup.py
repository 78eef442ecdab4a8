"""Build step for the optional C accelerator of the recorder (``trajarena.format._capture``).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the install
still succeeds and the recorder uses its pure-Python setters (slower per step, same files).
"""

import numpy
from setuptools import Extension, setup

setup(ext_modules=[Extension("trajarena.format._capture", ["src/trajarena/format/_capture.c", "src/trajarena/format/_store.c",
                                                                   "src/trajarena/format/_copier.c",
                                                                   "src/trajarena/format/_watch.c"],
                             include_dirs=[numpy.get_include()], depends=["src/trajarena/format/_capture.h"], optional=True,
                             extra_compile_args=["-O2", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                                 "-Wno-missing-field-initializers"],
                             extra_link_args=["-pthread"])])
