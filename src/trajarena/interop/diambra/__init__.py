"""Import DIAMBRA Arena recordings (2.2 ``.diambra`` files, 2.1 trajectory files) as trajarena files.

DIAMBRA's recordings are bz2-compressed pickles; they are read with a restricted unpickler that
calls nothing named in the file (:mod:`~trajarena.interop.diambra.unpickle`), their protobuf
settings are decoded from the wire bytes (:mod:`~trajarena.interop.diambra.protobuf`), the spaces
come from the settings and DIAMBRA's game table (:mod:`~trajarena.interop.diambra.games`), and each
version has its reader (:mod:`~trajarena.interop.diambra.v22`, :mod:`~trajarena.interop.diambra.v21`)
feeding the converter (:mod:`~trajarena.interop.diambra.convert`). The command line is
``trajarena import diambra SRC... --out DIR``; ``docs/diambra.md`` says what is kept and how.
:mod:`~trajarena.interop.diambra.compat` runs DIAMBRA's own scripts with only their imports changed.

>>> import trajarena.interop.diambra as diambra
>>> sorted(diambra.__all__)[:3]
['ImportSummary', 'ImportedFile', 'Recording']
"""

from trajarena.interop.diambra.convert import (
    ImportedFile,
    ImportSummary,
    find_sources,
    import_diambra,
    looks_like_diambra,
    read_diambra,
)
from trajarena.interop.diambra.source import Recording

__all__ = ["ImportSummary", "ImportedFile", "Recording", "find_sources", "import_diambra", "looks_like_diambra",
           "read_diambra"]
