"""ldd: every library the release binary loads comes from a package the image installs."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from .common import REPO, CheckFailed, Context, Problems, run

# Programs the node plugin runs besides those named in Sources/Node (mount -t glusterfs runs
# this helper; it is not a literal in our code).
EXTRA_NODE_PROGRAMS = ["/sbin/mount.glusterfs"]

# Libraries the binary loads with dlopen, which ldd cannot see. A C shim that loads one names it
# in its public header as `#define <NAME> "<soname>"` (CCURL_LIBRARY_NAME "libcurl.so.4": the
# controller loads libcurl on its first Heketi request; the systemd shim's libsystemd.so.0: the
# node loads it when it tries systemd placement). Every such define in these headers is found, so
# a new shim is checked without a change here; DLOPEN_EXPECTED must be among them, so that a
# define written another way cannot make the check pass by finding nothing.
DLOPEN_HEADERS = "Sources/*/include/*.h"
DLOPEN_EXPECTED = {"libcurl.so.4", "libsystemd.so.0"}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]]


def dockerfile_stages(path: Path) -> list[Stage]:
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, []))
        elif stages:
            stages[-1].instructions.append((instruction, rest))
    return stages


def installed_packages(stage: Stage) -> list[str]:
    packages = []
    for instruction, rest in stage.instructions:
        if instruction != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", rest):
            words = shlex.split(command.strip()) if command.strip() else []
            if len(words) >= 2 and words[0] in ("apt-get", "apt") and "install" in words:
                after = words[words.index("install") + 1:]
                packages += [w.split("=")[0] for w in after if not w.startswith("-")]
    return packages


def dpkg_owners(paths: list[str]) -> dict[str, str | None]:
    """The package owning each path, by one `dpkg -S` over every spelling of each path (as
    given, resolved, and with or without /usr: Debian 12 merged /usr, but dpkg records the
    paths as packages ship them)."""
    spellings: dict[str, list[str]] = {}
    for path in paths:
        candidates = [path, os.path.realpath(path)]
        for candidate in list(candidates):
            candidates.append(candidate[len("/usr"):] if candidate.startswith("/usr/") else "/usr" + candidate)
        spellings[path] = list(dict.fromkeys(candidates))
    result = run(["dpkg", "-S", *{c for candidates in spellings.values() for c in candidates}])
    owner_of: dict[str, str] = {}
    for line in result.stdout.splitlines():
        packages, _, owned = line.rpartition(": ")
        if packages and owned:
            owner_of[owned] = packages.split(",")[0].split(":")[0].strip()
    return {path: next((owner_of[c] for c in candidates if c in owner_of), None)
            for path, candidates in spellings.items()}


class Dpkg:
    """Installed packages' metadata, for dependency closures without any package index."""

    def __init__(self) -> None:
        result = run(["dpkg-query", "-W", "-f",
                      "${Package}\t${Status}\t${Essential}\t${Priority}\t${Provides}\t${Pre-Depends}\t${Depends}\n"])
        self.depends: dict[str, list[list[str]]] = {}
        self.provides: dict[str, set[str]] = {}
        self.base: set[str] = set()
        for line in result.stdout.splitlines():
            name, status, essential, priority, provides, pre, depends = (line.split("\t") + [""] * 7)[:7]
            if "installed" not in status.split():
                continue
            if essential == "yes" or priority == "required":
                self.base.add(name)
            self.depends[name] = [self.alternatives(group) for group in (pre + "," + depends).split(",")
                                  if group.strip()]
            for provided in provides.split(","):
                provided = re.sub(r"\(.*\)", "", provided).strip()
                if provided:
                    self.provides.setdefault(provided, set()).add(name)

    @staticmethod
    def alternatives(group: str) -> list[str]:
        return [re.sub(r"\(.*\)|:\w+", "", a).strip() for a in group.split("|") if a.strip()]

    def closure(self, roots: set[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(roots)
        while stack:
            package = stack.pop()
            if package in seen:
                continue
            seen.add(package)
            for group in self.depends.get(package, []):
                for alternative in group:
                    chosen = [alternative] if alternative in self.depends else sorted(self.provides.get(alternative, []))
                    if chosen:
                        stack += chosen
                        break
        return seen


def dlopen_defines() -> list[tuple[Path, str, str]]:
    """(header, define, soname) of every `#define NAME "lib….so.N"` in the shims' headers."""
    found = []
    for header in sorted(REPO.glob(DLOPEN_HEADERS)):
        for define, soname in re.findall(r'^\s*#define\s+(\w+)\s+"(lib[\w.+-]*\.so(?:\.\d+)*)"',
                                         header.read_text(), re.MULTILINE):
            found.append((header.relative_to(REPO), define, soname))
    return found


def dlopened_sonames(binary: Path) -> tuple[list[str], list[str]]:
    """The sonames the binary loads with dlopen (the shims' defines), and problems finding them."""
    sonames, problems = [], []
    contents = binary.read_bytes()
    defines = dlopen_defines()
    for soname in sorted(DLOPEN_EXPECTED - {soname for _, _, soname in defines}):
        problems.append(f"no header in {DLOPEN_HEADERS} defines \"{soname}\" (as #define <NAME> \"{soname}\"), "
                        f"which the binary is expected to dlopen; update DLOPEN_EXPECTED in {__file__} if it no "
                        "longer does")
    for header, define, soname in defines:
        # The string passed to dlopen is in the binary, or the define is not what it loads.
        if b"\0" + soname.encode() + b"\0" not in contents:
            problems.append(f"{binary} does not contain \"{soname}\" ({define} in {header}): it does not dlopen it; "
                            f"update DLOPEN_EXPECTED in {__file__} or the header")
            continue
        sonames.append(soname)
    return sorted(set(sonames)), problems


def ldconfig_path(soname: str) -> str | None:
    """Where the dynamic loader finds `soname` for this machine's architecture (dlopen searches
    the ld.so cache the same way)."""
    machine = os.uname().machine.replace("_", "-")  # x86_64 → x86-64, as ldconfig prints it
    for line in run(["ldconfig", "-p"]).stdout.splitlines():
        name, _, rest = line.strip().partition(" ")
        if name == soname and machine in rest.split("=>")[0]:
            return rest.split("=>")[1].strip()
    return None


def ldd_libraries(path: Path | str, problems: Problems, what: str) -> dict[str, str]:
    """soname → path of every library `ldd path` shows (not-found ones become problems)."""
    ldd = run(["ldd", str(path)])
    if ldd.returncode != 0:
        raise CheckFailed([f"ldd {path} failed: {ldd.stderr.strip()}"])
    libraries: dict[str, str] = {}
    for line in ldd.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            problems.add(f"ldd {what}: {line}")
            continue
        match = re.match(r"(\S+)\s+=>\s+(\S+)", line) or re.match(r"(/\S+)\s+\(", line)
        if not match:
            continue  # linux-vdso.so.1
        soname = match.group(1)
        libraries[os.path.basename(soname)] = match.group(2) if match.lastindex and match.lastindex >= 2 else soname
    return libraries


def os_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return ""


def check_ldd(context: Context) -> str:
    problems = Problems()
    stages = dockerfile_stages(context.root / "Dockerfile")
    if not stages:
        raise CheckFailed(["the Dockerfile has no FROM"])
    runtime, builders = stages[-1], stages[:-1]
    codename = os_codename()
    problems(runtime.base == f"debian:{codename}-slim",
             f"the runtime stage is FROM {runtime.base}; this check compares against this machine's Debian "
             f"{codename}, so it must be debian:{codename}-slim")
    swift_version = re.search(r"Swift version (\S+)", run(["swift", "--version"]).stdout + run(["swift", "--version"]).stderr)
    build_bases = [s.base for s in builders if s.base.startswith("swift:")]
    if swift_version:
        problems(f"swift:{swift_version.group(1)}-{codename}" in build_bases,
                 f"the build stage should be FROM swift:{swift_version.group(1)}-{codename}, the toolchain that built "
                 f"the binary checked here (found {build_bases})")
    # The command that builds the product (not, say, a later `swift build --show-bin-path`).
    builds = [command.split() for stage in builders for instruction, rest in stage.instructions
              if instruction == "RUN" for command in re.split(r"&&|;|\|\|", rest)
              if "swift build" in command and "--product" in command]
    problems(bool(builds) and all({"-c", "release", "--static-swift-stdlib"} <= set(b) for b in builds),
             "the build stage must run 'swift build -c release --static-swift-stdlib --product glusterfs-csi', "
             "as the checked binary was built")
    static_grpc = any(instruction == "ENV" and re.search(r"\bGLUSTERFS_CSI_STATIC_GRPC[= ]\"?1\b", rest)
                      for stage in builders for instruction, rest in stage.instructions)
    problems(static_grpc, "the build stage must set ENV GLUSTERFS_CSI_STATIC_GRPC=1, as the checked binary was built "
             "(gRPC core linked statically; the runtime stage does not install libgrpc29)")
    listed = set(installed_packages(runtime))
    problems(bool(listed), "the runtime stage installs no packages")
    dpkg = Dpkg()
    base_image = dpkg.closure(dpkg.base)  # what debian:<codename>-slim has before any install
    available = dpkg.closure(listed | dpkg.base)

    binary = context.binary()
    libraries = ldd_libraries(binary, problems, "the binary")
    # Libraries the binary dlopens: ldd does not list them, so nothing above would notice the image
    # lacking them until the first Heketi request failed. Each one's package must be named in the
    # runtime stage (no package depends on it for us), and what it needs in turn must be there too.
    dlopened, dlopen_problems = dlopened_sonames(binary)
    for problem in dlopen_problems:
        problems.add(problem)
    dlopened_owners: dict[str, str] = {}
    for soname in dlopened:
        path = ldconfig_path(soname)
        if not problems(path is not None, f"the binary dlopens {soname}, which is not installed here (ldconfig -p); "
                        "install it (scripts/setup) so this check can see which package the image needs"):
            continue
        owner = dpkg_owners([path])[path]
        if not problems(owner is not None, f"{soname} ({path}), which the binary dlopens, belongs to no Debian package"):
            continue
        dlopened_owners[soname] = owner
        if problems(owner in listed, f"the binary loads {soname} with dlopen on first use (ldd does not show it); "
                    f"name its package {owner} in the runtime stage"):
            # Its own dependencies are checked below like the binary's.
            libraries[soname] = path
            for needed, needed_path in ldd_libraries(path, problems, soname).items():
                libraries.setdefault(needed, needed_path)
    owners: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    library_owners = dpkg_owners(list(libraries.values()))
    for soname, path in sorted(libraries.items()):
        owner = library_owners[path]
        if not problems(owner is not None, f"{soname} ({path}) belongs to no Debian package: the image cannot have "
                        "it (a Swift runtime library? build with --static-swift-stdlib)"):
            continue
        owners[soname] = owner
        if owner not in available:
            missing.setdefault(owner, []).append(soname)
    for owner, sonames in sorted(missing.items()):
        shown = ", ".join(sonames[:3]) + (f" and {len(sonames) - 3} more" if len(sonames) > 3 else "")
        problems.add(f"{shown} {'comes' if len(sonames) == 1 else 'come'} from {owner}, which the runtime stage "
                     f"neither installs nor gets through the dependencies of {' '.join(sorted(listed))}")
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", str(binary)]).stdout)
    problems(bool(needed), "readelf shows no NEEDED libraries (is readelf installed?)")
    # A soname in the binary that it neither links nor declares is probably dlopened unannounced.
    named = {m.decode() for m in re.findall(rb"\0(lib[\w+-]+\.so(?:\.\d+)+)(?=\0)", binary.read_bytes())}
    for soname in sorted(named - set(needed) - set(dlopened) - {s for _, _, s in dlopen_defines()}):
        problems.add(f"the binary contains the soname \"{soname}\" but does not link it: if it dlopens it, define it "
                     f"in its shim's header (#define <NAME>_LIBRARY_NAME \"{soname}\") so this check covers its package")
    for soname in needed:
        owner = owners.get(soname)
        if owner is not None and owner not in base_image:
            problems(owner in listed, f"the binary links {soname} directly; name its package {owner} in the runtime "
                     "stage instead of relying on another package's dependencies")
    # Programs the node plugin executes.
    programs = set(EXTRA_NODE_PROGRAMS)
    for source in (REPO / "Sources" / "Node").glob("*.swift"):
        programs |= set(re.findall(r'"(/(?:usr/)?s?bin/[A-Za-z0-9._-]+)"', source.read_text()))
    program_owners = dpkg_owners(sorted(programs))
    for program in sorted(programs):
        owner = program_owners[program]
        if problems(owner is not None, f"{program}, which the node plugin runs, belongs to no installed package "
                    "here (install it: scripts/setup)"):
            problems(owner in available, f"{program} comes from {owner}, which the runtime stage does not install")
    problems.raise_if_any()
    loaded = ", ".join(f"{soname} ({owner})" for soname, owner in sorted(dlopened_owners.items()))
    return (f"{len(libraries)} libraries from {len(set(owners.values()))} packages, all installed by "
            f"{' '.join(sorted(listed))} (or their dependencies), dlopened {loaded or 'none'} included; "
            f"programs {' '.join(sorted(programs))} too")
