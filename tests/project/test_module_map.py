"""docs/architecture.md's module map names every module of core_client's packages, each in its package's
row, and no module that is gone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_architecture_module_map_names_every_core_client_module():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    listed = {
        f"{package}{module}"
        for package, modules in re.findall(r"^\| `([a-z_/]+/)`: ([^|]+)\|", doc, re.M)
        for module in re.findall(r"`([a-z_]+\.py)`", modules)
    }
    present = {
        str(path.relative_to(ROOT / "core_client"))
        for path in (ROOT / "core_client").rglob("*.py")
        if path.parent != ROOT / "core_client" and path.name not in ("__init__.py", "__main__.py")
        and "models" not in path.parts  # ocpi/models/: one row for the package
    }  # fmt: skip
    assert not present - listed, f"modules missing from docs/architecture.md: {sorted(present - listed)}"
    assert not listed - present, f"modules in docs/architecture.md that are gone: {sorted(listed - present)}"
