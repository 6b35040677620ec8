"""The ELF reader: dynamic-linking facts from hand-written ELF files (both classes, both byte
orders, string table before or after the dynamic section, fed in any chunking), from real
objects compiled by gcc, and one-line errors for malformed or truncated files."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from slimmer.fs.closure import elf
from slimmer.fs.closure.elf import ElfCapture, elf_facts, parse_head

from support.elfbuild import build_elf


def _chunked(data: bytes, seed: int) -> elf.ElfFacts:
    rng = random.Random(seed)
    capture = ElfCapture(parse_head(data[:elf.HEAD_BYTES], len(data)))
    pos = 0
    while pos < len(data):
        n = rng.choice([1, 7, 64, 511, 4096, 1 << 16])
        capture.feed(memoryview(data)[pos:pos + n])
        pos += n
    return capture.result()


@pytest.mark.parametrize("cls,big", [(64, False), (32, False), (64, True), (32, True)])
@pytest.mark.parametrize("after", [False, True])
def test_facts_of_every_class_byte_order_and_layout(cls: int, big: bool, after: bool) -> None:
    data = build_elf(cls=cls, big_endian=big, interp="/lib/ld-linux.so.2",
                     needed=["libc.so.6", "libz.so.1"], rpath="/opt/a:$ORIGIN/b",
                     runpath="$ORIGIN/../lib", soname="libt.so.1", flags_1=0x800,
                     strtab_after=after, pad=3000)
    for facts in (elf_facts(data), _chunked(data, 1), _chunked(data, 2)):
        assert facts.error is None
        assert facts.elf_class == cls and facts.machine == 62
        assert facts.interp == "/lib/ld-linux.so.2"
        assert facts.needed == ("libc.so.6", "libz.so.1")
        assert facts.rpath == ("/opt/a", "$ORIGIN/b") and facts.runpath == ("$ORIGIN/../lib",)
        assert facts.soname == "libt.so.1" and facts.nodeflib


def test_static_binary_has_no_needs() -> None:
    facts = elf_facts(build_elf(etype=2, dynamic=False))
    assert facts.error is None and facts.needed == () and facts.interp is None


def test_string_table_before_the_dynamic_section_beyond_the_kept_prefix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only PREFIX_CAP bytes are kept while waiting for the dynamic section: a string table
    further than that, but before the section, is reported, not guessed."""
    monkeypatch.setattr(elf, "PREFIX_CAP", 256)
    data = build_elf(needed=["libc.so.6"], pad=10_000)   # strings at ~120, dynamic at ~10k
    assert elf_facts(data).needed == ("libc.so.6",)        # within the first 256 bytes: fine
    far = build_elf(needed=["libc.so.6"], interp="/" + "x" * 400 + "/ld.so", pad=10_000)
    facts = elf_facts(far)
    assert facts.needed == () and "beyond the first" in (facts.error or "") and facts.partial
    assert not elf_facts(data[:200]).partial          # truncated: damage, not a limit
    assert facts.interp is not None and facts.interp.endswith("/ld.so")


@pytest.mark.parametrize("mangle,message", [
    (lambda d: d[:40], "too short"),
    (lambda d: d[:4] + b"\x09" + d[5:], "bad ELF class"),
    (lambda d: d[:5] + b"\x07" + d[6:], "bad ELF byte order"),
    (lambda d: d[:len(d) - 20], "truncated"),                       # dynamic cut off
    (lambda d: d[:56] + b"\xff\xff" + d[58:], "unsupported program header table"),
])
def test_malformed_files_give_one_line_errors(mangle: object, message: str) -> None:
    data = build_elf(needed=["libc.so.6"], pad=100)
    facts = elf_facts(mangle(data))  # type: ignore[operator]
    assert facts.error is not None and message in facts.error
    assert "\n" not in facts.error and facts.needed == ()


def test_bad_string_table_address_and_offsets() -> None:
    data = bytearray(build_elf(needed=["libc.so.6"]))
    facts = elf_facts(bytes(data))
    assert facts.error is None
    # point DT_STRTAB outside the only PT_LOAD
    dyn_off = bytes(data).rindex((5).to_bytes(8, "little"))
    data[dyn_off + 8:dyn_off + 16] = (0x10).to_bytes(8, "little")
    assert "outside the file's segments" in (elf_facts(bytes(data)).error or "")


def test_unterminated_string() -> None:
    data = bytearray(build_elf(needed=["libc.so.6"], strtab_after=True))
    data[-1:] = b"x"    # the last string loses its NUL
    facts = elf_facts(bytes(data))
    assert facts.error is not None and "not terminated" in facts.error


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is installed by scripts/setup --test")
def test_objects_compiled_by_gcc(tmp_path: Path) -> None:
    """A shared library and an executable made by gcc/ld: what readelf -d shows."""
    (tmp_path / "h.c").write_text("int h(void) { return 42; }\n")
    (tmp_path / "m.c").write_text("int h(void); int main(void) { return h() - 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", "libh.so.1", "-Wl,-soname,libh.so.1",
                    "h.c"], cwd=tmp_path, check=True)
    subprocess.run(["gcc", "-o", "m", "m.c", "-L.", "-l:libh.so.1",
                    "-Wl,-rpath,$ORIGIN/../lib"], cwd=tmp_path, check=True)
    lib = elf_facts((tmp_path / "libh.so.1").read_bytes())
    exe = elf_facts((tmp_path / "m").read_bytes())
    assert lib.error is None and lib.soname == "libh.so.1" and lib.interp is None
    assert exe.error is None and exe.needed[0] == "libh.so.1" and "libc.so.6" in exe.needed
    assert (exe.runpath or exe.rpath) == ("$ORIGIN/../lib",)
    assert exe.interp is not None and "ld-linux" in exe.interp
