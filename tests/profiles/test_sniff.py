"""Tests for slimmer.profiles.sniff: real headers of every model format are recognised, and ELF
files, plain zips, small files and random bytes are not."""

from __future__ import annotations

import io
import json
import pickle
import random
import struct
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimmer.profiles import CONTENT_KINDS, SNIFF_BYTES, sniff_content

MiB = 1024 * 1024


def sniff(data: bytes, size: int | None = None) -> str | None:
    """Sniff like the scanner does: only the head is read, the size is the file's."""
    return sniff_content(data[:SNIFF_BYTES], len(data) if size is None else size)


def test_sniff_bytes_is_small() -> None:
    assert 1032 <= SNIFF_BYTES <= 4096  # HDF5 superblocks at 512/1024 must fit


# --- safetensors --------------------------------------------------------------------------------

def safetensors_file(header: dict[str, object], data_len: int = 64) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the writer pads the header with spaces
    return struct.pack("<Q", len(raw)) + raw + bytes(data_len)


def test_safetensors() -> None:
    data = safetensors_file({
        "__metadata__": {"format": "pt"},
        "model.embed.weight": {"dtype": "F16", "shape": [4, 8], "data_offsets": [0, 64]},
    })
    assert sniff(data) == "safetensors"
    without_metadata = safetensors_file(
        {"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}})
    assert sniff(without_metadata) == "safetensors"


def test_safetensors_negatives() -> None:
    data = safetensors_file({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}})
    header_len = struct.unpack_from("<Q", data)[0]
    assert sniff(data, size=8 + header_len - 1) is None  # header longer than the file
    assert sniff(struct.pack("<Q", 20) + b'{"a": 1, "b": 2}    ') is None  # JSON, no tensors
    assert sniff(struct.pack("<Q", 1) + b"{" + bytes(100)) is None
    assert sniff(struct.pack("<Q", 200 * MiB) + b'{"dtype"' + bytes(100), size=300 * MiB) is None
    assert sniff(struct.pack("<Q", 30) + b'["dtype"' + bytes(100)) is None


# --- PyTorch ------------------------------------------------------------------------------------

def torch_zip(names: list[str], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name in names:
            payload = pickle.dumps({"w": 1}, protocol=2) if name.endswith(".pkl") else b"x" * 64
            zf.writestr(name, payload)
    return buf.getvalue()


@pytest.mark.parametrize("first", [
    "archive/data.pkl", "model/data.pkl", "archive/version", "archive/.data/version",
    "archive/byteorder",
])
def test_pytorch_zip(first: str) -> None:
    names = [first] + [n for n in ("archive/data/0", "archive/data/1", "archive/version")
                       if n != first]
    data = torch_zip(names)
    assert sniff(data) == "pytorch-zip"


def test_pytorch_legacy() -> None:
    # torch.save(..., _use_new_zipfile_serialization=False): consecutive protocol-2 pickles of
    # the magic number, the protocol version and system info, then the pickled object and storages
    data = b"".join([
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True,
                      "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
        bytes(2 * MiB),
    ])
    assert data[:4] == b"\x80\x02\x8a\x0a"
    assert sniff(data) == "pytorch-legacy"


# --- GGUF ---------------------------------------------------------------------------------------

def gguf_file(version: int) -> bytes:
    key = b"general.architecture"
    value = b"llama"
    return (b"GGUF" + struct.pack("<IQQ", version, 291, 1)
            + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
            + struct.pack("<Q", len(value)) + value + bytes(256))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_gguf(version: int) -> None:
    assert sniff(gguf_file(version)) == "gguf"


@pytest.mark.parametrize("version", [0, 4, 0x1000000])
def test_gguf_bad_versions(version: int) -> None:
    assert sniff(gguf_file(version)) is None


# --- ONNX ---------------------------------------------------------------------------------------

def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def onnx_model(with_nodes: bool = True, ir_version: int = 8, producer: bool = True) -> bytes:
    """A ModelProto serialised as protobuf writes it: fields in field-number order."""
    weights = field(1, 1024) + field(1, 512) + field(2, 1) + field(8, b"fc.weight") \
        + field(9, bytes(1024 * 512 * 4))
    node = field(1, b"input") + field(1, b"fc.weight") + field(2, b"/fc/MatMul_output_0") \
        + field(3, b"/fc/MatMul") + field(4, b"MatMul")
    relu = field(1, b"/fc/MatMul_output_0") + field(2, b"output") + field(3, b"/relu/Relu") \
        + field(4, b"Relu")
    value_info = field(1, b"input")
    graph = (field(1, node) + field(1, relu) if with_nodes else b"") + field(2, b"main_graph") \
        + field(5, weights) + field(11, value_info) + field(12, field(1, b"output"))
    header = field(1, ir_version)
    if producer:
        header += field(2, b"pytorch") + field(3, b"2.1.0")
    return header + field(7, graph) + field(8, field(1, b"") + field(2, 17))


def test_onnx() -> None:
    model = onnx_model()
    assert len(model) > 2 * MiB
    assert sniff(model) == "onnx"
    assert sniff(onnx_model(producer=False)) == "onnx"
    assert sniff(onnx_model(with_nodes=False)) == "onnx"  # graph name comes first then
    assert sniff(onnx_model(ir_version=3)) == "onnx"


def test_onnx_negatives() -> None:
    model = onnx_model()
    assert sniff(model, size=1000) is None  # the graph does not fit in the file
    assert sniff(onnx_model(ir_version=0)) is None
    assert sniff(onnx_model(ir_version=99)) is None
    # fields out of order, or an unknown field before the graph
    assert sniff(field(1, 8) + field(3, b"2.1") + field(2, b"pytorch") + model[12:]) is None
    assert sniff(field(1, 8) + field(9, b"x") + model[2:]) is None
    # a node whose op_type is not an identifier
    bad_node = field(1, b"x") + field(4, b"Mat Mul\x00")
    assert sniff(field(1, 8) + field(7, field(1, bad_node) + bytes(64))) is None
    # a protobuf that is not a ModelProto: a varint then random length-delimited junk
    assert sniff(field(1, 8) + field(7, b"\xff" * 40)) is None


# --- HDF5, NumPy --------------------------------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def hdf5_superblock() -> bytes:
    # signature, superblock version 0, free-space/root-group/shared-header versions, reserved,
    # sizes of offsets and lengths (8, 8), group leaf/internal node K, file consistency flags
    return HDF5_SIGNATURE + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + struct.pack("<HHI", 4, 16, 0) \
        + bytes(64)


def test_hdf5() -> None:
    assert sniff(hdf5_superblock() + bytes(4096)) == "hdf5"
    for user_block in (512, 1024, 2048):
        assert sniff(bytes(user_block) + hdf5_superblock() + bytes(4096)) == "hdf5"
    assert sniff(bytes(100) + hdf5_superblock() + bytes(4096)) is None


def npy_v1(shape: tuple[int, ...]) -> bytes:
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(4 * 1000)


def test_numpy_handmade() -> None:
    assert sniff(npy_v1((1000,))) == "numpy"
    bad = bytearray(npy_v1((1000,)))
    bad[6] = 9  # unknown major version
    assert sniff(bytes(bad)) is None


def test_numpy_with_numpy() -> None:
    np = pytest.importorskip("numpy")
    buf = io.BytesIO()
    np.save(buf, np.zeros((512, 512), dtype=np.float32))
    assert sniff(buf.getvalue()) == "numpy"
    for save in (np.savez, np.savez_compressed):
        buf = io.BytesIO()
        save(buf, weights=np.ones((256, 256)), bias=np.zeros(256))
        assert sniff(buf.getvalue()) == "numpy-zip"


def test_numpy_zip_handmade() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("arr_0.npy", npy_v1((1000,)))
    assert sniff(buf.getvalue()) == "numpy-zip"


# --- pickle -------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickles(protocol: int) -> None:
    state = {f"encoder.layer.{i}.weight": bytes(64) for i in range(40)}
    assert sniff(pickle.dumps(state, protocol=protocol)) == "pickle"
    big = pickle.dumps({"coef": bytes(3 * MiB)}, protocol=protocol)
    assert sniff(big) == "pickle"
    text = pickle.dumps(("vocab", {"tokens": "t\u00e9" * MiB}), protocol=protocol)
    assert sniff(text) == "pickle"
    nested = pickle.dumps([{"a": [1.5, 2.5]}, (None, True)] * 20, protocol=protocol)
    assert sniff(nested) == "pickle"


def test_pickle_with_numpy_arrays() -> None:
    np = pytest.importorskip("numpy")
    data = pickle.dumps({"w": np.zeros((1024, 512)), "b": np.zeros(512)}, protocol=4)
    assert sniff(data) == "pickle"


def test_pickle_negatives() -> None:
    assert sniff(b"\x80\x01" + bytes(100)) is None  # protocol 1 has no PROTO opcode at all
    assert sniff(b"\x80\x06" + bytes(100)) is None
    assert sniff(b"\x80\x02\xff" + bytes(100)) is None  # unknown opcode
    assert sniff(b"\x80\x02K\x01." + bytes(100)) is None  # stops long before the end of file
    assert sniff(b"\x80\x04\x95" + struct.pack("<Q", 10**12) + b"}" + bytes(100)) is None
    assert sniff(b"\x80\x02hX" + bytes(100)) is None  # reads a memo slot never written


# --- negatives ----------------------------------------------------------------------------------

def elf_header() -> bytes:
    return (b"\x7fELF\x02\x01\x01\x00" + bytes(8) + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0x1000,
            64, 0, 0, 64, 56, 13, 64, 31, 30) + bytes(4096))


def test_elf_is_not_detected() -> None:
    assert sniff(elf_header(), size=5 * MiB) is None


@pytest.mark.parametrize("names", [
    ["META-INF/MANIFEST.MF", "com/example/App.class"],  # a jar
    ["mypkg/__init__.py", "mypkg-1.0.dist-info/METADATA"],  # a wheel
    ["version", "data.pkl"],  # top-level names, not an archive/ directory
    ["project/docs/version", "project/data.pkl"],  # deeper than archive/version
    ["docs/version.txt"],
    ["notes.npy.txt"],
])
def test_plain_zips_are_not_detected(names: list[str]) -> None:
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        assert sniff(torch_zip(names, compression)) is None


@pytest.mark.parametrize("data", [
    b"", b"\x80", b"GGUF", b"PK\x03\x04", b"\x93NUMPY", b"\x08\x07", b"\x89HDF\r\n\x1a",
    b"hello world\n", b"\x00" * 64, b"\xff" * 64, b"#!/bin/sh\necho hi\n",
    b'{"dtype": "F32"}', b"\x1f\x8b\x08\x00" + bytes(32),
])
def test_small_and_plain_files(data: bytes) -> None:
    assert sniff(data) is None


SIGNATURES = (b"GGUF", b"\x93NUMPY", b"PK\x03\x04", HDF5_SIGNATURE, b"\x80", b"\x08")


def explained(head: bytes) -> bool:
    """True if ``head`` carries one of the signatures a detection needs."""
    return (head.startswith(SIGNATURES) or head[8:9] == b"{"
            or any(head[o:o + 8] == HDF5_SIGNATURE for o in (512, 1024, 2048)))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=SNIFF_BYTES), st.integers(min_value=0, max_value=1 << 40))
