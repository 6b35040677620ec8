"""Build real OCI images with umoci and compare extracted trees (a test helper, not tests).

Images are built the way real images are: every layer is the difference umoci computes between
two unpacked root filesystems, so whiteouts, hardlinks and PAX headers come from an independent
tool, not from slimmer. ``unpack_tree`` + ``snapshot`` + ``diff_snapshots`` then compare the
extracted result of an image with what it should be, and ``layer_members`` lists the tar members
of every layer (checking blob digests and diff_ids on the way).

Facts about Debian's umoci 0.4.7 (``0.4.7+ds-3``), observed as root, which is how this module
runs it (checked by tests/test_imagetools.py where marked [tested]):

Layers written by ``umoci repack`` (diff of a bundle against the mtree recorded by ``unpack``):
- Media type ``application/vnd.oci.image.layer.v1.tar+gzip``; the tar is ustar with PAX
  extended headers for what ustar cannot hold: ``path`` for names > 100 chars (deep paths of
  400+ chars work), ``linkpath`` for long symlink targets, ``uid``/``gid`` above 2097151 (uid
  1000000 still fits in the octal field), ``SCHILY.xattr.NAME`` for xattrs. uname/gname empty.
- Members are sorted by path; the root of the rootfs appears as ``.`` when it changed.
- A deleted file or directory becomes ``DIR/.wh.NAME`` (mode 0, uid 0, mtime 0, size 0), placed
  where NAME would sort; a deleted directory gets only its own whiteout, not one per child.
  [tested]
- umoci repack never writes an opaque whiteout (``.wh..wh..opq``). A directory deleted and
  recreated in one layer gives one ``.wh.CHILD`` per old child that is gone, plus the new
  entries. [tested]
- A directory replaced by a regular file gives the file entry ``D`` followed by ``D/.wh.CHILD``
  whiteouts below it (whiteouts under a non-directory); umoci unpack accepts that and the
  result is the file. A file replaced by a directory gives the directory and its children.
- A directory entry is written only if the directory itself changed: mode, owner, xattrs,
  mtime, or link count (adding or removing a subdirectory changes it). So new files and
  whiteouts often come without an entry for their parent directory, e.g. ``usr/bin/gcc`` without
  ``usr/bin`` when mtimes are normalised, as ``build_image`` does by default.
- Change detection includes content digest, size, mode, uid/gid, xattrs, mtime (1 s) and link
  count: a mode-, owner-, xattr- or mtime-only change re-emits the whole file with content, and
  adding a hardlink to a file of a lower layer re-emits that file, so the new link points to an
  entry earlier in the same layer. [tested]
- Hardlinks inside one layer are typeflag ``1`` entries whose linkname is the first path (in
  sort order) of the inode; every link entry repeats the xattr PAX headers. [tested]
- xattrs are kept, including binary values and ``security.capability`` and ``trusted.*``;
  Python's tarfile hands binary PAX values back as str with surrogate escapes (``layer_members``
  turns ``SCHILY.xattr.*`` values back into bytes). [tested]
- FIFOs (``6``), char (``3``) and block (``4``) devices are kept with major/minor; the mode
  bits are whatever the file had (mknod/mkfifo honour the umask). [tested]
- Sparse files are stored as plain regular files with all their zero bytes (no GNU sparse
  entries); unpack writes them out non-sparse.
- No change at all adds no layer, but still appends a history entry with ``empty_layer: true``.
- ``--history.created_by``/``--history.created`` set the history entry; otherwise created is
  "now", so ``build_image`` always passes fixed values.

Other commands:
- ``umoci insert --opaque SRC DIR`` writes ``DIR/.wh..wh..opq`` *before* the ``DIR`` entry,
  then the content. ``umoci insert`` (with or without ``--opaque``/``--whiteout``) writes a tar
  without the padding of the last member and without the end-of-archive blocks (the gzip stream
  itself is complete): GNU tar and umoci unpack read it, Python's tarfile raises "unexpected end
  of data" at the end. [tested]
- ``umoci raw add-layer --image L:T FILE.tar`` gzips an uncompressed tar verbatim (diff_id is
  the sha256 of the file given) - the way to get hand-written layers (``RawTar``).
- ``umoci new`` on an existing tag silently replaces it; ``umoci unpack`` refuses an existing
  bundle directory; ``umoci config --config.env K=V`` replaces an existing K in place; without
  ``--no-history`` it adds a history entry with ``empty_layer: true``.
- umoci unpack (0.4.7) refuses ``tar+zstd`` layers ("blob is not correct mediatype"); skopeo
  1.9.3 reads them, and ``skopeo copy --dest-compress-format gzip`` alone (no
  ``--dest-compress``) recompresses every layer to gzip, keeping the tar bytes (``to_gzip_layout``).

Kernel facts that matter when writing layer functions: chown clears setuid/setgid bits and
writing to a file clears its ``security.capability`` - so chown first, then chmod, then set
capabilities (``write_file`` does it in that order).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

__all__ = [
    "CAP_NET_BIND_SERVICE",
    "FIXED_CREATED",
    "FIXED_MTIME",
    "HARDLINKS",
    "Diff",
    "Entry",
    "ImageToolError",
    "Insert",
    "Member",
    "RawTar",
    "apply_layers",
    "build_image",
    "diff_snapshots",
    "image_config",
    "layer_members",
    "members_by_name",
    "missing_tools",
    "normalise_mtimes",
    "random_layers",
    "read_manifest",
    "run_tool",
    "skopeo_inspect",
    "snapshot",
    "to_gzip_layout",
    "unpack_tree",
    "write_file",
]

FIXED_MTIME = 1_700_000_000  # 2023-11-14T22:13:20Z
FIXED_CREATED = "2023-11-14T22:13:20Z"
HARDLINKS = "<hardlinks>"  # snapshot key holding the hardlink groups

# security.capability value (VFS_CAP_REVISION_2, effective) granting cap_net_bind_service.
CAP_NET_BIND_SERVICE = bytes.fromhex("0100000200040000000000000000000000000000")

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
REF_NAME = "org.opencontainers.image.ref.name"


class ImageToolError(RuntimeError):
    """A tool failed or an image is not what the helper expects."""


# --------------------------------------------------------------------------- tools


def run_tool(*argv: str | os.PathLike[str], cwd: Path | None = None) -> str:
    """Run an external tool; return its stdout, raise ImageToolError with its stderr on failure."""
    args = [os.fspath(a) for a in argv]
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise ImageToolError(f"{args[0]} is not installed (run scripts/setup): {exc}") from exc
    if proc.returncode != 0:
        raise ImageToolError(
            f"{' '.join(args)} failed with exit code {proc.returncode}:\n"
            f"{proc.stderr.strip() or proc.stdout.strip() or '(no output)'}"
        )
    return proc.stdout


def missing_tools(*names: str, root: bool = True) -> str | None:
    """A reason to skip (tools not on PATH, or not root when root=True), else None."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (run scripts/setup)"
    if root and os.geteuid() != 0:
        return "needs root (umoci unpack/repack keep owners, devices and xattrs only as root)"
    return None


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class Diff:
    """A layer from ``umoci repack``: fn(rootfs) changes the unpacked tree, umoci diffs it."""

    fn: Callable[[Path], None]
    created_by: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Insert:
    """A layer from ``umoci insert``: a directory that fill(dir) populates, copied to target.

    opaque=True adds ``target/.wh..wh..opq``; whiteout=True (fill=None) adds only a whiteout
    for target. umoci 0.4.7 writes such layers as unterminated tars (see the module doc).
    """

    target: str
    fill: Callable[[Path], None] | None = None
    opaque: bool = False
    whiteout: bool = False
    created_by: str | None = None


