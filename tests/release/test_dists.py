"""The distribution files a release uploads, checked as PyPI and pip see them.

* every native wheel is portable: ``manylinux_2_17`` (manylinux2014) for
  x86_64 Linux in its file name, confirmed by ``auditwheel show`` from the
  symbols it really uses, and it links nothing but glibc's own libraries
  (no libpython: abi3; no OpenSSL, no libstdc++);
* ``twine check --strict`` (the README renders on PyPI) and
  ``check-wheel-contents`` (no stray files, one top-level package) pass;
* the two license texts are in every wheel and sdist, identical to the
  repository's.
"""

from __future__ import annotations

import io
import json
import platform
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Set

import pytest
from conftest import DIST, NATIVE, PACKAGES, ROOT, Package, run, sdist_of, wheel_of

LINUX_X86_64 = sys.platform == "linux" and platform.machine() == "x86_64"
#: The platform tag of the Linux x86_64 wheels: glibc >= 2.17 (RHEL/CentOS 7,
#: Amazon Linux 2, Ubuntu 18.04, Debian 9 and everything newer).
MANYLINUX_TAG = "manylinux_2_17_x86_64"
#: Shared libraries a native wheel may link: glibc's own and the dynamic
#: loader. Narrower than the manylinux policy (which also allows X11, GLib,
#: libstdc++...): the wheels are Rust with a C-free TLS stack.
ALLOWED_LIBS = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
}
LICENSES = ["LICENSE-MIT", "LICENSE-APACHE"]

linux_only = pytest.mark.skipif(not LINUX_X86_64, reason="the built wheels are Linux x86_64 ones")


def _all_dists() -> List[Path]:
    return [wheel_of(p) for p in PACKAGES] + [sdist_of(p) for p in PACKAGES]


def test_dist_holds_exactly_one_wheel_and_one_sdist_per_package() -> None:
    expected = {p.stem for p in PACKAGES}
    wheels = sorted(DIST.glob("*.whl"))
    sdists = sorted(DIST.glob("*.tar.gz"))
    assert sorted(w.name.split("-")[0] for w in wheels) == sorted(expected), [w.name for w in wheels]
    assert sorted(s.name.rsplit("-", 1)[0] for s in sdists) == sorted(expected), [s.name for s in sdists]


def _needed_libs(data: bytes) -> Set[str]:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    needed: Set[str] = set()
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.add(str(tag.needed))  # type: ignore[attr-defined]  # set by pyelftools per tag kind
    return needed


def _extension_modules(wheel: Path) -> Dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n.endswith(".so")}


@linux_only
@pytest.mark.parametrize("package", NATIVE, ids=lambda p: p.dist)
def test_native_wheel_is_manylinux2014_and_links_only_glibc(package: Package) -> None:
    wheel = wheel_of(package)
    platform_tags = wheel.name[: -len(".whl")].split("-")[-1].split(".")
    assert MANYLINUX_TAG in platform_tags, f"{wheel.name}: platform tags {platform_tags}, expected {MANYLINUX_TAG}"
    assert all(t in (MANYLINUX_TAG, "manylinux2014_x86_64") for t in platform_tags), platform_tags
    assert "-cp39-abi3-" in wheel.name, wheel.name

    report = json.loads(run([sys.executable, "-m", "auditwheel", "show", "--json", str(wheel)]))
    # The tag auditwheel derives from the symbol versions the library uses
    # (GLIBC_2.x), not from the file name: a wheel linked against a newer
    # glibc would say manylinux_2_34 here.
    assert report["overall_tag"] == MANYLINUX_TAG, report
    assert report["sym_tag"] == MANYLINUX_TAG, report
    assert report["external_libs"] == {}, f"{wheel.name} needs libraries outside the policy: {report['external_libs']}"
    glibc = {v for versions in report["versioned_symbols"].values() for v in versions if v.startswith("GLIBC_")}
    newest = max(tuple(int(x) for x in v[len("GLIBC_") :].split(".")) for v in glibc)
    assert newest <= (2, 17), f"{wheel.name} uses a symbol of GLIBC_{'.'.join(map(str, newest))}"

    modules = _extension_modules(wheel)
    assert list(modules) == [f"{package.module}/_native.abi3.so"], list(modules)
    needed = _needed_libs(modules[f"{package.module}/_native.abi3.so"])
    assert needed, "no DT_NEEDED entries read: the ELF reader found nothing"
    assert needed <= ALLOWED_LIBS, f"{wheel.name} links {sorted(needed - ALLOWED_LIBS)}"
    assert not any("python" in lib for lib in needed), needed


def test_twine_check_strict() -> None:
    out = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, _all_dists())])
    assert out.count("PASSED") == 2 * len(PACKAGES), out


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.dist)
def test_check_wheel_contents(package: Package) -> None:
    wheel = wheel_of(package)
    out = run([sys.executable, "-m", "check_wheel_contents", "--toplevel", package.module, str(wheel)])
    assert f"{wheel}: OK" in out, out


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.dist)
def test_license_texts_in_wheel_and_sdist(package: Package) -> None:
    root_texts = {name: (ROOT / name).read_bytes() for name in LICENSES}
    for name, text in root_texts.items():
        assert (package.path / name).read_bytes() == text, f"{package.path / name} differs from the root's {name}"
    with zipfile.ZipFile(wheel_of(package)) as zf:
        for name, text in root_texts.items():
            hits = [n for n in zf.namelist() if n.endswith(f".dist-info/licenses/{name}")]
            assert len(hits) == 1, (name, zf.namelist())
            assert zf.read(hits[0]) == text, hits[0]
        metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = zf.read(metadata).decode()
        assert "License-Expression: MIT OR Apache-2.0" in meta
        assert {f"License-File: {n}" for n in LICENSES} <= set(meta.splitlines()), meta[:2000]
    with tarfile.open(sdist_of(package)) as tf:
        members = {m.name.split("/", 1)[1]: m for m in tf.getmembers() if "/" in m.name and m.isfile()}
        for name, text in root_texts.items():
            found = [k for k in members if k.endswith(name)]
            assert found, (name, sorted(members))
            extracted = tf.extractfile(members[found[0]])
            assert extracted is not None
            assert extracted.read() == text, found[0]
