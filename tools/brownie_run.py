"""Run a Brownie script from a checkout at any path (``make deploy`` and the tests use it).

    python -m tools.brownie_run scripts/deploy.py [FUNCTION [ARG ...]] --network evnet-anvil

The same arguments as ``brownie run``. Brownie 1.22's ``brownie run`` imports a script as a module
named after its whole absolute path joined with dots, so it fails when any folder of the path has a
dot in it (``/home/jane.doe/...``: "No module named 'home.jane'"; upstream PRs #1070 and #1654 were
never merged). This runner does what ``brownie run`` does (load the project, compiling what changed,
connect to the network, call the function with the arguments as strings), but imports the script by
its name inside the project (``scripts.deploy``), and first drops Brownie's records of earlier
chains (``build/deployments``). Run it from the project root, like Brownie."""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_name(script: str) -> str:
    """``scripts/deploy.py`` (or ``scripts/deploy``, or an absolute path in the project) -> ``scripts.deploy``."""
    path = Path(script)
    path = (path if path.is_absolute() else ROOT / path).with_suffix("")
    try:
        return ".".join(path.resolve().relative_to(ROOT).parts)
    except ValueError:
        raise SystemExit(f"brownie_run: {script} is not a script of the project in {ROOT}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.brownie_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("script", help="e.g. scripts/deploy.py")
    parser.add_argument("function", nargs="?", default="main", help="function to call (default: main)")
    parser.add_argument("args", nargs="*", help="its arguments, passed as strings")
    parser.add_argument("--network", default="evnet-anvil", help="Brownie network (default: evnet-anvil)")
    options = parser.parse_args(argv)
    name = module_name(options.script)

    from brownie import network, project  # imported late: --help works without loading Brownie

    # Brownie's records of contracts on earlier chains (our deployment file is what counts): on a fresh
    # Anvil that reuses chain id 31337, loading the project would fail on them ("No contract deployed at")
    shutil.rmtree(ROOT / "build" / "deployments", ignore_errors=True)
    active = project.load(ROOT, name="EvNetworkProject")
    active.load_config()
    network.connect(options.network)
    active._add_to_main_namespace()  # as `brownie run` does: `from brownie import EVToken` in the script
    try:
        function = getattr(importlib.import_module(name), options.function, None)
        if not callable(function):
            raise SystemExit(f"brownie_run: {options.script} has no function {options.function!r}")
        function(*options.args)
    finally:
        network.disconnect()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
