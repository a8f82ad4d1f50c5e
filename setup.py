"""Build the optional C kernel for .brew predictions (metadata lives in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and coldbrew uses its numpy kernel.
``-ffp-contract=off`` keeps the compiler from fusing multiply-adds, which would change the bits.
The traversal advances several walks together (lanes) with conditional moves, so the loads of different walks
overlap; ``-O3`` unrolls the lane loops.
``Py_LIMITED_API`` 3.11: the stable ABI, so one ``_kernel.abi3.so`` serves every Python >= 3.11 (the python3.11,
3.12 and 3.13 Lambda runtimes alike); ``coldbrew.deploy.crossbuild`` builds the same source for Lambda targets.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "coldbrew.engine._kernel",
            sources=["coldbrew/engine/_kernel.c"],
            depends=["coldbrew/engine/_cbexp_table.h"],
            extra_compile_args=[
                "-O3",
                "-ffp-contract=off",
                "-fno-fast-math",
                "-pthread",
            ],
            extra_link_args=["-pthread"],
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            py_limited_api=True,
            optional=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
