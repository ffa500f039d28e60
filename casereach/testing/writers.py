"""Which modules write which table: a static scan of the shipped package (tests only).

A write is any of:

* an ORM write on a model's manager or a queryset built from it —
  ``Model.objects.create/bulk_create/update/delete/get_or_create/update_or_create/bulk_update``,
  ``Model.objects.filter(...).update(...)`` — or on a variable that holds one;
* ``obj.save()`` / ``obj.delete()`` where ``obj``'s model can be inferred: an annotation
  (``worker: MobileWorker``), ``obj = Model(...)``, ``obj = Model.objects....``, a loop over
  such a value, or a relation of one (``message.project``);
* raw SQL text ``INSERT INTO`` / ``UPDATE`` / ``DELETE FROM`` a table, literal or in an
  f-string / ``%`` format built from a table constant (``TABLE = Model._meta.db_table``);
* a call into the raw-row layer (a function of ``casereach.core`` whose name says it writes:
  insert, upsert, update, delete, write, save) with a model or a table among its arguments.

A write whose model cannot be inferred is reported as model ``"?"`` (so an unexplained
``.save()`` fails the writer-table test until its receiver is annotated), unless a comment
``# writes: app.Model[, app.Model]`` on the call's line or the line above names what it writes
(for raw-row calls on drafts, whose model the draft class carries), except inside
``casereach.core``, whose generic raw-row layer writes whatever table its caller names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

UNKNOWN = "?"
USER_MODEL = "auth.User"  # get_user_model()
ORM_WRITES = frozenset(
    {
        "create",
        "bulk_create",
        "update",
        "delete",
        "get_or_create",
        "update_or_create",
        "bulk_update",
    }
)
INSTANCE_WRITES = frozenset({"save", "delete"})
MANAGERS = frozenset({"objects", "_default_manager", "_base_manager"})
_WRITES_NOTE = re.compile(r"#\s*writes:\s*([\w.,\s]+)")
ROW_LAYER_WRITE = re.compile(r"^(insert|upsert|update|delete|write|save)", re.IGNORECASE)
GENERIC_LAYER = "casereach.core"
_PLACEHOLDER = "\x00{}\x00"
_SQL_WRITE = re.compile(
    r"(?<![A-Za-z_])(?P<verb>INSERT\s+(?:OR\s+[A-Z]+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"
    r"(?P<table>\x00\d+\x00|\"[^\"]+\"|`[^`]+`|[A-Za-z_][\w.]*)"
)
_NOT_A_TABLE_UPDATE = re.compile(r"(?:DO|FOR|ON)\s*$")
# Calls that keep a manager's or queryset's model (the value is a queryset or an instance).
QUERYSET_METHODS = frozenset(
    {
        "all", "filter", "exclude", "select_related", "prefetch_related", "order_by", "only",
        "defer", "using", "select_for_update", "get", "first", "last", "annotate", "distinct",
        "latest", "earliest", "alias", "reverse", "none", "create", "get_or_create",
        "update_or_create", "iterator",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Write:
    model: str  # an app label and model name ("messaging.Message"), or "?"
    module: str
    line: int
    how: str  # "instance" (a save), "orm" (any other model write), "sql", "rows"


@dataclass(frozen=True)
class Schema:
    """What the scanner knows of the models: class names, tables and relations."""

    models: Mapping[str, str]  # class name -> label
    tables: Mapping[str, str]  # db_table -> label
    relations: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (label, attr)
    constants: Mapping[str, str] = field(default_factory=dict)  # "module.NAME" -> label
    returns: Mapping[str, str] = field(default_factory=dict)  # "module.function" -> label


def django_schema() -> Schema:
    """The schema of every installed ``casereach`` model (needs Django set up)."""
    from django.apps import apps
    from django.db.models import Model

    models: dict[str, str] = {}
    tables: dict[str, str] = {}
    relations: dict[tuple[str, str], str] = {}
    for model in apps.get_models(include_auto_created=False):
        if not model.__module__.startswith("casereach."):
            continue
        label = model._meta.label
        models[model.__name__] = label
        tables[model._meta.db_table] = label
        for f in model._meta.get_fields():
            related = getattr(f, "related_model", None)
            if not (isinstance(related, type) and issubclass(related, Model)):
                continue
            name = f.get_accessor_name() if f.auto_created and not f.concrete else f.name  # type: ignore[union-attr]
            if name:
                relations[(label, name)] = related._meta.label
    return Schema(models, tables, relations)


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def shared_names(sources: Mapping[str, str], schema: Schema) -> Schema:
    """``schema`` with what modules export to each other: ``module.NAME`` for every
    ``NAME = Model._meta.db_table`` and ``module.function`` for every function whose return
    annotation names one model."""
    constants: dict[str, str] = dict(schema.constants)
    returns: dict[str, str] = dict(schema.returns)
    for module, source in sources.items():
        scanner = _Module(module, ast.parse(source), schema, source.splitlines())
        for name, label in scanner.table_names.items():
            constants[f"{module}.{name}"] = label
        for name, label in scanner.returns.items():
            returns[f"{module}.{name}"] = label
    return Schema(schema.models, schema.tables, schema.relations, constants, returns)


def scan_sources(sources: Mapping[str, str], schema: Schema) -> list[Write]:
    """Every write in ``sources`` (module name -> text), names shared across them."""
    shared = shared_names(sources, schema)
    return [w for module, text in sources.items() for w in scan_source(text, module, shared)]


def scan_source(source: str, module: str, schema: Schema) -> list[Write]:
    """Every write in one module's text."""
    scanner = _Module(module, ast.parse(source), schema, source.splitlines())
    writes = scanner.writes()
    if module == GENERIC_LAYER or module.startswith(GENERIC_LAYER + "."):
        writes = [w for w in writes if w.model != UNKNOWN]
    return writes


