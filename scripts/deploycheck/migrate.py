"""migrate: `glusterfs-csi migrate` on the in-tree fixtures writes manifests the API server takes, and what
docs/migration.md and deploy/examples/migrated-pv.yaml show."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .common import REPO, CheckFailed, Context, Problems, run
from .kube import validate_documents

# Lists of in-tree PV/PVC/Endpoints/StorageClass objects as `kubectl get ... -o json` writes them, each with
# the golden standard output (<name>.yaml) and standard error (<name>.plan.txt) of `glusterfs-csi migrate`
# (Tests/MigrationTests compares the Swift code with the same files).
FIXTURES = REPO / "Tests" / "MigrationTests" / "Fixtures" / "migrate"
# The fixture that is docs/migration.md's cluster: everything in it migrates.
WALKTHROUGH = "in-tree.json"
WALKTHROUGH_CLAIM = ("default", "legacy-data")


def check_migrate(context: Context) -> str:
    try:
        import kubernetes_validate
        import yaml
    except ImportError as error:
        raise CheckFailed([f"{error.name} is missing: pip install kubernetes-validate pyyaml"])
    version = kubernetes_validate.latest_version()
    binary = str(Path(context.binary()).resolve())
    problems = Problems()
    fixtures = sorted(FIXTURES.glob("*.json"))
    if not fixtures:
        raise CheckFailed([f"no fixtures in {FIXTURES.relative_to(REPO)}"])
    documents: list[tuple[str, dict]] = []
    walkthrough: list[dict] = []
    for fixture in fixtures:
        where = f"glusterfs-csi migrate {fixture.name}"

        def migrate(*arguments: str, stdin: str | None = None):
            # In the fixtures' directory, so the plan names the input as the golden file does.
            source = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
            return run([binary, "migrate", *arguments], cwd=fixture.parent, **source)

        result = migrate(fixture.name)
        refused = "\nRefused:" in result.stderr
        if not problems(result.returncode == (1 if refused else 0),
                        f"{where}: exited with {result.returncode}, expected {1 if refused else 0} "
                        f"({'some' if refused else 'no'} PVs refused): {result.stderr.strip()[:300]}"):
            continue
        problems(not (fixture.name == WALKTHROUGH and refused),
                 f"{where}: refuses PVs of the walkthrough's cluster: {result.stderr.strip()[:300]}")
        for suffix, text in [(".yaml", result.stdout), (".plan.txt", result.stderr)]:
            golden = fixture.with_suffix(suffix)
            problems(golden.exists() and golden.read_text() == text,
                     f"{where}: its {'output' if suffix == '.yaml' else 'plan'} differs from "
                     f"{golden.relative_to(REPO)} (the binary and the Swift tests disagree)")
        again = migrate(fixture.name)
        problems((again.stdout, again.stderr, again.returncode) == (result.stdout, result.stderr, result.returncode),
                 f"{where}: a second run wrote something else")
        checked = migrate("--check", fixture.name)
        problems(checked.stdout == "" and checked.returncode == result.returncode,
                 f"{where} --check: wrote manifests or exited with {checked.returncode}")
        piped = migrate(stdin=fixture.read_text())
        problems(piped.stdout == result.stdout and piped.returncode == result.returncode,
                 f"{where}: reading standard input gives other manifests than reading the file")
        try:
            written = [d for d in yaml.safe_load_all(result.stdout) if d]
        except yaml.YAMLError as error:
            problems.add(f"{where}: its output is not YAML: {error}")
            continue
        problems(bool(written) or refused, f"{where}: wrote no manifests")
        problems.items += [f"{where}: {p}" for p in pairing_problems(written)]
        documents += [(where, d) for d in written]
        if fixture.name == WALKTHROUGH:
            walkthrough = claim_documents(written, *WALKTHROUGH_CLAIM)
    quantities, _ = validate_documents(documents, version, problems)
    if walkthrough:
        for origin, shown in shown_manifests(context):
            problems(shown == walkthrough,
                     f"{origin} differs from what `glusterfs-csi migrate {WALKTHROUGH}` writes for claim "
                     f"{'/'.join(WALKTHROUGH_CLAIM)}:\n    shown:   {shown}\n    written: {walkthrough}")
    else:
        problems.add(f"glusterfs-csi migrate {WALKTHROUGH} writes nothing for claim {'/'.join(WALKTHROUGH_CLAIM)}")
    problems.raise_if_any()
    return (f"{len(documents)} manifests from {len(fixtures)} fixtures valid against the Kubernetes {version} "
            f"schemas (strict), {quantities} quantities canonical; output and plan equal the golden files, again "
            "on a second run, with --check and from standard input; docs/migration.md step 6 and "
            "deploy/examples/migrated-pv.yaml are what it writes")


def pairing_problems(documents: list[dict]) -> list[str]:
    """Each PV followed by its claim, bound both ways."""
    problems = []
    if len(documents) % 2:
        problems.append(f"{len(documents)} documents: expected pairs of a PersistentVolume and its claim")
    for pv, claim in zip(documents[::2], documents[1::2]):
        if pv.get("kind") != "PersistentVolume" or claim.get("kind") != "PersistentVolumeClaim":
            problems.append(f"expected a PersistentVolume then its claim, got {pv.get('kind')}, {claim.get('kind')}")
            continue
        ref = pv["spec"].get("claimRef", {})
        if (ref.get("namespace"), ref.get("name")) != (claim["metadata"].get("namespace"), claim["metadata"]["name"]):
            problems.append(f"PV {pv['metadata']['name']}: claimRef {ref} is not the claim written after it")
        if claim["spec"].get("volumeName") != pv["metadata"]["name"]:
            problems.append(f"claim {claim['metadata']['name']}: volumeName is not PV {pv['metadata']['name']}")
        if pv["spec"].get("storageClassName") != claim["spec"].get("storageClassName"):
            problems.append(f"PV {pv['metadata']['name']} and its claim name different StorageClasses")
    return problems


def claim_documents(documents: list[dict], namespace: str, name: str) -> list[dict]:
    """The PV and claim written for claim namespace/name."""
    for pv, claim in zip(documents[::2], documents[1::2]):
        if (claim["metadata"].get("namespace"), claim["metadata"]["name"]) == (namespace, name):
            return [pv, claim]
    return []


def shown_manifests(context: Context) -> list[tuple[str, list[dict]]]:
    """The walkthrough's PV and claim as docs/migration.md (its YAML block with both) and
    deploy/examples/migrated-pv.yaml show them."""
    import yaml

    shown = []
    page = context.root / "docs" / "migration.md"
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.DOTALL)
              if "kind: PersistentVolumeClaim" in b and "csi:" in b] if page.exists() else []
    if len(blocks) != 1:
        raise CheckFailed([f"docs/migration.md: expected one YAML block with the migrated PV and its claim, "
                           f"found {len(blocks)}"])
    shown.append(("docs/migration.md (step 6)", [d for d in yaml.safe_load_all(blocks[0]) if d]))
    example = context.deploy / "examples" / "migrated-pv.yaml"
    if example.exists():
        shown.append((str(example.relative_to(context.root)), [d for d in yaml.safe_load_all(example.read_text()) if d]))
    else:
        raise CheckFailed(["deploy/examples/migrated-pv.yaml is missing"])
    return shown
