"""What a layer changeset is made of (OCI image spec, "Image Layer Filesystem Changeset"):
the kinds of entries a layer holds, and how whiteouts and opaque markers are named."""

from __future__ import annotations

from enum import StrEnum


class EntryKind(StrEnum):
    """Kind of one layer entry: from the tar type flag, or by name for whiteouts."""

    FILE = "file"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    DIR = "dir"
    OTHER = "other"            # devices, fifos
    WHITEOUT = "whiteout"      # ``.wh.NAME``: NAME is deleted from lower layers
    OPAQUE = "opaque"          # ``DIR/.wh..wh..opq``: DIR's lower children are deleted
    META = "meta"              # other ``.wh..wh.*`` names (aufs metadata): never applied


FILE, HARDLINK, SYMLINK, DIR = EntryKind.FILE, EntryKind.HARDLINK, EntryKind.SYMLINK, EntryKind.DIR
OTHER, WHITEOUT, OPAQUE, META = (EntryKind.OTHER, EntryKind.WHITEOUT, EntryKind.OPAQUE,
                                 EntryKind.META)
#: The kinds that are files of the image (what strip rules and ``Rule.types`` talk about).
FILE_KINDS: tuple[EntryKind, ...] = (FILE, DIR, SYMLINK, HARDLINK, OTHER)

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"


def whiteout_name(path: str, opaque: bool = False) -> str:
    """Entry name of the whiteout hiding ``path``, or of the opaque marker of directory
    ``path`` (root-relative paths; '' is the root)."""
    if opaque:
        return (path + "/" if path else "") + WH_OPAQUE
    parent, _, base = path.rpartition("/")
    return (parent + "/" if parent else "") + WH_PREFIX + base
