"""The closure over synthetic images: starting points, ELF resolution as the dynamic linker
does it, what libc and libssl load, and the warnings for broken input."""

from __future__ import annotations

from slimmer.fs.closure import Need

from support.closureutil import LIBDIR, closure_of, exe, libc_layer
from support.elfbuild import build_elf


def test_entrypoint_chain_through_symlinks_interp_and_needed() -> None:
    app = [("dir", "usr/bin"), ("file", "usr/bin/app", exe("libz.so.1", "libc.so.6"), 0o755),
           ("symlink", "usr/bin/app-link", "app"),
           ("file", f"{LIBDIR}/libz.so.1.2.13", build_elf(needed=["libc.so.6"])),
           ("symlink", f"{LIBDIR}/libz.so.1", "libz.so.1.2.13"),
           ("file", f"{LIBDIR}/libunused.so.1", build_elf()),
           ("file", "bin/sh", exe("libc.so.6"), 0o755)]
    c = closure_of([libc_layer(), app], {"Cmd": ["app-link", "--flag"],
                                         "Env": ["PATH=/usr/bin"]})
    assert c.explain(f"{LIBDIR}/libz.so.1.2.13") == (
        f"{LIBDIR}/libz.so.1.2.13 <- {LIBDIR}/libz.so.1 (symlink) <- usr/bin/app (DT_NEEDED) "
        "<- usr/bin/app-link (symlink) <- Cmd")
    # the interpreter through /lib64 -> usr/lib64 -> ../lib/x86_64-linux-gnu
    assert c.explain(f"{LIBDIR}/ld-linux-x86-64.so.2") == (
        f"{LIBDIR}/ld-linux-x86-64.so.2 <- usr/lib64/ld-linux-x86-64.so.2 (symlink) <- "
        "usr/bin/app (PT_INTERP) <- usr/bin/app-link (symlink) <- Cmd")
    # the symlinked directory on the way is kept too, linked to what went through it
    assert c.links["lib64"].parent == "usr/bin/app" and c.links["lib64"].need == Need.INTERP
    assert c.links["etc/ld.so.cache"].need == Need.LD_CACHE
    assert "etc/ld.so.conf.d/x86_64-linux-gnu.conf" in c
    # libc brings what it dlopens: the NSS module named by nsswitch.conf
    assert c.links[f"{LIBDIR}/libnss_files.so.2"].need == Need.NSS
    assert c.links["etc/passwd"].need == Need.SYSTEM
    assert f"{LIBDIR}/libunused.so.1" not in c and "bin/sh" not in c
    assert c.warnings == []


def test_origin_runpath_rpath_inheritance_and_ld_library_path() -> None:
    layer = [
        # DT_RPATH with $ORIGIN finds libown.so; libown.so (no DT_RUNPATH of its own)
        # inherits the executable's DT_RPATH and finds libdeep2.so there
        ("file", "opt/app/bin/run", exe("libown.so", "libdeep.so",
                                        rpath="$ORIGIN/../lib:/opt/inherited"), 0o755),
        ("file", "opt/app/lib/libown.so", build_elf(needed=["libdeep2.so"])),
        ("file", "opt/inherited/libdeep.so", build_elf()),
        ("file", "opt/inherited/libdeep2.so", build_elf()),
        # DT_RUNPATH ${ORIGIN} and LD_LIBRARY_PATH from the config's Env
        ("file", "opt/env/libenv.so", build_elf()),
        ("file", "opt/app/bin/tool", exe("libenv.so", "libown.so",
                                         runpath="${ORIGIN}/../lib"), 0o755)]
    c = closure_of([libc_layer(), layer], {
        "Entrypoint": ["/opt/app/bin/run"], "Healthcheck": {"Test": ["CMD", "/opt/app/bin/tool"]},
        "Env": ["LD_LIBRARY_PATH=/opt/env"]})
    assert c.links["opt/app/lib/libown.so"].parent == "opt/app/bin/run"
    assert c.links["opt/inherited/libdeep2.so"].parent == "opt/app/lib/libown.so"
    assert c.links["opt/env/libenv.so"].parent == "opt/app/bin/tool"
    assert c.links["opt/app/bin/tool"].need == Need.HEALTHCHECK
    assert c.warnings == []


def test_runpath_is_not_inherited_so_the_library_is_missing() -> None:
    layer = [("file", "opt/bin/run", exe("libown.so", runpath="/opt/private"), 0o755),
             ("file", "opt/private/libown.so", build_elf(needed=["libsecret.so"])),
             ("file", "opt/private/libsecret.so", build_elf())]
    c = closure_of([libc_layer(), layer], {"Cmd": ["/opt/bin/run"]})
    assert "opt/private/libown.so" in c and "opt/private/libsecret.so" not in c
    assert c.warnings == ["closure: libsecret.so, needed by /opt/private/libown.so, is not in "
                          "the image (the input image cannot load it either)"]


def test_wrong_class_is_skipped_like_the_linker_does() -> None:
    layer = [("file", "opt/bin/run", exe("libx.so", rpath="/opt/l32:/opt/l64"), 0o755),
             ("file", "opt/l32/libx.so", build_elf(cls=32, machine=3)),
             ("file", "opt/l64/libx.so", build_elf())]
    c = closure_of([libc_layer(), layer], {"Cmd": ["/opt/bin/run"]})
    assert "opt/l64/libx.so" in c and "opt/l32/libx.so" not in c


