"""The EQL lexer works out line and column from the position only where a token starts or an
error is found: the positions it reports are those of the character, whatever came before
(multi-line strings, comments, CR LF line ends, tabs, non-ASCII text)."""

from __future__ import annotations

import pytest

from imds_scan.eql import EqlError, compile_rule

PREFIXES = [
    "any where ",
    'any where a == """x\ny\n"""\n  and ',
    "any where /* a\ncomment */ b == 1 and // end\n\t",
    'process where é.ñ == "ü" and\r\n  ',
    "any where a in (\n  1,\n  2\n) and `x\ny`.z == 1 and ",
    '\n\n   any where\n\n\n   c : "*" and ',
]
# Refused text, and where in it the error is reported.
BAD = [
    ("'single'", 0),
    ('x == "\\q"', 6),
    ("x = 1", 2),
    ("lengthOf(x) == 1", 0),
    ("x == 1 |", 7),
    ('"unterminated', 0),
]


def position(text: str, at: int) -> tuple[int, int]:
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("bad", "offset"), BAD)
def test_errors_point_at_the_character(prefix: str, bad: str, offset: int) -> None:
    query = prefix + bad
    with pytest.raises(EqlError) as caught:
        compile_rule(query, name="n")
    line, column = position(query, len(prefix) + offset)
    assert (caught.value.line, caught.value.column) == (line, column), caught.value
