"""The one Jinja2 environment blueprints run in: sandboxed, StrictUndefined, every `{{ … }}` a
JSON value (`finalize`), templates read only from the blueprint's own folder without following a
symlink, and a budget of CPU time and allocation that holds in any thread.

CPython cannot interrupt one C call, so sizes are checked *before* each operation that can build
a large value (`*`, `+`, `%`, `~`, filters and method calls such as `center`, `replace`, `format`,
`join`) from its operands, and before a collection is written out or walked character by
character (`tojson`, `string`, `sort`, `unique`, a `{{ value }}`), counting a value referenced
many times each time. The size of every result is charged to the render's allocation budget.
CPU time is read in the same hooks and in every loop (loops are rewritten to iterate through a
counting filter, so even an empty nested loop is seen). The budget lives in a context variable,
so concurrent renders in threads each have their own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import stat
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from agentctl import mergepatch
from agentctl.mergepatch import merge_patch
from agentctl.model.common import parse_quantity

MAX_SECONDS = 5.0
"""CPU time (of the rendering thread) for one agent's templates."""
MAX_VALUE = 1_000_000
"""Largest string or list one operation may build."""
MAX_ALLOCATED = 20_000_000
"""Characters and items all operations of one agent's render may build together."""
_TICK = 256
"""Work between two looks at the clock: a loop iteration weighs 1, a call or operator 16."""


class Timeout(Exception):
    """The render used up its CPU time."""


class TooLarge(jinja2.exceptions.SecurityError):
    """An operation would build a value over the bounds."""


@dataclass
class Budget:
    deadline: float
    """`time.thread_time()` past which the render stops."""
    left: int = MAX_ALLOCATED
    ticks: int = 0

    def spend(self, size: int, weight: int = 16) -> None:
        """Charge `size` characters or items; look at the clock every `_TICK` weight (a loop
        iteration weighs 1, a call or an operator 16: reading a thread's CPU clock is a system
        call)."""
        self.left -= size
        if self.left < 0:
            raise TooLarge(f"the templates built more than {MAX_ALLOCATED} characters and items")
        self.ticks += weight
        if self.ticks >= _TICK:
            self.ticks = 0
            if time.thread_time() > self.deadline:
                raise Timeout


_BUDGET: ContextVar[Budget | None] = ContextVar("agentctl_render_budget", default=None)


@contextlib.contextmanager
def budget(seconds: float | None = None) -> Iterator[Budget]:
    """Bound what the templates rendered inside this block may spend (this thread only):
    `seconds` of CPU time (default `MAX_SECONDS`) and `MAX_ALLOCATED`."""
    current = Budget(deadline=time.thread_time() + (MAX_SECONDS if seconds is None else seconds))
    token = _BUDGET.set(current)
    try:
        yield current
    finally:
        _BUDGET.reset(token)


def _spend(result: Any) -> Any:
    current = _BUDGET.get()
    if current is not None:
        current.spend(len(result) if type(result) in _SIZED else 1)
    return result


_SIZED = frozenset({str, list, tuple, dict})
_SCALARS = frozenset({int, float, bool, type(None)})


