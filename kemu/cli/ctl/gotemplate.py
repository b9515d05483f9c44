"""The part of Go's text/template that kubectl users type into `-o go-template=...`:
`{{(index .spec.ports 0).nodePort}}`, `{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}`,
`{{if eq .status.phase "Running"}}...{{else}}...{{end}}`, `{{printf "%-20s" .x}}`.

Why our own: PyPI has no well-kept pure-Python text/template (only CGo bindings that need a
Go toolchain, or a planning-stage 0.1), and the subset scripts rely on is small and stable.
The data is what kubectl hands its template, a manifest-shaped dict, so "fields" are map
keys; a missing key prints `<no value>` as Go's does with `missingkey=default`.

Supported: text and `{{- ... -}}` trimming, `{{/* comments */}}`, field chains on `.`, `$`
and variables, parenthesised pipelines with `.field` chains, `|`, `$x := ...` / `$x = ...`,
`if`/`else if`/`else`, `range` (with `$i, $e :=`, `else`, `break`, `continue`), `with`
(and `else with`), string/raw/char/number/bool/nil literals, and the functions `and or not
len index printf print println eq ne lt le gt ge` plus kubectl's `base64decode` and
`exists`. Errors read as Go's (`template: output:1: ...`). Two deliberate leniencies: an
int and a float compare as numbers, and `%s`/`%d` print any number (kubectl decodes JSON
numbers as float64, where Go would print `%!d(float64=3)`). `define`/`template`/`block`
are refused with a clear error.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from kemu.cli.ctl import gofmt
from kemu.cli.ctl.gofmt import is_number, quote, type_name

NAME = "output"  # the name kubectl gives its template; it appears in every error


class TemplateError(ValueError):
    """The template cannot be parsed or executed."""


class TemplateParseError(TemplateError):
    """The template text is not a template."""


class TemplateExecError(TemplateError):
    """The template failed on this data."""


class _NoValue:
    """A missing map key (Go's invalid reflect.Value): an action prints it as `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()
_NO_FINAL = object()  # no value piped in from the previous command


# ---- lexing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    kind: str  # text left right space field dot var ident keyword bool nil number char
    #            string raw lparen rparen pipe declare assign punct eof
    value: str
    pos: int


_SPACE = " \t\r\n"
_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue", "define",
                       "template", "block"})
_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
                     r"|0[oObB][0-9_]*|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?")
_TERMINATORS = frozenset(_SPACE + ".,|:()")


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _parse_error(text: str, pos: int, message: str) -> NoReturn:
    raise TemplateParseError(f"template: {NAME}:{_line(text, pos)}: {message}")


