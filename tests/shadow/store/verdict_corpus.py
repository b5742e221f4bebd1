"""A labelled corpus of shadow traffic, judged by the real outcome definition.

Each `Scenario` is the traffic of one endpoint with a secondary: many exchanges,
each labelled with the verdict a careful human expects (`differ`: the candidate
has a real problem here; `match`: it is fine). The answers are generated with
seeded randomness, so every run sees the same corpus:

- the legacy (primary and secondary alike) gives each request the same stable
  facts (`_facts`), and may add values that are fresh on every call (nonces,
  request ids, instants) or lists in a random order;
- the candidate answers like the legacy, except where a scenario makes it wrong.

`write` stores the exchanges through the real evaluator (`tests/store_builder`),
`judge` reads each exchange's verdict from `shadow_exchange_outcomes`, with the
reader's [[accepted]] entries of each scenario, and `score` counts a `differ`
as the predicted positive against the labels.

    python tests/shadow/store/verdict_corpus.py   # prints the table (from the repo root)
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from store_builder import ERROR, Call, write_store

from shadow.config.loader import Accepted
from shadow.store.writer import reading

MATCH, DIFFER = "match", "differ"
RUN = "r1"

Doc = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """One endpoint's exchanges, each with the verdict a careful human expects.

    `accepted`: the [[accepted]] entries of the reader's config (None: each run's
    own, and the store is always written without any). `limits`: indices of
    exchanges the rule cannot get right by its definition (see `LIMITS`).
    `known_bug`: the product judges this scenario wrongly by its own rules.
    """

    name: str
    category: str
    calls: tuple[Call, ...]
    labels: tuple[str, ...]
    accepted: tuple[Accepted, ...] | None = None
    limits: frozenset[int] = frozenset()
    known_bug: str | None = None

    @property
    def endpoint(self) -> str:
        return self.calls[0].endpoint

    @property
    def keys(self) -> tuple[str, ...]:
        """The request path of each exchange: unique in the corpus, whatever the order."""
        return tuple(str(c.path) for c in self.calls)


@dataclass(frozen=True)
class Expectation:
    """What a class must reach: precision and recall of `differ`, and accuracy."""

    precision: float = 1.0
    recall: float = 1.0
    accuracy: float = 1.0
    why: str = "the rule is exact here"


# --- generated answers -----------------------------------------------------------------------

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def _token(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


def _request_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _instant(rng: random.Random) -> str:
    moment = T0 + timedelta(milliseconds=rng.randrange(10**8))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _facts(seed: str, j: int, items: tuple[int, int] = (3, 7)) -> Doc:
    """What the legacy says about request `j`, the same on every call (`items`: how many
    records its list has, a range)."""
    r = random.Random(f"{seed}/facts/{j}")
    records = [
        {"id": k, "sku": f"sku-{r.randrange(10**5):05d}", "price": r.randrange(100, 10**4) / 100}
        for k in r.sample(range(1, 100), r.randrange(*items))
    ]
    return {
        "id": j,
        "name": f"customer-{r.randrange(10**6):06d}",
        "amount": r.randrange(100, 10**6) / 100,
        "currency": r.choice(["EUR", "USD", "GBP"]),
        "items": sorted(records, key=lambda i: i["id"]),
    }


def _volatile(doc: Doc, rng: random.Random) -> Doc:
    """`doc` with what the legacy makes fresh on every call."""
    return {**doc, "nonce": _token(rng), "requestId": _request_id(rng), "createdAt": _instant(rng)}


def _noisy(facts: Doc, rng: random.Random) -> Doc:
    """The legacy's usual answer: fresh values on every call and its items in random order."""
    return {**_volatile(facts, rng), "items": _shuffled(facts["items"], rng)}


def _shuffled(values: Sequence[Any], rng: random.Random) -> list[Any]:
    out = [dict(v) if isinstance(v, dict) else v for v in values]  # records of their own
    rng.shuffle(out)
    return out


def _labelled(
    name: str,
    category: str,
    size: int,
    answer: Callable[[int, random.Random], tuple[Any, Any, Any, str]],
    **extra: Any,
) -> Scenario:
    """A scenario of `size` exchanges; `answer(j, rng)` gives (primary, secondary, candidate,
    label) or, for a call with statuses, a `Call` in place of the primary."""
    rng = random.Random(f"{category}/{name}")
    slug = re.sub(r"[^a-z0-9]+", "-", f"{category} {name}".lower()).strip("-")
    endpoint = f"GET /api/{slug}/{{id}}"
    calls, labels = [], []
    for j in range(size):
        primary, secondary, candidate, label = answer(j, rng)
        if isinstance(primary, Call):
            call = primary
            call.endpoint, call.path, call.run_id = endpoint, f"/api/{slug}/{j}", RUN
        else:
            call = Call(endpoint, primary, candidate, secondary=secondary, path=f"/api/{slug}/{j}")
        calls.append(call)
        labels.append(label)
    return Scenario(f"{category}/{name}", category, tuple(calls), tuple(labels), **extra)


