"""Reading the files a user points at (data, configs), with one clear line for each way it fails.

Every error names the file, where in it (line or record) and what to do; none is a traceback.
A UTF-8 byte-order mark (Windows editors add one) is dropped with a note in the log.
"""

import json
import logging
import os
import re

logger = logging.getLogger("run_qa.user_files")  # a child of run_qa's logger: lands in train.log
BOM = "\ufeff"


def read_bytes(path: str, error: type[Exception] = ValueError, missing_hint: str = "") -> bytes:
    """The file's bytes; `error` with one line for a missing path, a folder or a file that
    cannot be read."""
    if os.path.isdir(path):
        raise error(f"{path}: is a folder, not a file; name the file inside it.")
    if not os.path.exists(path):
        raise error(f"{path}: no such file.{' ' + missing_hint if missing_hint else ''}")
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        raise error(
            f"{path}: cannot be read ({err.strerror or err}); check its permissions or copy it "
            "somewhere readable."
        ) from None


def read_text_file(path: str, error: type[Exception] = ValueError, missing_hint: str = "") -> str:
    """The file's text, decoded as UTF-8 (a leading byte-order mark dropped).

    Raises `error` with a one-line message for a missing path, a folder, an unreadable file or
    bytes that are not UTF-8.
    """
    raw = read_bytes(path, error, missing_hint)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error(
            f"{path}, line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start}); save the file as UTF-8."
        ) from None
    if text.startswith(BOM):
        logger.warning("%s starts with a UTF-8 byte-order mark; read without it.", path)
        text = text[len(BOM) :]
    return text


# A string token or a bracket: what nesting depth is counted from (brackets in strings do not count).
JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def parse_json(text: str, **kwargs) -> object:
    """json.loads, where a document nested deeper than Python's stack (json raises RecursionError
    there) is a JSONDecodeError at its deepest bracket, like any other JSON it cannot
    read, so every caller's one-line message for bad JSON covers it too."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        pass  # raised outside the handler: the stack is unwound, and no chained traceback
    depth, deepest, position = 0, 0, 0
    for token in JSON_TOKENS.finditer(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(token.group(), 0)
        if depth > deepest:
            deepest, position = depth, token.start()
    raise json.JSONDecodeError(
        f"nested {deepest:,} levels deep, more than can be read; data and settings files need a "
        "few levels",
        text,
        position,
    )


def lone_surrogate(text: str) -> tuple[int, int] | None:
    """(index, code point) of the first lone surrogate in `text`, or None. JSON's "\\ud800" escape
    without its pair makes one, and so does a byte that is not UTF-8 in a command-line argument:
    neither can be written as UTF-8, so Arrow and the tokenizer refuse such text."""
    found = re.search("[\ud800-\udfff]", text)
    return None if found is None else (found.start(), ord(found.group()))


def read_json_file(path: str, error: type[Exception] = ValueError, fix: str = "") -> object:
    """The file's JSON document; `error` with one line (and `fix`) if it cannot be read or parsed."""
    text = read_text_file(path, error, fix)
    try:
        return parse_json(text)
    except json.JSONDecodeError as err:
        raise error(
            f"{path}, line {err.lineno}: not valid JSON ({err.msg}).{' ' + fix if fix else ''}"
        ) from None


class RepeatedKey(ValueError):
    """A JSON object that gives one key twice (json keeps the last one without a word)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key

    def described_in(self, text: str) -> str:
        """What is wrong and where in `text` (the document's source), with the fix."""
        lines = sorted(set(key_lines(text, self.key)))
        where = f" (line{'s' if len(lines) > 1 else ''} {' and '.join(map(str, lines))})"
        return (
            f"the key '{self.key}' is given twice{where if lines else ''}; keep the one you mean "
            "and delete the other."
        )


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """json's object_pairs_hook: the object as a dict, RepeatedKey for a key given twice."""
    found = {}
    for key, value in pairs:
        if key in found:
            raise RepeatedKey(key)
        found[key] = value
    return found


def key_lines(text: str, key: str) -> list[int]:
    """The lines of `text` where `key` is written as an object key."""
    pattern = re.escape(json.dumps(key)) + r"\s*:"
    return [text.count("\n", 0, m.start()) + 1 for m in re.finditer(pattern, text)]


def read_settings_object(path: str, fix: str) -> dict:
    """A JSON object of settings; SystemExit with one line naming the file and `fix` if not."""
    try:
        settings = read_json_file(path, fix=fix)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    if not isinstance(settings, dict):
        raise SystemExit(f"error: {path}: not a JSON object of settings. {fix}")
    return settings