def _char_name(ch: str) -> str:
    """Go's %#U: `U+007B '{'`."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


def _right_delim(text: str, pos: int) -> tuple[bool, bool]:
    """(a closing `}}` starts here, it carries a ` -` trim marker)."""
    if text.startswith("-}}", pos + 1) and text[pos:pos + 1] in tuple(_SPACE):
        return True, True
    return text.startswith("}}", pos), False


def _alnum_end(text: str, pos: int) -> int:
    while pos < len(text) and (text[pos].isalnum() or text[pos] == "_"):
        pos += 1
    return pos


def _at_terminator(text: str, pos: int) -> bool:
    return pos >= len(text) or text[pos] in _TERMINATORS or text.startswith("}}", pos)


def _quoted_end(text: str, pos: int, quote: str, what: str) -> int:
    """The index just past the literal opening at `pos`."""
    i = pos + 1
    while i < len(text) and text[i] != quote:
        if text[i] == "\\" and quote != "`":
            i += 1
        elif text[i] == "\n" and quote != "`":
            break
        i += 1
    if i >= len(text) or text[i] != quote:
        _parse_error(text, pos, f"unterminated {what}")
    return i + 1


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, trim_next = 0, False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if start < 0:
            if chunk:
                tokens.append(_Token("text", chunk, pos))
            tokens.append(_Token("eof", "", len(text)))
            return tokens
        inner = start + 2
        if text.startswith("-", inner) and text[inner + 1:inner + 2] in tuple(_SPACE):
            chunk = chunk.rstrip(_SPACE)
            inner += 2
        if chunk:
            tokens.append(_Token("text", chunk, pos))
        if text.startswith("/*", inner):
            close = text.find("*/", inner + 2)
            if close < 0:
                _parse_error(text, start, "unclosed comment")
            delim, trim_next = _right_delim(text, close + 2)
            if not delim:
                _parse_error(text, close, "comment ends before closing delimiter")
            pos = close + 2 + (4 if trim_next else 2)
            continue
        tokens.append(_Token("left", "{{", start))
        pos, trim_next = _lex_action(text, inner, tokens)


def _lex_action(text: str, pos: int, tokens: list[_Token]) -> tuple[int, bool]:
    """Tokens up to and including the closing `}}`; returns (position after it, trim)."""
    depth = 0
    while True:
        if pos >= len(text):
            _parse_error(text, pos, "unclosed action")
        delim, trim = _right_delim(text, pos)
        if delim:
            if depth:
                _parse_error(text, pos, "unclosed left paren")
            tokens.append(_Token("right", "}}", pos))
            return pos + (4 if trim else 2), trim
        ch, nxt = text[pos], text[pos + 1:pos + 2]
        if ch in _SPACE:
            end = pos
            while end < len(text) and text[end] in _SPACE:
                end += 1
            if _right_delim(text, end - 1) == (True, True):
                end -= 1  # the last space belongs to the ` -}}` marker
            tokens.append(_Token("space", text[pos:end], pos))
            pos = end
            continue
        if ch in "\"`'":
            what = {'"': "quoted string", "`": "raw quoted string",
                    "'": "character constant"}[ch]
            end = _quoted_end(text, pos, ch, what)
            kind = {'"': "string", "`": "raw", "'": "char"}[ch]
        elif ch == "$" or (ch == "." and not nxt.isdigit()):
            end = _alnum_end(text, pos + 1)
            if end > pos + 1 and not _at_terminator(text, end):
                _parse_error(text, end, f"bad character {_char_name(text[end])}")
            kind = "var" if ch == "$" else ("field" if end > pos + 1 else "dot")
        elif ch in "+-." or ch.isdigit():
            m = _NUMBER.match(text, pos)
            end = m.end() if m else pos + 1
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                _parse_error(text, pos, f'bad number syntax: "{text[pos:end + 1]}"')
            kind = "number"
        elif ch.isalpha() or ch == "_":
            end = _alnum_end(text, pos)
            if not _at_terminator(text, end):
                _parse_error(text, end, f"bad character {_char_name(text[end])}")
            word = text[pos:end]
            kind = ("bool" if word in ("true", "false") else "nil" if word == "nil"
                    else "keyword" if word in _KEYWORDS else "ident")
        elif ch == ":":
            if nxt != "=":
                _parse_error(text, pos, "expected :=")
            end, kind = pos + 2, "declare"
        else:
            end = pos + 1
            kind = {"=": "assign", "|": "pipe", "(": "lparen", ")": "rparen"}.get(ch, "")
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    _parse_error(text, pos, "unexpected right paren")
            elif not kind:
                if not (ch.isascii() and ch.isprintable()):
                    _parse_error(text, pos, f"unrecognized character in action: {_char_name(ch)}")
                kind = "punct"
        tokens.append(_Token(kind, text[pos:end], pos))
        pos = end


# ---- literals -----------------------------------------------------------------------------

_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}


def _unescape(body: str, quote: str) -> list[tuple[bool, int]]:
    """Go escapes decoded to (is_byte, value) units; ValueError on bad syntax."""
    units: list[tuple[bool, int]] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            units.append((False, ord(ch)))
            i += 1
            continue
        esc = body[i + 1:i + 2]
        if esc in _ESCAPES:
            units.append((False, _ESCAPES[esc]))
            i += 2
        elif esc == quote:
            units.append((False, ord(quote)))
            i += 2
        elif esc in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2:i + 2 + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError("invalid syntax")
            value = int(digits, 16)
            if esc != "x" and (value > 0x10FFFF or 0xD800 <= value < 0xE000):
                raise ValueError("invalid syntax")
            units.append((esc == "x", value))
            i += 2 + size
        elif esc and esc in "01234567":
            digits = body[i + 1:i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or \
                    int(digits, 8) > 255:
                raise ValueError("invalid syntax")
            units.append((True, int(digits, 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return units


def _string_value(literal: str) -> str:
    if literal[0] == "`":
        return literal[1:-1].replace("\r", "")
    raw = bytearray()
    for is_byte, value in _unescape(literal[1:-1], '"'):
        raw += bytes([value]) if is_byte else chr(value).encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", errors="replace")


def _char_value(literal: str) -> int:
    units = _unescape(literal[1:-1], "'")
    if len(units) != 1:
        raise ValueError(f"malformed character constant: {literal}")
    return units[0][1]


def _number_value(literal: str) -> int | float:
    body = literal.lstrip("+-").replace("_", "")
    sign = -1 if literal.startswith("-") else 1
    try:
        if body.lower().startswith("0x"):
            if "." in body or "p" in body.lower():
                return sign * float.fromhex(body)
            return sign * int(body, 16)
        if body.lower().startswith(("0o", "0b")):
            return sign * int(body, 0)
        if any(c in body for c in ".eE"):
            return sign * float(body)
        if len(body) > 1 and body.startswith("0"):
            return sign * int(body, 8)
        return sign * int(body)
    except ValueError:
        raise ValueError(f'illegal number syntax: "{literal}"') from None


# ---- the tree -----------------------------------------------------------------------------

def _paren(node: _Operand) -> str:
    return f"({node})" if isinstance(node, _Pipe) else str(node)


@dataclass(frozen=True)
class _Field:
    pos: int
    names: tuple[str, ...]

    def __str__(self) -> str:
        return "".join("." + n for n in self.names) or "."


@dataclass(frozen=True)
class _Variable:
    pos: int
    name: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.fields)


@dataclass(frozen=True)
class _Literal:
    pos: int
    value: Any  # str, int, float, bool, or None for nil
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Ident:
    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class _Chain:
    pos: int
    node: _Operand
    fields: tuple[str, ...]

    def __str__(self) -> str:
        return _paren(self.node) + "".join("." + n for n in self.fields)


@dataclass(frozen=True)
class _Command:
    pos: int
    args: tuple[_Operand, ...]

    def __str__(self) -> str:
        return " ".join(_paren(a) for a in self.args)


@dataclass(frozen=True)
class _Pipe:
    pos: int
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[_Command, ...]

    def __str__(self) -> str:
        head = f"{', '.join(self.decl)} {'=' if self.is_assign else ':='} " if self.decl else ""
        return head + " | ".join(str(c) for c in self.cmds)


_Operand = _Field | _Variable | _Literal | _Ident | _Chain | _Pipe  # `.` is _Field(())


@dataclass(frozen=True)
class _Text:
    value: str


@dataclass(frozen=True)
class _Action:
    pipe: _Pipe


@dataclass(frozen=True)
class _Control:
    kind: str  # if, range, with
    pipe: _Pipe
    body: tuple[_Item, ...]
    otherwise: tuple[_Item, ...]


@dataclass(frozen=True)
class _Jump:
    kind: str  # break, continue


_Item = _Text | _Action | _Control | _Jump


# ---- parsing ------------------------------------------------------------------------------

_LITERALS: dict[str, Callable[[str], Any]] = {
    "nil": lambda t: None, "bool": lambda t: t == "true", "number": _number_value,
    "char": _char_value, "string": _string_value, "raw": _string_value}
_OPERAND_START = frozenset({"bool", "char", "number", "dot", "field", "ident", "nil", "raw",
                            "string", "var", "lparen"})


def _describe(tok: _Token) -> str:
    """A token as Go's parse errors name it."""
    if tok.kind == "eof":
        return "EOF"
    if tok.kind == "keyword":
        return f"<{tok.value}>"
    return quote(tok.value) if len(tok.value) <= 10 else quote(tok.value[:10]) + "..."


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def error(self, message: str) -> NoReturn:
        _parse_error(self.text, self.tokens[max(self.i - 1, 0)].pos, message)

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek_non_space(self) -> _Token:
        while self.tokens[self.i].kind == "space":
            self.i += 1
        return self.tokens[self.i]

    def next_non_space(self) -> _Token:
        self.peek_non_space()
        return self.next()

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek_non_space()
        return tok.kind == "keyword" and tok.value in words

    def expect_right(self, context: str) -> None:
        tok = self.next_non_space()
        if tok.kind != "right":
            self.error(f"unexpected {_describe(tok)} in {context}")

    def parse(self) -> tuple[_Item, ...]:
        items, stop = self.item_list(top=True)
        if stop != "eof":
            self.error(f"unexpected {{{{{stop}}}}}")
        return items

    def item_list(self, *, top: bool = False) -> tuple[tuple[_Item, ...], str]:
        """Items up to `{{end}}`, `{{else ...` or the end of the text: (items, which)."""
        items: list[_Item] = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                if not top:
                    self.error("unexpected EOF")
                return tuple(items), "eof"
            if tok.kind == "text":
                items.append(_Text(tok.value))
                continue
            word = self.peek_non_space()
            if word.kind != "keyword":
                items.append(_Action(self.pipeline("command", "right")))
                continue
            self.next()
            if word.value == "end":
                self.expect_right("end")
                return tuple(items), "end"
            if word.value == "else":
                if not self.at_keyword("if", "with"):  # else if/with: left for control()
                    self.expect_right("else")
                return tuple(items), "else"
            if word.value in ("if", "range", "with"):
                items.append(self.control(word.value))
            elif word.value in ("break", "continue"):
                if not self.range_depth:
                    self.error(f"{{{{{word.value}}}}} outside {{{{range}}}}")
                self.expect_right(f"{{{{{word.value}}}}}")
                items.append(_Jump(word.value))
            else:
                self.error(f"{{{{{word.value}}}}} is not supported by kemuctl's go-template")

    def control(self, kind: str) -> _Control:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "right")
        self.range_depth += kind == "range"
        body, stop = self.item_list()
        self.range_depth -= kind == "range"
        otherwise: tuple[_Item, ...] = ()
        if stop == "else":
            if self.at_keyword(kind):
                self.next()
                otherwise = (self.control(kind),)  # `else if` shares the outer {{end}}
            elif self.at_keyword("if", "with"):
                self.error(f"unexpected {_describe(self.next())} in else")
            else:
                otherwise, stop = self.item_list()
                if stop != "end":
                    self.error("expected end; found {{else}}")
        del self.vars[mark:]
        return _Control(kind, pipe, body, otherwise)

    def declarations(self, context: str) -> tuple[tuple[str, ...], bool]:
        decl: list[str] = []
        while self.peek_non_space().kind == "var":
            save = self.i
            var = self.next_non_space()
            after = self.peek_non_space()
            if after.kind in ("declare", "assign"):
                self.next()
                if after.kind == "assign" and var.value not in self.vars:
                    self.error(f'undefined variable "{var.value}"')
                decl.append(var.value)
                self.vars.append(var.value)
                return tuple(decl), after.kind == "assign"
            if after.kind == "punct" and after.value == ",":
                self.next()
                decl.append(var.value)
                self.vars.append(var.value)
                if context != "range" or len(decl) >= 2:
                    self.error(f"too many declarations in {context}")
                if self.peek_non_space().kind not in ("var", "right", "rparen"):
                    self.error("range can only initialize variables")
                continue
            self.i = save
            break
        return tuple(decl), False

    def pipeline(self, context: str, end: str) -> _Pipe:
        pos = self.peek_non_space().pos
        decl, is_assign = self.declarations(context)
        cmds: list[_Command] = []
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                break
            if tok.kind not in _OPERAND_START:
                self.error(f"unexpected {_describe(tok)} in {context}")
            self.i -= 1
            cmds.append(self.command())
        if not cmds:
            self.error(f"missing value for {context}")
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], _Literal) or cmd.args[0] == _Field(cmd.args[0].pos, ()):
                self.error(f"non executable command in pipeline stage {stage}")
        return _Pipe(pos, decl, is_assign, tuple(cmds))

    def command(self) -> _Command:
        pos = self.peek_non_space().pos
        args: list[_Operand] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("right", "rparen"):
                self.i -= 1
            elif tok.kind != "pipe":
                self.error(f"unexpected {_describe(tok)} in operand")
            break
        if not args:
            self.error("empty command")
        return _Command(pos, tuple(args))

    def operand(self) -> _Operand | None:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        pos = self.peek().pos
        fields: list[str] = []
        while self.peek().kind == "field":
            fields.append(self.next().value[1:])
        if isinstance(node, _Field) and node.names:
            return _Field(node.pos, node.names + tuple(fields))
        if isinstance(node, _Variable):
            return _Variable(node.pos, node.name, tuple(fields))
        if isinstance(node, _Literal | _Field):
            self.error(f"unexpected . after term {quote(str(node))}")
        return _Chain(pos, node, tuple(fields))

    def term(self) -> _Operand | None:
        tok = self.next_non_space()
        if tok.kind == "ident":
            if tok.value not in _FUNCS:
                self.error(f'function "{tok.value}" not defined')
            return _Ident(tok.pos, tok.value)
        if tok.kind in ("dot", "field"):
            return _Field(tok.pos, (tok.value[1:],) if tok.kind == "field" else ())
        if tok.kind == "var":
            if tok.value not in self.vars:
                self.error(f'undefined variable "{tok.value}"')
            return _Variable(tok.pos, tok.value)
        if tok.kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if tok.kind not in _LITERALS:
            self.i -= 1
            return None
        try:
            return _Literal(tok.pos, _LITERALS[tok.kind](tok.value), tok.value)
        except ValueError as e:
            self.error(str(e))


