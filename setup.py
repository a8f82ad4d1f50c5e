"""Build the optional C kernel for .brew predictions (metadata lives in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and coldbrew uses its numpy kernel.
``-ffp-contract=off`` keeps the compiler from fusing multiply-adds, which would change the bits.
``-fno-if-conversion`` keeps the left/right choice a branch: a conditional move would make every level wait
for the previous node's load (measured 3x slower on 10,000-row batches).
``Py_LIMITED_API`` 3.11: the stable ABI, so one ``_kernel.abi3.so`` serves every Python >= 3.11 (the python3.11,
3.12 and 3.13 Lambda runtimes alike); ``coldbrew.deploy.crossbuild`` builds the same source for Lambda targets.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "coldbrew.engine._kernel",
            sources=["coldbrew/engine/_kernel.c"],
            extra_compile_args=[
                "-O2",
                "-ffp-contract=off",
                "-fno-fast-math",
                "-fno-if-conversion",
                "-fno-if-conversion2",
            ],
            define_macros=[("Py_LIMITED_API", "0x030B0000")],
            py_limited_api=True,
            optional=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
