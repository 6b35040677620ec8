"""Layers built during their scan: taken when the plan agrees, thrown away when it does not,
and in both cases the bytes are exactly those of the two-pass build."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

import slimmer
from slimmer.build import run as build_run
from slimmer.build import speculate
from slimmer.options import SlimOptions

from support.fatbins import container, cubin, cuda_elf
from support.memimage import MemSink, MemSource, final_fs, final_fs_sequential, make_tar, members
from support.stacks import NAMES, layer_specs


@contextmanager
def counting(why: list[str | None] | None = None) -> Iterator[list[bool]]:
    """Records, for every speculation the build asked for, whether it was taken (and in
    ``why``, why one failed during the scan)."""
    taken: list[bool] = []
    original = speculate.Speculation.take

    def take(self: Any, out: Any, recs: Any) -> Any:
        result = original(self, out, recs)
        taken.append(result is not None)
        if why is not None:
            why.append(self.why)
        return result
    with mock.patch.object(speculate.Speculation, "take", take):
        yield taken


def slim(tars: list[bytes], options: SlimOptions, speculate_: bool = True,
         config: dict[str, Any] | None = None) -> tuple[Any, MemSink]:
    sink = MemSink()
    if speculate_:
        report = slimmer.slim(MemSource(tars, config), sink, options)
    else:
        with mock.patch.object(build_run, "_speculable", lambda *a: set()):
            report = slimmer.slim(MemSource(tars, config), sink, options)
    return report, sink


def digests(report: Any) -> list[str | None]:
    return [report.digest] + [ly.digest for img in report.images for ly in img.layers]


BASE = [("dir", "usr"), ("dir", "usr/share"), ("dir", "usr/share/doc"),
        ("dir", "usr/share/doc/pkg"), ("file", "usr/share/doc/pkg/changelog", b"c" * 900),
        ("file", "usr/share/doc/pkg/copyright", b"(c)"), ("dir", "usr/bin"),
        ("file", "usr/bin/app", b"\x7fELF" + b"x" * 3000, 0o755)]
APP = [("dir", "app"), ("file", "app/main.py", b"print(1)\n"), ("dir", "app/docs"),
       ("file", "app/docs/manual.txt", b"m" * 500), ("whiteout", "usr/bin/old")]
STRIP = SlimOptions(profiles=("none",), strip=("/usr/share/doc/*/changelog", "/app/docs/**"),
                    merge="none")


def test_unchanged_and_stripped_layers_are_taken_from_the_scan() -> None:
    tars = [make_tar(BASE), make_tar(APP), make_tar([("file", "etc/x", b"x")])]
    with counting() as taken:
        report, sink = slim(tars, STRIP)
    assert taken == [True, True, True]
    assert [ly.mode for ly in report.images[0].layers] == ["rebuild", "rebuild", "recompress"]
    again, _ = slim(tars, STRIP, speculate_=False)
    assert digests(report) == digests(again)
    fs = final_fs(sink.layer_tars())
    assert "usr/share/doc/pkg/changelog" not in fs and "usr/share/doc/pkg/copyright" in fs
    assert "app/docs/manual.txt" not in fs and "app/main.py" in fs


def test_a_plan_that_disagrees_makes_a_second_pass_with_the_same_bytes() -> None:
    """The entrypoint is selected by a rule: only the plan knows it is needed. A later layer
    strips a path an earlier layer has: only the plan sees both."""
    tars = [make_tar(BASE), make_tar([("file", "usr/bin/tool", b"t" * 100, 0o755)])]
    options = SlimOptions(profiles=("none",), strip=("/usr/bin/*",), merge="none")
    config = {"Entrypoint": ["/usr/bin/app"]}
    with counting() as taken:
        report, sink = slim(tars, options, config=config)
    assert taken == [False, True]        # layer 0 keeps usr/bin/app: the plan knew it
    assert "usr/bin/app" in final_fs(sink.layer_tars())
    again, _ = slim(tars, options, speculate_=False, config=config)
    assert digests(report) == digests(again)


def test_a_hard_link_to_a_removed_file_falls_back() -> None:
    tars = [make_tar([("dir", "usr"), ("file", "usr/gcc-12", b"g" * 800, 0o755),
                      ("hardlink", "usr/cc", "usr/gcc-12")])]
    options = SlimOptions(profiles=("none",), strip=("/usr/gcc-12",), merge="none")
    with counting() as taken:
        report, sink = slim(tars, options)
    assert taken == [False]
    assert final_fs(sink.layer_tars())["usr/cc"][1] == b"g" * 800
    assert digests(report) == digests(slim(tars, options, speculate_=False)[0])


@settings()
@given(st.lists(layer_specs(), min_size=1, max_size=4), st.sets(st.sampled_from(NAMES),
                                                                max_size=3),
       st.sampled_from(["none", "auto"]), st.sampled_from(["zstd", "gzip"]))
def test_random_stacks_give_the_two_pass_bytes(stack: list[list[tuple]], strip: set[str],
                                               merge: str, compression: str) -> None:
    tars = [make_tar(s) for s in stack]
    try:
        final_fs(tars)
    except AssertionError:
        return
    options = SlimOptions(profiles=("none",), strip=tuple("/" + p for p in sorted(strip)),
                          merge=merge, compression=compression if merge == "none" else "zstd")
    one, _ = slim(tars, options)
    two, _ = slim(tars, options, speculate_=False)
    assert digests(one) == digests(two)


def test_fat_binaries_leave_the_layer_to_the_plan() -> None:
    """With --cuda-arch only the plan knows a fat binary's new content: the layer that holds
    one is built in a second pass (and its GPU code pruned), the others are taken."""
    lib = cuda_elf(container([cubin(80), cubin(90), cubin(100)]), text=b"\x90" * 8192)
    tars = [make_tar(BASE), make_tar([("dir", "opt"), ("file", "opt/libk.so", lib, 0o755),
                                      ("file", "opt/after", b"a" * 700)])]
    options = SlimOptions(profiles=("none",), strip=("/usr/share/doc/*/changelog",),
                          merge="none", cuda_arch=("sm_90",))
    why: list[str | None] = []
    with counting(why) as taken:
        report, sink = slim(tars, options)
    assert taken == [True, False]
    assert why[1] is not None and "fat binaries" in why[1]   # stopped early: no wasted work
    pruned = final_fs(sink.layer_tars())["opt/libk.so"][1]
    assert len(pruned) == len(lib) and pruned != lib
    assert report.images[0].cuda_summary["pruned"] == 1
    assert digests(report) == digests(slim(tars, options, speculate_=False)[0])



LOWER_INCLUDE = [("dir", "usr"), ("dir", "usr/include"), ("file", "usr/include/x.h", b"x"),
                 ("dir", "usr/include/arpa"), ("file", "usr/include/arpa/old.h", b"o")]


def test_markers_inside_a_stripped_directory_wait_with_it() -> None:
    """A layer's own markers inside a directory a rule selects (seen on the ML image, layer
    1: usr/include/*/ made opaque, usr/lib/gcc too): they wait with the directory. When it
    goes whole, the plan drops them (the trailer whites it out, or nothing lower is there to
    hide); when something below it stays, they are written after its header, where they
    were. Either way the layer is taken from its scan, with the two-pass bytes."""
    top = [("dir", "usr"), ("dir", "usr/include"), ("dir", "usr/include/arpa"),
           ("opaque", "usr/include/arpa"), ("file", "usr/include/arpa/inet.h", b"i" * 300),
           ("whiteout", "usr/include/x.h"), ("dir", "usr/lib"), ("dir", "usr/lib/gcc"),
           ("opaque", "usr/lib/gcc"), ("whiteout", "usr/lib/gcc/old"),
           ("file", "usr/lib/gcc/cc1", b"c" * 700), ("file", "usr/lib/gcc/keep", b"k" * 40),
           ("file", "etc/conf", b"c")]
    tars = [make_tar(LOWER_INCLUDE), make_tar(top)]
    strip = ("/usr/include", "/usr/include/**", "/usr/lib/gcc", "/usr/lib/gcc/**")
    trailer = ["usr/.wh.include"]        # hides the lower usr/include, not a marker of top's
    for keep, markers in (((), trailer), (("/usr/lib/gcc/keep",), [
            "usr/lib/gcc/.wh..wh..opq", "usr/lib/gcc/.wh.old", *trailer])):
        options = SlimOptions(profiles=("none",), strip=strip, keep=keep, merge="none")
        why: list[str | None] = []
        with counting(why) as taken:
            report, sink = slim(tars, options)
        assert taken[1], why
        assert [name for name, _ in members(sink.layer_tars()[1]) if ".wh." in name] == markers
        fs = final_fs_sequential(sink.layer_tars())
        assert not any(p.startswith("usr/include") for p in fs)
        assert ("usr/lib/gcc/keep" in fs) == bool(keep) and "usr/lib/gcc/cc1" not in fs
        assert digests(report) == digests(slim(tars, options, speculate_=False)[0])
