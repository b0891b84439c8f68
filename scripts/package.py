"""Build dist/app.zip: exactly what Azure needs to run the app (zip deploy), nothing local or secret.

Run: `python scripts/package.py` (or `make package`). The archive holds function_app.py, host.json,
requirements.txt and the `failover` and `handlers` packages; Azure installs requirements.txt
(remote build). Local settings, tests and tooling never go in.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("function_app.py", "host.json", "requirements.txt")
PACKAGES = ("failover", "handlers")


def build(target: Path) -> list[str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        paths = [ROOT / f for f in FILES]
        for package in PACKAGES:
            paths += sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)
        for path in paths:
            name = path.relative_to(ROOT).as_posix()
            archive.write(path, name)
            names.append(name)
    return names


if __name__ == "__main__":
    out = ROOT / "dist" / "app.zip"
    files = build(out)
    print(f"{out} ({len(files)} files)")
    sys.exit(0)
