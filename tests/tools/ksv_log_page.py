"""The log settings page of Triton's logging extension
(common/ksv_logset.h) in Python: eight little-endian u32 words, magic
"KSLG", size, generation, info, warning, error, verbose, format (0
default, 1 ISO8601).  kserve-worker writes it, instances read it."""

import os
import struct

MAGIC = 0x474C534B
WORDS = 8


def write(path, info=1, warning=1, error=1, verbose=0, fmt=0, generation=1):
    data = struct.pack("<8I", MAGIC, WORDS * 4, generation, info, warning,
                       error, verbose, fmt)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        magic, size, generation, info, warning, error, verbose, fmt = \
            struct.unpack("<8I", f.read(WORDS * 4))
    assert magic == MAGIC and size == WORDS * 4
    return dict(generation=generation, info=info, warning=warning,
                error=error, verbose=verbose, format=fmt)
