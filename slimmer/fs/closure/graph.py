"""The closure as data: every path the image needs, with the link that first reached it, so
each path has a chain back to a starting point ("usr/lib/x86_64-linux-gnu/libz.so.1 <-
usr/bin/python3.11 (DT_NEEDED) <- Cmd"), plus the warnings met on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterator


class Need(StrEnum):
    """Why a path is needed: a starting point (no parent) or the kind of link from its
    parent."""

    # starting points
    ENTRYPOINT = "Entrypoint"
    CMD = "Cmd"
    HEALTHCHECK = "Healthcheck"
    SHELL = "Healthcheck (shell form)"
    KEEP = "--keep"
    SYSTEM = "system file"
    # links
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    SHEBANG = "shebang"
    ARGUMENT = "argument"
    INTERP = "PT_INTERP"
    NEEDED = "DT_NEEDED"
    LD_CACHE = "dynamic linker configuration"
    NSS = "nsswitch.conf"
    UNWIND = "loaded by libc"
    STARTUP = "interpreter start-up"
    STDLIB = "stdlib extension module"
    CODECS = "codec lookup"
    PTH = "site .pth"
    IMPORT = "import"
    DISTRIBUTION = "distribution"
    EXTENSION = "extension module"
    REQUIRES = "Requires-Dist"
    TOP_LEVEL = "top-level module"
    REQUIRE = "require"
    PACKAGE = "package.json"
    DEPENDENCY = "dependency"
    ENTRY = "package entry"
    ADDON = "addon"
    CA = "CA bundle"
    SCRIPT = "npm script"


ROOTS = frozenset({Need.ENTRYPOINT, Need.CMD, Need.HEALTHCHECK, Need.SHELL, Need.KEEP,
                   Need.SYSTEM})


@dataclass(frozen=True)
class Link:
    """How a path was first reached: from ``parent`` by ``need``, or (``parent`` None) as a
    starting point; ``detail`` names the --keep glob of a keep root."""

    parent: str | None
    need: Need
    detail: str = ""

    def root_label(self) -> str:
        return f"{self.need} {self.detail}" if self.detail else str(self.need)


@dataclass
class Closure:
    """Paths the image needs at run time (root-relative) and how each was reached."""

    links: dict[str, Link] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __contains__(self, path: object) -> bool:
        return path in self.links

    def __iter__(self) -> Iterator[str]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def add(self, path: str, link: Link) -> bool:
        """Record ``path``; False if it was already reached (the first link stays)."""
        if path in self.links:
            return False
        self.links[path] = link
        return True

    def chain(self, path: str) -> list[str]:
        """``path``, then each parent with the kind of link to its child, then the starting
        point: ["usr/lib/libz.so.1", "usr/bin/python3.11 (DT_NEEDED)", "Cmd"]."""
        out = [path]
        seen = {path}
        link = self.links.get(path)
        while link is not None and link.parent is not None:
            out.append(f"{link.parent} ({link.need})")
            if link.parent in seen:   # cannot happen for links made by the walk; stay finite
                break
            seen.add(link.parent)
            link = self.links.get(link.parent)
        if link is not None and link.parent is None:
            out.append(link.root_label())
        return out

    def explain(self, path: str) -> str:
        """The chain of ``path`` as one line (empty if the closure does not hold it)."""
        return " <- ".join(self.chain(path)) if path in self.links else ""
