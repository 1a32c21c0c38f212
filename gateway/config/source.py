"""Reading a config file: TOML syntax, `${VAR}` / `${VAR:-default}` from the
environment, and errors that name the file, line and key path."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")


class ConfigError(Exception):
    """A config file that cannot be used; the message names file, line and key path."""

    def __init__(self, file: str, message: str, *, key: str = "", line: int | None = None):
        self.file = file
        self.key = key
        self.line = line
        where = file + (f":{line}" if line else "")
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


@dataclass(frozen=True)
class MissingEnv:
    """Stands where a `${VAR}` with no default named an unset variable."""

    var: str


@dataclass(frozen=True)
class Interpolated:
    """A string that came (partly) from the environment: typed fields may coerce it."""

    text: str


def read_toml(path: Path, text: str | None = None) -> tuple[dict[str, Any], str]:
    """Parse the file (or `text`, read already, in its name); returns the data and the
    raw text (for line lookup and hashing)."""
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        if line is None:
            found = re.search(r"line (\d+)", str(exc))
            line = int(found.group(1)) if found else None
        raise ConfigError(str(path), f"invalid TOML: {exc}", line=line) from None
    return data, text


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Replace `${VAR}` references in every string of a parsed TOML tree."""
    environ = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        var, has_default, default = match.group(1), match.group(2), match.group(3)
        if var in environ:
            return environ[var]
        if has_default is not None:
            return default or ""
        missing.append(var)
        return ""

    text = _ENV_REF.sub(substitute, value)
    if missing:
        return MissingEnv(missing[0])
    return Interpolated(text)


def find_line(text: str, key_path: str) -> int | None:
    """Best-effort line of a key path such as `models.fast.targets`: tomllib reports
    lines only for syntax errors, and an operator wants to know where to look."""
    # Array indexes are dropped: `keys[0].sha256` is looked up as `keys.sha256`.
    parts = [p.strip('"') for p in re.findall(r'"[^"]*"|[^.\[\]]+', key_path) if not p.isdigit()]
    if not parts:
        return None
    lines = text.splitlines()
    best: int | None = None
    # The deepest table header that matches a prefix of the path, then the key below it.
    for depth in range(len(parts), 0, -1):
        header = parts[:depth]
        for i, line in enumerate(lines):
            stripped = line.strip()
            if not stripped.startswith("["):
                continue
            names = [n.strip().strip('"') for n in stripped.strip("[]").split(".")]
            if names == header:
                best = i + 1
                if depth < len(parts):
                    key = parts[depth]
                    for j in range(i + 1, len(lines)):
                        if lines[j].lstrip().startswith("["):
                            break
                        if re.match(rf'\s*"?{re.escape(key)}"?\s*=', lines[j]):
                            return j + 1
                return best
    for i, line in enumerate(lines):
        if re.match(rf'\s*"?{re.escape(parts[-1])}"?\s*=', line):
            return i + 1
    return best


class Table:
    """Typed, path-aware reads from one TOML table; unknown keys are errors."""

    def __init__(self, loader: Loader, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise loader.error(path, f"must be a table, got {_type_name(data)}")
        self.loader, self.data, self.path = loader, data, path
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: Any = ...) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is ...:
                raise self.loader.error(self.key(name), "is required")
            return default
        value = self.data[name]
        if isinstance(value, MissingEnv):
            raise self.loader.error(self.key(name), f"environment variable {value.var} is not set")
        return value

    def _typed(self, name: str, default: Any, types: tuple[type, ...], label: str) -> Any:
        value = self.raw(name, default)
        if value is None and default is None:
            return None
        if isinstance(value, Interpolated):
            value = _coerce(value.text, types)
            if value is None:
                raise self.loader.error(self.key(name), f"must be {label} (from the environment)")
        if isinstance(value, bool) and bool not in types:
            raise self.loader.error(self.key(name), f"must be {label}, got boolean")
        if not isinstance(value, types):
            raise self.loader.error(self.key(name), f"must be {label}, got {_type_name(value)}")
        return value

    def text(self, name: str, default: Any = ...) -> str:
        value: str = self._typed(name, default, (str,), "a string")
        return value

    def integer(self, name: str, default: Any = ..., minimum: int = 0) -> int:
        value: int = self._typed(name, default, (int,), "an integer")
        if value < minimum:
            raise self.loader.error(self.key(name), f"must be at least {minimum}")
        return value

    def number(self, name: str, default: Any = ..., minimum: float = 0.0) -> float:
        value = float(self._typed(name, default, (int, float), "a number"))
        if value < minimum:
            raise self.loader.error(self.key(name), f"must be at least {minimum}")
        return value

    def flag(self, name: str, default: Any = ...) -> bool:
        value: bool = self._typed(name, default, (bool,), "true or false")
        return value

    def array(self, name: str, default: Any = ...) -> list[Any]:
        value: list[Any] = self._typed(name, default, (list,), "an array")
        return value

    def table(self, name: str) -> Table:
        return Table(self.loader, self.raw(name, {}), self.key(name))

    def done(self) -> None:
        for name in self.data:
            if name not in self.seen:
                raise self.loader.error(self.key(name), "unknown key")


def _coerce(text: str, types: tuple[type, ...]) -> Any:
    if str in types:
        return text
    if bool in types:
        return {"true": True, "false": False}.get(text.strip().lower())
    for kind in (int, float):
        if kind in types:
            try:
                return kind(text)
            except ValueError:
                continue
    return None


def _type_name(value: Any) -> str:
    return {
        dict: "a table",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def plain(value: Any) -> Any:
    """A TOML tree with interpolated strings turned back into plain strings."""
    if isinstance(value, Interpolated):
        return value.text
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(str(self.path), message, key=key, line=find_line(self.text, key))


class Secret:
    """A credential: usable by the code that needs it, shown as *** everywhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__
