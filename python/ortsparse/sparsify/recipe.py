"""What sparsify does to each layer: a recipe, from the command's options or a YAML file.

    sparsity: 0.8          # the target of every layer no rule below names otherwise
    pattern: 4x1           # unstructured, 4x1, 1x4 or N:M (patterns.py)
    method: obs            # obs (reconstruction from calibration inputs) or magnitude
    distribution: uniform  # or sensitivity: per-layer targets from each layer's measured error
    prune_ends: false      # the model's first and last layer stay dense unless true
    dense: [stem, "fc$"]   # regular expressions on node or weight names: layers left dense
    layers:                # the first rule whose `match` finds the node or weight name applies
      - match: "layer4\\\\."
        sparsity: 0.9
        pattern: unstructured
      - match: downsample
        dense: true
    quantization:          # INT8 after pruning (quantization.py): every key optional
      format: qdq          # qdq or qoperator
      per_channel: true
      activation_type: u8  # u8 or s8

Every key is optional. A recipe with an unknown key, a value of the wrong kind or out of range,
or a regular expression that does not compile is refused with its file, line and what is wrong.
Reading YAML takes PyYAML (`pip install 'ortsparse[sparsify]'`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ortsparse.sparsify.patterns import UNSTRUCTURED, Pattern, parse_pattern
from ortsparse.sparsify.quantization import Quantization

METHODS = ("obs", "magnitude")
DISTRIBUTIONS = ("uniform", "sensitivity")


class RecipeError(ValueError):
    """A recipe that cannot be followed; the message names the place and the problem."""


@dataclass(frozen=True)
class LayerRule:
    match: re.Pattern
    sparsity: float | None = None
    pattern: Pattern | None = None
    dense: bool = False


@dataclass(frozen=True)
class Recipe:
    sparsity: float = 0.8
    pattern: Pattern = UNSTRUCTURED
    method: str = "obs"
    prune_ends: bool = False
    dense: Sequence[re.Pattern] = ()
    layers: Sequence[LayerRule] = field(default_factory=tuple)
    quantization: Quantization | None = None  # None: the model stays float
    #: uniform: every layer at `sparsity`; sensitivity: each layer as far as its measured
    #: sensitivity allows, the layers' weights at `sparsity` on average (sensitivity.py).
    distribution: str = "uniform"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RecipeError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        check_sparsity(self.sparsity, "sparsity")
        if self.distribution not in DISTRIBUTIONS:
            raise RecipeError(
                f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}"
            )

    def plan(self, *names: str) -> LayerPlan | None:
        """What to do with the layer called `names` (node, weight); None for one left dense by
        `dense` or a rule."""
        if any(expression.search(name) for expression in self.dense for name in names):
            return None
        for rule in self.layers:
            if any(rule.match.search(name) for name in names):
                if rule.dense:
                    return None
                return LayerPlan(
                    self.sparsity if rule.sparsity is None else rule.sparsity,
                    rule.pattern or self.pattern,
                    distributed=rule.sparsity is None,
                )
        return LayerPlan(self.sparsity, self.pattern, distributed=True)


@dataclass(frozen=True)
class LayerPlan:
    sparsity: float
    pattern: Pattern
    #: Whether the recipe's distribution may change the sparsity: no rule gave it.
    distributed: bool


def check_sparsity(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise RecipeError(f"{where}: sparsity must be a number in (0, 1), got {value!r}")
    return float(value)


def compile_expression(text: object, where: str) -> re.Pattern:
    if not isinstance(text, str):
        raise RecipeError(f"{where}: expected a regular expression (a string), got {text!r}")
    try:
        return re.compile(text)
    except re.error as error:
        raise RecipeError(f"{where}: {text!r} is not a regular expression ({error})") from None


_TOP_KEYS = (
    "sparsity",
    "pattern",
    "method",
    "distribution",
    "prune_ends",
    "dense",
    "layers",
    "quantization",
)
_QUANTIZATION_KEYS = ("format", "per_channel", "activation_type")
_RULE_KEYS = ("match", "sparsity", "pattern", "dense")


def load_recipe(path: str | Path) -> Recipe:
    """The recipe in YAML file `path`; RecipeError for a malformed one."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the environment
        raise RecipeError("reading a YAML recipe takes PyYAML: pip install 'ortsparse[sparsify]'")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise RecipeError(f"cannot read the recipe {path}: {error.strerror or error}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not YAML ({error})") from None
    if root is None:
        return Recipe()
    document = _Document(path, yaml)
    top = document.mapping(root, _TOP_KEYS)
    options = {}
    if "sparsity" in top:
        options["sparsity"] = check_sparsity(
            document.value(top["sparsity"]), document.at(top["sparsity"])
        )
    if "pattern" in top:
        options["pattern"] = document.pattern(top["pattern"])
    for key, choices in (("method", METHODS), ("distribution", DISTRIBUTIONS)):
        if key in top:
            options[key] = document.choice(top[key], key, choices)
    if "prune_ends" in top:
        options["prune_ends"] = document.boolean(top["prune_ends"])
    if "dense" in top:
        options["dense"] = tuple(
            compile_expression(document.value(item), document.at(item))
            for item in document.sequence(top["dense"])
        )
    if "layers" in top:
        options["layers"] = tuple(document.rule(item) for item in document.sequence(top["layers"]))
    if "quantization" in top:
        options["quantization"] = document.quantization(top["quantization"])
    return Recipe(**options)


