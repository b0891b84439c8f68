"""Build dist/app.zip: exactly what Azure needs to run the app (zip deploy), nothing local or secret.

Run: `python scripts/package.py` (or `make package`). The archive holds function_app.py, host.json,
requirements.txt and the `failover` and `handlers` packages (with the timeline page's templates);
Azure installs requirements.txt (remote build). Local settings, tests and tooling never go in.

Bytecode ships with the sources: a run-from-package deployment is a read-only mount, so a worker
could never write `__pycache__` and would compile every module on every cold start. Each module is
compiled with unchecked-hash invalidation (PEP 552): the interpreter loads it without comparing
timestamps, which a zip's extraction would not keep. The bytecode is for the Python version that
builds the package (`cpython-311` files for 3.11); build with the app's Python version, since any
other version ignores it and compiles as before.
"""

from __future__ import annotations

import importlib.util
import py_compile
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("function_app.py", "host.json", "requirements.txt")
PACKAGES = ("failover", "handlers")
SHIPPED = ("*.py", "templates/*")  # modules, and the timeline page's template and style sheet


def build(target: Path, *, bytecode: bool = True) -> list[str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive, tempfile.TemporaryDirectory() as tmp:
        paths = [ROOT / f for f in FILES]
        for package in PACKAGES:
            for pattern in SHIPPED:
                paths += sorted(p for p in (ROOT / package).rglob(pattern) if "__pycache__" not in p.parts)
        for path in paths:
            name = path.relative_to(ROOT).as_posix()
            archive.write(path, name)
            names.append(name)
            if bytecode and path.suffix == ".py":
                cached = importlib.util.cache_from_source(name)
                compiled = Path(tmp) / cached
                py_compile.compile(
                    str(path),
                    cfile=str(compiled),
                    dfile=name,
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
                archive.write(compiled, cached)
                names.append(cached)
    return names


if __name__ == "__main__":
    out = ROOT / "dist" / "app.zip"
    files = build(out)
    print(
        f"{out} ({len(files)} files, bytecode for Python {sys.version_info.major}.{sys.version_info.minor})"
    )
    sys.exit(0)