@functools.lru_cache(maxsize=32)
def parse(template: str) -> tuple[_Item, ...]:
    """The template's tree; TemplateParseError with Go's wording when it is not one."""
    return _Parser(template).parse()


# ---- functions ----------------------------------------------------------------------------

class _CallError(Exception):
    """A function's own error: `error calling NAME: ...`."""


def truth(value: Any) -> bool:
    """Go's notion of true: non-zero, non-empty, not nil."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _want_string(value: Any) -> str:
    if not isinstance(value, str):
        raise _CallError(f"wrong type for value; expected string; got {type_name(value)}")
    return value


def _index(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise _CallError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise _CallError("index of nil pointer")
        if isinstance(item, list | str):
            if index is None:
                raise _CallError("cannot index slice/array with nil")
            if not isinstance(index, int) or isinstance(index, bool):
                raise _CallError(f"cannot index slice/array with type {type_name(index)}")
            if not 0 <= index < len(item):
                raise _CallError(f"index out of range: {index}")
            item = item[index] if isinstance(item, list) else item.encode()[index]
        elif isinstance(item, dict):
            if not isinstance(index, str):
                raise _CallError(f"value has type {type_name(index)}; should be string")
            item = item.get(index)
        else:
            raise _CallError(f"can't index item of type {type_name(item)}")
    return item


def _len(item: Any) -> int:
    if item is None:
        raise _CallError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | dict):
        return len(item)
    raise _CallError(f"len of type {type_name(item)}")


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    return "string" if isinstance(value, str) else "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise _CallError("missing argument for comparison")
    for other in others:
        k1, k2 = _kind(first), _kind(other)
        if "other" in (k1, k2):
            raise _CallError("invalid type for comparison")
        if k1 != k2:
            if "nil" not in (k1, k2):
                raise _CallError("incompatible types for comparison")
        elif first == other:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    k1, k2 = _kind(a), _kind(b)
    if k1 not in ("number", "string") or k2 not in ("number", "string"):
        raise _CallError("invalid type for comparison")
    if k1 != k2:
        raise _CallError("incompatible types for comparison")
    return bool(a < b)


def _print(*args: Any) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(gofmt.value_text(arg))
    return "".join(out)


def _base64decode(value: Any) -> str:
    text = _want_string(value)
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if not (c.isalnum() or c in "+/=")),
                   len(text))
        raise _CallError(f"base64 decode failed: illegal base64 data at input byte {bad}") \
            from None


def _exists(item: Any, *indexes: Any) -> bool:
    """kubectl's: whether `index item indexes...` would find something."""
    for index in indexes:
        in_list = isinstance(item, list | str) and isinstance(index, int) and \
            not isinstance(index, bool) and 0 <= index < len(item)
        if not (in_list or (isinstance(item, dict) and isinstance(index, str) and index in item)):
            return False
        item = item[index]
    return item is not None


