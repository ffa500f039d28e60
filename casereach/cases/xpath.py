"""A safe subset of CommCare's case-search XPath for ``GET /case/v2/?query=…``.

Grammar (our own recursive-descent parser; nothing is evaluated as code):

    expr    := and_expr ("or" and_expr)*
    and_expr:= unary ("and" unary)*
    unary   := "not" "(" expr ")" | "(" expr ")" | call | compare
    call    := "selected" "(" name "," string ")"          -- any of the space-separated words
             | "selected-all" "(" name "," string ")"      -- all of them
    compare := name op literal                             -- op: = != < <= > >=
    name    := property | @case_type | @owner_id | @case_id | @status | name | external_id
    literal := "string" | 'string' | number

``name`` and ``case_name`` mean the case name; ``@status`` is ``open`` or ``closed``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q

from casereach.cases.props import prop_compare, prop_regex

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"[^"]*"|'[^']*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<name>@?[A-Za-z_][A-Za-z0-9_\-.]*(?:/[A-Za-z_][A-Za-z0-9_\-.]*)?)
    )""",
    re.VERBOSE,
)
MAX_QUERY = 2000
MAX_DEPTH = 30
BUILTIN = {
    "name": "case_name",
    "case_name": "case_name",
    "@case_type": "case_type",
    "@owner_id": "owner_id",
    "@case_id": "case_id",
    "external_id": "external_id",
    "@external_id": "external_id",
}
LOOKUP = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


class QueryError(ValueError):
    pass


@dataclass
class _Tok:
    kind: str
    text: str


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise QueryError(f"unexpected character at position {pos + 1}")
        kind = m.lastgroup or ""
        out.append(_Tok(kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("unexpected end of expression")
        if (kind and tok.kind != kind) or (text and tok.text != text):
            raise QueryError(f"unexpected '{tok.text}'")
        self.i += 1
        return tok

    def parse(self) -> Q:
        q = self.expr()
        if self.peek() is not None:
            raise QueryError(f"unexpected '{self.toks[self.i].text}'")
        return q

    def expr(self) -> Q:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError("expression nested too deeply")
        q = self.and_expr()
        while (t := self.peek()) is not None and t.kind == "name" and t.text == "or":
            self.i += 1
            q = q | self.and_expr()
        self.depth -= 1
        return q

    def and_expr(self) -> Q:
        q = self.unary()
        while (t := self.peek()) is not None and t.kind == "name" and t.text == "and":
            self.i += 1
            q = q & self.unary()
        return q

    def unary(self) -> Q:
        tok = self.peek()
        if tok is None:
            raise QueryError("unexpected end of expression")
        if tok.kind == "punct" and tok.text == "(":
            self.i += 1
            q = self.expr()
            self.take("punct", ")")
            return q
        if tok.kind == "name" and tok.text in ("not", "selected", "selected-all", "selected-any"):
            nxt = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else None
            if nxt is not None and nxt.text == "(":
                self.i += 2
                if tok.text == "not":
                    q = ~self.expr()
                    self.take("punct", ")")
                    return q
                field = self.take("name").text
                self.take("punct", ",")
                words = _literal(self.take()).split()
                self.take("punct", ")")
                parts = [_word_match(field, w) for w in words]
                if not parts:
                    return Q(pk__in=[])
                combined = parts[0]
                for p in parts[1:]:
                    combined = (combined & p) if tok.text == "selected-all" else (combined | p)
                return combined
        name = self.take("name").text
        op = self.take("op").text
        value = _literal(self.take())
        return _compare(name, op, value)


def _literal(tok: _Tok) -> str:
    if tok.kind == "string":
        return tok.text[1:-1]
    if tok.kind == "number":
        return tok.text
    raise QueryError(f"expected a value, found '{tok.text}'")


def _builtin(name: str) -> str | None:
    if name in BUILTIN:
        return BUILTIN[name]
    if name.startswith("@") or "/" in name:
        raise QueryError(f"'{name}' is not supported")
    return None


def _compare(name: str, op: str, value: str) -> Q:
    if name == "@status":
        if value not in ("open", "closed") or op not in ("=", "!="):
            raise QueryError("@status compares with 'open' or 'closed' using = or !=")
        q = Q(closed=value == "closed")
        return q if op == "=" else ~q
    field = _builtin(name)
    if field is None:
        return prop_compare(name, op, value)
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        return ~Q(**{field: value})
    return Q(**{f"{field}__{LOOKUP[op]}": value})


def _word_match(name: str, word: str) -> Q:
    pattern = rf"(^|\s){re.escape(word)}(\s|$)"
    field = _builtin(name)
    if field is None:
        return prop_regex(name, pattern)
    return Q(**{f"{field}__regex": pattern})


def parse_query(text: str) -> Q:
    """Translate ``text`` to a Q object, or raise QueryError with a readable reason."""
    if len(text) > MAX_QUERY:
        raise QueryError(f"query longer than {MAX_QUERY} characters")
    if not text.strip():
        raise QueryError("empty query")
    return _Parser(text).parse()
