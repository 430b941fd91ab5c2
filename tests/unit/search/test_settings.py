"""Search settings: the engine defaults to the database's kind, and PostgreSQL's engine needs PostgreSQL."""
import pytest

from config import SettingsError, load_settings


def test_the_engine_follows_the_database_by_default():
    assert load_settings({}).search_backend == "sqlite"
    assert load_settings({"DATABASE_URL": "postgresql://u@h/db"}).search_backend == "postgres"
    assert load_settings({"SEARCH_ENGINE": "sqlite", "DATABASE_URL": "postgresql://u@h/db"}).search_backend == "sqlite"


def test_search_is_off_without_an_event_stream_or_when_asked():
    assert not load_settings({"EVENT_BUS": "off"}).search_enabled
    assert not load_settings({"SEARCH_ENGINE": "off"}).search_enabled
    assert load_settings({}).search_enabled


def test_bad_search_settings_are_refused():
    with pytest.raises(SettingsError) as refused:
        load_settings({"SEARCH_ENGINE": "postgres", "SEARCH_INDEXER": "thread", "SEARCH_ELASTICSEARCH_URL": "es:9200",
                       "SEARCH_ELASTICSEARCH_INDEX": "Bad Name"})
    problems = "\n".join(refused.value.problems)
    for name in ("SEARCH_INDEXER", "SEARCH_ELASTICSEARCH_URL", "SEARCH_ELASTICSEARCH_INDEX"):
        assert name in problems


def test_postgres_search_needs_postgres():
    with pytest.raises(SettingsError, match="SEARCH_ENGINE=postgres"):
        load_settings({"SEARCH_ENGINE": "postgres"})


def test_the_sqlite_index_lives_beside_the_database():
    settings = load_settings({"DATABASE_URL": "sqlite:////data/chat.sqlite3"})
    assert str(settings.search_index_path) == "/data/chat.search.sqlite3"
    assert str(load_settings({"SEARCH_SQLITE_PATH": "/x/i.db"}).search_index_path) == "/x/i.db"
