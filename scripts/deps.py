"""Keep pyproject.toml, the hashed locks and the installed environment in agreement.

    python scripts/deps.py digest                  the digest of what the locks were made from
    python scripts/deps.py lock-matches-pyproject  every declared requirement is pinned, hashed,
                                                   inside its range; the locks are up to date
    python scripts/deps.py env-matches-lock        this environment holds exactly the dev lock

`digest` needs only the standard library (scripts/lock runs it before any venv exists).
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
BUILD_IN = ROOT / "requirements" / "build.in"
LOCKS = {"app": ROOT / "requirements" / "app.txt", "dev": ROOT / "requirements" / "dev.txt"}
DIGEST_LINE = re.compile(r"^# pyproject-digest: ([0-9a-f]{64})$", re.M)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?\\?\s*$")


def declared() -> tuple[list[str], list[str], list[str]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    build = [
        line.split("#", 1)[0].strip()
        for line in BUILD_IN.read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    return list(project["dependencies"]), list(project["optional-dependencies"]["dev"]), build


def digest() -> str:
    app, dev, build = declared()
    text = "\n".join(["[app]", *app, "[dev]", *dev, "[build]", *build])
    return hashlib.sha256(text.encode()).hexdigest()


def read_lock(path: Path) -> tuple[str | None, dict[str, tuple[str, str]], list[str]]:
    """The recorded digest, {normalised name: (version, marker)}, and pins without a hash."""
    from packaging.utils import canonicalize_name

    text = path.read_text()
    found = DIGEST_LINE.search(text)
    pins: dict[str, tuple[str, str]] = {}
    unhashed: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = PIN.match(line)
        if not match:
            continue
        name = str(canonicalize_name(match.group(1)))
        pins[name] = (match.group(3), (match.group(4) or "").lstrip(";").strip())
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if "--hash=sha256:" not in following:
            unhashed.append(name)
    return (found.group(1) if found else None), pins, unhashed


def lock_matches_pyproject() -> list[str]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    problems: list[str] = []
    app, dev, build = declared()
    wanted = digest()
    locks = {}
    for kind, path in LOCKS.items():
        if not path.exists():
            problems.append(f"{path.relative_to(ROOT)} is missing: run scripts/lock")
            continue
        recorded, pins, unhashed = read_lock(path)
        locks[kind] = pins
        if recorded != wanted:
            problems.append(
                f"{path.relative_to(ROOT)} was not made from this pyproject.toml "
                "(its dependencies changed): run scripts/lock"
            )
        problems += [f"{path.relative_to(ROOT)}: {n} has no hash" for n in unhashed]
    if len(locks) < 2:
        return problems
    for kind, reqs in (("app", app + build), ("dev", app + dev + build)):
        for text in reqs:
            req = Requirement(text)
            name = str(canonicalize_name(req.name))
            pin = locks[kind].get(name)
            if pin is None:
                problems.append(f"requirements/{kind}.txt does not pin {req.name}")
            elif req.specifier and not req.specifier.contains(pin[0], prereleases=True):
                problems.append(
                    f"requirements/{kind}.txt pins {req.name}=={pin[0]}, outside {req.specifier}"
                )
    for name, (version, _marker) in locks["app"].items():
        other = locks["dev"].get(name)
        if other is None or other[0] != version:
            problems.append(
                f"{name}: app lock says {version}, dev lock says {other[0] if other else 'nothing'}"
            )
    return problems


def env_matches_lock() -> list[str]:
    from importlib import metadata

    from packaging.markers import Marker

    problems: list[str] = []
    _recorded, pins, _unhashed = read_lock(LOCKS["dev"])
    for name, (version, marker) in sorted(pins.items()):
        if marker and not Marker(marker).evaluate():
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed")
            continue
        if have != version:
            problems.append(f"{name} {have} is installed, the lock says {version}")
    return problems


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "digest":
        print(digest())
        return 0
    checks = {
        "lock-matches-pyproject": lock_matches_pyproject,
        "env-matches-lock": env_matches_lock,
    }
    if command not in checks:
        print(__doc__, file=sys.stderr)
        return 2
    problems = checks[command]()
    for problem in problems:
        print(f"deps: {problem}", file=sys.stderr)
    if not problems:
        print(f"deps: {command}: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
