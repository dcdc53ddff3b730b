"""The sandbox's data files: the product tree (products.json) and its rules (rules.toml)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Leaf:
    """A type=3 version node of the product tree, as the sandbox checks requests against it."""

    category: str
    node: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.node["id"])

    @property
    def model_id(self) -> str:
        return str(self.node["model_id"])

    @property
    def name(self) -> str:
        return str(self.node["name"])

    @property
    def rules(self) -> list[dict[str, Any]]:
        return list(self.node.get("credit_rules") or [])

    @property
    def fields(self) -> list[dict[str, Any]]:
        return list(self.node.get("form_config") or [])

    def rule(self, attribute_id: int) -> dict[str, Any] | None:
        """The credit rule with this attribute id, if the version has it."""
        for r in self.rules:
            if int(r["attribute_id"]) == attribute_id:
                return r
        return None

    def defaults(self) -> dict[str, Any]:
        """form_config default values."""
        return {f["field"]: f["value"] for f in self.fields if f.get("value") is not None}


@cache
def product_tree() -> dict[str, list[dict[str, Any]]]:
    """Category -> top-level nodes of the V2 product tree."""
    raw = json.loads((HERE / "products.json").read_text(encoding="utf-8"))
    return {str(k): list(v) for k, v in raw["categories"].items()}


@cache
def rules() -> dict[str, Any]:
    """rules.toml: error envelopes, moderation words, required fields, render settings."""
    return tomllib.loads((HERE / "rules.toml").read_text(encoding="utf-8"))


def walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every node of a tree, depth first."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.get("children") or []))


@cache
def leaves(category: str) -> tuple[Leaf, ...]:
    """The type=3 leaves of one category (empty for an unknown one)."""
    return tuple(
        Leaf(category, n) for n in walk(product_tree().get(category, [])) if str(n.get("type")) == "3"
    )


def find_leaf(category: str, model_id: str, version: str) -> Leaf | None:
    """The leaf of `category` with this model_id and version id (model_version)."""
    for leaf in leaves(category):
        if leaf.model_id == model_id and leaf.version == version:
            return leaf
    return None
