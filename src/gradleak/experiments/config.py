"""Experiment configs: one TOML file per table or figure, validated into typed dataclasses.

Layout (keys outside these are errors)::

    name = "table2"            # experiment name: part of every trial's seed
    suite = "labels"           # which suite runs the trials (see experiments.suites)
    seed = 0                   # root seed
    description = "..."
    [defaults]                 # fields applied to every case unless the case sets them
    samples = 1000
    [quick]                    # fields that override every case under --quick
    samples = 3
    [[cases]]                  # one table per case; fields of the suite's case dataclass
    model = "lenet"

Every case is checked when the config loads, before anything runs: its dataclass checks its
own ranges, and its ``validate()`` (where the case type has one) checks the names it uses
against the registries, its checkpoint's card and its dataset's class count. Errors name the
config file, the case and the key.

``--set key=value`` overrides a top-level key (``seed=3``) or a defaults/quick field
(``defaults.samples=50``); values are parsed as TOML (``methods=["idlg"]``), else as text.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOP_LEVEL = ("name", "suite", "seed", "description", "defaults", "quick", "cases")


@dataclass(frozen=True)
class ExperimentConfig:
    """A resolved experiment: its cases already carry defaults and quick overrides."""

    name: str
    suite: str
    seed: int
    description: str
    cases: tuple[Any, ...]
    quick: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "suite": self.suite,
            "seed": self.seed,
            "description": self.description,
            "quick": self.quick,
            "cases": [dataclasses.asdict(case) for case in self.cases],
            "case_names": [case.name for case in self.cases],
        }


def _check_type(value: Any, expected: Any, where: str) -> Any:
    """Validate ``value`` against a simple annotation; tuples accept TOML arrays."""
    if expected is Any:
        return value
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(expected):
            try:
                return _check_type(value, option, where)
            except ValueError:
                continue
        raise ValueError(f"{where} = {value!r} must be {expected}")
    if expected is type(None):
        if value is None:
            return None
        raise ValueError(f"{where} must be empty")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} = {value!r} must be a list")
        item = typing.get_args(expected)[0]
        return tuple(_check_type(entry, item, f"{where}[]") for entry in value)
    if origin in (dict, Mapping):
        if not isinstance(value, dict):
            raise ValueError(f"{where} = {value!r} must be a table ({{key = value, ...}})")
        _, item = typing.get_args(expected)
        return {
            str(key): _check_type(entry, item, f"{where}.{key}") for key, entry in value.items()
        }
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is bool and not isinstance(value, bool):
        raise ValueError(f"{where} = {value!r} must be true or false")
    if expected is int and isinstance(value, bool):
        raise ValueError(f"{where} = {value!r} must be an integer")
    if isinstance(expected, type) and not isinstance(value, expected):
        raise ValueError(f"{where} = {value!r} must be of type {expected.__name__}")
    return value


def build_case(case_type: type, fields: Mapping[str, Any], where: str) -> Any:
    """Instantiate ``case_type`` from ``fields``; unknown, missing or mistyped keys are errors."""
    hints = typing.get_type_hints(case_type)
    allowed = [field.name for field in dataclasses.fields(case_type)]
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed keys: {', '.join(allowed)}")
    checked = {
        key: _check_type(value, hints[key], f"{where}.{key}") for key, value in fields.items()
    }
    try:
        return case_type(**checked)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None


def validate_case(case: Any, where: str) -> None:
    """Run the case's ``validate()`` (names, files, class counts); errors gain ``where``."""
    validate = getattr(case, "validate", None)
    if validate is None:
        return
    try:
        validate()
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{where} ({case.name}): {error}") from None
    except ValueError as error:
        raise ValueError(f"{where} ({case.name}): {error}") from None


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings to a raw config mapping (returns a new mapping)."""
    result = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key:
            raise ValueError(f"--set {override!r} must look like key=value")
        section, dot, field = key.partition(".")
        if dot:
            if section not in ("defaults", "quick"):
                raise ValueError(f"--set {override!r}: only defaults.KEY and quick.KEY nest")
            result.setdefault(section, {})[field] = _parse_value(text)
        elif key in ("name", "suite", "seed", "description"):
            result[key] = _parse_value(text) if key == "seed" else text
        else:
            raise ValueError(f"--set {override!r}: unknown key; use {', '.join(TOP_LEVEL[:4])}")
    return result


def resolve(
    raw: Mapping[str, Any],
    *,
    case_types: Mapping[str, type],
    quick: bool = False,
    source: str = "config",
) -> ExperimentConfig:
    """Validate a raw mapping into an `ExperimentConfig` (``case_types``: suite -> case type;
    ``source``: the config's file, named in every error)."""
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; allowed: {', '.join(TOP_LEVEL)}")
    for key in ("name", "suite", "cases"):
        if key not in raw:
            raise ValueError(f"{source}: missing required key {key!r}")
    suite = raw["suite"]
    if suite not in case_types:
        raise ValueError(f"{source}: suite = {suite!r} is unknown; known: {', '.join(case_types)}")
    seed = _check_type(raw.get("seed", 0), int, f"{source}: seed")
    if seed < 0:
        raise ValueError(f"{source}: seed must be >= 0, got {seed}")
    if not isinstance(raw["cases"], list) or not raw["cases"]:
        raise ValueError(f"{source}: cases must be a non-empty array of tables ([[cases]])")
    defaults, overrides = dict(raw.get("defaults", {})), dict(raw.get("quick", {}))
    cases = tuple(
        build_case(
            case_types[suite],
            defaults | dict(fields) | (overrides if quick else {}),
            f"{source}: cases[{index}]",
        )
        for index, fields in enumerate(raw["cases"])
    )
    names = [case.name for case in cases]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"{source}: several cases share the name(s) {duplicates}; make them differ"
        )
    for index, case in enumerate(cases):  # after the cheap checks: this one opens files
        validate_case(case, f"{source}: cases[{index}]")
    return ExperimentConfig(
        name=str(raw["name"]),
        suite=suite,
        seed=seed,
        description=str(raw.get("description", "")),
        cases=cases,
        quick=quick,
    )


#: The shipped configs: `gradleak run NAME` finds ``NAME.toml`` here.
CONFIG_FOLDER = Path(__file__).resolve().parents[1] / "configs"


def shipped_configs() -> list[str]:
    """Names of the configs that ship with gradleak (``gradleak run NAME``)."""
    return sorted(path.stem for path in CONFIG_FOLDER.glob("*.toml"))


def find_config(name_or_path: str | Path) -> Path:
    """A config file: an existing path, or the name of a shipped config (``table1``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise IsADirectoryError(f"config {path} is a folder; expected a .toml file")
    shipped = CONFIG_FOLDER / f"{path.stem}.toml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"config {name_or_path} is neither a file nor a shipped config; shipped: "
        f"{', '.join(shipped_configs())}"
    )


def load_config(
    path: str | Path,
    *,
    case_types: Mapping[str, type],
    quick: bool = False,
    overrides: Sequence[str] = (),
) -> ExperimentConfig:
    """Read, override and validate the TOML config at ``path``."""
    path = find_config(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    return resolve(
        apply_overrides(raw, overrides), case_types=case_types, quick=quick, source=str(path)
    )
