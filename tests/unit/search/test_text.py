"""The tokenizer every engine shares (app/search/text.py), and the documents made from message objects."""
import pytest

from app.search.base import AuthorType, Has
from app.search.documents import document_of
from app.search.text import Clause, fold, index_text, parse_query, tokens


@pytest.mark.parametrize(("text", "folded"), [
    ("Café", "cafe"), ("STRASSE", "strasse"), ("Straße", "strasse"), ("ＦＵＬＬ", "full"), ("ﬁne", "fine"),
    ("Ελληνικά", "ελληνικα"), ("Пётр", "петр"),
    # The voicing mark of kana is a different sound, not an accent: kept.
    ("ガ", "ガ"),
])
def test_fold(text, folded):
    assert fold(text) == folded


def test_words_split_on_punctuation_and_underscores():
    assert tokens("see https://example.com/a_b, <@123>!") == ["see", "https", "example", "com", "a", "b", "123"]


def test_cjk_runs_become_characters_and_pairs():
    assert tokens("東京タワー") == ["東", "京", "タ", "ワ", "ー", "東京", "京タ", "タワ", "ワー"]
    assert tokens("abc東京") == ["abc", "東", "京", "東京"]
    assert index_text("Hi 東京") == "hi 東 京 東京"


def test_queries():
    assert parse_query('Red "apple pie" -Green').clauses == (
        Clause(("red",)), Clause(("apple", "pie"), phrase=True), Clause(("green",), negated=True))
    assert parse_query("東京タワー").clauses == (Clause(("東京", "京タ", "タワ", "ワー")),)
    assert parse_query("東").clauses == (Clause(("東",)),)
    assert parse_query("?!").matches_nothing
    assert parse_query("-only").matches_nothing


def test_query_renderings_quote_every_term():
    query = parse_query('and "or not" -near')
    assert query.fts5() == '("and") AND ("or not") NOT ("near")'
    assert query.websearch() == 'and "or not" -near'
    assert query.simple_query_string() == '+and +"or not" -near'


def test_documents_from_message_objects():
    document = document_of(7, {
        "id": "11", "channel_id": "12", "content": "look https://x.org", "author": {"id": "13", "bot": True},
        "mentions": [{"id": "15"}, {"id": "14"}], "mention_everyone": True,
        "embeds": [{"type": "rich"}], "attachments": [{"content_type": "image/png"}, {"content_type": "audio/ogg"}],
        "sticker_items": [{"id": "1"}], "poll": {"question": {}}, "pinned": True,
        "edited_timestamp": "2026-01-01T00:00:00.000001+00:00"})
    assert (document.message_id, document.guild_id, document.channel_id, document.author_id) == (11, 7, 12, 13)
    assert document.author_type is AuthorType.BOT
    assert document.mentions == (14, 15) and document.mention_everyone and document.pinned
    assert document.has == Has.LINK | Has.EMBED | Has.FILE | Has.IMAGE | Has.SOUND | Has.STICKER | Has.POLL
    assert document.version == 1767225600000001
    assert document_of(7, {"id": 1, "channel_id": 2, "author": {"id": 3}, "webhook_id": "9"}).author_type \
        is AuthorType.WEBHOOK