def test_shebang_env_healthcheck_shell_and_keep_roots() -> None:
    layer = [("file", "usr/bin/env", exe("libc.so.6"), 0o755),
             ("file", "usr/bin/perl", exe("libc.so.6"), 0o755),
             ("file", "app/run", b"#!/usr/bin/env perl -w\nprint 1\n", 0o755),
             ("file", "bin/sh", exe("libc.so.6"), 0o755),
             ("file", "usr/bin/curl", exe("libcurl.so.4"), 0o755),
             ("file", f"{LIBDIR}/libcurl.so.4", build_elf(needed=["libc.so.6"])),
             ("file", "usr/share/zoneinfo/UTC", b"TZif")]
    c = closure_of([libc_layer(), layer], {
        "Entrypoint": ["/app/run"], "Env": ["PATH=/usr/bin:/bin"],
        "Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]}},
        keep=["/usr/share/zoneinfo/**"])
    assert c.explain("usr/bin/perl") == "usr/bin/perl <- app/run (shebang) <- Entrypoint"
    assert c.links["usr/bin/env"].need == Need.SHEBANG
    assert c.explain("bin/sh") == "bin/sh <- Healthcheck (shell form)"
    assert c.explain(f"{LIBDIR}/libcurl.so.4") == (
        f"{LIBDIR}/libcurl.so.4 <- usr/bin/curl (DT_NEEDED) <- Healthcheck")
    assert c.explain("usr/share/zoneinfo/UTC") == "usr/share/zoneinfo/UTC <- --keep " \
        "/usr/share/zoneinfo/**"


def test_libssl_brings_the_ca_certificates() -> None:
    layer = [("file", "usr/bin/app", exe("libssl.so.3"), 0o755),
             ("file", f"{LIBDIR}/libssl.so.3", build_elf(needed=["libc.so.6"])),
             ("file", "usr/share/ca-certificates/mozilla/A.crt", b"pem"),
             ("file", "etc/ssl/certs/ca-certificates.crt", b"pem"),
             ("symlink", "etc/ssl/certs/A.pem", "/usr/share/ca-certificates/mozilla/A.crt"),
             ("file", "etc/ssl/openssl.cnf", b"cnf"),
             ("file", "usr/share/ca-certificates/mozilla/B-unused.crt", b"pem")]
    c = closure_of([libc_layer(), layer], {"Cmd": ["/usr/bin/app"]})
    for path in ("etc/ssl/certs/ca-certificates.crt", "etc/ssl/certs/A.pem",
                 "usr/share/ca-certificates/mozilla/A.crt", "etc/ssl/openssl.cnf"):
        assert path in c, path
    assert c.explain("etc/ssl/certs") == "etc/ssl/certs <- usr/bin/app (CA bundle) <- Cmd"
    assert "usr/share/ca-certificates/mozilla/B-unused.crt" not in c


def test_bad_input_becomes_warnings_never_a_traceback() -> None:
    """Malformed ELF, a DT_NEEDED missing from the image, a DT_NEEDED cycle, a symlink loop:
    each is one warning and the walk goes on."""
    truncated = exe("libc.so.6", "libcycle-a.so")[:-40]
    layer = [("file", "usr/bin/broken", truncated, 0o755),
             ("file", "usr/bin/loopy", exe("libcycle-a.so", "libnothere.so.9"), 0o755),
             ("file", f"{LIBDIR}/libcycle-a.so", build_elf(needed=["libcycle-b.so"])),
             ("file", f"{LIBDIR}/libcycle-b.so", build_elf(needed=["libcycle-a.so"])),
             ("symlink", "usr/bin/spin", "spin2"), ("symlink", "usr/bin/spin2", "spin"),
             ("file", "usr/bin/garbage.so", b"\x7fELF\x02\x01\x01" + b"\xff" * 100)]
    c = closure_of([libc_layer(), layer], {
        "Cmd": ["/bin/sh", "-c", "broken && loopy && spin && garbage.so"],
        "Env": ["PATH=/usr/bin"]})
    text = "\n".join(c.warnings)
    assert "libnothere.so.9, needed by /usr/bin/loopy, is not in the image" in text
    assert "/usr/bin/broken: malformed ELF" in text and "truncated" in text
    assert "/usr/bin/garbage.so: malformed ELF" in text
    assert (f"dependency cycle: /{LIBDIR}/libcycle-a.so -> /{LIBDIR}/libcycle-b.so -> "
            f"/{LIBDIR}/libcycle-a.so") in text
    assert "symlink loop at /usr/bin/spin" in text
    assert all(w.startswith("closure: ") and "\n" not in w for w in c.warnings)
    assert f"{LIBDIR}/libcycle-b.so" in c and "usr/bin/broken" in c


def test_facts_are_the_same_when_an_observer_consumes_the_data() -> None:
    """The scan's observer (a build running in the same pass) copies every entry's data; the
    ELF reader watches the same bytes, so the facts do not change."""
    from slimmer.fs.scan import scan_layer

    from support.memimage import MemSource, make_tar

    lib = build_elf(needed=["libc.so.6"], runpath="$ORIGIN", strtab_after=True, pad=5 << 20)
    src = MemSource([make_tar([("file", "usr/lib/libbig.so", lib),
                               ("file", "app/main.py", b"import os\n")])])

    class Copier:
        def __init__(self) -> None:
            self.bytes = 0

        def entry(self, ordinal: int, entry: object, rec: object, reader: object) -> None:
            reader.copy_data(self.count)  # type: ignore[attr-defined]

        def count(self, chunk: bytes | memoryview) -> None:
            self.bytes += len(chunk)

        def end(self, reader: object) -> None:
            pass

    copier = Copier()
    watched = scan_layer(src.image.layers[0], observer=copier, closure_facts=True)
    plain = scan_layer(src.image.layers[0], closure_facts=True)
    assert watched.facts == plain.facts and copier.bytes >= len(lib)
    assert watched.facts[0].needed == ("libc.so.6",)  # type: ignore[union-attr]