class _Document:
    """The YAML nodes of one recipe, read with their line numbers for messages."""

    def __init__(self, path: Path, yaml) -> None:
        self.path = path
        self.yaml = yaml

    def at(self, node) -> str:
        return f"{self.path} line {node.start_mark.line + 1}"

    def mapping(self, node, keys: Sequence[str]) -> dict:
        if not isinstance(node, self.yaml.MappingNode):
            raise RecipeError(f"{self.at(node)}: expected a mapping of {', '.join(keys)}")
        entries = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key not in keys:
                raise RecipeError(
                    f"{self.at(key_node)}: unknown key {key!r} (expected {', '.join(keys)})"
                )
            if key in entries:
                raise RecipeError(f"{self.at(key_node)}: {key!r} is given twice")
            entries[key] = value_node
        return entries

    def sequence(self, node) -> list:
        if not isinstance(node, self.yaml.SequenceNode):
            raise RecipeError(f"{self.at(node)}: expected a list")
        return list(node.value)

    def value(self, node):
        if not isinstance(node, self.yaml.ScalarNode):
            raise RecipeError(f"{self.at(node)}: expected a single value")
        return self.yaml.safe_load(self.yaml.serialize(node))

    def choice(self, node, key: str, choices: Sequence[str]) -> str:
        value = self.value(node)
        if value not in choices:
            raise RecipeError(
                f"{self.at(node)}: {key} must be one of {', '.join(choices)}, got {value!r}"
            )
        return value

    def boolean(self, node) -> bool:
        value = self.value(node)
        if not isinstance(value, bool):
            raise RecipeError(f"{self.at(node)}: expected true or false, got {value!r}")
        return value

    def pattern(self, node) -> Pattern:
        try:
            return parse_pattern(str(self.value(node)))
        except ValueError as error:
            raise RecipeError(f"{self.at(node)}: {error}") from None

    def rule(self, node) -> LayerRule:
        entries = self.mapping(node, _RULE_KEYS)
        if "match" not in entries:
            raise RecipeError(f"{self.at(node)}: a layer rule needs `match`, a regular expression")
        rule = LayerRule(
            match=compile_expression(self.value(entries["match"]), self.at(entries["match"])),
            sparsity=(
                check_sparsity(self.value(entries["sparsity"]), self.at(entries["sparsity"]))
                if "sparsity" in entries
                else None
            ),
            pattern=self.pattern(entries["pattern"]) if "pattern" in entries else None,
            dense=self.boolean(entries["dense"]) if "dense" in entries else False,
        )
        if rule.dense and (rule.sparsity is not None or rule.pattern is not None):
            raise RecipeError(
                f"{self.at(node)}: a rule that leaves layers dense takes no sparsity or pattern"
            )
        return rule

    def quantization(self, node) -> Quantization:
        if isinstance(node, self.yaml.ScalarNode) and node.value in ("", "~", "null"):
            return Quantization()
        entries = self.mapping(node, _QUANTIZATION_KEYS)
        options = {}
        for key in ("format", "activation_type"):
            if key in entries:
                options[key] = self.value(entries[key])
        if "per_channel" in entries:
            options["per_channel"] = self.boolean(entries["per_channel"])
        try:
            return Quantization(**options)
        except ValueError as error:
            raise RecipeError(f"{self.at(node)}: quantization: {error}") from None
