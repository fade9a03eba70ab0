"""Translation catalogs: read gettext ``.po`` files and compile them to the ``.mo`` files Django loads.

``make install`` runs ``python -m kefu.catalogs`` so a fresh clone gets its compiled catalogs without
GNU gettext (``msgfmt``) on the machine; the ``.mo`` files are build output and are not committed, so
a stale one cannot ship. The writer follows CPython's ``Tools/i18n/msgfmt.py``: a header, two sorted
tables of (length, offset) pairs, then the strings. Fuzzy entries are left out, as ``msgfmt`` does;
obsolete (``#~``) entries are skipped. The checks of ``tests/kefu/test_i18n.py`` read entries here too.
"""

from __future__ import annotations

import ast
import struct
import sys
from array import array
from dataclasses import dataclass, field
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
MO_MAGIC = 0x950412DE


@dataclass
class Entry:
    """One message of a catalog; ``msgstr`` has one form, or one per plural form."""

    msgid: str
    msgid_plural: str = ""
    msgctxt: str | None = None
    msgstr: list[str] = field(default_factory=list)
    fuzzy: bool = False
    obsolete: bool = False

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr)


def unquote(line: str) -> str:
    """The text of one quoted .po string (C escapes, as gettext writes them)."""
    return ast.literal_eval(line.strip())


def po_entries(path: Path) -> list[Entry]:
    """Every entry of a .po file, the header (msgid "") included, in file order."""
    entries: list[Entry] = []
    current: Entry | None = None
    fuzzy_pending, section, index = False, "", 0
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        obsolete = line.startswith("#~")
        line = line[2:].strip() if obsolete else line
        if line.startswith("#,"):
            fuzzy_pending = "fuzzy" in line
            continue
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        # An entry opens at its msgctxt, or at its msgid when no msgctxt came just before.
        if keyword == "msgctxt" or (keyword == "msgid" and section != "msgctxt"):
            current = Entry(msgid="", fuzzy=fuzzy_pending, obsolete=obsolete)
            entries.append(current)
            fuzzy_pending = False
        if current is None:
            raise ValueError(f"{path}: {raw!r} before any msgid")
        if keyword == "msgctxt":
            current.msgctxt, section = unquote(rest), "msgctxt"
        elif keyword == "msgid":
            current.msgid, section = unquote(rest), "msgid"
        elif keyword == "msgid_plural":
            current.msgid_plural, section = unquote(rest), "msgid_plural"
        elif keyword == "msgstr":
            current.msgstr, section = [unquote(rest)], "msgstr"
        elif keyword.startswith("msgstr["):
            index = int(keyword[7:-1])
            current.msgstr.extend([""] * (index + 1 - len(current.msgstr)))
            current.msgstr[index], section = unquote(rest), "msgstr[]"
        elif line.startswith('"'):
            continued(current, section, index, unquote(line))
    return entries


def continued(entry: Entry, section: str, index: int, text: str) -> None:
    """A continuation line appends to the string the last keyword opened."""
    if section == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + text
    elif section == "msgid":
        entry.msgid += text
    elif section == "msgid_plural":
        entry.msgid_plural += text
    elif section == "msgstr":
        entry.msgstr[0] += text
    elif section == "msgstr[]":
        entry.msgstr[index] += text


def mo_bytes(entries: list[Entry]) -> bytes:
    """The binary catalog of the entries msgfmt would keep: translated (or the header), not fuzzy or obsolete."""
    messages: dict[bytes, bytes] = {}
    for entry in entries:
        if entry.obsolete or (entry.fuzzy and entry.msgid) or not (entry.translated or entry.msgid == ""):
            continue
        key = entry.msgid if not entry.msgid_plural else f"{entry.msgid}\0{entry.msgid_plural}"
        if entry.msgctxt is not None:
            key = f"{entry.msgctxt}\x04{key}"
        messages[key.encode()] = "\0".join(entry.msgstr).encode()
    keys = sorted(messages)
    ids = strs = b""
    offsets = []
    for key in keys:
        offsets.append((len(ids), len(key), len(strs), len(messages[key])))
        ids += key + b"\0"
        strs += messages[key] + b"\0"
    keystart = 7 * 4 + 16 * len(keys)  # header, then the two tables of 8-byte pairs
    valuestart = keystart + len(ids)
    koffsets, voffsets = [], []
    for id_offset, id_length, str_offset, str_length in offsets:
        koffsets += [id_length, id_offset + keystart]
        voffsets += [str_length, str_offset + valuestart]
    header = struct.pack("Iiiiiii", MO_MAGIC, 0, len(keys), 7 * 4, 7 * 4 + len(keys) * 8, 0, 0)
    return header + array("i", koffsets + voffsets).tobytes() + ids + strs


def catalogs_compile(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Compile every ``.po`` under ``locale_dir`` whose ``.mo`` is missing or older; the files written."""
    written = []
    for po in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.write_bytes(mo_bytes(po_entries(po)))
        written.append(mo)
    return written


if __name__ == "__main__":
    for path in catalogs_compile(Path(sys.argv[1]) if len(sys.argv) > 1 else LOCALE_DIR):
        print(f"compiled {path}")