def _size(value: Any, limit: int = MAX_VALUE) -> int:
    """Characters and items of `value` as it would be written out (a value referenced from
    several places counts each time), never building it; counting stops past `limit`."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            total += len(item)
        elif kind is dict:
            total += len(item)
            stack += item.values()
            try:
                total += sum(map(len, item))
            except TypeError:  # keys that are not strings
                stack += item.keys()
        elif kind is list or kind is tuple:
            total += len(item)
            stack += item
        elif isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict | list | tuple | set | frozenset):
            stack += item.items() if isinstance(item, dict) else item
            total += len(item)
        else:
            total += 1
    return total


def _check(size: int, what: str) -> None:
    if size > MAX_VALUE:
        raise TooLarge(f"{what} would build a value of {size} characters or items "
                       f"(at most {MAX_VALUE})")


_AMPLIFIERS = frozenset({"batch", "slice", "join", "center", "ljust", "rjust", "zfill", "indent",
                         "expandtabs", "replace", "format", "format_map", "%"})
"""Filters and methods whose result can be much larger than their inputs."""
_WRITES_OUT = frozenset({"tojson", "to_json", "string", "pprint", "sha256", "join", "unique",
                         "sort", "dictsort", "min", "max", "groupby", "sum", "format", "indent",
                         "center", "replace", "truncate", "wordcount", "title", "capitalize",
                         "upper", "lower", "trim", "striptags", "urlencode", "escape", "e",
                         "forceescape", "safe"})
"""Filters whose work grows with the characters of every item of a collection (they write it
out, or copy or lower-case each string), however often one big value is referenced."""
_NUMBERS = re.compile(r"\d+")
_NESTED_FIELD = re.compile(r"\{[^{}]*\{")


def _estimate(name: str, subject: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound of the size of `subject.name(*args, **kwargs)` (or of the filter `name`)
    for the operations that can make a value much larger than their inputs; 0 for the rest."""
    if name not in _AMPLIFIERS:
        return 0
    values = [*args, *kwargs.values()]
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    texts = sum(_size(v) for v in values if not isinstance(v, int | float))
    if name in ("batch", "slice"):
        return sum(numbers)
    if name == "join" and isinstance(subject, list | tuple):  # the filter
        return _size(subject) + len(subject) * texts
    if not isinstance(subject, str):
        return 0
    if name in ("center", "ljust", "rjust", "zfill"):
        return len(subject) + sum(numbers)
    if name == "indent":
        return len(subject) + (subject.count("\n") + 1) * (sum(numbers) + texts)
    if name == "expandtabs":
        return len(subject) * max([8, *numbers])
    if name == "replace" and args and isinstance(args[0], str):
        old = args[0]
        count = subject.count(old) if old else len(subject) + 1
        return len(subject) + count * texts
    if name == "join" and args and isinstance(args[0], list | tuple):  # str.join
        return len(subject) * len(args[0]) + _size(args[0])
    if name in ("format", "format_map", "%"):
        widths = sum(int(n) for n in _NUMBERS.findall(subject))
        if "*" in subject or _NESTED_FIELD.search(subject):  # widths taken from the arguments
            widths += sum(numbers)
        return len(subject) + widths + sum(_size(v) for v in values)
    return 0


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter with its result's size estimated before the call and charged after it."""
    passes = getattr(func, "jinja_pass_arg", None) is not None
    writes_out = name in _WRITES_OUT

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        subject, *rest = args[1:] if passes else args
        if writes_out and type(subject) not in _SCALARS:
            _check(_size(subject), f"the filter {name}")
        _check(_estimate(name, subject, tuple(rest), kwargs), f"the filter {name}")
        return _spend(func(*args, **kwargs))

    @functools.wraps(func)
    def charged(*args: Any, **kwargs: Any) -> Any:
        return _spend(func(*args, **kwargs))

    return bounded if writes_out or name in _AMPLIFIERS else charged


@jinja2.pass_context  # never folded as a constant at compile time
def _iterate(context: jinja2.runtime.Context, iterable: Any) -> Iterator[Any]:
    """What every `{% for %}` iterates through: the clock is read every few items, so even an
    empty nested loop stops when the render's time is up."""
    del context
    current = _BUDGET.get()
    for item in iterable:
        if current is not None:
            current.spend(0, weight=1)
        yield item


@jinja2.pass_context
def _concat(context: jinja2.runtime.Context, parts: list[Any]) -> str:
    """`a ~ b`: sized before it is joined."""
    del context
    _check(_size(parts), "the ~ operator")
    return str(_spend("".join(map(str, parts))))


_ITERATE, _CONCAT = "agentctl_iterate", "agentctl_concat"


class _Bounding(NodeTransformer):
    """Every loop iterates through `_iterate` and every `~` goes through `_concat`."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - Jinja names them
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _ITERATE, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT, [], [], None,
                            None, lineno=node.lineno)


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        result: nodes.Template = _Bounding().visit(tree)
        result.set_environment(self)
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`agent.spec.x` on the plain dicts templates see: the key, without the failed
        attribute lookup (an exception per access) the general path takes first. A name that
        is a dict method still goes the general way and gets the method."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,  # noqa: N805
             *args: Any, **kwargs: Any) -> Any:
        name = getattr(__obj, "__name__", "")
        if name in _AMPLIFIERS:
            method = getattr(__obj, "__wrapped__", __obj)  # the sandbox wraps str.format
            _check(_estimate(name, getattr(method, "__self__", None), args, kwargs),
                   f"{name}()")
        return _spend(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _check(len(seq) * times, "the * operator")
        elif (operator == "+" and isinstance(left, str | list | tuple)
              and isinstance(right, str | list | tuple)):
            _check(len(left) + len(right), "the + operator")
        elif operator == "%" and isinstance(left, str):
            _check(_estimate("%", left, right if isinstance(right, tuple) else (right,), {}),
                   "the % operator")
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int)
              and right * max(abs(left), 1).bit_length() > 100_000):
            raise TooLarge("the power would exceed 100000 bits")
        return _spend(super().call_binop(context, operator, left, right))


_DICT_ATTRIBUTES = frozenset(dir(dict))


class BlueprintLoader(jinja2.BaseLoader):
    """Templates of one blueprint folder, for `get_template`, `{% include %}` and `{% import %}`
    alike: a name never leaves the folder and no symlink is followed, in any part of the path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        parts = jinja2.loaders.split_template_path(template)  # refuses `..`
        try:
            data = read_no_symlinks(self.folder, parts)
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        except OSError as err:
            raise jinja2.TemplateNotFound(f"{template} ({err.strerror or err})") from None
        return data.decode("utf-8"), str(self.folder.joinpath(*parts)), lambda: True


