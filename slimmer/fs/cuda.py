"""The fat binaries of one file of a layer being scanned (for ``--cuda-arch``): small ELF
files and non-ELF files are passed over after a look at their first bytes."""

from __future__ import annotations

from slimmer.codec.cudascan import scan_fatbins
from slimmer.codec.elf import ELF_HEADER_SIZE
from slimmer.codec.tarread import TarReader
from slimmer.gpu.model import CudaFile

#: Smaller files hold no fat binary worth a look (a container alone is 80 bytes or more, an
#: ELF file with one several KiB).
MIN_SIZE = 4096


def index_cuda(reader: TarReader, size: int) -> CudaFile | None:
    """The fat binaries of the current entry of ``reader`` (its data is consumed), or None."""
    if size < MIN_SIZE:
        return None
    scanner = scan_fatbins(reader.head(ELF_HEADER_SIZE), size)
    if scanner is None:
        return None
    reader.copy_data(scanner.feed, with_padding=False)
    return scanner.finish()
