"""docs: the pages name what the sources define, and their links and paths resolve."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from .common import REPO, Context, Problems
from .manifests import PLACEMENTS

if TYPE_CHECKING:
    from .binary import BinaryFacts


def swift_literals(path: Path, start: str, end: str, pattern: str = r"[A-Za-z_][A-Za-z0-9_.=-]*") -> set[str]:
    """The string literals matching `pattern` in `path`, between `start` and the next `end`."""
    text = path.read_text()
    begin = text.index(start)
    finish = text.index(end, begin)
    return set(re.findall(f'"({pattern})"', text[begin:finish]))


def backticked(markdown: str) -> set[str]:
    return {word.lower() for word in re.findall(r"`([^`\n]+)`", markdown)}


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def check_docs(context: Context) -> str:
    """The docs against the code they describe, and their own links and paths."""
    problems = Problems()
    docs = context.root / "docs"
    pages = {p.name: p.read_text() for p in sorted(docs.glob("*.md"))}
    for required in ["install.md", "storageclass.md", "volume-id.md", "migration.md", "troubleshooting.md",
                     "security.md", "upgrade.md", "snapshots.md"]:
        problems(required in pages, f"docs/{required} is missing")
    # What survives a restart depends on the placement; the page must cover each one.
    if "upgrade.md" in pages:
        mentioned = backticked(pages["upgrade.md"])
        for placement in PLACEMENTS:
            problems(placement in mentioned or f"placement={placement}" in mentioned
                     or f"--mount-placement={placement}" in mentioned,
                     f"docs/upgrade.md does not mention the mount placement `{placement}`")
    readme = context.root / "README.md"
    if readme.exists():
        problems("](docs/upgrade.md)" in readme.read_text(),
                 "README.md does not link docs/upgrade.md (what survives a plugin restart or upgrade)")
    sources = REPO / "Sources"
    expectations = [
        ("storageclass.md", "StorageClass parameter",
         {k for k in swift_literals(sources / "Controller/ParameterKeys.swift", "enum ParameterKey", "static let all")
          if "/" not in k}),
        ("storageclass.md", "mount option",
         # Option names are lower case; the upper-case literals there are log-level values.
         swift_literals(sources / "Node/GlusterMountOptions.swift", "private static let flags",
                        "/// Checks one `mount_flags` entry", pattern=r"[a-z_][a-z0-9_.-]*")),
        ("volume-id.md", "volume_context key",
         swift_literals(sources / "CSICore/VolumeContextKey.swift", "public enum VolumeContextKey", "\n}\n")),
    ]
    for page, what, names in expectations:
        problems(bool(names), f"found no {what}s in the sources; has the code moved?")
        documented = backticked(pages.get(page, ""))
        for name in sorted(names):
            problems(name.lower() in documented, f"docs/{page} does not document the {what} `{name}`")
    for name, text in pages.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, fragment = target.partition("#")
            linked = pages.get(file) if file else text
            if not problems(linked is not None or (docs / file).exists(),
                            f"docs/{name}: link to {target}: no such file"):
                continue
            if fragment and linked is not None:
                problems(fragment in {anchor(h) for h in re.findall(r"^#+ (.+)$", linked, re.MULTILINE)},
                         f"docs/{name}: link to {target}: no such heading")
        code = " ".join(re.findall(r"`([^`\n]+)`", text))
        for path in sorted(set(re.findall(r"(?<![\w/])((?:deploy|scripts|Sources|Tests|docs)/[\w./+-]*\w)", code))):
            base = REPO if path.startswith(("Sources/", "scripts/", "Tests/")) else context.root
            problems((base / path).exists() or any(base.glob(path)),
                     f"docs/{name} mentions {path}, which does not exist")
    problems.raise_if_any()
    return f"{len(pages)} pages; parameters, mount options and volume_context keys documented; links and paths resolve"


def readme_problems(root: Path, facts: "BinaryFacts") -> list[str]:
    """README.md's "Command line" section against the binary: the synopsis shows every flag, with
    the binary's default (or a list of choices holding it, or an upper-case placeholder), and the
    variable list names every variable; neither shows one the binary lacks."""
    path = root / "README.md"
    if not path.exists():
        return ["README.md is missing"]
    section = re.search(r"^## Command line\n(.*?)(?=^## |\Z)", path.read_text(), re.MULTILINE | re.DOTALL)
    if section is None:
        return ["no '## Command line' section"]
    block = re.search(r"```\n(.*?)```", section.group(1), re.DOTALL)
    if block is None:
        return ["the Command line section has no synopsis block"]
    problems = []
    shown = {name: value for name, value in re.findall(r"\[--([a-z][a-z0-9-]*)(?: ([^\]]+))?\]", block.group(1))}
    for name, default in sorted(facts.options.items()):
        if name not in shown:
            problems.append(f"the Command line synopsis does not show --{name}")
            continue
        value = shown[name]
        if not value or default is None or re.fullmatch(r"[A-Z][A-Z_]*", value):
            continue
        if "|" in value:
            choices = value.split("|")
            if default not in choices:
                problems.append(f"the synopsis offers --{name} {value}, which lacks the binary's default {default}")
            if name == "mount-placement" and set(choices) != set(PLACEMENTS):
                problems.append(f"the synopsis offers --{name} {value}, the placements are {'|'.join(PLACEMENTS)}")
        elif value != default:
            problems.append(f"the synopsis shows --{name} {value}, the binary's default is {default}")
    for name in sorted(set(shown) - set(facts.options)):
        problems.append(f"the Command line synopsis shows --{name}, which the binary does not have")
    text = section.group(1)[block.end():]
    variables = set(re.findall(r"`(GLUSTERFS_CSI_[A-Z_]+)`", text))
    for name in sorted(facts.variables - variables):
        problems.append(f"the Command line section does not list the variable {name}")
    for name in sorted(variables - facts.variables):
        problems.append(f"the Command line section lists {name}, which the binary does not read")
    return problems
