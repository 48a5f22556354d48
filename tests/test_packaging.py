"""Packaging: setup.cfg's declared dependency ranges, constraints.txt's exact pins and the test-only --no-deps
step agree; the Pythons the Makefile, setup.cfg and CI name are the same three.

`make install` and the wheel check (.ci/wheel_check.sh) install with `pip install -c constraints.txt`; a range in
setup.cfg that excludes its pin would make that install fail, and a package missing from constraints.txt would
go in unpinned.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def _declared() -> list[Requirement]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options"]["install_requires"].splitlines()
    for extra in setup["options.extras_require"].values():
        lines += extra.splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins(ROOT / "constraints.txt")
    declared = _declared()
    assert {"tensorflow", "fastapi", "pytest"} <= {canonicalize_name(r.name) for r in declared}
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared in setup.cfg but not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"setup.cfg's {requirement} excludes constraints.txt's {name}=={pins[name]}")


def test_the_no_deps_packages_are_pinned_alike_and_not_declared() -> None:
    pins = _pins(ROOT / "constraints.txt")
    no_deps = _pins(ROOT / "requirements-nodeps.txt")
    assert set(no_deps) == {"tflite-support", "mediapipe"}
    for name, version in no_deps.items():
        assert pins.get(name) == version, f"{name}: requirements-nodeps.txt and constraints.txt disagree"
    assert not set(no_deps) & {canonicalize_name(r.name) for r in _declared()}


def test_the_runtime_needs_neither_no_deps_package() -> None:
    """dermtool's runtime dependencies leave out tflite-support, mediapipe and libusb-package (test-only)."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    runtime = {canonicalize_name(Requirement(line).name)
               for line in setup["options"]["install_requires"].splitlines() if line.strip()}
    assert not runtime & {"tflite-support", "mediapipe", "libusb-package"}
    lines = [line for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
             if line.startswith("tflite-support")]
    marker = Requirement(lines[0]).marker  # no wheels after Python 3.11: skipped there
    assert marker is not None and marker.evaluate({"python_version": "3.11"})
    assert not marker.evaluate({"python_version": "3.12"}) and not marker.evaluate({"python_version": "3.13"})


def test_python_versions_agree() -> None:
    """setup.cfg accepts 3.11-3.13 and names them; the Makefile picks the newest of the same three."""
    from packaging.specifiers import SpecifierSet

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    accepted = SpecifierSet(setup["options"]["python_requires"])
    assert [version for version in ("3.10", "3.11", "3.12", "3.13", "3.14") if version in accepted] == \
        ["3.11", "3.12", "3.13"]
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in setup["metadata"]["classifiers"]
    assert "for p in python3.13 python3.12 python3.11;" in (ROOT / "Makefile").read_text()
