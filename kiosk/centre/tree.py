"""The network as a tree: the province, its counties, their townships, their points.

A `Node` names one place in the tree; a staff member's or an API token's scope is a node
too (`province`, `county:<name>`, `township:<county>/<name>`), and a request may reach
only the nodes its scope contains. `Node.where()` turns a node into the SQL condition that
keeps a query inside it, so pages, the API and exports all filter the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kiosk.errors import KioskError

# Names are free text (Chinese), but a county's may not hold "/" (it splits a township
# scope) and no name may hold control characters.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME = 100


class BadScope(KioskError, ValueError):
    """A scope or node that cannot be read."""


def check_name(name: str, what: str) -> str:
    """A county or township name, stripped, or BadScope."""
    name = name.strip()
    if len(name) > MAX_NAME or CONTROL_CHARS.search(name):
        raise BadScope(f"a {what} name is at most {MAX_NAME} characters without control characters")
    if what == "county" and "/" in name:
        raise BadScope("a county name may not contain /")
    return name


@dataclass(frozen=True)
class Node:
    """The province (both None), a county (township None) or a township of a county."""

    county: str | None = None
    township: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Node":
        """`province`, `county:<name>` or `township:<county>/<name>`."""
        text = (text or "").strip()
        kind, _, rest = text.partition(":")
        if kind == "province" and not rest:
            return cls()
        if kind == "county" and rest:
            return cls(check_name(rest, "county") or _empty("county"))
        if kind == "township" and "/" in rest:
            county, _, township = rest.partition("/")
            county, township = check_name(county, "county"), check_name(township, "township")
            if county and township:
                return cls(county, township)
        raise BadScope(f"scope {text!r} is not province, county:<name> or township:<county>/<name>")

    @classmethod
    def of(cls, county: str | None, township: str | None) -> "Node":
        """The node a request names (?county=&township=); empty means not given."""
        county = check_name(county or "", "county") or None
        township = check_name(township or "", "township") or None
        if township and not county:
            raise BadScope("a township is named with its county (?county=...&township=...)")
        return cls(county, township)

    @property
    def level(self) -> str:
        """province, county or township."""
        return "township" if self.township is not None else "county" if self.county is not None else "province"

    @property
    def name(self) -> str:
        """The node's own name (省 for the province)."""
        return self.township if self.township is not None else self.county if self.county is not None else "province"

    def __str__(self) -> str:
        if self.township is not None:
            return f"township:{self.county}/{self.township}"
        if self.county is not None:
            return f"county:{self.county}"
        return "province"

    def contains(self, other: "Node") -> bool:
        """True when `other` is this node or below it."""
        if self.county is None:
            return True
        if other.county != self.county:
            return False
        return self.township is None or other.township == self.township

    def holds(self, county: str, township: str) -> bool:
        """True when a point of this county and township is inside this node."""
        return self.contains(Node(county, township))

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        """An SQL condition (with `?` parameters) keeping points inside this node."""
        col = f"{alias}." if alias else ""
        if self.township is not None:
            return f"{col}county = ? AND {col}township = ?", [self.county, self.township]
        if self.county is not None:
            return f"{col}county = ?", [self.county]
        return "1 = 1", []

    def child(self, name: str) -> "Node":
        """The child of this node with this name."""
        if self.county is None:
            return Node(name)
        return Node(self.county, name)


PROVINCE = Node()


def _empty(what: str) -> str:
    raise BadScope(f"a {what} scope needs a name")