# --- the classes -----------------------------------------------------------------------------

RANDOM_ORDER = "random order"
VOLATILE = "volatile value"
DROPPED = "dropped volatile field"
RETYPED = "retyped volatile field"
SECONDARY_ERROR = "secondary error, candidate 500"
RARE = "rare real difference"
HALF_NOISY = "half-noisy field, candidate wrong"
ACCEPTED = "accepted (reader's entry)"
NOT_ACCEPTED = "accepted (without the entry)"
MIXTURE = "noise next to real"

EXPECTED: dict[str, Expectation] = {
    RANDOM_ORDER: Expectation(),
    VOLATILE: Expectation(),
    DROPPED: Expectation(),
    RETYPED: Expectation(),
    SECONDARY_ERROR: Expectation(),
    RARE: Expectation(),
    # exact since the rule overrules direct evidence where the statistics show the
    # candidate changing the field more often than the legacy varies (candidate_worse)
    HALF_NOISY: Expectation(),
    ACCEPTED: Expectation(),
    NOT_ACCEPTED: Expectation(),
    MIXTURE: Expectation(),
}
# Why an exchange may be judged against its label (the `limits` of a scenario).
LIMITS: dict[str, str] = {}


def random_order(size: int, shape: str) -> Scenario:
    """The legacy returns a list in a random order, every time; so does the candidate."""

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(shape, j, items=(6, 10))  # the same order twice: 1/720 at most
        items = facts["items"]
        lines = [{"sku": i["sku"], "qty": n + 1} for n, i in enumerate(items)]
        tags = [f"tag-{i['sku']}" for i in items]

        def make() -> Any:
            if shape == "keyed records":  # a keyed list: one `reordered` at $.items
                return {**facts, "items": _shuffled(items, rng)}
            if shape == "unkeyed records":  # no key: each moved record's fields change
                return {"id": j, "lines": _shuffled(lines, rng)}
            if shape == "scalars":
                return {"id": j, "tags": _shuffled(tags, rng)}
            return _shuffled(items, rng)  # the whole body is the list

        return make(), make(), make(), MATCH

    # The top-level list is one `reordered` at `$` itself (noise since `$` counts as the body).
    return _labelled(f"{shape} n={size}", RANDOM_ORDER, size, answer)


def volatile(size: int, where: str) -> Scenario:
    """nonce, requestId and createdAt are fresh on every call, on all three backends."""

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(where, j)

        def make() -> Doc:
            return _volatile_doc(facts, where, rng)

        return make(), make(), make(), MATCH

    return _labelled(f"{where} n={size}", VOLATILE, size, answer)


def _drop(doc: Doc, where: str) -> Doc:
    if where == "top level":
        return {k: v for k, v in doc.items() if k != "nonce"}
    if where == "nested meta":
        return {**doc, "meta": {k: v for k, v in doc["meta"].items() if k != "requestId"}}
    return {
        **doc,
        "items": [{k: v for k, v in i.items() if k != "createdAt"} for i in doc["items"]],
    }


def _retype(doc: Doc, where: str, rng: random.Random) -> Doc:
    if where == "top level":
        return {**doc, "requestId": rng.randrange(10**9)}
    if where == "nested meta":  # an instant as epoch milliseconds
        return {
            **doc,
            "meta": {**doc["meta"], "createdAt": 1_714_557_600_000 + rng.randrange(10**8)},
        }
    return {**doc, "items": [{**i, "nonce": rng.getrandbits(48)} for i in doc["items"]]}


def _volatile_doc(facts: Doc, where: str, rng: random.Random) -> Doc:
    if where == "top level":
        return _volatile(facts, rng)
    if where == "nested meta":
        return {**facts, "meta": _volatile({}, rng)}
    return {**facts, "items": [_volatile(i, rng) for i in facts["items"]]}