@dataclass(frozen=True)
class _Func:
    fn: Callable[..., Any]
    least: int
    most: int | None  # None: any number


_FUNCS: dict[str, _Func] = {
    "and": _Func(lambda *a: a[-1], 1, None),  # evaluated lazily by _State.call
    "or": _Func(lambda *a: a[-1], 1, None),
    "not": _Func(lambda a: not truth(a), 1, 1),
    "len": _Func(_len, 1, 1),
    "index": _Func(_index, 1, None),
    "printf": _Func(lambda f, *a: gofmt.sprintf(_want_string(f), *a), 1, None),
    "print": _Func(_print, 0, None),
    "println": _Func(lambda *a: " ".join(gofmt.value_text(x) for x in a) + "\n", 0, None),
    "eq": _Func(_eq, 1, None),
    "ne": _Func(lambda a, b: not _eq(a, b), 2, 2),
    "lt": _Func(_lt, 2, 2),
    "le": _Func(lambda a, b: _lt(a, b) or _eq(a, b), 2, 2),
    "gt": _Func(lambda a, b: not (_lt(a, b) or _eq(a, b)), 2, 2),
    "ge": _Func(lambda a, b: not _lt(a, b), 2, 2),
    "base64decode": _Func(_base64decode, 1, 1),
    "exists": _Func(_exists, 1, None),
}


