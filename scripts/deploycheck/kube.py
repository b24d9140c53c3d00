"""render: kustomize renders every kustomization. validate: every object against the Kubernetes schemas."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from .common import CheckFailed, Context, Problems, run


def renderer() -> list[str]:
    """kubectl 1.21+ (kustomize v4+ inside) or a kustomize binary."""
    if shutil.which("kubectl"):
        result = run(["kubectl", "version", "--client", "-o", "json"])
        if result.returncode == 0:
            info = json.loads(result.stdout)
            minor = int(re.sub(r"\D.*", "", info.get("clientVersion", {}).get("minor", "0")) or 0)
            if minor >= 21:
                return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    raise CheckFailed([
        "no kustomize renderer: need kubectl 1.21 or later (it carries kustomize) or a kustomize binary "
        "on PATH. Debian's kubernetes-client (1.20) is too old: its kustomize v2 cannot use "
        "directories in resources"])


def render(directory: Path) -> list[dict]:
    import yaml

    result = run([*renderer(), str(directory)])
    if result.returncode != 0:
        raise CheckFailed([f"kustomize cannot render {directory}:", *result.stderr.strip().splitlines()])
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def check_render(context: Context) -> str:
    problems = Problems()
    counts = []
    for directory in context.kustomizations():
        try:
            objects = context.rendered_objects(directory)
        except CheckFailed as failure:
            problems.items += failure.problems
            continue
        counts.append(f"{directory.relative_to(context.root)}: {len(objects)} objects")
        problems(bool(objects), f"{directory}: renders no objects")
    problems((context.deploy / "kustomization.yaml").exists(), "deploy/kustomization.yaml is missing")
    problems.raise_if_any()
    main = context.rendered_objects(context.deploy)
    kinds = {o["kind"] for o in main}
    for kind in ["CSIDriver", "StatefulSet", "DaemonSet", "ServiceAccount", "ClusterRole", "Role"]:
        problems(kind in kinds, f"deploy/ renders no {kind}")
    problems.raise_if_any()
    return "; ".join(counts) + f" (with {' '.join(renderer())})"


# ---------------------------------------------------------------------------------------------
# validate


def check_validate(context: Context) -> str:
    try:
        import kubernetes_validate
    except ImportError:
        raise CheckFailed(["the kubernetes-validate package is missing: pip install kubernetes-validate"])
    version = kubernetes_validate.latest_version()
    problems = Problems()
    documents: list[tuple[str, dict]] = []
    for directory in context.kustomizations():
        documents += [(f"{directory.relative_to(context.root)} (rendered)", o)
                      for o in context.rendered_objects(directory)]
    documents += [(str(path.relative_to(context.root)), o) for path, o in context.examples()]
    for origin, document in documents:
        name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')} in {origin}"
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            problems.add(f"{name}: {error.message} (at {path or 'top level'})")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
            problems.add(f"{name}: no schema for it in Kubernetes {version}: {error}")
    problems.raise_if_any()
    return f"{len(documents)} objects valid against the Kubernetes {version} schemas (strict)"
