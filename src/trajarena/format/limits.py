"""The limits every reader checks before it allocates memory for what a file declares.

A trajectory file is untrusted input: its metadata declares spaces, shapes, row counts and buffer
sizes, and a hostile or damaged file may declare anything. Readers check each declaration against
these limits first and raise :class:`~trajarena.errors.CorruptFileError` (well under a second, in
bounded memory) instead of allocating; writers refuse to make files that break them, so every file
a trajarena writer makes is readable. They are module attributes, read at call time: a program
that needs larger files may raise them (``trajarena.format.limits.MAX_ROW_BYTES = 256 << 20``)
before it opens them. ``docs/security.md`` explains each.
"""

#: The largest JSON metadata document (the schema's or one chunk's).
MAX_METADATA_BYTES = 16 << 20
#: The most rows one chunk may hold (``chunk_steps``).
MAX_CHUNK_ROWS = 1 << 20
#: The most bytes the strings of one column of one chunk may hold.
MAX_STRING_BYTES = 64 << 20
#: The most values one leaf (a frame, a vector) may hold per row.
MAX_LEAF_VALUES = 1 << 26
#: The most bytes one row may hold across all its leaves (a 4096x4096 RGB frame is 48 MiB).
MAX_ROW_BYTES = 64 << 20
#: The most bytes one chunk may decode to (writers refuse to make chunks above half of it).
MAX_CHUNK_BYTES = 1 << 30
#: The deepest Dict/Tuple nesting a space may declare.
MAX_SPACE_DEPTH = 32
