"""What a search costs the database: a handful of statements, no key lookup once the key is known."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.embeddings.conftest import PROBES, photo
from tests.embeddings.search.conftest import search

# Inside the test's own transaction a request adds a savepoint, reads the outer
# tenant binding and puts it back (4 statements); on its own a request opens
# and commits its transaction instead. The budget is what remains: bind the
# tenant, the key versions, the vector query, the audit append (head lock +
# one insert-and-advance), and one spare for the HNSW settings on large tenants.
NESTING_STATEMENTS = 4
SEARCH_BUDGET = 6


def test_one_face_search_stays_within_its_statement_budget(enrolled, client_for):
    tenant, _ = enrolled
    client = client_for(tenant, ("searcher",))
    assert search(client, photo(PROBES / "obama1.jpg")).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = search(client, photo(PROBES / "obama1.jpg"))
    assert response.status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in statements if "tenants_apikey" in s], "the verified key should come from the cache"
    assert len([s for s in statements if "audit_" in s]) == 2, statements
    assert len(statements) <= NESTING_STATEMENTS + SEARCH_BUDGET, "\n".join(statements)
