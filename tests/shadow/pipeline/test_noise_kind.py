"""The write-time `noise_kind` and the readers' `shadow_noise_kind` macro agree."""

from __future__ import annotations

import duckdb
import pytest

from comparators.model import Difference, Kind
from shadow.pipeline.evaluate import noise_kind
from shadow.store import outcomes
from shadow.store.schema import migrate

PATHS = [
    "$", "$.a", "$[0]", "$.items[id=1].x", "$status", "$header.etag", "$body",
    "$ws[3].progress", "$ws.event[progress][2].progress", "$ws.ack[7]", "$ws.close",
    "$sse[4]", "$sse[1].data.x", "$sse[0].event",
]  # fmt: skip


@pytest.mark.parametrize("kind", list(Kind))
def test_python_and_sql_agree_on_what_noise_may_explain(kind: Kind) -> None:
    con = duckdb.connect()
    migrate(con)
    outcomes.install(con)
    for path in PATHS:
        [(sql,)] = con.execute("SELECT shadow_noise_kind(?, ?)", [kind.value, path]).fetchall()
        assert noise_kind(Difference(path, kind)) is sql, (kind, path)


def test_a_changed_value_in_a_message_may_be_noise() -> None:
    assert noise_kind(Difference("$ws[3].ts", Kind.VALUE_CHANGED))
    assert noise_kind(Difference("$sse[2].id", Kind.VALUE_CHANGED))
    assert not noise_kind(Difference("$sse[2]", Kind.REMOVED))
