"""The Python constants agree with the C headers the server is built from.

``src/common/protocol.h`` is read with a small parser (its enums and
``#define``s, values written as integers, names of earlier constants, ``+``,
``-``, ``|``, ``<<`` and parentheses) and compared with
``stupidp2p/protocol.py`` both ways: every constant there has its
``P2P_``-less name here with the same value, and every integer constant here
is in the header.  The payload sizes of ``src/common/codec.h`` are checked
against ``stupidp2p/codec.py`` the same way.  A value changed on one side
only, or a constant added on one side only, fails.
"""

import ast
import os
import re
import unittest
from typing import Dict

from p2p_support import REPO
from stupidp2p import codec, protocol

COMMON = os.path.join(REPO, "src", "common")

_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_ENUM = re.compile(r"\benum\s+\w*\s*\{(.*?)\}", re.S)
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+(.+?)[ \t]*$",
                     re.M)
_INTEGER = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b")


def _evaluate(expression: str, known: Dict[str, int]) -> int:
    """The value of a C constant expression over integers and ``known``
    names."""
    text = _INTEGER.sub(lambda m: str(int(m.group(1), 0)), expression)
    tree = ast.parse(text.strip(), mode="eval")

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: int.__add__, ast.Sub: int.__sub__,
                   ast.BitOr: int.__or__, ast.LShift: int.__lshift__}
            op = ops.get(type(node.op))
            if op is not None:
                return op(value(node.left), value(node.right))
        raise ValueError("cannot evaluate %r" % expression)

    return value(tree.body)


def parse_header(path: str, known: Dict[str, int] = None) -> Dict[str, int]:
    """Every integer constant of a C header: enumerators and object-like
    ``#define``s (include guards and function-like macros left out)."""
    with open(path, encoding="utf-8") as f:
        text = _COMMENT.sub(" ", f.read())
    scope = dict(known or {})
    found: Dict[str, int] = {}
    for body in _ENUM.findall(text):
        following = 0
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, expression = item.partition("=")
            name = name.strip()
            following = (_evaluate(expression, scope) if expression
                         else following)
            scope[name] = found[name] = following
            following += 1
    for name, expression in _DEFINE.findall(text):
        if "(" in name:
            continue
        try:
            scope[name] = found[name] = _evaluate(expression, scope)
        except (ValueError, SyntaxError):
            continue  # not an integer constant
    return found


def python_constants(module) -> Dict[str, int]:
    """The upper-case integer constants of a module."""
    return {name: value for name, value in vars(module).items()
            if name.isupper() and not name.startswith("_")
            and isinstance(value, int)
            and not isinstance(value, bool)}


class HeaderParserTest(unittest.TestCase):
    """The parser itself, so that a broken parser cannot pass vacuously."""

    def test_enums_defines_and_expressions(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".h",
                                         delete=False) as f:
            f.write("#ifndef G_H\n#define G_H\n"
                    "enum e { A = 0x01, B, /* c */ C = 7 }; // d\n"
                    "#define D 4u  /* x */\n#define E (D + A)\n"
                    "#define F(x) ((x) + 1)\n#define G 1u << 4\n#endif\n")
        self.addCleanup(os.unlink, f.name)
        self.assertEqual(parse_header(f.name),
                         {"A": 1, "B": 2, "C": 7, "D": 4, "E": 5, "G": 16})


class ProtocolHeaderTest(unittest.TestCase):
    def setUp(self):
        path = os.path.join(COMMON, "protocol.h")
        if not os.path.exists(path):
            self.skipTest("no %s (not a source tree)" % path)
        self.header = parse_header(path)
        # Guard against a parser that finds nothing.
        self.assertGreater(len(self.header), 30)

    def test_every_header_constant_is_in_protocol_py(self):
        mine = python_constants(protocol)
        for name, value in sorted(self.header.items()):
            self.assertTrue(name.startswith("P2P_"), name)
            py_name = name[len("P2P_"):]
            with self.subTest(constant=name):
                self.assertTrue(py_name in mine,
                                "%s is in protocol.h but not in protocol.py"
                                % name)
                self.assertEqual(mine[py_name], value,
                                 "%s: protocol.h says %d, protocol.py %d"
                                 % (name, value, mine[py_name]))

    def test_every_python_constant_is_in_the_header(self):
        for name, value in sorted(python_constants(protocol).items()):
            with self.subTest(constant=name):
                self.assertTrue("P2P_" + name in self.header,
                                "protocol.py has %s, protocol.h has no P2P_%s"
                                % (name, name))
                self.assertEqual(self.header["P2P_" + name], value)


class CodecHeaderTest(unittest.TestCase):
    def test_payload_sizes_agree_with_codec_h(self):
        path = os.path.join(COMMON, "codec.h")
        if not os.path.exists(path):
            self.skipTest("no %s (not a source tree)" % path)
        known = parse_header(os.path.join(COMMON, "protocol.h"))
        sizes = {name: value for name, value in
                 parse_header(path, known).items() if name not in known}
        self.assertIn("P2P_BYE_MAX", sizes)
        mine = python_constants(codec)
        for name, value in sorted(sizes.items()):
            if not name.endswith(("_SIZE", "_MAX")):
                continue  # enumerators of the C API, not layouts
            with self.subTest(constant=name):
                self.assertEqual(mine.get(name[len("P2P_"):]), value)
        for name, value in mine.items():
            with self.subTest(constant=name):
                self.assertEqual(sizes.get("P2P_" + name), value)


if __name__ == "__main__":
    unittest.main()