# ---- execution ----------------------------------------------------------------------------

class _Break(Exception):
    """{{break}} inside a range."""


class _Continue(Exception):
    """{{continue}} inside a range."""


class _State:
    def __init__(self, text: str, data: Any) -> None:
        self.text = text
        self.vars: list[list[Any]] = [["$", data]]
        self.out: list[str] = []
        self.node: _Operand | _Command | None = None

    def error(self, message: str) -> NoReturn:
        if self.node is None:
            raise TemplateExecError(f"template: {NAME}: {message}")
        pos = self.node.pos
        col = pos - (self.text.rfind("\n", 0, pos) + 1)
        context = str(self.node)
        if len(context) > 20:
            context = context[:20] + "..."
        raise TemplateExecError(f"template: {NAME}:{_line(self.text, pos)}:{col}: executing "
                                f'"{NAME}" at <{context}>: {message}')

    def walk(self, dot: Any, items: tuple[_Item, ...]) -> None:
        for item in items:
            if isinstance(item, _Text):
                self.out.append(item.value)
            elif isinstance(item, _Action):
                value = self.pipeline(dot, item.pipe)
                if not item.pipe.decl:
                    self.out.append("<no value>" if value is NO_VALUE else gofmt.value_text(value))
            elif isinstance(item, _Jump):
                raise _Break() if item.kind == "break" else _Continue()
            elif item.kind == "range":
                self.range(dot, item)
            else:
                mark = len(self.vars)
                value = self.pipeline(dot, item.pipe)
                if truth(value):
                    self.walk(value if item.kind == "with" else dot, item.body)
                else:
                    self.walk(dot, item.otherwise)
                del self.vars[mark:]

    def range(self, dot: Any, node: _Control) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        pairs: list[tuple[Any, Any]]
        if isinstance(value, list):
            pairs = list(enumerate(value))
        elif isinstance(value, dict):
            pairs = [(k, value[k]) for k in sorted(value)]
        elif is_number(value) and isinstance(value, int):
            pairs = [(i, i) for i in range(value)]
        elif value is NO_VALUE or value is None:
            pairs = []
        else:
            self.error(f"range can't iterate over {gofmt.value_text(value)}")
        decl = node.pipe.decl
        for index, elem in pairs:
            values = [index, elem] if len(decl) == 2 else [elem]
            for name, val in zip(decl, values, strict=False):
                self.set_var(name, val)
            inner = len(self.vars)
            try:
                self.walk(elem, node.body)
            except _Break:
                break
            except _Continue:
                continue
            finally:
                del self.vars[inner:]
        if not pairs:
            self.walk(dot, node.otherwise)
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for pair in reversed(self.vars):
            if pair[0] == name:
                pair[1] = value
                return
        self.error(f"undefined variable: {name}")

    def pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        value: Any = _NO_FINAL
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:
                value = NO_VALUE  # Go digs a nil interface{} down to "no value"
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Ident):
            return self.call(dot, first, cmd, final)
        self.node = first
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            self.error(f"can't give argument to non-function {first}")
        if isinstance(first, _Literal) and first.value is None:
            self.error("nil is not a command")
        return self.operand(dot, first)

    def operand(self, dot: Any, node: _Operand) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, _Ident):
            return self.call(dot, node, _Command(node.pos, (node,)), _NO_FINAL)
        if isinstance(node, _Chain):
            receiver, names = self.operand(dot, node.node), node.fields
        elif isinstance(node, _Variable):
            found = [v for n, v in self.vars if n == node.name]
            if not found:
                self.node = node
                self.error(f"undefined variable: {node.name}")
            receiver, names = found[-1], node.fields
        else:
            receiver, names = dot, node.names
        self.node = node
        for name in names:
            if receiver is NO_VALUE:
                return NO_VALUE
            if receiver is None:
                self.error(f"nil pointer evaluating interface {{}}.{name}")
            if not isinstance(receiver, dict):
                self.error(f"can't evaluate field {name} in type {type_name(receiver)}")
            receiver = receiver.get(name, NO_VALUE)
        return receiver

    def argument(self, dot: Any, node: _Operand) -> Any:
        value = self.operand(dot, node)
        return None if value is NO_VALUE else value

    def call(self, dot: Any, ident: _Ident, cmd: _Command, final: Any) -> Any:
        func = _FUNCS[ident.name]
        nodes = cmd.args[1:]
        count = len(nodes) + (final is not _NO_FINAL)
        if count < func.least or (func.most is not None and count > func.most):
            self.node = ident
            want = func.least if func.most == func.least else f"at least {func.least}"
            self.error(f"wrong number of args for {ident.name}: want {want} got {count}")
        if ident.name in ("and", "or"):
            return self.logic(dot, ident.name == "and", nodes, final)
        args = [self.argument(dot, n) for n in nodes]
        if final is not _NO_FINAL:
            args.append(None if final is NO_VALUE else final)
        try:
            return func.fn(*args)
        except _CallError as e:
            self.node = cmd
            self.error(f"error calling {ident.name}: {e}")

    def logic(self, dot: Any, is_and: bool, nodes: tuple[_Operand, ...], final: Any) -> Any:
        """`and`/`or`: the first argument that decides, evaluated no further than that."""
        value: Any = None
        for i in range(len(nodes) + (final is not _NO_FINAL)):
            value = self.argument(dot, nodes[i]) if i < len(nodes) else final
            if truth(value) != is_and:
                return value
        return value


def execute(template: str, data: Any) -> str:
    """Fill a Go template from `data` (a manifest-shaped dict); TemplateParseError or
    TemplateExecError with Go's wording."""
    state = _State(template, data)
    try:
        state.walk(data, parse(template))
    except RecursionError:
        raise TemplateExecError(f"template: {NAME}: exceeded maximum template depth") from None
    return "".join(state.out)
