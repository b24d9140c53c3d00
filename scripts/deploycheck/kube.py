"""render: kustomize renders every kustomization. validate: every object against the Kubernetes schemas, or
ours for the snapshot CRDs."""

from __future__ import annotations

import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

from .common import CheckFailed, Context, Problems, run
from .crds import is_snapshot_group, schema_for


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
    quantities, own = validate_documents(documents, version, problems)
    problems.raise_if_any()
    return (f"{len(documents) - own} objects valid against the Kubernetes {version} schemas (strict), {own} "
            f"snapshot.storage.k8s.io objects against ours (scripts/deploycheck/crds.py, strict, Kubernetes "
            f"{version} ObjectMeta), {quantities} quantities in the API server's canonical form")


def validate_documents(documents: list[tuple[str, dict]], version: str, problems: Problems) -> tuple[int, int]:
    """Each (origin, object) against its schema, strictly, and its quantities against the canonical form;
    problems go to `problems`. Returns how many quantities were checked and how many objects had our own
    (snapshot CRD) schemas."""
    import kubernetes_validate

    quantities = 0
    own = 0
    for origin, document in documents:
        name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')} in {origin}"
        for where, value in quantity_fields(document):
            quantities += 1
            stored = canonical_quantity(str(value))
            if stored is None:
                problems.add(f"{name}: {where}: {value!r} is not a Kubernetes quantity")
            elif stored != str(value):
                problems.add(f"{name}: {where}: write {value!r} as {stored!r}, the form the API server stores; "
                             "otherwise every `kubectl apply` finds a difference and reports the object configured")
        if is_snapshot_group(document):
            own += 1
            schema = schema_for(document)
            if schema is None:
                problems.add(f"{name}: {document.get('apiVersion')} {document.get('kind')} has no schema in "
                             "scripts/deploycheck/crds.py (Kubernetes has none: it is a CRD); add one there")
                continue
            for error in crd_errors(document, schema, version):
                problems.add(f"{name}: {error}")
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            problems.add(f"{name}: {error.message} (at {path or 'top level'})")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
            problems.add(f"{name}: no schema for it in Kubernetes {version}: {error}")
    return quantities, own


def crd_errors(document: dict, schema: dict, version: str) -> list[str]:
    """`document` against one of our CRD schemas, its metadata against the Kubernetes ObjectMeta."""
    import jsonschema
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    strict = f"v{version}-local-strict"
    definitions = Resource.from_contents(schema_contents(f"kubernetes-json-schema/{strict}/_definitions.json", version))
    registry = Resource.from_contents(schema) @ (definitions @ Registry())
    validator = jsonschema.validators.Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.path])
    return [f"{error.message} (at {'/'.join(str(p) for p in error.path) or 'top level'})" for error in errors]


# ---------------------------------------------------------------------------------------------
# quantities: the API server stores a resource.Quantity in its canonical form (10000 → 10k,
# 1024Mi → 1Gi, 1000m → 1, 0.5 → 500m) and returns that; a manifest written otherwise differs from
# the live object on every apply.

# Where quantities are, as paths of keys ("*": any key or list item); the maps' values are quantities.
QUANTITY_MAPS = [
    ("spec", "template", "spec", "containers", "*", "resources", "requests"),
    ("spec", "template", "spec", "containers", "*", "resources", "limits"),
    ("spec", "template", "spec", "initContainers", "*", "resources", "requests"),
    ("spec", "template", "spec", "initContainers", "*", "resources", "limits"),
    ("spec", "template", "spec", "overhead"),
    ("spec", "containers", "*", "resources", "requests"),
    ("spec", "containers", "*", "resources", "limits"),
    ("spec", "initContainers", "*", "resources", "requests"),
    ("spec", "initContainers", "*", "resources", "limits"),
    ("spec", "hard"),
    ("spec", "capacity"),
    ("spec", "resources", "requests"),
    ("spec", "resources", "limits"),
    ("spec", "volumeClaimTemplates", "*", "spec", "resources", "requests"),
    ("spec", "limits", "*", "max"), ("spec", "limits", "*", "min"), ("spec", "limits", "*", "default"),
    ("spec", "limits", "*", "defaultRequest"), ("spec", "limits", "*", "maxLimitRequestRatio"),
]
QUANTITY_VALUES = [
    ("spec", "template", "spec", "volumes", "*", "emptyDir", "sizeLimit"),
    ("spec", "volumes", "*", "emptyDir", "sizeLimit"),
]
DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def quantity_fields(document: dict) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []

    def walk(node: object, path: tuple[str, ...], at: str, whole_map: bool) -> None:
        if not path:
            if whole_map and isinstance(node, dict):
                found.extend((f"{at}.{key}", value) for key, value in node.items())
            elif not whole_map and node is not None:
                found.append((at, node))
            return
        head, rest = path[0], path[1:]
        if head == "*" and isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, rest, f"{at}[{index}]", whole_map)
        elif isinstance(node, dict) and head in node:
            walk(node[head], rest, f"{at}.{head}" if at else head, whole_map)

    for path in QUANTITY_MAPS:
        walk(document, path, "", True)
    for path in QUANTITY_VALUES:
        walk(document, path, "", False)
    return found


def canonical_quantity(text: str) -> str | None:
    """What k8s.io/apimachinery's Quantity.String() gives for `text`, or None if it is none."""
    match = re.fullmatch(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)", text)
    if not match:
        return None
    sign, digits, exponent, suffix = match.groups()
    value = Fraction(digits)
    if exponent:
        value *= Fraction(10) ** int(exponent[1:])
        binary = False
    elif suffix in BINARY_SUFFIXES:
        value *= 2 ** BINARY_SUFFIXES[suffix]
        binary = True
    else:
        value *= Fraction(10) ** DECIMAL_SUFFIXES[suffix or ""]
        binary = False
    if sign == "-":
        value = -value
    # Precision below a nano is rounded up (away from zero).
    scaled = value * 10**9
    if scaled.denominator != 1:
        whole = -((-scaled.numerator) // scaled.denominator) if value > 0 else scaled.numerator // scaled.denominator
        value = Fraction(whole, 10**9)
    if value == 0:
        return "0"
    if binary and abs(value) >= 1024 and value.denominator == 1:
        number, power = int(value), 0
        while number % 1024 == 0 and power < 60:
            number //= 1024
            power += 10
        return f"{number}{next((s for s, p in BINARY_SUFFIXES.items() if p == power), '')}"
    # Decimal: the mantissa as an integer, the exponent a multiple of 3 (1500 → 1500, 15000 → 15k).
    power = -9
    number = int(value * 10**9)
    while number % 10 == 0:
        number //= 10
        power += 1
    while power % 3:
        number *= 10
        power -= 1
    # Written with an exponent, it keeps one (but not e0); a decimal suffix stays a suffix while one exists.
    suffix = next((s for s, p in DECIMAL_SUFFIXES.items() if p == power), None)
    if (exponent and power != 0) or suffix is None:
        return f"{number}e{power}"
    return f"{number}{suffix}"