def test_random_bytes(head: bytes, extra: int) -> None:
    kind = sniff_content(head, len(head) + extra)
    assert kind is None or kind in CONTENT_KINDS
    if not explained(head):
        assert kind is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SIGNATURES + (b"\x80\x02", b"\x80\x04\x95", b"\x08\x08\x12")),
       st.binary(min_size=0, max_size=600))
def test_signature_plus_random_bytes_never_crashes(prefix: bytes, tail: bytes) -> None:
    kind = sniff_content(prefix + tail, len(prefix) + len(tail) + 10 * MiB)
    assert kind is None or kind in CONTENT_KINDS


@pytest.mark.parametrize("prefix", [b"\x08", b"\x08\x07", b"\x80\x02", b"\x80\x03", b"\x80\x04",
                                    b"\x80\x05", b"PK\x03\x04"])
def test_random_data_after_a_signature_is_rejected(prefix: bytes) -> None:
    """Strictness: what follows a signature must parse, not just the first bytes."""
    rnd = random.Random(20240501)
    hits = 0
    for _ in range(3000):
        head = prefix + rnd.randbytes(SNIFF_BYTES - len(prefix))
        if sniff_content(head, 10 * MiB) is not None:
            hits += 1
    assert hits == 0


def test_only_the_head_is_used() -> None:
    data = safetensors_file({"w": {"dtype": "F32", "shape": [16], "data_offsets": [0, 64]}})
    assert sniff_content(data + bytes(10 * SNIFF_BYTES), 100 * MiB) == "safetensors"