def dropped(size: int, where: str, gaps: float = 0.0) -> Scenario:
    """The candidate omits a field the legacy fills with a fresh value on every call.

    `gaps`: the share of its answers in which the legacy itself leaves the field out, so that
    the secondary shows the same `removed` now and then. A removed field is never noise: a
    differ wherever the primary sent the field (a match where it did not either).
    """

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(where, j)

        def legacy() -> Doc:
            doc = _volatile_doc(facts, where, rng)
            return _drop(doc, where) if rng.random() < gaps else doc

        primary = legacy()
        label = DIFFER if _drop(primary, where) != primary else MATCH
        return primary, legacy(), _drop(_volatile_doc(facts, where, rng), where), label

    gap = f", legacy omits it {gaps:.0%}" if gaps else ""
    return _labelled(f"{where}{gap} n={size}", DROPPED, size, answer)


def retyped(size: int, where: str, gaps: float = 0.0) -> Scenario:
    """The candidate returns a number where the legacy has a fresh string.

    `gaps`: the share of its answers in which the legacy sends null there instead (at the top
    level only), so that the secondary shows a `type_changed` too: never noise, all differ.
    """
    assert not gaps or where == "top level"

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(where, j)

        def legacy() -> Doc:
            doc = _volatile_doc(facts, where, rng)
            return {**doc, "requestId": None} if rng.random() < gaps else doc

        return legacy(), legacy(), _retype(_volatile_doc(facts, where, rng), where, rng), DIFFER

    gap = f", legacy sends null {gaps:.0%}" if gaps else ""
    return _labelled(f"{where}{gap} n={size}", RETYPED, size, answer)


def secondary_error(size: int, failures: int, secondary: str, together: bool) -> Scenario:
    """The secondary fails once (503 or no answer); the candidate answers 500 now and then.

    The exchange without a usable secondary still has its volatile values explained by the
    statistics over the others; `together`: that exchange is also one of the candidate's 500s.
    """
    rng = random.Random(f"{SECONDARY_ERROR}/{size}/{secondary}")
    broken = set(rng.sample(range(size), failures))
    lost = min(broken) if together else rng.choice([j for j in range(size) if j not in broken])

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(secondary, j)
        call = Call("", _noisy(facts, rng), _noisy(facts, rng), secondary=_noisy(facts, rng))
        if j in broken:
            call.candidate = {"error": "internal server error", "requestId": _request_id(rng)}
            call.candidate_status = 500
        if j == lost:
            if secondary == "503":
                call.secondary, call.secondary_status = {"error": "unavailable"}, 503
            else:
                call.secondary = ERROR
        return call, None, None, DIFFER if j in broken else MATCH

    name = f"secondary {secondary}{' on a 500' if together else ''}, {failures} x 500 n={size}"
    return _labelled(name, SECONDARY_ERROR, size, answer)


