"""Compute the closure of an in-memory image the way a real run does (a test helper): layers
built with memimage, scanned with the closure's facts, stacked, walked."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from slimmer.fs.closure import Closure, compute_closure
from slimmer.fs.scan import scan_layer
from slimmer.fs.stack import walk_stack

from support.elfbuild import build_elf
from support.memimage import MemSource, Spec, make_tar

LD = "/lib64/ld-linux-x86-64.so.2"
LIBDIR = "usr/lib/x86_64-linux-gnu"


def closure_of(layers: Sequence[Iterable[Spec]], config: dict[str, Any] | None = None,
               keep: Sequence[str] = ()) -> Closure:
    """The closure of an image made of these layers (memimage specs) and config."""
    src = MemSource([make_tar(specs) for specs in layers], config)
    indexes = [scan_layer(ly, closure_facts=True) for ly in src.image.layers]
    recs = [ix.entries for ix in indexes]
    return compute_closure(walk_stack(recs), recs, [ix.facts for ix in indexes],
                           src.image.config, keep)


def libc_layer() -> list[Spec]:
    """A Debian-like base: /lib64 -> usr/lib64, ld.so, libc with its soname symlink, and the
    multiarch directory in /etc/ld.so.conf.d."""
    return [
        ("dir", "usr"), ("dir", "usr/lib"), ("dir", LIBDIR), ("dir", "usr/lib64"),
        ("symlink", "lib64", "usr/lib64"), ("symlink", "lib", "usr/lib"),
        ("file", f"{LIBDIR}/ld-linux-x86-64.so.2", build_elf(soname="ld-linux-x86-64.so.2")),
        ("symlink", "usr/lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/"
                                                       "ld-linux-x86-64.so.2"),
        ("file", f"{LIBDIR}/libc.so.6", build_elf(soname="libc.so.6",
                                                  needed=["ld-linux-x86-64.so.2"])),
        ("file", "etc/ld.so.conf", b"include /etc/ld.so.conf.d/*.conf\n"),
        ("file", "etc/ld.so.conf.d/x86_64-linux-gnu.conf", b"/usr/lib/x86_64-linux-gnu\n"),
        ("file", "etc/ld.so.cache", b"cache"),
        ("file", "etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        ("file", "etc/nsswitch.conf", b"passwd: files\nhosts: files dns [NOTFOUND=return]\n"),
        ("file", f"{LIBDIR}/libnss_files.so.2", build_elf(needed=["libc.so.6"])),
    ]


def exe(*needed: str, **kw: Any) -> bytes:
    """An x86-64 executable using the system's dynamic linker."""
    return build_elf(etype=3, interp=LD, needed=list(needed), **kw)