def read_no_symlinks(folder: Path, parts: Iterable[str]) -> bytes:
    """The bytes of `folder/part/…`, refusing (OSError ELOOP) a symlink at any step below
    `folder`."""
    names = list(parts)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names[:-1]:
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        file_fd = os.open(names[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise IsADirectoryError(f"{names[-1]} is not a file")
            return handle.read()
    finally:
        os.close(fd)


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, where a file that cannot be read back or written is a miss."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        """Jinja's key, for any file name the system can hold (not only UTF-8 ones)."""
        digest = hashlib.sha1(os.fsencode(name), usedforsecurity=False)
        if filename is not None:
            digest.update(b"|" + os.fsencode(filename))
        return digest.hexdigest()


@functools.cache
def _configuration_key() -> str:
    """What compiled templates depend on besides their source: Python's bytecode, Jinja's
    version and the modules that configure the environment (`finalize`, the sandbox's hooks,
    filters). Code compiled under another configuration is never loaded."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag}|{jinja2.__version__}".encode())
    for module in (__file__, mergepatch.__file__):
        digest.update(b"|" + Path(module).read_bytes())
    return digest.hexdigest()[:16]


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """`$XDG_CACHE_HOME/agentctl/templates/<configuration>/`, used only when it is a real
    folder of this user that no one else can write to (compiled templates are code that is
    run); otherwise no cache."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = base / "agentctl" / "templates" / _configuration_key()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for part in (folder, folder.parent, folder.parent.parent):
            info = os.lstat(part)
            if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
                    or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
                return None
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None
    return _BytecodeCache(str(folder))


def finalize(value: Any) -> str:
    """Every `{{ … }}` becomes one JSON value; JSON is YAML, and a JSON string cannot open a
    new key, document or object whatever it contains."""
    if isinstance(value, jinja2.Undefined):  # a bare `{{ missing }}` reaches here unrendered
        value._fail_with_undefined_error()  # raises, naming the missing variable or attribute
    kind = type(value)
    if kind is str:
        _check(len(value), "writing out a value")
    elif kind not in _SCALARS:
        _check(_size(value), "writing out a value")
    if isinstance(value, set | frozenset):
        value = sorted(value)
    text = json.dumps(value, ensure_ascii=True, sort_keys=False)
    return _SURROGATE_PAIR.sub(_astral, text) if "\\ud" in text else text


# JSON escapes a character outside the Basic Multilingual Plane as a UTF-16 surrogate pair,
# which YAML does not accept; YAML has its own 8-digit escape for it.
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _astral(match: re.Match[str]) -> str:
    high, low = int(match.group(2), 16), int(match.group(3), 16)
    code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
    return f"{match.group(1)}\\U{code:08x}"


def _sha256(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def quantity_sum(values: Iterable[Any]) -> str:
    """The sum of Kubernetes quantities (`["1Gi", "512Mi"]` → `1536Mi`, `["1G", "1G"]` → `2G`):
    the shortest whole number of one unit that is exact."""
    total = sum((parse_quantity(v) for v in values), Decimal(0))
    written = [f"{total // unit}{suffix}" for suffix in _SUFFIXES
               for unit in [parse_quantity(f"1{suffix}")] if total % unit == 0]
    return min(written, key=len) if written else f"{total.normalize():f}"


_SUFFIXES = ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki", "E", "P", "T", "G", "M", "k", "", "m", "u", "n")


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443, "grpcs": 443}


def url_parts(url: str) -> dict[str, Any]:
    """`scheme`, `host` (lower case, without user info or IPv6 brackets) and `port` of a URL:
    the explicit port, else the scheme's well-known one (http 80, https 443, …), else None."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return {"scheme": parts.scheme, "host": (parts.hostname or "").rstrip("."),
            "port": port if port is not None else _DEFAULT_PORTS.get(parts.scheme)}


def build_environment(folder: Path) -> SandboxedEnvironment:
    """The Jinja2 environment of a blueprint folder, built only here: sandboxed, strict,
    JSON-finalised, a fixed set of bounded filters, templates only from the folder."""
    env = _Sandbox(
        loader=BlueprintLoader(folder),
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
        auto_reload=False,  # one render sees one version of each template
        cache_size=400,
        bytecode_cache=_bytecode_cache(),
    )
    for name in ("random", "filesizeformat", "urlize", "xmlattr", "wordwrap"):
        env.filters.pop(name, None)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.filters.update(sha256=_sha256, merge=merge_patch, tojson=finalize, to_json=finalize,
                       quantity_sum=quantity_sum, url_parts=url_parts)
    env.filters = {name: _bounded_filter(name, func) for name, func in env.filters.items()}
    env.filters[_ITERATE] = _iterate
    env.filters[_CONCAT] = _concat
    return env