@dataclass(frozen=True)
class RawTar:
    """A hand-written layer: write(tf) adds members to a PAX tarfile; added verbatim."""

    write: Callable[[tarfile.TarFile], None]
    created_by: str | None = None


LayerSpec = Diff | Insert | RawTar | Callable[[Path], None]


def _as_spec(layer: LayerSpec) -> Diff | Insert | RawTar:
    if isinstance(layer, Diff | Insert | RawTar):
        return layer
    if callable(layer):
        return Diff(layer)
    raise TypeError(f"not a layer: {layer!r}")


def _history_args(created_by: str | None, default: str, comment: str | None, created: str) -> list[str]:
    args = ["--history.created", created, "--history.created_by", created_by or default]
    if comment:
        args += ["--history.comment", comment]
    return args


def normalise_mtimes(root: Path, mtime: int) -> None:
    """Set the mtime (and atime) of root and everything below it, symlinks themselves included."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


_CONFIG_FLAGS = {
    "Entrypoint": "--config.entrypoint",
    "Cmd": "--config.cmd",
    "Env": "--config.env",
    "WorkingDir": "--config.workingdir",
    "User": "--config.user",
    "StopSignal": "--config.stopsignal",
    "Volumes": "--config.volume",
    "ExposedPorts": "--config.exposedports",
    "Labels": "--config.label",
}


def _config_args(config: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in config.items():
        flag = _CONFIG_FLAGS.get(key)
        if flag is None:
            raise ValueError(f"unsupported config key {key!r}; known: {', '.join(_CONFIG_FLAGS)}")
        if isinstance(value, dict):  # Labels
            values = [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, str):
            values = [value]
        else:
            values = [str(v) for v in value]
        for v in values:
            args += [flag, v]
    return args


def build_image(
    layout: Path,
    tag: str,
    layers: Sequence[LayerSpec],
    *,
    config: dict[str, Any] | None = None,
    base: str | None = None,
    mtime: int | None = FIXED_MTIME,
    created: str = FIXED_CREATED,
    gc: bool = True,
    config_created_by: str | None = None,
) -> None:
    """Build layout:tag with umoci, one layer per entry of ``layers``.

    A plain callable (or ``Diff``) gets the unpacked rootfs to change; umoci repack then writes
    the difference, computing whiteouts itself. ``Insert`` and ``RawTar`` make other layers.
    ``config`` keys: Entrypoint, Cmd, Env (list of K=V), WorkingDir, User, StopSignal, Volumes,
    ExposedPorts, Labels (dict); they are applied at the end with one history entry
    (empty_layer). ``base`` starts from an existing tag of the same layout instead of an empty
    image. ``mtime`` (None: keep real mtimes) is set on every path after each change, so a
    build is byte-for-byte repeatable; ``created`` goes into config and history;
    ``config_created_by`` names the config's history entry.
    A layer that changes nothing adds no layer, only an empty_layer history entry.
    """
    layout = Path(layout)
    if not (layout / "index.json").exists():
        layout.parent.mkdir(parents=True, exist_ok=True)
        run_tool("umoci", "init", "--layout", layout)
    image = f"{layout}:{tag}"
    if base is not None:
        run_tool("umoci", "tag", "--image", f"{layout}:{base}", tag)
    else:
        run_tool("umoci", "new", "--image", image)

    for number, layer in enumerate(layers, 1):
        spec = _as_spec(layer)
        try:
            with tempfile.TemporaryDirectory(prefix=".imagetools-", dir=layout.parent) as tmp:
                _add_layer(Path(tmp), image, spec, number, mtime, created)
        except ImageToolError as exc:
            raise ImageToolError(f"building {image}, layer {number}: {exc}") from exc

    config_args = ["--created", created]
    if config:
        config_args += _config_args(config)
        default = "imagetools: config " + " ".join(sorted(config))
        config_args += _history_args(config_created_by, default, None, created)
    else:
        config_args.append("--no-history")
    run_tool("umoci", "config", "--image", image, *config_args)
    if gc:
        run_tool("umoci", "gc", "--layout", layout)


def _add_layer(
    tmp: Path, image: str, spec: Diff | Insert | RawTar, number: int, mtime: int | None, created: str
) -> None:
    if isinstance(spec, Diff):
        bundle = tmp / "bundle"
        run_tool("umoci", "unpack", "--image", image, bundle)
        rootfs = bundle / "rootfs"
        spec.fn(rootfs)
        if mtime is not None:
            normalise_mtimes(rootfs, mtime)
        default = f"imagetools: layer {number} {getattr(spec.fn, '__name__', '')}".rstrip()
        history = _history_args(spec.created_by, default, spec.comment, created)
        run_tool("umoci", "repack", *history, "--image", image, bundle)
    elif isinstance(spec, Insert):
        history = _history_args(spec.created_by, f"imagetools: insert {spec.target}", None, created)
        if spec.whiteout:
            run_tool("umoci", "insert", *history, "--image", image, "--whiteout", spec.target)
            return
        src = tmp / "insert"
        src.mkdir()
        src.chmod(0o755)
        if spec.fill is not None:
            spec.fill(src)
        if mtime is not None:
            normalise_mtimes(src, mtime)
        opaque = ["--opaque"] if spec.opaque else []
        run_tool("umoci", "insert", *history, "--image", image, *opaque, src, spec.target)
    else:
        path = tmp / "layer.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
            spec.write(tf)
        history = _history_args(spec.created_by, f"imagetools: raw layer {number}", None, created)
        run_tool("umoci", "raw", "add-layer", *history, "--image", image, path)


def apply_layers(layers: Sequence[LayerSpec], dest: Path, *, mtime: int | None = FIXED_MTIME) -> Path:
    """Apply the same layer functions to a plain directory: the tree an image *should* unpack to.

    Only Diff layers (plain callables) can be applied; dest is created with mode 0755 like
    umoci's rootfs.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    dest.chmod(0o755)
    for layer in layers:
        spec = _as_spec(layer)
        if not isinstance(spec, Diff):
            raise TypeError(f"apply_layers handles only Diff layers, not {type(spec).__name__}")
        spec.fn(dest)
        if mtime is not None:
            normalise_mtimes(dest, mtime)
    return dest


