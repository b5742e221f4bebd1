"""A labelled corpus of primary/candidate response pairs, and how well compare() does on it.

Every case says which differences are REAL (a set of difference paths, in the
syntax `compare` reports: `$.items[id=42]`, `$.createdAt`, `$status`,
`$header.content-type`, `$body`; a keyed list whose records come in another order
is ONE real difference of kind `reordered` at the list, `$.items`, unless the
rules make that list order-free with `ignore_order`) and which NOISE it carries
(the note prefixes that must show that a normalizer or rule hid something:
"iso_instants", "int_float", "ignored", ...). `evaluate` runs compare() on every
case and scores

- verdicts: a case is positive when it has real differences; DIFFER is the
  predicted positive. precision = TP / (TP + FP), recall = TP / (TP + FN);
- paths: the reported difference paths against the labelled ones, summed over
  all cases (micro-average); a labelled `reordered` path reported with another
  kind makes the case a miss;
- noise noted: the share of noisy cases whose notes name every kind of noise.

    python -m tests.comparators.corpus        # prints the table (from the repo root)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from comparators import Kind, Payload, Rules, Verdict, compare, parse_rules

JSON = (("Content-Type", "application/json"),)

# What a migration team would configure: volatile ids ignored, order-free tags,
# the opt-in normalizers on, the one list keyed by something else than "id".
RECOMMENDED: dict[str, Any] = {
    "headers": ["content-type", "cache-control"],
    "ignore_paths": ["$..request_id", "$..requestId", "$.meta.trace_id"],
    "ignore_order": ["$..tags"],
    "list_keys": {"$..reports": "code"},
    "normalize": {"null_absent": True, "key_case": True},
}
# The same user rules with every migration-aware normalizer off (before this change).
BASELINE: dict[str, Any] = {
    **RECOMMENDED,
    "list_keys": {},
    "normalize": {
        "int_float": False,
        "iso_instants": False,
        "null_absent": False,
        "key_case": False,
        "auto_list_key": False,
        "media_type_params": False,
        "header_name_case": False,
    },
}
# The same user rules with the normalizers at their defaults (no opt-ins).
DEFAULTS: dict[str, Any] = {k: v for k, v in RECOMMENDED.items() if k != "normalize"}
RULE_SETS: dict[str, dict[str, Any]] = {
    "recommended": RECOMMENDED,
    "defaults": DEFAULTS,
    "baseline (normalizers off)": BASELINE,
}


@dataclass(frozen=True)
class Case:
    """One labelled pair."""

    name: str
    category: str
    primary: Payload
    candidate: Payload
    expected: frozenset[str]  # paths of the real differences
    noise: tuple[str, ...] = ()  # note prefixes that must appear
    reordered: frozenset[str] = frozenset()  # expected paths that must be of kind reordered


CASES: list[Case] = []


def _payload(body: Any, status: int, headers: tuple[tuple[str, str], ...]) -> Payload:
    if body is None:
        return Payload(status, headers, b"")
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Payload(status, headers, raw)


def case(
    category: str,
    name: str,
    primary: Any,
    candidate: Any,
    expected: Iterable[str] = (),
    noise: Iterable[str] = (),
    status: tuple[int, int] = (200, 200),
    headers: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = (JSON, JSON),
    reordered: Iterable[str] = (),
) -> None:
    """Add a case; `reordered` lists keyed lists in another order (real, kind reordered)."""
    CASES.append(
        Case(
            name,
            category,
            _payload(primary, status[0], headers[0]),
            _payload(candidate, status[1], headers[1]),
            frozenset(expected) | frozenset(reordered),
            tuple(noise),
            frozenset(reordered),
        )
    )


# --- documents -------------------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def ts(minutes: int = 0, style: str = "Z") -> str:
    """T0 + minutes, spelled in one of several equivalent ISO-8601 styles."""
    moment = T0 + timedelta(minutes=minutes)
    if style == "Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == "+00:00":
        return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if style == ".000Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if style == "+02:00":
        return (moment + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    if style == "-05:00":
        return (moment - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.000000-05:00")
    if style == "space":
        return moment.strftime("%Y-%m-%d %H:%M:%SZ")
    raise ValueError(style)


def item(i: int, when: str = "Z") -> dict[str, Any]:
    return {
        "id": i,
        "sku": f"SKU-{i:04d}",
        "name": f"item {i}",
        "qty": i % 3 + 1,
        "unitPrice": round(5 + i * 1.25, 2),
        "updatedAt": ts(i, when),
    }


def order(n_items: int = 3, when: str = "Z", request_id: str = "req-1") -> dict[str, Any]:
    return {
        "id": 4711,
        "status": "shipped",
        "createdAt": ts(0, when),
        "total": 59.9,
        "count": n_items,
        "currency": "EUR",
        "paid": True,
        "customer": {
            "id": 7,
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
            "middleName": None,
        },
        "items": [item(i, when) for i in range(1, n_items + 1)],
        "tags": ["gift", "express", "eu"],
        "request_id": request_id,
        "meta": {"requestId": request_id, "trace_id": "t-" + request_id, "page": 1},
    }


def changed(doc: Any, fn: Callable[[Any], None]) -> Any:
    """A deep copy of `doc` after `fn` mutated it."""
    out = copy.deepcopy(doc)
    fn(out)
    return out


def floats(value: Any, skip: tuple[str, ...] = ("id",)) -> Any:
    """Every int (not bool, not an id) as a float of equal value."""
    if isinstance(value, dict):
        return {k: v if k in skip else floats(v, skip) for k, v in value.items()}
    if isinstance(value, list):
        return [floats(v, skip) for v in value]
    if type(value) is int:
        return float(value)
    return value


def _set(path: list[Any], value: Any) -> Callable[[Any], None]:
    def fn(doc: Any) -> None:
        for step in path[:-1]:
            doc = doc[step]
        doc[path[-1]] = value

    return fn


def _do(*fns: Callable[[Any], None]) -> Callable[[Any], None]:
    def fn(doc: Any) -> None:
        for f in fns:
            f(doc)

    return fn


def _rename(path: list[Any], old: str, new: str) -> Callable[[Any], None]:
    def fn(doc: Any) -> None:
        for step in path:
            doc = doc[step]
        doc[new] = doc.pop(old)

    return fn


# --- timestamps in other formats ---------------------------------------------------------------

for style in ("+00:00", ".000Z", "+02:00", "-05:00", "space"):
    case(
        "timestamps",
        f"all timestamps as {style}",
        order(),
        order(when=style),
        noise=["iso_instants"],
    )
case(
    "timestamps",
    ".123 vs .123000",
    {"at": "2024-05-01T10:00:00.123Z"},
    {"at": "2024-05-01T10:00:00.123000+00:00"},
    noise=["iso_instants"],
)
case(
    "timestamps",
    "one second later is real",
    order(),
    changed(order(), _set(["createdAt"], ts(0).replace(":00Z", ":01Z"))),
    ["$.createdAt"],
)
case(
    "timestamps",
    "same wall time, other zone is real",
    order(),
    changed(order(), _set(["createdAt"], "2024-05-01T10:00:00+02:00")),
    ["$.createdAt"],
)
case(
    "timestamps",
    "respelled and one real item change",
    order(),
    changed(order(when="+02:00"), _set(["items", 1, "updatedAt"], ts(60, "+02:00"))),
    ["$.items[id=2].updatedAt"],
    ["iso_instants"],
)
case(
    "timestamps",
    "bare dates are data",
    {"day": "2024-05-01"},
    {"day": "2024-05-02"},
    ["$.day"],
)

# --- request ids (ignore rule, as configured) --------------------------------------------------

case(
    "request ids",
    "top level",
    order(),
    changed(order(), _set(["request_id"], "req-2")),
    noise=["ignored"],
)
case("request ids", "all of them", order(), order(request_id="9f0c2a"), noise=["ignored"])
case(
    "request ids",
    "per item",
    {"items": [{"id": i, "requestId": f"a{i}"} for i in range(5)]},
    {"items": [{"id": i, "requestId": f"b{i}"} for i in range(5)]},
    noise=["ignored"],
)
case(
    "request ids",
    "x-request-id header is not compared",
    order(),
    order(),
    headers=((*JSON, ("X-Request-Id", "1")), (*JSON, ("X-Request-Id", "2"))),
)
case(
    "request ids",
    "with a real change",
    order(),
    changed(order(request_id="zz"), _set(["status"], "pending")),
    ["$.status"],
    ["ignored"],
)

# --- reordering --------------------------------------------------------------------------------

case("reordering", "object keys", order(), dict(reversed(list(order().items()))))
case(  # the order may matter to a client (newest first): one difference at the list
    "reordering",
    "records by id",
    order(6),
    changed(order(6), lambda d: d["items"].reverse()),
    noise=["auto_list_key"],
    reordered=["$.items"],
)
case(  # ... unless the rules say the order does not matter
    "reordering",
    "records under ignore_order",
    {"tags": [{"id": i, "label": f"t{i}"} for i in range(4)]},
    {"tags": [{"id": i, "label": f"t{i}"} for i in reversed(range(4))]},
    noise=["sorted"],
)
case(
    "reordering",
    "tags (ignore_order)",
    order(),
    changed(order(), lambda d: d["tags"].sort()),
    noise=["sorted"],
)
case(
    "reordering",
    "records and a changed field",
    order(5),
    changed(order(5), _do(lambda d: d["items"].reverse(), _set(["items", 0, "qty"], 99))),
    ["$.items[id=5].qty"],
    ["auto_list_key"],
    reordered=["$.items"],
)
case(
    "reordering",
    "order of a ranking matters",
    {"ranking": ["a", "b", "c"]},
    {"ranking": ["b", "a", "c"]},
    ["$.ranking[0]", "$.ranking[1]"],
)
case(
    "reordering",
    "reports keyed by code",
    {"reports": [{"code": c, "n": i} for i, c in enumerate("abcd")]},
    {"reports": [{"code": c, "n": i} for i, c in reversed(list(enumerate("abcd")))]},
    noise=["list_keys"],
    reordered=["$.reports"],
)
case(
    "reordering",
    "nested records",
    {"orders": [order(3), changed(order(2), _set(["id"], 4712))]},
    {
        "orders": [
            changed(order(2), _do(_set(["id"], 4712), lambda d: d["items"].reverse())),
            changed(order(3), lambda d: d["items"].reverse()),
        ]
    },
    noise=["auto_list_key"],
    reordered=["$.orders", "$.orders[id=4711].items", "$.orders[id=4712].items"],
)

# --- numeric formats ---------------------------------------------------------------------------

case("numbers", "ints as floats everywhere", order(), floats(order()), noise=["int_float"])
case(
    "numbers",
    "1e2 vs 100",
    b'{"limit": 100, "n": 3}',
    b'{"limit": 1e2, "n": 3.0}',
    noise=["int_float"],
)
case("numbers", "59.90 vs 59.9", b'{"total": 59.90}', b'{"total": 59.9}')
case("numbers", "2.50 vs 2.5e0", b'{"total": 2.50}', b'{"total": 2.5e0}')
case("numbers", "1 vs 1.5 is real", {"qty": 1}, {"qty": 1.5}, ["$.qty"])
case("numbers", "100 vs 1e3 is real", b'{"limit": 100}', b'{"limit": 1e3}', ["$.limit"])
case("numbers", "rounding is real", {"total": 59.9}, {"total": 59.89}, ["$.total"])

# --- renamed keys ------------------------------------------------------------------------------

case(
    "renamed keys",
    "createdAt -> created_at",
    order(),
    changed(order(), _rename([], "createdAt", "created_at")),
    ["$.createdAt"],
    ["key_case"],
)
case(
    "renamed keys",
    "nested firstName",
    order(),
    changed(order(), _rename(["customer"], "firstName", "first_name")),
    ["$.customer.firstName"],
    ["key_case"],
)
case(
    "renamed keys",
    "renamed and changed",
    order(),
    changed(order(), _do(_rename([], "createdAt", "created_at"), _set(["created_at"], ts(5)))),
    ["$.createdAt", "$.created_at"],
    ["key_case"],
)
case(
    "renamed keys",
    "in every record",
    order(3),
    changed(
        order(3), lambda d: [it.__setitem__("unit_price", it.pop("unitPrice")) for it in d["items"]]
    ),
    ["$.items[id=1].unitPrice", "$.items[id=2].unitPrice", "$.items[id=3].unitPrice"],
    ["key_case"],
)
case(
    "renamed keys",
    "renamed with a respelled instant",
    order(),
    changed(
        order(), _do(_rename([], "createdAt", "created_at"), _set(["created_at"], ts(0, "+02:00")))
    ),
    ["$.createdAt"],
    ["key_case", "iso_instants"],
)

# --- long lists (200+ items) -------------------------------------------------------------------

LONG = order(250)
case(
    "long lists",
    "one record inserted",
    LONG,
    changed(LONG, lambda d: d["items"].insert(120, item(1000))),
    ["$.items[id=1000]"],
)
case(
    "long lists",
    "one record removed",
    LONG,
    changed(LONG, lambda d: d["items"].pop(76)),
    ["$.items[id=77]"],
)
case(
    "long lists",
    "one inserted, one removed",
    order(300),
    changed(
        order(300), _do(lambda d: d["items"].insert(10, item(5000)), lambda d: d["items"].pop(200))
    ),
    ["$.items[id=5000]", "$.items[id=200]"],
)
case(
    "long lists",
    "reversed with one change",
    LONG,
    changed(LONG, _do(lambda d: d["items"].reverse(), _set(["items", 245, "unitPrice"], 1.0))),
    ["$.items[id=5].unitPrice"],
    ["auto_list_key"],
    reordered=["$.items"],
)
SKUS = [f"SKU-{i:04d}" for i in range(220)]
case(
    "long lists",
    "scalar inserted",
    {"skus": SKUS},
    {"skus": [*SKUS[:57], "NEW", *SKUS[57:]]},
    ["$.skus[57]"],
)
case(
    "long lists",
    "scalar removed",
    {"skus": SKUS},
    {"skus": SKUS[:100] + SKUS[101:]},
    ["$.skus[100]"],
)
case(
    "long lists",
    "respelled timestamps and an insert",
    LONG,
    changed(order(250, when="+00:00"), lambda d: d["items"].insert(3, item(999, "+00:00"))),
    ["$.items[id=999]"],
    ["iso_instants"],
)
REPORTS = [{"code": f"R{i:03d}", "value": i} for i in range(210)]
case(
    "long lists",
    "keyed by code, one removed",
    {"reports": REPORTS},
    {"reports": REPORTS[:30] + REPORTS[31:]},
    ['$.reports[code="R030"]'],
)

# --- real value changes ------------------------------------------------------------------------

for path, value in [
    (["status"], "pending"),
    (["customer", "email"], "ada@example.org"),
    (["currency"], "eur"),
    (["paid"], False),
    (["meta", "page"], 2),
]:
    case(
        "value changes",
        "/".join(map(str, path)),
        order(),
        changed(order(), _set(path, value)),
        ["$." + ".".join(map(str, path))],
    )
case(
    "value changes",
    "item price",
    order(),
    changed(order(), _set(["items", 2, "unitPrice"], 0.99)),
    ["$.items[id=3].unitPrice"],
)
case(
    "value changes",
    "two fields",
    order(),
    changed(order(), _do(_set(["total"], 61.0), _set(["count"], 4))),
    ["$.total", "$.count"],
)
case(
    "value changes",
    "null becomes a value",
    order(),
    changed(order(), _set(["customer", "middleName"], "Augusta")),
    ["$.customer.middleName"],
)

# --- real type changes -------------------------------------------------------------------------

for name, a, b in [
    ("string id", 42, "42"),
    ("null vs 0", None, 0),
    ("object vs list", {"a": 1}, [{"a": 1}]),
    ("bool vs string", True, "true"),
    ("int vs bool", 1, True),
    ("list vs null", [1], None),
]:
    case("type changes", name, {"v": a, "same": 1}, {"v": b, "same": 1}, ["$.v"])

# --- status changes ----------------------------------------------------------------------------

case("status", "500 with the same body", order(), order(), ["$status"], status=(200, 500))
case("status", "201 vs 200", order(), order(), ["$status"], status=(201, 200))
case(
    "status",
    "500 with a text body",
    order(),
    b"Internal Server Error",
    ["$status", "$header.content-type", "$body"],
    status=(200, 500),
    headers=(JSON, (("Content-Type", "text/plain"),)),
)
case(
    "status",
    "404 with an error object",
    {"id": 1, "name": "x"},
    {"error": "not found"},
    ["$status", "$.id", "$.name", "$.error"],
    status=(200, 404),
)
case("status", "204 both", None, None, status=(204, 204), headers=((), ()))

# --- headers -----------------------------------------------------------------------------------

case(
    "headers",
    "charset parameter",
    order(),
    order(),
    noise=["media_type_params"],
    headers=((("Content-Type", "application/json; charset=utf-8"),), JSON),
)
case(
    "headers",
    "header name case",
    order(),
    order(),
    noise=["header_name_case"],
    headers=((*JSON, ("Cache-Control", "no-store")), (*JSON, ("cache-control", "no-store"))),
)
case(
    "headers",
    "cache-control changed",
    order(),
    order(),
    ["$header.cache-control"],
    headers=((*JSON, ("Cache-Control", "no-store")), (*JSON, ("Cache-Control", "max-age=60"))),
)

# --- null vs absent ----------------------------------------------------------------------------

case(
    "null vs absent",
    "middleName dropped",
    order(),
    changed(order(), lambda d: d["customer"].pop("middleName")),
    noise=["null_absent"],
)
case(
    "null vs absent",
    "nulls added in records",
    order(),
    changed(order(), lambda d: [it.__setitem__("discount", None) for it in d["items"]]),
    noise=["null_absent"],
)

# --- nested combos -----------------------------------------------------------------------------


def _noisy(doc: dict[str, Any]) -> dict[str, Any]:
    """Every kind of noise at once: instants, floats, order, request ids, nulls."""
    out = floats(doc)
    out["createdAt"] = ts(0, "+02:00")
    for it in out["items"]:
        it["updatedAt"] = ts(it["id"], ".000Z")
    out["items"].reverse()
    out["tags"].reverse()
    out["request_id"] = out["meta"]["requestId"] = "other"
    out["customer"].pop("middleName")
    return out


NOISE = ["iso_instants", "int_float", "auto_list_key", "ignored", "sorted", "null_absent"]
case("combos", "all noise", order(4), _noisy(order(4)), noise=NOISE, reordered=["$.items"])
case(
    "combos",
    "all noise and a price",
    order(4),
    changed(_noisy(order(4)), _set(["items", 0, "unitPrice"], 1.0)),
    ["$.items[id=4].unitPrice"],
    NOISE,
    reordered=["$.items"],
)
case(
    "combos",
    "rename, reorder, insert",
    order(5),
    changed(
        order(5),
        _do(
            _rename([], "createdAt", "created_at"),
            lambda d: d["items"].reverse(),
            lambda d: d["items"].insert(2, item(77)),
        ),
    ),
    ["$.createdAt", "$.items[id=77]"],
    ["key_case", "auto_list_key"],
    reordered=["$.items"],
)
case(
    "combos",
    "nested keyed records",
    {"orders": [order(3), changed(order(3), _set(["id"], 4712))]},
    {
        "orders": [
            changed(order(3), _do(_set(["id"], 4712), _set(["items", 1, "qty"], 9))),
            changed(order(3), lambda d: d["items"].reverse()),
        ]
    },
    ["$.orders[id=4712].items[id=2].qty"],
    ["auto_list_key"],
    reordered=["$.orders", "$.orders[id=4711].items"],
)
case(
    "combos",
    "type change among noise",
    order(),
    changed(_noisy(order()), _set(["customer", "id"], "7")),
    ["$.customer.id"],
    NOISE,
    reordered=["$.items"],
)
case(
    "combos",
    "long noisy list, one removed and one changed",
    order(220),
    changed(
        _noisy(order(220)), _do(lambda d: d["items"].pop(10), _set(["items", 100, "name"], "x"))
    ),
    ["$.items[id=210]", "$.items[id=119].name"],
    NOISE,
    reordered=["$.items"],
)
case(
    "combos",
    "status change with noisy body",
    order(),
    _noisy(order()),
    ["$status"],
    NOISE,
    status=(200, 503),
    reordered=["$.items"],
)


def _report(changed_cell: tuple[int, int] | None = None, reverse: bool = False) -> Any:
    """A report of 3 sections of 4 rows; one cell +1, rows optionally reversed."""
    sections = []
    for s in range(3):
        rows = [{"id": r, "value": r * s + ((s, r) == changed_cell)} for r in range(4)]
        sections.append({"id": s, "rows": rows[::-1] if reverse else rows})
    return {"data": {"report": {"sections": sections}}}


case(
    "combos",
    "deep report value",
    _report(),
    _report((2, 3), reverse=True),
    ["$.data.report.sections[id=2].rows[id=3].value"],
    ["auto_list_key"],
    reordered=[f"$.data.report.sections[id={s}].rows" for s in range(3)],
)


# --- known limits: labelled with the truth, whatever compare() makes of them --------------------

case(
    "known limits",
    "epoch seconds vs ISO string (same instant)",
    {"at": ts(0)},
    {"at": int(T0.timestamp())},
    noise=["iso_instants"],
)
case(
    "known limits",
    "renamed to another word",
    {"address": {"zip": "10115", "city": "Berlin"}},
    {"address": {"postalCode": "10115", "city": "Berlin"}},
    ["$.address.zip"],
    ["key_case"],
)
LINES = [{"sku": f"SKU-{i:04d}", "qty": i % 4} for i in range(200)]
case(
    "known limits",
    "records without ids, one inserted",
    {"lines": LINES},
    {"lines": [*LINES[:57], {"sku": "NEW", "qty": 1}, *LINES[57:]]},
    ["$.lines[57]"],
)


# --- scoring -----------------------------------------------------------------------------------


@dataclass
class Scores:
    """Confusion counts of verdicts and of paths, and what went wrong where."""

    rules_name: str
    verdict: dict[str, int] = field(default_factory=lambda: dict(tp=0, fp=0, fn=0, tn=0))
    paths: dict[str, int] = field(default_factory=lambda: dict(tp=0, fp=0, fn=0))
    noisy_cases: int = 0
    noise_noted: int = 0
    misses: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @staticmethod
    def _ratio(num: int, den: int) -> float:
        return num / den if den else 1.0

    @property
    def verdict_precision(self) -> float:
        return self._ratio(self.verdict["tp"], self.verdict["tp"] + self.verdict["fp"])

    @property
    def verdict_recall(self) -> float:
        return self._ratio(self.verdict["tp"], self.verdict["tp"] + self.verdict["fn"])

    @property
    def path_precision(self) -> float:
        return self._ratio(self.paths["tp"], self.paths["tp"] + self.paths["fp"])

    @property
    def path_recall(self) -> float:
        return self._ratio(self.paths["tp"], self.paths["tp"] + self.paths["fn"])

    @property
    def noise_rate(self) -> float:
        return self._ratio(self.noise_noted, self.noisy_cases)


def evaluate(table: dict[str, Any], rules_name: str = "", cases: list[Case] = CASES) -> Scores:
    """Run compare() on every case under the rules `table` and score the results."""
    import time

    rules: Rules = parse_rules(table)
    scores = Scores(rules_name)
    for c in cases:
        start = time.perf_counter()
        result = compare(c.primary, c.candidate, rules)
        scores.seconds += time.perf_counter() - start
        found = {d.path for d in result.differences}
        # A labelled reordered list must be reported as such, not as another kind.
        wrong_kind = sorted(
            p
            for p in c.reordered & found
            if not any(d.path == p and d.kind is Kind.REORDERED for d in result.differences)
        )
        predicted, actual = result.verdict is Verdict.DIFFER, bool(c.expected)
        key = ("t" if predicted == actual else "f") + ("p" if predicted else "n")
        scores.verdict[key] += 1
        scores.paths["tp"] += len(found & c.expected)
        scores.paths["fp"] += len(found - c.expected)
        scores.paths["fn"] += len(c.expected - found)
        noted = all(any(n.startswith(p) for n in result.notes) for p in c.noise)
        if c.noise:
            scores.noisy_cases += 1
            scores.noise_noted += noted
        if found != c.expected or not noted or wrong_kind:
            extra, missing = _few(found - c.expected), _few(c.expected - found)
            scores.misses.append(
                f"{c.category}/{c.name}: extra {extra} missing {missing}"
                + ("" if noted else f"; noise not noted: {list(c.noise)}")
                + (f"; not of kind reordered: {wrong_kind}" if wrong_kind else "")
            )
    return scores


def _few(paths: set[str], n: int = 4) -> str:
    shown = sorted(paths)[:n]
    return str(shown) + (f" +{len(paths) - n} more" if len(paths) > n else "")


def report(all_scores: list[Scores]) -> str:
    """A text table of the figures, one row per set of rules."""
    lines = [
        f"corpus: {len(CASES)} pairs, {sum(len(c.expected) for c in CASES)} real differences, "
        f"{len({c.category for c in CASES})} categories",
        f"{'rules':<28} {'verdict P':>9} {'verdict R':>9} {'path P':>7} {'path R':>7} "
        f"{'noise noted':>11} {'ms/pair':>8}",
    ]
    for s in all_scores:
        lines.append(
            f"{s.rules_name:<28} {s.verdict_precision:>9.3f} {s.verdict_recall:>9.3f} "
            f"{s.path_precision:>7.3f} {s.path_recall:>7.3f} {s.noise_rate:>11.3f} "
            f"{1000 * s.seconds / len(CASES):>8.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    scores = [evaluate(table, name) for name, table in RULE_SETS.items()]
    print(report(scores))
    for s in scores:
        if s.misses:
            print(f"\n{s.rules_name}: {len(s.misses)} pairs not exactly right")
            for miss in s.misses:
                print("  " + miss)
