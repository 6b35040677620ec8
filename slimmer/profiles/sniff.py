"""Recognise model-weight file formats from the first bytes of a file.

``sniff_content(head, size)`` looks at ``head`` (the first ``SNIFF_BYTES`` bytes, or the whole
file when it is shorter) and the full ``size`` and returns a content kind or None. Each check
follows the format's own header layout and is strict on purpose: a false positive strips a file
the image needs, so plain zips (jars, wheels), ELF binaries and random data must come out None.
"""

from __future__ import annotations

import io
import pickletools
import re
import struct

#: How many leading bytes of a file ``sniff_content`` needs.
SNIFF_BYTES: int = 4096

_HDF5 = b"\x89HDF\r\n\x1a\n"
_ZIP = b"PK\x03\x04"
_TORCH_MAGIC = b"\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")  # LONG1, 10 bytes
# What follows "<archive>/" in the first entry of a torch.save / torch.jit.save zip.
_TORCH_ZIP_FIRST = frozenset({"data.pkl", "version", ".data/version", "byteorder",
                              ".format_version"})
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
_OP_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def sniff_content(head: bytes, size: int) -> str | None:
    """Return the content kind of a file from its head ("safetensors", "pytorch-zip",
    "pytorch-legacy", "gguf", "onnx", "hdf5", "numpy", "numpy-zip", "pickle") or None."""
    head = bytes(head[:SNIFF_BYTES])
    if len(head) < 8:
        return None
    kind = None
    if head.startswith(b"GGUF"):
        kind = _gguf(head)
    elif head.startswith(b"\x93NUMPY"):
        kind = _numpy(head)
    elif head.startswith(_ZIP):
        kind = _zip(head)
    elif head.startswith(_HDF5):
        kind = "hdf5"
    elif head[0] == 0x80:
        kind = _pickle(head, size)
    elif head[0] == 0x08:
        kind = _onnx(head, size)
    if kind is None:
        kind = _safetensors(head, size)
    if kind is None:
        # HDF5 allows a user block before the superblock: it then sits at 512, 1024, 2048, ...
        for offset in (512, 1024, 2048):
            if head[offset:offset + 8] == _HDF5:
                return "hdf5"
    return kind


def _gguf(head: bytes) -> str | None:
    version = struct.unpack_from("<I", head, 4)[0]
    return "gguf" if 1 <= version <= 3 else None


def _numpy(head: bytes) -> str | None:
    # \x93NUMPY, major, minor, header length (u16 for 1.x, u32 for 2.x/3.x), then a dict literal
    if len(head) < 10 or head[6] not in (1, 2, 3) or head[7] != 0:
        return None
    start = 10 if head[6] == 1 else 12
    if len(head) < start + 1:
        return None
    length = struct.unpack_from("<H" if head[6] == 1 else "<I", head, 8)[0]
    header = head[start:start + length]
    return "numpy" if header.startswith(b"{") and b"descr" in header else None


def _zip(head: bytes) -> str | None:
    # local file header: name length (u16) at 26, extra length at 28, name at 30
    if len(head) < 30:
        return None
    name_len = struct.unpack_from("<H", head, 26)[0]
    raw = head[30:30 + name_len]
    if name_len == 0 or len(raw) != name_len:
        return None
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    archive, _, rest = name.partition("/")
    if archive and rest in _TORCH_ZIP_FIRST:
        return "pytorch-zip"
    if name.endswith(".npy") and len(name) > 4:
        return "numpy-zip"
    return None


