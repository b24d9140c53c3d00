"""docs: the pages name what the sources define, and their links and paths resolve."""

from __future__ import annotations

import re
from pathlib import Path

from .common import REPO, Context, Problems


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
                     "security.md"]:
        problems(required in pages, f"docs/{required} is missing")
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
