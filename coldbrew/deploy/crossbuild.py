"""Build the C kernel for a Lambda architecture on this machine, without Docker, and prove what was built.

One binary per architecture serves every Python >= 3.11: the kernel is compiled against the CPython stable ABI
(``Py_LIMITED_API`` 3.11, file name ``_kernel.abi3.so``). The compiler is Zig's bundled clang (PyPI package
``ziglang``), which links against a chosen glibc version, so the result loads on manylinux2014 (glibc 2.17) —
older than every Lambda Python runtime's glibc.

Every build is checked, and a failed check raises instead of falling back: the ELF machine must be the target's,
the only shared libraries needed are glibc's, and no versioned glibc symbol may be newer than the target's glibc
(libm's ``exp`` is the usual trap: ``exp@GLIBC_2.29`` on a new toolchain).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from coldbrew.errors import ColdbrewError

KERNEL_SOURCE = Path(__file__).resolve().parent.parent / "engine" / "_kernel.c"
KERNEL_FILE = "_kernel.abi3.so"
LIMITED_API = "0x030B0000"  # the stable ABI as of Python 3.11: one binary for 3.11, 3.12, 3.13, ...
GLIBC_LIBRARIES = frozenset(
    {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
)
# The C library functions whose exact bits the kernel's answers depend on: each must be imported from glibc.
LIBM_IMPORTS = ("exp", "expf")
# Same flags as setup.py: no fused multiply-adds, no fast-math, so the bits equal the host build's.
CFLAGS = ("-shared", "-fPIC", "-O2", "-ffp-contract=off", "-fno-fast-math")


class CrossBuildError(ColdbrewError):
    """The kernel could not be built for the target, or the binary fails a target check."""


@dataclass(frozen=True)
class Target:
    """A Lambda architecture: Zig's target triple, the ELF machine it must produce, the newest glibc allowed."""

    arch: str
    zig_triple: str
    elf_machine: str
    glibc: tuple[int, int]


TARGETS: dict[str, Target] = {
    "x86_64": Target("x86_64", "x86_64-linux-gnu.2.17", "EM_X86_64", (2, 17)),
    "arm64": Target("arm64", "aarch64-linux-gnu.2.17", "EM_AARCH64", (2, 17)),
}


@dataclass
class ElfReport:
    """What a shared object is: its machine, the libraries it needs, the glibc versions its symbols require."""

    path: Path
    machine: str
    needed: list[str] = field(default_factory=list)
    glibc_versions: dict[str, tuple[int, int]] = field(default_factory=dict)  # symbol -> newest version needed

    @property
    def newest_glibc(self) -> tuple[int, int] | None:
        """The newest glibc version any symbol needs, or None when none is versioned."""
        return max(self.glibc_versions.values(), default=None)

    def problems(self, target: Target, *, kernel: bool = False) -> list[str]:
        """Every way this binary would fail to load on ``target`` (``kernel``: or serve other bits than the
        library, as coldbrew's kernel); empty when it is fit."""
        found = []
        if self.machine != target.elf_machine:
            found.append(f"ELF machine is {self.machine}, the {target.arch} target needs {target.elf_machine}")
        foreign = [lib for lib in self.needed if lib not in GLIBC_LIBRARIES]
        if foreign:
            found.append(f"needs shared libraries outside glibc: {', '.join(foreign)}")
        own = [name for name in LIBM_IMPORTS if kernel and name not in self.glibc_versions]
        if own:  # e.g. a compiler runtime's exp: other last bits than the C library's, so not the libraries' answers
            found.append(f"does not take {', '.join(own)} from the C library (the kernel's results need its bits)")
        too_new = {s: v for s, v in self.glibc_versions.items() if v > target.glibc}
        if too_new:
            listed = ", ".join(f"{s}@GLIBC_{v[0]}.{v[1]}" for s, v in sorted(too_new.items()))
            found.append(f"symbols newer than glibc {target.glibc[0]}.{target.glibc[1]}: {listed}")
        return found


def target_for(arch: str) -> Target:
    """The target for a Lambda architecture name (``x86_64`` or ``arm64``; ``aarch64`` is accepted)."""
    key = "arm64" if arch == "aarch64" else arch
    if key not in TARGETS:
        raise CrossBuildError(f"unknown architecture {arch!r}; Lambda has {' and '.join(TARGETS)}")
    return TARGETS[key]


def _parse_glibc(version: str) -> tuple[int, int] | None:
    if not version.startswith("GLIBC_"):
        return None
    parts = version[len("GLIBC_") :].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def inspect_elf(path: str | Path) -> ElfReport:
    """Read a shared object's machine, DT_NEEDED libraries and glibc symbol versions (pyelftools)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
    from elftools.elf.sections import SymbolTableSection

    path = Path(path)
    try:
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            report = ElfReport(path=path, machine=elf["e_machine"])
            versions: dict[int, str] = {}
            versym = None
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    report.needed += [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]  # type: ignore[attr-defined]
                elif isinstance(section, GNUVerNeedSection):
                    for _lib, auxiliaries in section.iter_versions():
                        for aux in auxiliaries:
                            versions[aux["vna_other"]] = aux.name
                elif isinstance(section, GNUVerSymSection):
                    versym = section
            dynsym = elf.get_section_by_name(".dynsym")
            if isinstance(dynsym, SymbolTableSection) and versym is not None:
                for i, symbol in enumerate(dynsym.iter_symbols()):
                    index = versym.get_symbol(i)["ndx"]
                    version = versions.get(index) if isinstance(index, int) else None
                    parsed = _parse_glibc(version) if version else None
                    if parsed is not None and symbol.name:
                        report.glibc_versions[symbol.name] = max(parsed, report.glibc_versions.get(symbol.name, parsed))
    except (OSError, ELFError) as exc:
        raise CrossBuildError(f"{path}: not a readable ELF shared object ({exc})") from None
    return report


def _zig() -> list[str]:
    try:
        import ziglang  # noqa: F401  (the package ships the zig binary; we run it as a module)
    except ImportError:
        raise CrossBuildError(
            "cross-compiling the kernel needs Zig's toolchain: pip install 'coldbrew[deploy]' (package ziglang)"
        ) from None
    return [sys.executable, "-m", "ziglang", "cc"]


def build_kernel(arch: str, out_dir: str | Path, *, source: Path = KERNEL_SOURCE) -> ElfReport:
    """Compile the kernel for ``arch`` into ``out_dir/_kernel.abi3.so`` and check it; raise on any failure.

    Returns the ELF report of the checked binary. Never falls back: a target build that cannot be made or
    checked is an error, because a zip without its kernel would silently serve through the slow path.
    """
    target = target_for(arch)
    out = Path(out_dir) / KERNEL_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        *_zig(),
        "-target",
        target.zig_triple,
        *CFLAGS,
        f"-DPy_LIMITED_API={LIMITED_API}",
        f"-I{sysconfig.get_paths()['include']}",
        "-o",
        str(out),
        str(source),
        "-lm",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CrossBuildError(f"building the kernel for {target.arch} failed: {last}")
    report = inspect_elf(out)
    problems = report.problems(target, kernel=True)
    if problems:
        raise CrossBuildError(f"{out}: unfit for {target.arch}: {'; '.join(problems)}")
    return report
