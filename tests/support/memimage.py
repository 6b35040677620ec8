"""In-memory images for unit tests: layers built with tarfile, a Source and a Sink over dicts,
and an independent reference model of how a runtime applies layers (used as the oracle)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import threading
from typing import Any, BinaryIO, Iterable, Sequence

from slimmer.oci.digest import VerifyingReader
from slimmer.oci.image import Image, Layer, Root
from slimmer.oci.media import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from slimmer.oci.model import Descriptor, ImageConfig, Manifest, dump_json

Spec = tuple  # ("file", path, data[, mode]) | ("dir", path[, mode]) | ("symlink", path, target)
#             ("hardlink", path, target) | ("whiteout", path) | ("opaque", dirpath) | ("fifo", path)


def make_tar(specs: Iterable[Spec]) -> bytes:
    """A PAX tar of the given entries, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for spec in specs:
            kind, path = spec[0], spec[1]
            ti = tarfile.TarInfo(path)
            ti.mtime = 0
            data = None
            if kind == "file":
                data = spec[2]
                ti.size = len(data)
                ti.mode = spec[3] if len(spec) > 3 else 0o644
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = spec[2] if len(spec) > 2 else 0o755
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = spec[2]
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = spec[2]
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            elif kind == "whiteout":
                parent, _, base = path.rpartition("/")
                ti.name = (parent + "/" if parent else "") + ".wh." + base
                ti.size = 0
            elif kind == "opaque":
                ti.name = path + "/.wh..wh..opq"
            else:
                raise ValueError(kind)
            if len(spec) > 4 and isinstance(spec[4], dict):
                ti.pax_headers = spec[4]
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemSource:
    """A Source over in-memory blobs (a fake for unit tests)."""

    def __init__(self, tars: Sequence[bytes], config_extra: dict[str, Any] | None = None,
                 compress: bool = True, history: list[dict[str, Any]] | None = None) -> None:
        self.name = "mem:test"
        self.blobs: dict[str, bytes] = {}
        layers = []
        for t in tars:
            blob = gzip.compress(t, mtime=0) if compress else t
            d = _sha(blob)
            self.blobs[d] = blob
            layers.append((Descriptor(OCI_LAYER_GZIP if compress else
                                      "application/vnd.oci.image.layer.v1.tar", d, len(blob)),
                           _sha(t)))
        cfg = {"architecture": "amd64", "os": "linux",
               "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
               "config": config_extra or {}}
        if history is not None:
            cfg["history"] = history
        cfg_raw = dump_json(cfg)
        self.blobs[_sha(cfg_raw)] = cfg_raw
        cfg_desc = Descriptor(OCI_CONFIG, _sha(cfg_raw), len(cfg_raw))
        man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg_desc.to_json(),
               "layers": [d.to_json() for d, _ in layers]}
        man_raw = dump_json(man)
        self.blobs[_sha(man_raw)] = man_raw
        self.manifest_desc = Descriptor(OCI_MANIFEST, _sha(man_raw), len(man_raw))
        self.image = Image(self.manifest_desc, Manifest.parse(man_raw, OCI_MANIFEST, "m"),
                           ImageConfig.parse(cfg_raw, "c"),
                           tuple(Layer(d, diff, self._opener(d)) for d, diff in layers))

    def _opener(self, d: Descriptor) -> Any:
        return lambda: self.open_blob(d)

    def resolve(self, platforms: Sequence[Any] = ()) -> Root:
        return Root(self.name, self.manifest_desc, None, (self.image,))

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        return VerifyingReader(io.BytesIO(self.blobs[descriptor.digest]), descriptor.digest,
                               descriptor.size, f"blob {descriptor.digest[:19]}")  # type: ignore


class _MemWriter:
    def __init__(self, sink: "MemSink") -> None:
        self.sink = sink
        self.buf = io.BytesIO()

    def write(self, data: bytes | memoryview) -> None:
        self.buf.write(data)

    def commit(self, digest: str, size: int) -> None:
        data = self.buf.getvalue()
        assert _sha(data) == digest and len(data) == size
        with self.sink.lock:
            self.sink.blobs[digest] = data

    def abort(self) -> None:
        pass


class MemSink:
    """A Sink over a dict (a fake for unit tests)."""

    def __init__(self) -> None:
        self.name = "mem:out"
        self.blobs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.committed: Descriptor | None = None
        self.aborted = False

    def has_blob(self, digest: str) -> bool:
        return digest in self.blobs

    def copy_blob(self, descriptor: Descriptor, opener: Any, origin: Any = None) -> None:
        with opener() as fh:
            data = fh.read()
        with self.lock:
            self.blobs[descriptor.digest] = data

    def blob_writer(self, *, verified: bool = False) -> _MemWriter:
        return _MemWriter(self)

    def put_manifest(self, raw: bytes, media_type: str) -> Descriptor:
        self.blobs[_sha(raw)] = raw
        return Descriptor(media_type, _sha(raw), len(raw))

    def commit(self, descriptor: Descriptor) -> None:
        self.committed = descriptor

    def abort(self) -> None:
        self.aborted = True

    def layer_tars(self) -> list[bytes]:
        """Uncompressed tars of the committed image's layers."""
        from slimmer.codec.compression import open_decompressed
        assert self.committed is not None
        man = json.loads(self.blobs[self.committed.digest])
        out = []
        for ly in man["layers"]:
            stream, _ = open_decompressed(io.BytesIO(self.blobs[ly["digest"]]), "t")
            out.append(b"".join(iter(lambda: stream.read(1 << 16), b"")))
        return out