# --------------------------------------------------------------------------- reading layouts


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, encoded = digest.partition(":")
    if not encoded or "/" in encoded or "/" in algorithm:
        raise ImageToolError(f"bad digest {digest!r}")
    return Path(layout) / "blobs" / algorithm / encoded


def _read_json_blob(layout: Path, digest: str) -> dict[str, Any]:
    path = _blob_path(layout, digest)
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ImageToolError(f"reading blob {digest} of {layout}: {exc}") from exc


def read_manifest(layout: Path, tag: str, *, platform: str = "linux/amd64") -> dict[str, Any]:
    """The image manifest tagged ``tag`` in an OCI layout (an index is resolved by platform)."""
    try:
        index = json.loads((Path(layout) / "index.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise ImageToolError(f"reading {layout}/index.json: {exc}") from exc
    tagged = [d for d in index.get("manifests", []) if d.get("annotations", {}).get(REF_NAME) == tag]
    if len(tagged) != 1:
        names = [d.get("annotations", {}).get(REF_NAME) for d in index.get("manifests", [])]
        raise ImageToolError(f"{layout}: expected one manifest tagged {tag!r}, found {len(tagged)} (tags: {names})")
    descriptor = tagged[0]
    for _ in range(4):  # index -> manifest; nested indexes are rare but legal
        doc = _read_json_blob(layout, descriptor["digest"])
        media_type = doc.get("mediaType", descriptor.get("mediaType"))
        if media_type not in (MT_INDEX, MT_DOCKER_LIST):
            return doc
        os_name, _, arch = platform.partition("/")
        children = doc.get("manifests", [])
        matching = [
            d
            for d in children
            if d.get("platform", {}).get("os") == os_name and d.get("platform", {}).get("architecture") == arch
        ]
        if len(matching) != 1 and len(children) == 1:
            matching = children
        if len(matching) != 1:
            raise ImageToolError(f"{layout}:{tag}: index has {len(matching)} manifests for {platform}")
        descriptor = matching[0]
    raise ImageToolError(f"{layout}:{tag}: indexes nested too deeply")


def image_config(layout: Path, tag: str) -> dict[str, Any]:
    """The image config JSON of layout:tag."""
    return _read_json_blob(layout, read_manifest(layout, tag)["config"]["digest"])


def skopeo_inspect(layout: Path, tag: str, *, raw: bool = False, config: bool = False) -> dict[str, Any]:
    """``skopeo inspect [--raw|--config] oci:LAYOUT:TAG`` as parsed JSON."""
    flags = (["--raw"] if raw else []) + (["--config"] if config else [])
    return json.loads(run_tool("skopeo", "inspect", *flags, f"oci:{layout}:{tag}"))


def to_gzip_layout(src_layout: Path, tag: str, dst_layout: Path) -> None:
    """Copy src:tag to dst:tag with every layer gzip-compressed (same tar bytes, same diff_ids).

    skopeo 1.9.3 recompresses with --dest-compress-format alone; --dest-compress is not needed.
    """
    run_tool(
        "skopeo",
        "copy",
        "--quiet",
        "--dest-compress-format",
        "gzip",
        f"oci:{src_layout}:{tag}",
        f"oci:{dst_layout}:{tag}",
    )


def unpack_tree(layout: Path, tag: str, dest: Path, *, convert_zstd: bool = True) -> Path:
    """``umoci unpack`` layout:tag into dest (which must not exist); return dest/'rootfs'.

    umoci 0.4.7 cannot read zstd layers: with convert_zstd the image is first re-encoded to
    gzip with skopeo into a temporary layout next to dest.
    """
    dest = Path(dest)
    layers = read_manifest(layout, tag).get("layers", [])
    needs_gzip = any("zstd" in layer.get("mediaType", "") for layer in layers)
    if needs_gzip and not convert_zstd:
        raise ImageToolError(f"{layout}:{tag} has zstd layers, which umoci 0.4.7 cannot unpack; use to_gzip_layout")
    if needs_gzip:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".gzip-layout-", dir=dest.parent) as tmp:
            gz = Path(tmp) / "layout"
            to_gzip_layout(layout, tag, gz)
            run_tool("umoci", "unpack", "--image", f"{gz}:{tag}", dest)
    else:
        run_tool("umoci", "unpack", "--image", f"{layout}:{tag}", dest)
    return dest / "rootfs"


# --------------------------------------------------------------------------- snapshots


class Entry(NamedTuple):
    """One path of an extracted tree, everything but mtimes (and directory sizes)."""

    type: str  # file, dir, symlink, fifo, char, block, socket
    mode: int  # permission bits incl. setuid/setgid/sticky
    uid: int
    gid: int
    size: int | None  # regular files only
    sha256: str | None  # regular files only
    target: str | None  # symlinks only
    rdev: tuple[int, int] | None  # (major, minor) of char/block devices
    xattrs: tuple[tuple[str, bytes], ...]


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "char"),
        (stat.S_ISBLK, "block"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return f"unknown:{stat.S_IFMT(mode):o}"


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # filesystem without xattr support
        return ()
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def snapshot(rootfs: Path) -> dict[str, Any]:
    """Describe an extracted tree: relative path ('.' for the root) -> Entry.

    Hardlinks: key HARDLINKS holds a sorted tuple of groups, each a sorted tuple of the paths
    that share one inode (files with more than one path in the tree).
    """
    root = os.fspath(rootfs)
    result: dict[str, Any] = {}
    inodes: dict[tuple[int, int], list[str]] = defaultdict(list)

    def visit(path: str, rel: str) -> None:
        st = os.lstat(path)
        kind = _file_type(st.st_mode)
        is_file = kind == "file"
        result[rel] = Entry(
            type=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if is_file else None,
            sha256=_sha256_file(path) if is_file else None,
            target=os.readlink(path) if kind == "symlink" else None,
            rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else None,
            xattrs=_xattrs(path),
        )
        if is_file and st.st_nlink > 1:
            inodes[(st.st_dev, st.st_ino)].append(rel)

    visit(root, ".")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            visit(os.path.join(dirpath, name), rel)
    result[HARDLINKS] = tuple(sorted(tuple(sorted(g)) for g in inodes.values() if len(g) > 1))
    return result


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return repr(value)


def diff_snapshots(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str] = ("expected", "actual")) -> list[str]:
    """Human-readable differences between two snapshots (empty list: equal)."""
    la, lb = labels
    out: list[str] = []
    for path in sorted(set(a) | set(b)):
        if path == HARDLINKS:
            continue
        if path not in b:
            out.append(f"{path}: only in {la} ({a[path].type})")
        elif path not in a:
            out.append(f"{path}: only in {lb} ({b[path].type})")
        elif a[path] != b[path]:
            for field in Entry._fields:
                va, vb = getattr(a[path], field), getattr(b[path], field)
                if va != vb:
                    show = oct if field == "mode" else _show
                    out.append(f"{path}: {field} {la}={show(va)} {lb}={show(vb)}")
    ga, gb = set(a.get(HARDLINKS, ())), set(b.get(HARDLINKS, ()))
    for group in sorted(ga - gb):
        out.append(f"hardlink group only in {la}: {' = '.join(group)}")
    for group in sorted(gb - ga):
        out.append(f"hardlink group only in {lb}: {' = '.join(group)}")
    return out