def rare(size: int, where: str) -> Scenario:
    """One request in 20 has a real difference in a field that is never noisy."""
    rng = random.Random(f"{RARE}/{where}/{size}")
    wrong = set(rng.sample(range(size), size // 20))

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(where, j)
        candidate = _noisy(facts, rng)
        if j in wrong:
            if where == "amount":
                candidate["amount"] = round(candidate["amount"] + 0.01, 2)
            elif where == "currency":
                candidate["currency"] = "CHF"
            else:  # the price of one item of the list in random order
                item = rng.choice(candidate["items"])
                item["price"] = round(item["price"] * 1.2, 2)
        return _noisy(facts, rng), _noisy(facts, rng), candidate, DIFFER if j in wrong else MATCH

    return _labelled(f"{where} n={size}", RARE, size, answer)


def half_noisy(size: int, where: str) -> Scenario:
    """The legacy refreshes a field on about half the requests; the candidate is always wrong.

    On the other half the legacy gives the same value on both calls. The candidate never
    gives the legacy's value: a human calls every exchange a differ.
    """
    rng = random.Random(f"{HALF_NOISY}/{where}/{size}")
    noisy = {j for j in range(size) if rng.random() < 0.5}

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(where, j)

        def value() -> str:
            return f"q-{_token(rng)}" if j in noisy else f"q-{j:04d}-stable"

        def make(quote: str) -> Doc:
            doc = _volatile(facts, rng)
            if where == "top level":
                return {**doc, "quote": quote}
            return {**doc, "pricing": {"quote": quote, "currency": facts["currency"]}}

        return make(value()), make(value()), make("q-0000-wrong"), DIFFER

    return _labelled(f"{where} n={size}", HALF_NOISY, size, answer)


def accepted(size: int, variant: str) -> list[Scenario]:
    """A known difference in past traffic: the store has no [[accepted]] entries; read with
    the reader's entry it is a match, read without it a differ.

    "another kind": the reader's entry names another kind, so it never applies.
    """
    rng = random.Random(f"{ACCEPTED}/{variant}/{size}")
    changed = (
        set(rng.sample(range(size), size // 2)) if variant == "list items" else set(range(size))
    )

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(variant, j)
        candidate = _noisy(facts, rng)
        if j in changed:
            if variant in ("exact path", "another kind"):
                candidate["currency"] = candidate["currency"].lower()
            else:  # the candidate no longer sends the sku of the items
                candidate["items"] = [
                    {k: v for k, v in i.items() if k != "sku"} for i in candidate["items"]
                ]
        return _noisy(facts, rng), _noisy(facts, rng), candidate, MATCH

    base = _labelled(f"{variant} n={size}", ACCEPTED, size, answer)
    endpoint = base.endpoint
    entry = {
        "exact path": Accepted(endpoint, "$.currency", "ISO codes in lower case", "value_changed"),
        "list items": Accepted(
            endpoint.replace("list-items", "list-*"), "$.items[*].sku", "sku dropped", "removed"
        ),
        "another kind": Accepted(endpoint, "$.currency", "only its removal is fine", "removed"),
    }[variant]
    fine = variant != "another kind"
    changed_label = MATCH if fine else DIFFER
    with_entry = Scenario(
        base.name,
        ACCEPTED,
        base.calls,
        tuple(changed_label if j in changed else MATCH for j in range(size)),
        accepted=(entry,),
    )
    without = Scenario(
        base.name.replace(ACCEPTED, NOT_ACCEPTED),
        NOT_ACCEPTED,
        base.calls,
        tuple(DIFFER if j in changed else MATCH for j in range(size)),
        accepted=None,
    )
    return [with_entry, without]


def mixture(size: int) -> Scenario:
    """Noise everywhere (fresh values, a list in random order) and, in some exchanges, a real
    difference of one of several kinds next to it."""
    rng = random.Random(f"{MIXTURE}/{size}")
    wrong = dict(
        zip(
            rng.sample(range(size), size // 3),
            ["amount", "price", "dropped name", "retyped id", "status", "added"] * size,
            strict=False,
        )
    )

    def answer(j: int, rng: random.Random) -> tuple[Any, Any, Any, str]:
        facts = _facts(MIXTURE, j)
        call = Call("", _noisy(facts, rng), _noisy(facts, rng), secondary=_noisy(facts, rng))
        candidate = call.candidate
        assert isinstance(candidate, dict)
        how = wrong.get(j)
        if how == "amount":
            candidate["amount"] = round(candidate["amount"] * 100, 2)
        elif how == "price":
            rng.choice(candidate["items"])["price"] = 0.0
        elif how == "dropped name":
            del candidate["name"]
        elif how == "retyped id":
            candidate["id"] = str(candidate["id"])
        elif how == "status":
            call.candidate_status = 201
        elif how == "added":
            candidate["debug"] = {"sql": "SELECT 1"}
        return call, None, None, DIFFER if how else MATCH

    return _labelled(f"n={size}", MIXTURE, size, answer)


def build() -> list[Scenario]:
    """The whole corpus (deterministic)."""
    out = [
        random_order(20, "keyed records"),
        random_order(40, "unkeyed records"),
        random_order(30, "scalars"),
        random_order(20, "top-level list"),
        volatile(20, "top level"),
        volatile(40, "nested meta"),
        volatile(30, "per item"),
        dropped(20, "top level"),
        dropped(30, "nested meta"),
        dropped(20, "per item"),
        dropped(30, "top level", gaps=0.25),
        retyped(20, "top level"),
        retyped(30, "nested meta"),
        retyped(20, "per item"),
        retyped(40, "top level", gaps=0.25),
        secondary_error(20, 2, "503", together=False),
        secondary_error(40, 4, "no answer", together=False),
        secondary_error(30, 3, "503", together=True),
        rare(20, "amount"),
        rare(40, "currency"),
        rare(60, "item price"),
        half_noisy(20, "top level"),
        half_noisy(40, "nested"),
        half_noisy(30, "top level"),
        *accepted(20, "exact path"),
        *accepted(40, "list items"),
        *accepted(20, "another kind"),
        mixture(20),
        mixture(30),
        mixture(60),
    ]
    names = [s.name for s in out]
    assert len(set(names)) == len(names), "scenario names must be unique"
    return out


# --- writing, judging, scoring ---------------------------------------------------------------


def calls_of(scenarios: Iterable[Scenario]) -> list[Call]:
    """Every exchange once (scenarios that read the same traffic share its calls)."""
    seen: dict[str, tuple[Call, ...]] = {}
    for s in scenarios:
        assert seen.setdefault(s.endpoint, s.calls) is s.calls, f"{s.endpoint} written twice"
    return [c for calls in seen.values() for c in calls]


def write(path: Path, calls: Sequence[Call]) -> str:
    """A store with `calls` in this order, judged by the real evaluator, no [[accepted]]."""
    return write_store(path, calls, config={})


Verdicts = dict[str, str]  # request path -> judged verdict


def judge(db: str, scenarios: Iterable[Scenario]) -> dict[str, Verdicts]:
    """Each scenario's judged verdict per exchange (by request path), read as its reader would:
    one connection per distinct set of the reader's [[accepted]] entries."""
    groups: dict[tuple[Accepted, ...] | None, list[Scenario]] = {}
    for s in scenarios:
        groups.setdefault(s.accepted, []).append(s)
    out: dict[str, Verdicts] = {}
    for entries, members in groups.items():
        with reading(db, accepted=entries) as con:
            found = dict(
                con.execute(
                    "SELECT path, verdict FROM shadow_exchange_outcomes(?)", [RUN]
                ).fetchall()
            )
        for s in members:
            out[s.name] = {key: str(found[key]) for key in s.keys}
    return out


@dataclass
class Score:
    """Confusion counts of `differ` (the positive) against the labels."""

    name: str
    scenarios: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    misses: list[str] = field(default_factory=list)  # "scenario #j: labelled X, judged Y"
    unexplained: list[str] = field(default_factory=list)  # misses that are no known limit

    @staticmethod
    def _ratio(num: int, den: int) -> float:
        return num / den if den else 1.0  # no positive predicted / labelled: nothing wrong

    @property
    def exchanges(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        return self._ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def accuracy(self) -> float:
        return self._ratio(self.tp + self.tn, self.exchanges)

    def add(self, scenario: Scenario, verdicts: Mapping[str, str]) -> None:
        self.scenarios += 1
        for j, (key, label) in enumerate(zip(scenario.keys, scenario.labels, strict=True)):
            got = verdicts[key]
            positive, predicted = label == DIFFER, got == DIFFER
            if positive and predicted:
                self.tp += 1
            elif predicted:
                self.fp += 1
            elif positive:
                self.fn += 1
            else:
                self.tn += 1
            if got != label:
                miss = f"{scenario.name} #{j} ({key}): labelled {label}, judged {got}"
                self.misses.append(miss)
                if j not in scenario.limits:
                    self.unexplained.append(miss)


def score(scenarios: Iterable[Scenario], judged: Mapping[str, Verdicts]) -> list[Score]:
    """One score per class (in corpus order), then the overall one."""
    by_class: dict[str, Score] = {}
    overall = Score("overall")
    for s in scenarios:
        by_class.setdefault(s.category, Score(s.category)).add(s, judged[s.name])
        overall.add(s, judged[s.name])
    return [*by_class.values(), overall]


def table(scores: Sequence[Score], footer: Sequence[str] = ()) -> str:
    """A text table of the figures, one row per class, the overall row last."""
    head = (
        f"{'class':<34} {'scen':>4} {'exch':>5} {'differ':>6} {'TP':>4} {'FP':>3} {'FN':>3} "
        f"{'TN':>4} {'P':>6} {'R':>6} {'acc':>6}  expected P/R/acc"
    )
    lines = [head, "-" * len(head)]
    for s in scores:
        want = EXPECTED.get(s.name)
        expected = f"{want.precision:.2f}/{want.recall:.2f}/{want.accuracy:.2f}" if want else ""
        lines.append(
            f"{s.name:<34} {s.scenarios:>4} {s.exchanges:>5} {s.tp + s.fn:>6} {s.tp:>4} {s.fp:>3} "
            f"{s.fn:>3} {s.tn:>4} {s.precision:>6.3f} {s.recall:>6.3f} {s.accuracy:>6.3f}  "
            f"{expected}"
        )
    return "\n".join([*lines, *footer])


def main() -> None:  # pragma: no cover - a convenience for people
    import tempfile

    scenarios = build()
    with tempfile.TemporaryDirectory() as tmp:
        judged = judge(write(Path(tmp) / "corpus.duckdb", calls_of(scenarios)), scenarios)
    scores = score([s for s in scenarios if not s.known_bug], judged)
    print(table(scores))
    for s in scores[:-1]:
        for miss in s.misses:
            print("  " + miss)


if __name__ == "__main__":  # pragma: no cover
    main()