# -- reference model of layer application ------------------------------------------------------

def apply_tar(fs: dict[str, tuple], tar_bytes: bytes) -> None:
    """Apply one layer tar to ``fs`` (path -> (kind, payload, mode)) as a runtime would:
    whiteouts hide lower content only, then entries in order; hardlinks copy their target."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        members = tf.getmembers()
        datas = {id(m): (tf.extractfile(m).read() if m.isreg() else None) for m in members}
    norm = lambda n: n.strip("/").removeprefix("./").rstrip("/")  # noqa: E731
    for m in members:
        name = norm(m.name)
        parent, _, base = name.rpartition("/")
        if base == ".wh..wh..opq":
            for p in [p for p in fs if p.startswith(parent + "/")]:
                del fs[p]
        elif base.startswith(".wh."):
            target = (parent + "/" if parent else "") + base[4:]
            for p in [p for p in fs if p == target or p.startswith(target + "/")]:
                del fs[p]
    for m in members:
        name = norm(m.name)
        base = name.rpartition("/")[2]
        if base.startswith(".wh.") or not name:
            continue
        parts = name.split("/")
        for i in range(1, len(parts)):
            anc = fs.get("/".join(parts[:i]))
            assert anc is None or anc[0] == "dir", f"{name} below non-directory"
        old = fs.get(name)
        if m.isdir():
            if old is not None and old[0] != "dir":
                _rm(fs, name)
            fs[name] = ("dir", None, m.mode & 0o7777)
            continue
        _rm(fs, name)
        if m.isreg():
            fs[name] = ("file", datas[id(m)], m.mode & 0o7777)
        elif m.issym():
            fs[name] = ("symlink", m.linkname, 0)
        elif m.islnk():
            target = fs.get(norm(m.linkname))
            assert target is not None, f"hardlink {name} -> missing {m.linkname}"
            fs[name] = target
        else:
            fs[name] = ("other", m.type, m.mode & 0o7777)


def _rm(fs: dict[str, tuple], name: str) -> None:
    for p in [p for p in fs if p == name or p.startswith(name + "/")]:
        del fs[p]


def final_fs(tars: Sequence[bytes]) -> dict[str, tuple]:
    fs: dict[str, tuple] = {}
    for t in tars:
        apply_tar(fs, t)
    return fs


def apply_tar_sequential(fs: dict[str, tuple], tar_bytes: bytes) -> None:
    """Apply one layer tar the way containerd's applier does, entry by entry: a whiteout
    removes the path as it is at that moment (this layer's own entries before it included);
    an opaque marker removes the children that this layer has not written yet."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        members = tf.getmembers()
        datas = {id(m): (tf.extractfile(m).read() if m.isreg() else None) for m in members}
    norm = lambda n: n.strip("/").removeprefix("./").rstrip("/")  # noqa: E731
    written: set[str] = set()
    upper: set[str] = set()     # what this layer's own directory holds (overlay's upper)
    for m in members:
        name = norm(m.name)
        parent, _, base = name.rpartition("/")
        ancestor = parent
        while ancestor:          # every entry, markers too, makes its parents in the upper
            upper.add(ancestor)
            ancestor = ancestor.rpartition("/")[0]
        if base == ".wh..wh..opq":
            for p in [p for p in fs if p.startswith(parent + "/") and p not in written]:
                del fs[p]
            continue
        if base.startswith(".wh."):
            hidden = (parent + "/" if parent else "") + base[4:]
            # containerd's overlay applier turns the whiteout into a device node there
            assert hidden not in upper, f"failed to convert whiteout file {name!r}: file exists"
            _rm(fs, hidden)
            continue
        upper.add(name)
        if not name:
            continue
        written.add(name)
        old = fs.get(name)
        if m.isdir():
            if old is not None and old[0] != "dir":
                _rm(fs, name)
            fs[name] = ("dir", None, m.mode & 0o7777)
            continue
        _rm(fs, name)
        if m.isreg():
            fs[name] = ("file", datas[id(m)], m.mode & 0o7777)
        elif m.issym():
            fs[name] = ("symlink", m.linkname, 0)
        elif m.islnk():
            target = fs.get(norm(m.linkname))
            assert target is not None, f"hardlink {name} -> missing {m.linkname}"
            fs[name] = target


def final_fs_sequential(tars: Sequence[bytes]) -> dict[str, tuple]:
    """``final_fs`` as a sequential applier (containerd) computes it."""
    fs: dict[str, tuple] = {}
    for t in tars:
        apply_tar_sequential(fs, t)
    return fs


def members(tar_bytes: bytes) -> list[tuple[str, str]]:
    """(name, type) of every member, in order."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        return [(m.name, m.type.decode()) for m in tf.getmembers()]
