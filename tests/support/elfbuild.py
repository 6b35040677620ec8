"""Minimal ELF files written by hand from the System V ABI (a test helper): an ELF header,
program headers (one PT_LOAD over the whole file, PT_INTERP, PT_DYNAMIC) and a dynamic
section with DT_NEEDED/DT_RPATH/DT_RUNPATH/DT_SONAME/DT_FLAGS_1 whose string table lies
before or after it. Enough for the closure's reader; nothing here can be executed."""

from __future__ import annotations

import struct
from typing import Sequence

BASE = 0x400000
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT = {"NEEDED": 1, "STRTAB": 5, "STRSZ": 10, "SONAME": 14, "RPATH": 15, "RUNPATH": 29,
      "FLAGS_1": 0x6FFFFFFB}


def build_elf(*, cls: int = 64, big_endian: bool = False, machine: int = 62, etype: int = 3,
              interp: str | None = None, needed: Sequence[str] = (), rpath: str | None = None,
              runpath: str | None = None, soname: str | None = None,
              flags_1: int | None = None, strtab_after: bool = False, pad: int = 0,
              dynamic: bool = True) -> bytes:
    """The bytes of an ELF file with these dynamic-linking facts. ``pad`` zero bytes sit
    between the string table (or the headers) and the dynamic section."""
    e = ">" if big_endian else "<"
    ehsize, phentsize = (64, 56) if cls == 64 else (52, 32)
    phnum = 1 + (interp is not None) + dynamic
    pos = ehsize + phentsize * phnum
    interp_off = pos
    interp_raw = interp.encode() + b"\0" if interp is not None else b""
    pos += len(interp_raw)
    strings = bytearray(b"\0")
    tags: list[tuple[int, int]] = []

    def add(tag: str, text: str) -> None:
        tags.append((DT[tag], len(strings)))
        strings.extend(text.encode() + b"\0")

    for name in needed:
        add("NEEDED", name)
    if soname is not None:
        add("SONAME", soname)
    if rpath is not None:
        add("RPATH", rpath)
    if runpath is not None:
        add("RUNPATH", runpath)
    if flags_1 is not None:
        tags.append((DT["FLAGS_1"], flags_1))
    dyn_fmt, dyn_size = (e + "qQ", 16) if cls == 64 else (e + "iI", 8)
    n_dyn = len(tags) + 3   # STRTAB, STRSZ, NULL
    if strtab_after:
        dyn_off = pos + pad
        str_off = dyn_off + n_dyn * dyn_size
    else:
        str_off = pos
        dyn_off = pos + len(strings) + pad
    tags += [(DT["STRTAB"], BASE + str_off), (DT["STRSZ"], len(strings)), (0, 0)]
    dyn_raw = b"".join(struct.pack(dyn_fmt, t, v) for t, v in tags)
    size = max(dyn_off + len(dyn_raw), str_off + len(strings))
    out = bytearray(size)
    out[interp_off:interp_off + len(interp_raw)] = interp_raw
    if dynamic:
        out[str_off:str_off + len(strings)] = strings
        out[dyn_off:dyn_off + len(dyn_raw)] = dyn_raw
    phdrs = [(PT_LOAD, 0, size)]
    if interp is not None:
        phdrs.append((PT_INTERP, interp_off, len(interp_raw)))
    if dynamic:
        phdrs.append((PT_DYNAMIC, dyn_off, len(dyn_raw)))
    ident = b"\x7fELF" + bytes([1 if cls == 32 else 2, 2 if big_endian else 1, 1]) + bytes(9)
    if cls == 64:
        head = struct.pack(e + "HHIQQQIHHHHHH", etype, machine, 1, 0, ehsize, 0, 0, ehsize,
                           phentsize, phnum, 64, 0, 0)
    else:
        head = struct.pack(e + "HHIIIIIHHHHHH", etype, machine, 1, 0, ehsize, 0, 0, ehsize,
                           phentsize, phnum, 40, 0, 0)
    out[0:ehsize] = ident + head
    for i, (ptype, off, filesz) in enumerate(phdrs):
        if cls == 64:
            ph = struct.pack(e + "IIQQQQQQ", ptype, 4, off, BASE + off, BASE + off, filesz,
                             filesz, 8)
        else:
            ph = struct.pack(e + "IIIIIIII", ptype, off, BASE + off, BASE + off, filesz,
                             filesz, 4, 4)
        out[ehsize + i * phentsize:ehsize + (i + 1) * phentsize] = ph
    return bytes(out)
