"""Build hook: cffi compiles the C kernels in csrc/ into ``fastbias._cext``."""

from setuptools import setup

setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"])