# --------------------------------------------------------------------------- layer members


class Member(NamedTuple):
    """One tar member of a layer. pax: sorted (key, value); SCHILY.xattr.* values are bytes."""

    name: str
    type: str  # file, dir, hardlink, symlink, char, block, fifo, sparse, or the raw typeflag
    size: int
    linkname: str
    pax: tuple[tuple[str, str | bytes], ...]
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = 0

    @property
    def basename(self) -> str:
        return self.name.rstrip("/").rpartition("/")[2]

    @property
    def is_whiteout(self) -> bool:
        return self.basename.startswith(".wh.") and not self.is_opaque

    @property
    def is_opaque(self) -> bool:
        return self.basename == ".wh..wh..opq"


_TAR_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.LNKTYPE: "hardlink",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
    tarfile.GNUTYPE_SPARSE: "sparse",
}


class _HashingReader(io.RawIOBase):
    """Read-through wrapper that hashes and counts every byte read."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hash.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _decompressor(stream: BinaryIO, magic: bytes) -> Any:  # a readable binary stream
    if magic.startswith(b"\x1f\x8b"):
        try:
            from isal import igzip
        except ImportError:  # pragma: no cover - isal is a dependency of slimmer
            return gzip.GzipFile(fileobj=stream, mode="rb")
        return igzip.IGzipFile(fileobj=stream, mode="rb")
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            try:
                from backports import zstd  # slimmer's dependency on older Pythons
            except ImportError:
                import zstandard

                return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
        return zstd.ZstdFile(stream, mode="rb")  # reads every frame
    return stream  # uncompressed tar


def _member(info: tarfile.TarInfo) -> Member:
    pax: list[tuple[str, str | bytes]] = []
    for key, value in sorted(info.pax_headers.items()):
        if key.startswith("SCHILY.xattr."):
            pax.append((key, value.encode("utf-8", "surrogateescape")))
        else:
            pax.append((key, value))
    return Member(
        name=info.name,
        type=_TAR_TYPES.get(info.type, info.type.decode("ascii", "replace")),
        size=info.size,
        linkname=info.linkname,
        pax=tuple(pax),
        mode=info.mode,
        uid=info.uid,
        gid=info.gid,
        mtime=int(info.mtime),
    )


def layer_members(layout: Path, tag: str, *, verify: bool = True, strict: bool = True) -> list[list[Member]]:
    """Every layer's tar members in order, read with Python's tarfile (gzip, zstd or plain,
    told apart by their magic bytes; zstd through compression.zstd / backports.zstd).

    verify checks each blob's digest and size against the manifest and the sha256 of the
    uncompressed tar against the config's diff_ids. strict=False returns what could be read of
    a tar that ends early (as umoci insert writes them) instead of raising.
    """
    manifest = read_manifest(layout, tag)
    diff_ids = _read_json_blob(layout, manifest["config"]["digest"]).get("rootfs", {}).get("diff_ids", [])
    layers = manifest.get("layers", [])
    if verify and len(diff_ids) != len(layers):
        raise ImageToolError(f"{layout}:{tag}: {len(layers)} layers but {len(diff_ids)} diff_ids")
    result: list[list[Member]] = []
    for index, descriptor in enumerate(layers):
        digest = descriptor["digest"]
        where = f"{layout}:{tag} layer {index} ({digest})"
        members: list[Member] = []
        try:
            with open(_blob_path(layout, digest), "rb") as fh:
                magic = fh.read(4)
                fh.seek(0)
                compressed = _HashingReader(fh)
                tar_stream = _HashingReader(_decompressor(io.BufferedReader(compressed), magic))
                try:
                    with tarfile.open(fileobj=io.BufferedReader(tar_stream), mode="r|") as tf:
                        for info in tf:
                            members.append(_member(info))
                except tarfile.ReadError as exc:
                    if strict:
                        raise ImageToolError(f"{where}: tar ends early after {len(members)} members: {exc}") from exc
                tar_stream.drain()
                compressed.drain()
        except (OSError, tarfile.TarError, ValueError) as exc:
            raise ImageToolError(f"reading {where}: {exc}") from exc
        if verify:
            got = f"sha256:{compressed.hash.hexdigest()}"
            if digest.startswith("sha256:") and (got != digest or compressed.count != descriptor.get("size")):
                raise ImageToolError(
                    f"{where}: blob has digest {got}, size {compressed.count}; manifest says {digest}, size {descriptor.get('size')}"
                )
            got_diff = f"sha256:{tar_stream.hash.hexdigest()}"
            if got_diff != diff_ids[index]:
                raise ImageToolError(
                    f"{where}: uncompressed tar has digest {got_diff}, config diff_id is {diff_ids[index]}"
                )
        result.append(members)
    return result


# --------------------------------------------------------------------------- tree helpers


def write_file(
    path: Path,
    data: bytes | str = b"",
    *,
    mode: int | None = None,
    uid: int | None = None,
    gid: int | None = None,
    xattrs: dict[str, bytes] | None = None,
) -> Path:
    """Create parents and write a file; then chown, chmod and set xattrs in the order that keeps
    setuid bits and security.capability (chown clears the former, writing clears the latter)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.chmod(path, mode)
    for name, value in (xattrs or {}).items():
        os.setxattr(path, name, value)
    return path


