"""Loops over the bytes of Arrow string columns, compiled by numba.

A kernel reads a column's UTF-8 bytes and offsets (:func:`reviewops.data.parsing.bytes_of`)
once, where Arrow kernels and numpy take a pass, and often a copy of the bytes, per step.
The functions that call them keep their per-value semantics; tests/include/test_oracle.py
holds them to the per-value functions on generated input.

Compiled code is cached on disk (numba's ``cache=True``: in ``__pycache__`` beside this
file, or numba's user cache where that is not writable), so only the first process after
an install compiles (about 10 s). Every new process still pays 0.7-0.9 s of CPU on an idle
machine (more when it is loaded) to import numba and load the kernel from the cache
(parsing.prepare_check_texts starts that in a thread). Kernels release the GIL, so threads run them side by side.

The hot loops are branch-free where the data decides (a mispredicted branch per blank
costs more than the work) and call no helper per byte (numba passes an array to a
compiled helper by reference count, which costs more than the test itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba as nb
import numpy as np

_Function = TypeVar("_Function", bound=Callable[..., Any])


def _compiled(function: _Function) -> _Function:
    """``function`` compiled (nopython), cached on disk, releasing the GIL."""
    return cast(_Function, nb.njit(nogil=True, cache=True, boundscheck=False)(function))


# Byte classes: one table lookup per byte tells a text's kernel all it needs.
SPACE = 1  # an ASCII character str.isspace accepts
OTHER_SPACE = 2  # ... other than " " (collapsed to " ")
CONTROL = 4  # a control character validate refuses (parsing._CONTROL)
AMPERSAND = 8  # may start an HTML entity
WIDE = 16  # first byte of a character that may be a non-ASCII blank (U+0085 ... U+3000)
ALNUM = 32  # an ASCII letter or digit: the text shows something
HIGH = 64  # not ASCII: the text's length in characters is not its length in bytes
QUOTE = 0x22
BLANK = 0x20
AMPERSAND_BYTE = 0x26


def _byte_classes() -> np.ndarray:
    classes = np.zeros(256, np.uint8)
    for b in b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ":
        classes[b] |= SPACE | (OTHER_SPACE if b != BLANK else 0)
    for b in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F):
        classes[b] |= CONTROL
    classes[AMPERSAND_BYTE] |= AMPERSAND
    for b in (0xC2, 0xE1, 0xE2, 0xE3):
        classes[b] |= WIDE
    for b in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
        classes[b] |= ALNUM
    classes[0x80:] |= HIGH
    return classes


BYTE_CLASSES = _byte_classes()


@_compiled
def _wide_space(data: np.ndarray, i: int, end: int) -> int:
    """The length in bytes of the non-ASCII character at ``data[i]`` if ``str.isspace``
    accepts it (U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
    U+3000), else 0; the text ends at ``end``."""
    b = data[i]
    b1 = data[i + 1] if i + 1 < end else 0
    b2 = data[i + 2] if i + 2 < end else 0
    if b == 0xC2:
        return 2 if b1 == 0x85 or b1 == 0xA0 else 0
    if b == 0xE1:
        return 3 if b1 == 0x9A and b2 == 0x80 else 0
    if b == 0xE2:
        if b1 == 0x80 and (0x80 <= b2 <= 0x8A or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF):
            return 3
        return 3 if b1 == 0x81 and b2 == 0x9F else 0
    if b == 0xE3:
        return 3 if b1 == 0x80 and b2 == 0x80 else 0
    return 0


@_compiled
def _is_blank(data: np.ndarray, start: int, end: int, classes: np.ndarray) -> bool:
    """``not text.strip()``: every character a blank (stops at the first that is not)."""
    i = start
    while i < end:
        if classes[data[i]] & SPACE:
            i += 1
            continue
        size = _wide_space(data, i, end)
        if not size:
            return False
        i += size
    return True


@_compiled
def _entity_at(src: np.ndarray, i: int, end: int, written: np.ndarray, written_lengths: np.ndarray) -> int:
    """Which of the entities ``written`` starts at ``src[i]`` (an "&"), or -1."""
    for k in range(len(written_lengths)):
        size = written_lengths[k]
        if i + size > end:
            continue
        j = 1
        while j < size and src[i + j] == written[k, j]:
            j += 1
        if j == size:
            return k
    return -1


# What one unescape found (flags of _unescape_once).
CHANGED = 1  # an entity was decoded
UNSURE = 2  # an "&" is neither an entity nor left alone: the value is not the text's own
AMPERSAND_LEFT = 4  # an "&" is in what was written: a second unescape may read it
WROTE_HIGH = 8  # a decoded character is not ASCII
WROTE_WIDE_SPACE = 16  # a decoded character is a non-ASCII blank (&nbsp;)


@_compiled
def _unescape_once(
    src: np.ndarray, start: int, end: int, dst: np.ndarray, entities: tuple[np.ndarray, ...], alone_before: np.ndarray
) -> tuple[int, int]:
    """One ``html.unescape`` of ``src[start:end]`` into ``dst`` from 0, where every "&"
    starts one of the entities or is one html.unescape leaves alone (at the text's end or
    before a byte of ``alone_before``): the decoded length and what was found (flags).
    The bytes between two "&" are copied as one run."""
    written, written_lengths, characters, character_lengths = entities
    n = 0
    found = 0
    i = start
    while i < end:
        j = i
        while j < end and src[j] != AMPERSAND_BYTE:
            j += 1
        dst[n : n + j - i] = src[i:j]
        n += j - i
        if j == end:
            break
        k = _entity_at(src, j, end, written, written_lengths)
        if k < 0:
            if j + 1 < end and not alone_before[src[j + 1]]:
                found |= UNSURE
            dst[n] = AMPERSAND_BYTE
            n += 1
            i = j + 1
            found |= AMPERSAND_LEFT
            continue
        size = character_lengths[k]
        dst[n : n + size] = characters[k, :size]
        if characters[k, 0] >= 0x80:
            found |= WROTE_HIGH | (WROTE_WIDE_SPACE if _wide_space(characters[k], 0, size) else 0)
        found |= CHANGED | (AMPERSAND_LEFT if characters[k, 0] == AMPERSAND_BYTE else 0)
        n += size
        i = j + written_lengths[k]
    return n, found


@_compiled
def _collapse_ascii(src: np.ndarray, start: int, end: int, out: np.ndarray, at: int, classes: np.ndarray) -> int:
    """``src[start:end]`` (no non-ASCII blank in it) with each run of blanks made one " "
    and none at either end, written to ``out`` from ``at``: the end of what was written.
    Branch-free: each byte is written, and the position moves on unless it is a blank
    after a blank (or at the start)."""
    n = at
    previous = 1
    for i in range(start, end):
        b = src[i]
        space = classes[b] & SPACE
        out[n] = BLANK if space else b
        n += 1 - (space & previous)
        previous = space
    if n > at and previous:
        n -= 1
    return n


@_compiled
def _collapse_exact(src: np.ndarray, start: int, end: int, out: np.ndarray, at: int, classes: np.ndarray) -> int:
    """:func:`_collapse_ascii` for a text that may hold non-ASCII blanks."""
    n = at
    pending = False
    i = start
    while i < end:
        b = src[i]
        size = (classes[b] & SPACE) if b < 0x80 else _wide_space(src, i, end)
        if size:
            pending = n > at
            i += size
            continue
        if pending:
            out[n] = BLANK
            n += 1
            pending = False
        out[n] = b
        n += 1
        i += 1
    return n


@_compiled
def _unquoted(out: np.ndarray, at: int, end: int) -> int:
    """The text at ``out[at:end]`` (blanks single " ", none at either end) with its
    surrounding '"' taken off a pair at a time, stripped after each: moved to ``at``,
    its new end returned."""
    first, last = at, end
    while last - first >= 2 and out[first] == QUOTE and out[last - 1] == QUOTE:
        first += 1
        last -= 1
        first += first < last and out[first] == BLANK
        last -= first < last and out[last - 1] == BLANK
    if first > at:
        out[at : at + last - first] = out[first:last].copy()
    return at + (last - first)


@_compiled
def _decoded(
    data: np.ndarray, start: int, end: int, scratch: np.ndarray, entities: tuple[np.ndarray, ...], alone_before: np.ndarray
) -> tuple[int, int, int]:
    """``clean_text``'s unescaping into one of the two rows of ``scratch``: which row, the
    length, and what was found (flags of both rounds). The second round runs when the
    first changed the text and left an "&" in it (without one it would change nothing)."""
    size, found = _unescape_once(data, start, end, scratch[0], entities, alone_before)
    if found & CHANGED and found & AMPERSAND_LEFT:
        size, again = _unescape_once(scratch[0], 0, size, scratch[1], entities, alone_before)
        return 1, size, found | again
    return 0, size, found


@_compiled
def _characters(out: np.ndarray, start: int, end: int) -> int:
    """The length in characters of the UTF-8 bytes ``out[start:end]``."""
    chars = 0
    for j in range(start, end):
        chars += (out[j] & 0xC0) != 0x80
    return chars


@_compiled
def _shows_alnum(out: np.ndarray, start: int, end: int, classes: np.ndarray) -> bool:
    """Whether ``out[start:end]`` holds an ASCII letter or digit (stops at the first)."""
    for j in range(start, end):  # noqa: SIM110 (numba compiles no generator expression)
        if classes[out[j]] & ALNUM:
            return True
    return False


@_compiled
def _classify(data: np.ndarray, start: int, end: int, classes: np.ndarray) -> tuple[int, bool]:
    """The OR of the classes of a text's bytes, and whether a blank follows a blank or
    stands at either end (then the text has blanks to collapse or strip)."""
    seen = 0
    doubled = 0
    previous = 1
    for i in range(start, end):
        c = classes[data[i]]
        seen |= c
        space = c & SPACE
        doubled |= space & previous
        previous = space
    return seen, bool(doubled | (previous if end > start else 0))


@_compiled
def clean_texts(
    data: np.ndarray, offsets: np.ndarray, classes: np.ndarray, entities: tuple[np.ndarray, ...], alone_before: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every text cleaned as ``clean_text`` cleans it (the entities decoded, at most
    twice; blanks collapsed; stripped; unquoted), with what validate checks of it.

    ``entities``: the entities decoded (bytes padded to 8, their lengths) and what each
    decodes to (padded to 4, lengths). Returns the cleaned bytes and offsets, then per
    text: whether an "&" is neither an entity nor one left alone (its cleaned value is
    then not its own), whether the text as it came is blank, whether it holds a control
    character, the cleaned text's length in characters, and whether it holds an ASCII
    letter or digit."""
    rows = len(offsets) - 1
    out = np.empty(max(offsets[rows] - offsets[0], 1), np.uint8)
    out_offsets = np.zeros(rows + 1, np.int64)
    unsure = np.zeros(rows, np.bool_)
    blank = np.zeros(rows, np.bool_)
    control = np.zeros(rows, np.bool_)
    lengths = np.zeros(rows, np.int64)
    alnum = np.zeros(rows, np.bool_)
    longest = 1
    for r in range(rows):
        longest = max(longest, offsets[r + 1] - offsets[r])
    scratch = np.empty((2, longest), np.uint8)
    n = 0
    for r in range(rows):
        start, end = offsets[r], offsets[r + 1]
        seen, loose = _classify(data, start, end, classes)
        control[r] = seen & CONTROL
        # A blank text starts with a blank (ASCII or not).
        blank[r] = end == start or (classes[data[start]] & (SPACE | WIDE) and _is_blank(data, start, end, classes))
        src, first, last = data, start, end
        wide = seen & WIDE
        if seen & AMPERSAND:
            row, size, found = _decoded(data, start, end, scratch, entities, alone_before)
            unsure[r] = found & UNSURE
            if found & CHANGED:
                # No entity decodes to an ASCII blank: the blanks to collapse are the same.
                src, first, last = scratch[row], 0, size
                seen |= HIGH if found & WROTE_HIGH else 0
                wide |= found & WROTE_WIDE_SPACE
        if wide:
            written = _collapse_exact(src, first, last, out, n, classes)
        elif loose or seen & OTHER_SPACE:
            written = _collapse_ascii(src, first, last, out, n, classes)
        else:
            written = n + last - first
            out[n:written] = src[first:last]
        if written - n >= 2 and out[n] == QUOTE and out[written - 1] == QUOTE:
            written = _unquoted(out, n, written)
        lengths[r] = _characters(out, n, written) if seen & HIGH else written - n
        alnum[r] = _shows_alnum(out, n, written, classes) if seen & AMPERSAND else seen & ALNUM
        n = written
        out_offsets[r + 1] = n
    return out[:n], out_offsets, unsure, blank, control, lengths, alnum
