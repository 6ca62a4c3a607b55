"""Prints pip constraints that pin every dependency of ortsparse, its extras' included, to the floor
pyproject.toml states (name>=version becomes name==version): tools/test_versions.sh installs the
oldest supported set with them, so that the floors are what CI tests.

Usage: python3.11+ tools/floor_constraints.py [pyproject.toml]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_FLOOR = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)>=([0-9][0-9.]*)")


def floor_constraints(pyproject: dict) -> list[str]:
    """One ``name==floor`` line per dependency; a requirement that is not a plain floor, or a
    package given two different floors, is an error."""
    project = pyproject["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    floors: dict[str, str] = {}
    for requirement in requirements:
        match = _FLOOR.fullmatch(requirement.replace(" ", ""))
        if match is None:
            raise ValueError(f"{requirement!r} is not a plain floor (name>=version)")
        name, version = re.sub(r"[-_.]+", "-", match[1]).lower(), match[2]
        if floors.setdefault(name, version) != version:
            raise ValueError(f"{name} has two floors: {floors[name]} and {version}")
    return [f"{name}=={version}" for name, version in floors.items()]


def main() -> int:
    import tomllib  # Python 3.11+; floor_constraints itself runs on 3.10 too (the tests)

    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parents[1] / "pyproject.toml")
    try:
        lines = floor_constraints(tomllib.loads(path.read_text()))
    except ValueError as error:
        print(f"floor_constraints: {path}: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
