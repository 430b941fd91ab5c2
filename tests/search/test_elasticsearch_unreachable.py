"""The Elasticsearch engine without a server (the conformance suite needs TEST_ELASTICSEARCH_URL): an unreachable
cluster is SearchUnavailable (503 with Retry-After), never a driver exception."""
import pytest

from app.search.base import SearchDocument, SearchQuery, SearchUnavailable, Upsert
from app.search.elasticsearch import ElasticsearchSearchEngine
from tests.support.server import free_port


@pytest.fixture
def unreachable():
    engine = ElasticsearchSearchEngine.from_url(f"http://127.0.0.1:{free_port()}", "chatstore-unreachable")
    engine.client = engine.client.options(request_timeout=2, max_retries=0)
    yield engine
    engine.close()


def test_an_unreachable_cluster_is_unavailable(unreachable):
    with pytest.raises(SearchUnavailable):
        unreachable.ping()
    with pytest.raises(SearchUnavailable):
        unreachable.search(SearchQuery(guild_id=1))
    with pytest.raises(SearchUnavailable):
        unreachable.apply([Upsert(SearchDocument(message_id=1, guild_id=1, channel_id=2, author_id=3,
                                                 author_type=0, text="x"))])
