"""The fat binaries of one file of a layer being scanned (for ``--cuda-arch``): small ELF
files and non-ELF files are passed over after a look at their first bytes."""

from __future__ import annotations

from slimmer.codec.cudascan import FatbinScanner, scan_fatbins
from slimmer.codec.elf import ELF_HEADER_SIZE
from slimmer.codec.tarread import TarReader

#: Smaller files hold no fat binary worth a look (a container alone is 80 bytes or more, an
#: ELF file with one several KiB).
MIN_SIZE = 4096


def watch_cuda(reader: TarReader, size: int) -> FatbinScanner | None:
    """A scanner watching the current entry of ``reader`` for fat binaries (its ``finish()``
    once the entry's data has gone by, however it was consumed), or None for a file that
    cannot hold any."""
    if size < MIN_SIZE:
        return None
    scanner = scan_fatbins(reader.head(ELF_HEADER_SIZE), size)
    if scanner is not None:
        reader.watch(scanner.feed)
    return scanner
