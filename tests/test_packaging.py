"""Packaging: setup.cfg's declared dependency ranges, constraints.txt's exact pins and the --no-deps step agree.

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
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
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
