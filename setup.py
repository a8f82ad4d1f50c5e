"""Build the optional C kernel for .brew predictions (metadata lives in pyproject.toml).

``optional=True``: without a C compiler the install still succeeds and coldbrew uses its numpy kernel.
``-ffp-contract=off`` keeps the compiler from fusing multiply-adds, which would change the bits.
``-fno-if-conversion`` keeps the left/right choice a branch: a conditional move would make every level wait
for the previous node's load (measured 3x slower on 10,000-row batches).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "coldbrew.engine._kernel",
            sources=["coldbrew/engine/_kernel.c"],
            extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math", "-fno-if-conversion", "-fno-if-conversion2"],
            optional=True,
        )
    ]
)
