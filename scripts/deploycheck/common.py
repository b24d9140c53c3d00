"""What every check shares: failures, the context (where the files are, the binary), commands."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .binary import BinaryFacts

REPO = Path(__file__).resolve().parents[2]
SCRATCH = REPO / ".build-deploy"


class CheckFailed(Exception):
    """A check found problems; each is one line of the message list."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Problems:
    """Collects problems of one check, so one run reports all of them."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def __call__(self, condition: bool, message: str) -> bool:
        if not condition:
            self.items.append(message)
        return condition

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self) -> None:
        if self.items:
            raise CheckFailed(self.items)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


# Context shared by the checks


@dataclass
class Context:
    root: Path
    binary_path: Path | None
    rendered: dict[str, list[dict]] = field(default_factory=dict)
    _binary: "BinaryFacts | None" = None

    @property
    def deploy(self) -> Path:
        return self.root / "deploy"

    def binary(self) -> Path:
        if self.binary_path is None:
            self.binary_path = build_release_binary()
        return self.binary_path

    def facts(self) -> "BinaryFacts":
        from .binary import BinaryFacts

        if self._binary is None:
            self._binary = BinaryFacts.read(self.binary())
        return self._binary

    def kustomizations(self) -> list[Path]:
        found = [self.deploy, self.deploy / "base"]
        overlays = self.deploy / "overlays"
        if overlays.is_dir():
            found += sorted(p for p in overlays.iterdir() if (p / "kustomization.yaml").exists())
        return [p for p in found if (p / "kustomization.yaml").exists()]

    def rendered_objects(self, directory: Path) -> list[dict]:
        from .kube import render

        key = str(directory)
        if key not in self.rendered:
            self.rendered[key] = render(directory)
        return self.rendered[key]

    def examples(self) -> list[tuple[Path, dict]]:
        import yaml

        documents = []
        for path in sorted((self.deploy / "examples").glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text()):
                if document:
                    documents.append((path, document))
        return documents


def build_release_binary() -> Path:
    """The release binary, built like the Dockerfile builds it, in our own scratch directory."""
    command = ["swift", "build", "--scratch-path", str(SCRATCH), "-c", "release", "--static-swift-stdlib",
               "--product", "glusterfs-csi"]
    # As the Dockerfile's build stage: gRPC core linked statically (see Package.swift).
    result = run(command, cwd=REPO, env={**os.environ, "GLUSTERFS_CSI_STATIC_GRPC": "1"})
    if result.returncode != 0:
        raise CheckFailed([f"cannot build the release binary ({' '.join(command)}):",
                           *result.stdout.splitlines()[-20:], *result.stderr.splitlines()[-20:]])
    path = SCRATCH / "release" / "glusterfs-csi"
    if not path.exists():
        raise CheckFailed([f"the build finished but {path} does not exist"])
    return path