def _rel_paths(root: Path) -> tuple[list[str], list[str]]:
    """Sorted relative paths of regular files and of directories (not the root) below root."""
    files: list[str] = []
    dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames:
            if not os.path.islink(os.path.join(dirpath, name)):
                dirs.append(name if rel == "." else f"{rel}/{name}")
        for name in filenames:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(name if rel == "." else f"{rel}/{name}")
    return sorted(files), sorted(dirs)


def random_layers(seed: int, count: int = 4, ops_per_layer: int = 12) -> list[Diff]:
    """Deterministic pseudo-random layer functions for property tests.

    Operations: add files (varied sizes, modes), add directories, overwrite, delete files and
    whole directories, replace a directory by a new one of the same name, hardlinks, symlinks,
    chmod/chown, user xattrs. The same seed gives the same layers (the tree decides which paths
    exist, the seed decides the choices).
    """

    def make(layer_no: int) -> Callable[[Path], None]:
        def layer(root: Path) -> None:
            rng = random.Random(seed * 1009 + layer_no)
            for op_no in range(ops_per_layer):
                files, dirs = _rel_paths(root)
                name = f"n{layer_no}_{op_no}"
                parent = root / rng.choice(["."] + dirs)
                op = rng.choice(
                    [
                        "file",
                        "file",
                        "file",
                        "dir",
                        "overwrite",
                        "delete",
                        "rmdir",
                        "replace_dir",
                        "hardlink",
                        "symlink",
                        "chmod",
                        "xattr",
                    ]
                )
                if op == "file" or (not files and op in ("overwrite", "delete", "hardlink", "chmod", "xattr")):
                    size = rng.choice([0, 1, 100, 512, 4096, 70_000])
                    write_file(parent / name, rng.randbytes(size), mode=rng.choice([0o644, 0o755, 0o600]))
                elif op == "dir" or (not dirs and op in ("rmdir", "replace_dir")):
                    (parent / name).mkdir()
                    write_file(parent / name / "inner", f"{seed}:{name}")
                elif op == "overwrite":
                    (root / rng.choice(files)).write_bytes(rng.randbytes(rng.choice([0, 7, 3000])))
                elif op == "delete":
                    (root / rng.choice(files)).unlink()
                elif op == "rmdir":
                    shutil.rmtree(root / rng.choice(dirs))
                elif op == "replace_dir":
                    target = root / rng.choice(dirs)
                    shutil.rmtree(target)
                    target.mkdir()
                    write_file(target / name, f"replaced {seed}")
                elif op == "hardlink":
                    os.link(root / rng.choice(files), parent / name)
                elif op == "symlink":
                    os.symlink(rng.choice(files) if files else "missing", parent / name)
                elif op == "chmod":
                    target = root / rng.choice(files)
                    if not target.is_symlink():
                        os.chown(target, rng.choice([0, 1000, 1_000_000]), rng.choice([0, 1000]))
                        os.chmod(target, rng.choice([0o600, 0o640, 0o755, 0o4755]))
                elif op == "xattr":
                    target = root / rng.choice(files)
                    if not target.is_symlink():
                        os.setxattr(target, f"user.k{rng.randrange(3)}", rng.randbytes(rng.randrange(1, 20)))

        layer.__name__ = f"random_{seed}_{layer_no}"
        return layer

    return [Diff(make(i), created_by=f"imagetools: random layer seed={seed} #{i}") for i in range(count)]


def members_by_name(members: Iterable[Member]) -> dict[str, Member]:
    """Index one layer's members by name (later duplicates win, as on extraction)."""
    return {m.name: m for m in members}
