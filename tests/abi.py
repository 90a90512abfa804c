"""The device ABI constants, read from include/partlink/partlink_abi.h so
that the tests never carry a second copy of them."""

import re
from pathlib import Path

HEADER = Path(__file__).resolve().parents[1] / "include" / "partlink" / "partlink_abi.h"
_DEFINE = re.compile(r"^#define\s+(PARTLINK_\w+)\s+(.+?)\s*(?:/\*.*)?$")
_IOCTL = re.compile(r"_IO[RW]*\(")
_CAST = re.compile(r"\(\s*__[su](?:8|16|32|64)\s*\)")


def _evaluate(expr, known):
    expr = re.sub(r"(0x[0-9a-fA-F]+|\d+)(?:[uU]?[lL]{0,2}|[lL]{1,2}[uU])\b",
                  r"\1", expr)
    expr = _CAST.sub("", expr)
    expr = re.sub(r"'(.)'", lambda m: str(ord(m.group(1))), expr)
    expr = re.sub(r"\b(PARTLINK_\w+)\b", lambda m: str(known[m.group(1)]), expr)
    if not re.fullmatch(r"[\s0-9a-fA-Fx()<>|&~+\-*]+", expr):
        raise ValueError(f"unsupported expression in {HEADER.name}: {expr}")
    return int(eval(expr, {"__builtins__": {}}))  # digits and operators only


def load():
    known = {}
    text = HEADER.read_text().replace("\\\n", " ")  # join continued lines
    for line in text.splitlines():
        m = _DEFINE.match(line)
        # ioctl numbers need the C compiler's sizeof: not for the tests
        if m and not m.group(1).endswith("_H") and not _IOCTL.match(m.group(2)):
            known[m.group(1)] = _evaluate(m.group(2), known)
    return known


ABI = load()
globals().update(ABI)
