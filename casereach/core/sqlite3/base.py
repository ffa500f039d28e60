"""Django's SQLite backend, with one change: the conversion of a statement's ``%s``
placeholders to SQLite's ``?`` is remembered per statement text.

Django converts every statement it runs on SQLite with a regular expression, each time. The
hot paths run the same few statements thousands of times a second (the inbound webhook's
batch: a multi-row INSERT of a few thousand characters), and the conversion was about 6% of the
server's time per survey answer (decision 0015). The result depends on the text alone, so it is
kept in a bounded cache (at most 1,024 statements of at most 16 KB each). Everything else is
Django's backend unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db.backends.sqlite3 import base

CACHED_LENGTH = 16_384  # longer statements are converted each time (bounds the cache's size)


@functools.lru_cache(maxsize=1024)
def _qmark(query: str) -> str:
    return _convert(query)


def _convert(query: str) -> str:
    return str(base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%"))


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Any = None) -> str:
        if param_names is None:  # "format" style, as all our statements and the ORM's
            return _qmark(query) if len(query) <= CACHED_LENGTH else _convert(query)
        return str(super().convert_query(query, param_names=param_names))


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: Any = None) -> Any:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