def writer_table(writes: Iterable[Write]) -> dict[str, list[str]]:
    """model -> the sorted modules that write it."""
    table: dict[str, set[str]] = {}
    for w in writes:
        table.setdefault(w.model, set()).add(w.module)
    return {model: sorted(mods) for model, mods in sorted(table.items())}


def markdown(table: Mapping[str, list[str]], writes: Iterable[Write] = ()) -> str:
    """The table as markdown; with ``writes``, each module's lines too."""
    lines: dict[tuple[str, str], list[int]] = {}
    for w in writes:
        lines.setdefault((w.model, w.module), []).append(w.line)
    rows = ["| model | written by |", "|---|---|"]
    for model, modules in table.items():
        shown = []
        for m in modules:
            at = sorted(set(lines.get((model, m), [])))
            shown.append(f"`{m}`" + (f" ({', '.join(map(str, at))})" if at else ""))
        rows.append(f"| {model} | {'<br>'.join(shown)} |")
    return "\n".join(rows)


class _Module:
    def __init__(
        self, module: str, tree: ast.Module, schema: Schema, lines: list[str] | None = None
    ) -> None:
        self.module = module
        self.lines = lines or []
        self.tree = tree
        self.schema = schema
        self.models: dict[str, str] = {}  # local name -> label
        self.table_names: dict[str, str] = {}  # local name holding a db_table -> label
        self.core_functions: set[str] = set()  # local names of casereach.core functions
        self.core_modules: set[str] = set()  # local names of casereach.core modules
        self.returns: dict[str, str] = {}  # local function name -> the model it returns
        self.docstrings = _docstrings(tree)
        self._imports()
        self._table_assignments()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                label = self._annotation(node.returns)
                if label:
                    self.returns[node.name] = label

    # --- names ------------------------------------------------------------------------------

    def _imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    if alias.name in self.schema.models:
                        self.models[local] = self.schema.models[alias.name]
                    constant = self.schema.constants.get(f"{node.module}.{alias.name}")
                    if constant:
                        self.table_names[local] = constant
                    returned = self.schema.returns.get(f"{node.module}.{alias.name}")
                    if returned:
                        self.returns[local] = returned
                    if node.module == GENERIC_LAYER and alias.name[:1].islower():
                        self.core_modules.add(local)
                    elif node.module.startswith(GENERIC_LAYER + "."):
                        self.core_functions.add(local)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(GENERIC_LAYER + ".") and alias.asname:
                        self.core_modules.add(alias.asname)

    def _table_assignments(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                label = self._table_of(node.value, {})
                if label and label != UNKNOWN:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if isinstance(t, ast.Name):
                            self.table_names[t.id] = label

    def _model_class(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.models.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr in self.schema.models:
            return self.schema.models[node.attr]
        return None

    def _table_of(self, node: ast.expr, env: Mapping[str, str]) -> str | None:
        """The model whose table ``node`` names: a table constant, ``Model._meta.db_table``,
        or a literal table name; ``"?"`` for ``<anything>.db_table``."""
        if isinstance(node, ast.Name):
            return self.table_names.get(node.id)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self.schema.tables.get(node.value.strip('"'))
        if isinstance(node, ast.Attribute) and node.attr == "db_table":
            meta = node.value
            if isinstance(meta, ast.Attribute) and meta.attr == "_meta":
                return self._model_class(meta.value) or UNKNOWN
            return UNKNOWN
        return None

    # --- inference of what a variable holds ----------------------------------------------------

    def _annotation(self, node: ast.expr | None) -> str | None:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        found = {
            self.models[n.id]
            for n in ast.walk(node)
            if isinstance(n, ast.Name) and n.id in self.models
        }
        found |= {
            self.schema.models[n.attr]
            for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and n.attr in self.schema.models
        }
        return found.pop() if len(found) == 1 else None

    def _holds(self, node: ast.expr, env: Mapping[str, str]) -> str | None:
        """The model an expression's value is an instance, a manager or a queryset of."""
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if node.attr in MANAGERS:
                return self._model_class(node.value) or self._holds(node.value, env)
            owner = self._holds(node.value, env)
            if owner:
                return self.schema.relations.get((owner, node.attr))
            return None
        if isinstance(node, (ast.BoolOp, ast.IfExp)):
            parts = node.values if isinstance(node, ast.BoolOp) else [node.body, node.orelse]
            labels = {self._holds(v, env) for v in parts} - {None}
            return labels.pop() if len(labels) == 1 else None
        if isinstance(node, ast.Call):
            cls = self._model_class(node.func)
            if cls:
                return cls
            if isinstance(node.func, ast.Name):
                if node.func.id == "get_user_model":
                    return USER_MODEL
                return self.returns.get(node.func.id)
            if (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "values"
                and not node.args
            ):
                return self._holds(node.func.value, env)  # a dict's values (a queryset's: dicts)
            if isinstance(node.func, ast.Attribute) and node.func.attr in QUERYSET_METHODS:
                label = self._holds(node.func.value, env)
                return label  # get_or_create's (obj, created): bound to obj
            return None
        if isinstance(node, ast.Subscript):
            return self._holds(node.value, env)
        if isinstance(node, ast.Await):
            return self._holds(node.value, env)
        return None

    def _bind(self, target: ast.expr, label: str | None, env: dict[str, str]) -> None:
        if label and isinstance(target, ast.Name):
            env[target.id] = label
        elif label and isinstance(target, ast.Tuple) and target.elts:
            self._bind(target.elts[0], label, env)  # obj, created = ...get_or_create(...)

    def _environment(self, scope: ast.AST, outer: Mapping[str, str]) -> dict[str, str]:
        env = dict(outer)
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = scope.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    self._bind(ast.Name(arg.arg), self._annotation(arg.annotation), env)
        for _ in range(2):  # a second pass lets later assignments feed earlier loops
            for node in _own_nodes(scope):
                if isinstance(node, ast.Assign):
                    for t in node.targets:
                        self._bind(t, self._holds(node.value, env), env)
                elif isinstance(node, ast.AnnAssign):
                    label = self._annotation(node.annotation)
                    if label is None and node.value is not None:
                        label = self._holds(node.value, env)
                    self._bind(node.target, label, env)
                elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                    self._bind(node.target, self._holds(node.iter, env), env)
                elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                    self._bind(node.optional_vars, self._holds(node.context_expr, env), env)
        return env

    # --- writes ---------------------------------------------------------------------------------

    def writes(self) -> list[Write]:
        out: list[Write] = []
        self._scope(self.tree, {}, out)
        return sorted(set(out), key=lambda w: (w.line, w.model, w.how))

    def _scope(self, scope: ast.AST, outer: Mapping[str, str], out: list[Write]) -> None:
        env = self._environment(scope, outer)
        if isinstance(scope, ast.ClassDef) and scope.name in self.schema.models:
            env["self"] = self.schema.models[scope.name]  # a model's own methods
        seen_strings: set[int] = set()
        for node in _own_nodes(scope):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                self._scope(node, env, out)
            elif isinstance(node, ast.Call):
                out.extend(self._call(node, env))
            fresh = id(node) not in seen_strings and id(node) not in self.docstrings
            if fresh and isinstance(node, (ast.BinOp, ast.JoinedStr, ast.Constant)):
                out.extend(self._resolve(self._sql(node, env, seen_strings)))

    def _noted(self, line: int) -> set[str]:
        """Models named by a ``# writes:`` comment on ``line`` or the line above."""
        found: set[str] = set()
        for text in self.lines[max(line - 2, 0) : line]:
            m = _WRITES_NOTE.search(text)
            if m:
                found |= {label.strip() for label in m.group(1).split(",") if label.strip()}
        return found

    def _call(self, node: ast.Call, env: Mapping[str, str]) -> Iterator[Write]:
        return self._resolve(self._call_writes(node, env))

    def _resolve(self, writes: Iterable[Write]) -> Iterator[Write]:
        """Writes of unknown model take the models a ``# writes:`` comment names."""
        for write in writes:
            noted = self._noted(write.line) if write.model == UNKNOWN else set()
            if noted:
                for label in sorted(noted):
                    yield Write(label, write.module, write.line, write.how)
            else:
                yield write

    def _call_writes(self, node: ast.Call, env: Mapping[str, str]) -> Iterator[Write]:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in ORM_WRITES or func.attr in INSTANCE_WRITES:
                label = self._holds(func.value, env)
                how = "instance" if func.attr == "save" else "orm"
                if label:
                    yield Write(label, self.module, node.lineno, how)
                elif func.attr in INSTANCE_WRITES and not node.args:
                    yield Write(UNKNOWN, self.module, node.lineno, "instance")
            is_core = isinstance(func.value, ast.Name) and func.value.id in self.core_modules
            name = func.attr
        else:
            is_core = isinstance(func, ast.Name) and func.id in self.core_functions
            name = func.id if isinstance(func, ast.Name) else ""
        if is_core and ROW_LAYER_WRITE.search(name):
            labels = set()
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                label = self._model_class(arg) or self._table_of(arg, env) or self._holds(arg, env)
                if label:
                    labels.add(label)
            for label in labels or {UNKNOWN}:
                yield Write(label, self.module, node.lineno, "rows")

    def _sql(self, node: ast.expr, env: Mapping[str, str], seen: set[int]) -> Iterator[Write]:
        text, labels = self._text(node, env, seen)
        if text is None:
            return
        for m in _SQL_WRITE.finditer(text):
            if m.group("verb") == "UPDATE" and _NOT_A_TABLE_UPDATE.search(text[: m.start()]):
                continue
            table = m.group("table").strip('"`')
            if table.upper() in {"SET", "OF", "NOWAIT", "SKIP"}:
                continue
            if table.startswith("\x00"):
                label: str | None = labels[int(table.strip("\x00"))]
            else:
                label = self.schema.tables.get(table)
            if label:
                yield Write(label, self.module, node.lineno, "sql")
            elif table.startswith("\x00"):
                yield Write(UNKNOWN, self.module, node.lineno, "sql")

    def _text(
        self, node: ast.expr, env: Mapping[str, str], seen: set[int]
    ) -> tuple[str | None, list[str | None]]:
        """SQL-ish text with a placeholder for each interpolated value, and what each names."""
        labels: list[str | None] = []

        def hole(expr: ast.expr) -> str:
            labels.append(self._table_of(expr, env))
            return _PLACEHOLDER.format(len(labels) - 1)

        def render(n: ast.expr) -> str | None:
            seen.add(id(n))
            if isinstance(n, ast.Constant):
                return n.value if isinstance(n.value, str) else None
            if isinstance(n, ast.JoinedStr):
                parts = []
                for v in n.values:
                    seen.add(id(v))
                    if isinstance(v, ast.FormattedValue):
                        parts.append(hole(v.value))
                    else:
                        parts.append(render(v) or "")
                return "".join(parts)
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add):
                left, right = render(n.left), render(n.right)
                if left is None and right is None:
                    return None
                return (left if left is not None else hole(n.left)) + (
                    right if right is not None else hole(n.right)
                )
            if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mod):
                left = render(n.left)
                if left is None:
                    return None
                values = n.right.elts if isinstance(n.right, ast.Tuple) else [n.right]
                for v in values:
                    seen.add(id(v))
                    left = left.replace("%s", hole(v), 1)
                return left
            return None

        return render(node), labels


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``scope``, not descending into nested functions or classes (which are
    yielded themselves)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for owner in ast.walk(tree):
        if isinstance(owner, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = owner.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out
