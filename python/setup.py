"""Build step of the rlhf binding: copies the shared library that `make` built
into the package, so an installed binding needs no source tree.

Where the library comes from: $RLHF_BUILD/librlhf.so when RLHF_BUILD is set
(a build folder, e.g. build-asan), else ../build/librlhf.so next to this
folder. Without either the package installs without it and finds the library
at run time from RLHF_LIB (see rlhf/_lib.py); a note says so.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def built_library():
    build = os.environ.get("RLHF_BUILD")
    if build:
        if not os.path.isabs(build):
            build = os.path.join(HERE, "..", build)
        return os.path.join(build, "librlhf.so")
    return os.path.join(HERE, "..", "build", "librlhf.so")


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        lib = built_library()
        if os.path.isfile(lib):
            dest = os.path.join(self.build_lib, "rlhf", "librlhf.so")
            shutil.copyfile(lib, dest)
            print(f"rlhf: bundled {os.path.normpath(lib)}")
        else:
            print(f"rlhf: {os.path.normpath(lib)} not found (run `make` first, or set RLHF_BUILD); "
                  "installing without it: set RLHF_LIB to a librlhf.so at run time")


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