# Opcodes a top-level pickled object can start with (after PROTO and FRAME).
_FIRST_OPCODES = frozenset(b"}])(c\x93N\x88\x89KJM\x8a\x8bGXU\x8cTBC\x8e\x96\x8d\x8f")
# Opcodes followed by a little-endian length and that many bytes of payload:
# opcode -> (width of the length, signed, payload is UTF-8 text).
_DATA_OPCODES = {
    ord("B"): (4, False, False),  # BINBYTES
    ord("X"): (4, False, True),  # BINUNICODE
    ord("T"): (4, True, False),  # BINSTRING
    0x8B: (4, True, False),  # LONG4
    0x8D: (8, False, True),  # BINUNICODE8
    0x8E: (8, False, False),  # BINBYTES8
    0x96: (8, False, False),  # BYTEARRAY8
}
_PUTS = frozenset({"BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"BINGET", "LONG_BINGET"})
# Protocol-0 opcodes with text arguments (INT, LONG, STRING, UNICODE, FLOAT, GET, PUT, INST,
# PERSID): a protocol 2+ pickler never writes them, so meeting one means this is no such pickle.
_TEXT_OPCODES = frozenset(bytes([c]) for c in b"ILSVFgpiP")
# GLOBAL's two text lines are a module and a qualified name.
_GLOBAL = re.compile(rb"c[A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


def _pickle(head: bytes, size: int) -> str | None:
    # PROTO n (2..5); protocol 4+ streams start with FRAME (0x95) and an 8-byte frame length
    if head[1] not in (2, 3, 4, 5):
        return None
    body = head[2:]
    if body[:1] == b"\x95":
        if len(body) < 9 or int.from_bytes(body[1:9], "little") > size:
            return None
        body = body[9:]
    if body.startswith(_TORCH_MAGIC):
        return "pytorch-legacy"
    if not body or body[0] not in _FIRST_OPCODES:
        return None
    return "pickle" if _valid_opcodes(head, size) else None


def _valid_opcodes(head: bytes, size: int) -> bool:
    """True if ``head`` is a plausible pickle: its opcodes parse and keep the unpickler's stack,
    marks and memo consistent, and it either ends (STOP) exactly at the end of the file, runs on
    for at least 12 opcodes, or is cut off by the head inside a large bytes/str/long whose
    declared length fits the file."""
    stream = io.BytesIO(head)
    depth = 0  # objects on the unpickler's stack (marks excluded)
    marks: list[int] = []  # stack depth at each open MARK
    memo: set[object] = set()
    count = next_pos = 0
    ops = pickletools.genops(stream)
    try:
        while True:
            here = stream.tell()
            code = head[here:here + 1]
            if code in _TEXT_OPCODES:
                return False
            if code == b"c" and not _GLOBAL.match(head, here):
                if head.count(b"\n", here) < 2:
                    break  # cut off by the end of the head
                return False
            try:
                opcode, arg, _pos = next(ops)
            except StopIteration:
                break
            # stack effects as pickletools documents them for each opcode
            before = opcode.stack_before
            floor = marks[-1] if marks else 0
            if pickletools.markobject in before:
                if not marks:
                    return False
                at = before.index(pickletools.markobject)
                above = sum(1 for s in before[at + 1:] if s is not pickletools.stackslice)
                if depth - marks[-1] < above:
                    return False
                depth = marks.pop() - at
                if depth < (marks[-1] if marks else 0):
                    return False
            else:
                depth -= len(before)
                if depth < floor:
                    return False
            name = opcode.name
            if name == "MARK":
                marks.append(depth)
            else:
                depth += len(opcode.stack_after)
            if name in _PUTS or name == "MEMOIZE":
                if depth <= (marks[-1] if marks else 0):
                    return False
                memo.add(arg if name in _PUTS else len(memo))
            elif name in _GETS and arg not in memo:
                return False
            count += 1
            next_pos = stream.tell()
            if name == "STOP":
                return count >= 3 and depth == 0 and not marks and next_pos == size
            if count >= 64:
                return True
    except (ValueError, struct.error, EOFError, OverflowError, IndexError):
        pass
    if count >= 12:
        return True
    return count >= 5 and _cut_inside_data(head, next_pos, size)


def _cut_inside_data(head: bytes, pos: int, size: int) -> bool:
    """True if the opcode at ``pos`` carries a length-prefixed payload that runs past the head
    and ends inside the file (and, for text, what is visible of it is UTF-8)."""
    if pos >= len(head) or head[pos] not in _DATA_OPCODES:
        return False
    width, signed, text = _DATA_OPCODES[head[pos]]
    start = pos + 1 + width
    if start > len(head):
        return False
    length = int.from_bytes(head[pos + 1:start], "little", signed=signed)
    if length < 0 or not len(head) < start + length <= size:
        return False
    if text:
        try:
            head[start:].decode("utf-8")
        except UnicodeDecodeError as exc:
            return exc.start >= len(head) - start - 3  # only a character cut in half at the end
    return True


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    return None


def _text(buf: bytes, start: int, length: int, pattern: re.Pattern[str] | None = None) -> bool:
    """True if ``buf[start:start+length]`` is all there, non-empty, printable UTF-8 text (and
    matches ``pattern`` when given)."""
    raw = buf[start:start + length]
    if len(raw) != length or length == 0:
        return False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable() and (pattern is None or pattern.match(text) is not None)


# ModelProto fields that may come before `graph` (7), in field order: number -> wire type.
# 2 producer_name, 3 producer_version, 4 domain (strings), 5 model_version (varint), 6 doc_string.
_MODEL_FIELDS = {2: 2, 3: 2, 4: 2, 5: 0, 6: 2}
# NodeProto fields (all length-delimited): 1 input, 2 output, 3 name, 4 op_type, 5 attribute,
# 6 doc_string, 7 domain, 8 overload, 9 metadata_props.
_NODE_STRINGS = {1, 2, 3, 7, 8}
_NODE_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 9}
# GraphProto fields that can follow its name: 1 node... 15 sparse_initializer (all messages/strings)
_GRAPH_FIELDS = {1, 2, 5, 10, 11, 12, 13, 14, 15, 16}


def _onnx(head: bytes, size: int) -> str | None:
    """A protobuf ModelProto: ir_version first, then (in field order, as every serializer writes
    them) optional header fields, then the graph, whose first node or name must parse too."""
    got = _varint(head, 1)
    if got is None or not 1 <= got[0] <= 20:
        return None
    pos = got[1]
    last_field = 1
    while True:
        got = _varint(head, pos)
        if got is None:
            return None
        tag, pos = got
        field, wire = tag >> 3, tag & 7
        if field <= last_field:
            return None
        last_field = field
        if field == 7 and wire == 2:
            got = _varint(head, pos)
            if got is None:
                return None
            length, pos = got
            if length < 2 or pos + length > size:
                return None
            return "onnx" if _onnx_graph(head, pos) else None
        if _MODEL_FIELDS.get(field) != wire:
            return None
        got = _varint(head, pos)
        if got is None:
            return None
        value, pos = got
        if wire == 2:
            if field in (2, 3, 4) and not _text(head, pos, value):
                return None
            pos += value
            if pos > len(head):
                return None


def _onnx_graph(head: bytes, pos: int) -> bool:
    """The graph's first field is its first node (needs a valid op_type) or its name."""
    got = _varint(head, pos)
    if got is None:
        return False
    tag, pos = got
    got = _varint(head, pos)
    if got is None:
        return False
    length, pos = got
    if tag == (2 << 3 | 2):  # name, then another graph field
        if not _text(head, pos, length):
            return False
        got = _varint(head, pos + length)
        return got is not None and got[0] & 7 == 2 and got[0] >> 3 in _GRAPH_FIELDS - {1, 2}
    if tag != (1 << 3 | 2):  # node
        return False
    end = min(pos + length, len(head))
    seen_op = False
    while pos < end:
        got = _varint(head, pos)
        if got is None:
            return seen_op
        tag, pos = got
        field, wire = tag >> 3, tag & 7
        if wire != 2 or field not in _NODE_FIELDS:
            return False
        got = _varint(head, pos)
        if got is None:
            return seen_op
        length, pos = got
        if pos + length > len(head):
            return seen_op
        if field == 4:
            if not _text(head, pos, length, _OP_TYPE):
                return False
            seen_op = True
        elif field in _NODE_STRINGS and length and not _text(head, pos, length):
            return False
        pos += length
    return seen_op


def _safetensors(head: bytes, size: int) -> str | None:
    # u64 LE header length N, then N bytes of JSON starting with "{"
    length = struct.unpack_from("<Q", head, 0)[0]
    if not 2 <= length <= _MAX_SAFETENSORS_HEADER or 8 + length > size or head[8:9] != b"{":
        return None
    visible = head[8:8 + length]
    return "safetensors" if b'"dtype"' in visible or b'"__metadata__"' in visible else None
