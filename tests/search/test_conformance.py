"""The contract of app.search.base.SearchEngine, on every engine (tests/search/conftest.py)."""
from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from app.search.base import (
    TOTAL_LIMIT,
    AuthorType,
    Delete,
    DeleteChannel,
    GuildCreated,
    Has,
    IndexState,
    SearchDocument,
    SearchQuery,
    SetPins,
    SortBy,
    Upsert,
)
from app.search.text import index_text, parse_query

GUILD, OTHER_GUILD = 1000, 2000
CHANNEL, SECOND_CHANNEL, OTHER_GUILD_CHANNEL = 10, 11, 20
ALICE, BOB, CAROL = 501, 502, 503
_ids = itertools.count(1_000_000)


def doc(content: str = "", *, message_id: int | None = None, guild_id: int = GUILD, channel_id: int = CHANNEL,
        author_id: int = ALICE, author_type: AuthorType = AuthorType.USER, **fields) -> SearchDocument:
    return SearchDocument(message_id=message_id or next(_ids), guild_id=guild_id, channel_id=channel_id,
                          author_id=author_id, author_type=author_type, text=index_text(content), **fields)


def index(engine, *documents: SearchDocument) -> list[SearchDocument]:
    engine.apply([Upsert(d) for d in documents])
    return list(documents)


def found(engine, **query) -> list[int]:
    return [hit.message_id for hit in engine.search(SearchQuery(guild_id=query.pop("guild_id", GUILD),
                                                                **query)).hits]


def content(text: str):
    return parse_query(text)


def ids(*documents: SearchDocument) -> list[int]:
    """Newest first, as a search answers by default."""
    return sorted((d.message_id for d in documents), reverse=True)


# -- content ---------------------------------------------------------------------------------------------------

def test_content_is_case_and_accent_insensitive_and_stemmed(search_engine):
    cafe, running, other = index(search_engine, doc("Meet at the Café tonight"), doc("I was RUNNING late"),
                                 doc("nothing to see"))
    assert found(search_engine, content=content("cafe")) == ids(cafe)
    assert found(search_engine, content=content("CAFÉ")) == ids(cafe)
    assert found(search_engine, content=content("run")) == ids(running)
    assert found(search_engine, content=content("runs")) == ids(running)
    # Stop words are kept: "the" finds the message that has it.
    assert found(search_engine, content=content("the")) == ids(cafe)


def test_every_word_must_match_and_phrases_keep_their_order(search_engine):
    both, one, reversed_ = index(search_engine, doc("red apple pie"), doc("red car"), doc("pie apple red"))
    assert found(search_engine, content=content("red apple")) == ids(both, reversed_)
    assert found(search_engine, content=content('"red apple"')) == ids(both)
    assert found(search_engine, content=content("red -apple")) == ids(one)
    assert found(search_engine, content=content('red -"apple pie"')) == ids(one, reversed_)


def test_cjk_is_found_by_characters_and_pairs(search_engine):
    tokyo, kyoto, korean = index(search_engine, doc("東京タワーに行きました"), doc("京都の寺"),
                                 doc("안녕하세요 여러분"))
    assert found(search_engine, content=content("東京")) == ids(tokyo)
    assert found(search_engine, content=content("京")) == ids(tokyo, kyoto)
    assert found(search_engine, content=content("東京タワー")) == ids(tokyo)
    assert found(search_engine, content=content("京都")) == ids(kyoto)
    assert found(search_engine, content=content("안녕")) == ids(korean)


def test_urls_and_mentions_are_words(search_engine):
    link, mention = index(search_engine, doc("see https://example.com/docs/page"), doc("hey <@123456789>"))
    assert found(search_engine, content=content("example.com")) == ids(link)
    assert found(search_engine, content=content("docs")) == ids(link)
    assert found(search_engine, content=content("123456789")) == ids(mention)


def test_a_query_without_words_matches_nothing(search_engine):
    index(search_engine, doc("!!! ???"), doc("hello"))
    assert search_engine.search(SearchQuery(guild_id=GUILD, content=content("!!!"))).total == 0
    assert search_engine.search(SearchQuery(guild_id=GUILD, content=content("-hello"))).total == 0


def test_search_stays_in_its_guild(search_engine):
    mine, _ = index(search_engine, doc("shared word"), doc("shared word", guild_id=OTHER_GUILD,
                                                          channel_id=OTHER_GUILD_CHANNEL))
    assert found(search_engine, content=content("shared")) == ids(mine)
    assert found(search_engine) == ids(mine)


# -- filters ---------------------------------------------------------------------------------------------------

def test_author_filters(search_engine):
    alice, bob, bot, hook = index(
        search_engine, doc("a", author_id=ALICE), doc("b", author_id=BOB),
        doc("c", author_id=CAROL, author_type=AuthorType.BOT),
        doc("d", author_id=CAROL, author_type=AuthorType.WEBHOOK))
    assert found(search_engine, author_ids=frozenset({ALICE})) == ids(alice)
    assert found(search_engine, author_ids=frozenset({ALICE, BOB})) == ids(alice, bob)
    assert found(search_engine, author_types=frozenset({AuthorType.BOT})) == ids(bot)
    assert found(search_engine, author_types=frozenset({AuthorType.USER, AuthorType.WEBHOOK})) == ids(alice, bob, hook)
    assert found(search_engine, excluded_author_types=frozenset({AuthorType.USER})) == ids(bot, hook)


def test_mention_filters(search_engine):
    to_bob, to_both, everyone, plain = index(
        search_engine, doc("x", mentions=(BOB,)), doc("y", mentions=(BOB, CAROL)),
        doc("z", mention_everyone=True), doc("w"))
    assert found(search_engine, mentions=frozenset({BOB})) == ids(to_bob, to_both)
    assert found(search_engine, mentions=frozenset({CAROL, ALICE})) == ids(to_both)
    assert found(search_engine, mention_everyone=True) == ids(everyone)
    assert found(search_engine, mention_everyone=False) == ids(to_bob, to_both, plain)


def test_has_filters_need_all_and_exclude_any(search_engine):
    link, embed_link, image, plain = index(
        search_engine, doc("l", has=Has.LINK), doc("e", has=Has.LINK | Has.EMBED),
        doc("i", has=Has.FILE | Has.IMAGE), doc("p"))
    assert found(search_engine, has=Has.LINK) == ids(link, embed_link)
    assert found(search_engine, has=Has.LINK | Has.EMBED) == ids(embed_link)
    assert found(search_engine, has_not=Has.LINK) == ids(image, plain)
    assert found(search_engine, has=Has.FILE, has_not=Has.VIDEO) == ids(image)
    assert found(search_engine, has=Has.POLL) == []


def test_pinned_channel_and_id_bounds(search_engine):
    first, second, third = index(search_engine, doc("m", pinned=True), doc("m", channel_id=SECOND_CHANNEL),
                                 doc("m"))
    assert found(search_engine, pinned=True) == ids(first)
    assert found(search_engine, pinned=False) == ids(second, third)
    assert found(search_engine, channel_ids=frozenset({SECOND_CHANNEL})) == ids(second)
    assert found(search_engine, channel_ids=frozenset()) == []
    assert found(search_engine, channel_ids=None) == ids(first, second, third)
    assert found(search_engine, min_id=first.message_id) == ids(second, third)
    assert found(search_engine, max_id=third.message_id) == ids(first, second)
    assert found(search_engine, min_id=first.message_id, max_id=third.message_id) == ids(second)


def test_filters_combine(search_engine):
    match, wrong_author, wrong_word, wrong_channel = index(
        search_engine, doc("deploy done", author_id=BOB, has=Has.LINK),
        doc("deploy done", author_id=ALICE, has=Has.LINK), doc("rollback", author_id=BOB, has=Has.LINK),
        doc("deploy done", author_id=BOB, has=Has.LINK, channel_id=SECOND_CHANNEL))
    assert found(search_engine, content=content("deploy"), author_ids=frozenset({BOB}), has=Has.LINK,
                 channel_ids=frozenset({CHANNEL})) == ids(match)


# -- order and paging ------------------------------------------------------------------------------------------

def test_sort_by_timestamp_both_ways(search_engine):
    documents = index(search_engine, *(doc(f"word {n}") for n in range(5)))
    assert found(search_engine, content=content("word")) == ids(*documents)
    assert found(search_engine, content=content("word"), descending=False) == sorted(ids(*documents))


def test_sort_by_relevance_ranks_more_matches_first(search_engine):
    weak, strong = index(search_engine, doc("apple " + "filler " * 40), doc("apple apple apple"))
    assert found(search_engine, content=content("apple"), sort_by=SortBy.RELEVANCE) == [strong.message_id,
                                                                                        weak.message_id]
    assert found(search_engine, content=content("apple"), sort_by=SortBy.RELEVANCE,
                 descending=False) == [weak.message_id, strong.message_id]
    # Without words there is nothing to rank: newest first.
    assert found(search_engine, sort_by=SortBy.RELEVANCE) == ids(weak, strong)


@pytest.mark.parametrize("sort_by", [SortBy.TIMESTAMP, SortBy.RELEVANCE])
def test_offset_paging_neither_repeats_nor_skips(search_engine, sort_by):
    documents = index(search_engine, *(doc("same words " * (1 + n % 3)) for n in range(23)))
    seen = []
    for offset in range(0, 30, 5):
        result = search_engine.search(SearchQuery(guild_id=GUILD, content=content("same"), sort_by=sort_by,
                                                  offset=offset, limit=5))
        assert result.total == 23
        seen.extend(hit.message_id for hit in result.hits)
    assert sorted(seen) == sorted(d.message_id for d in documents)
    assert len(seen) == len(set(seen))


def test_total_counts_up_to_the_bound_and_the_last_page_is_still_exact(search_engine):
    documents = index(search_engine, *(doc("many", channel_id=CHANNEL if n % 2 else SECOND_CHANNEL)
                                       for n in range(TOTAL_LIMIT + 7)))
    newest_first = ids(*documents)
    for query in ({"content": content("many")}, {},
                  {"content": content("many"), "channel_ids": frozenset({CHANNEL, SECOND_CHANNEL})}):
        first = search_engine.search(SearchQuery(guild_id=GUILD, **query))
        assert (first.total, [hit.message_id for hit in first.hits]) == (TOTAL_LIMIT, newest_first[:25])
        last = search_engine.search(SearchQuery(guild_id=GUILD, offset=TOTAL_LIMIT - 25, **query))
        assert (last.total, [hit.message_id for hit in last.hits]) == (TOTAL_LIMIT, newest_first[-32:-7])
    # Below the bound the count is exact, whichever page is asked for.
    oldest = newest_first[-30:]
    for offset in (0, 25, 40):
        result = search_engine.search(SearchQuery(guild_id=GUILD, content=content("many"), offset=offset,
                                                  max_id=oldest[0] + 1))
        assert (result.total, [hit.message_id for hit in result.hits]) == (30, oldest[offset:offset + 25])


def test_hits_carry_their_channel(search_engine):
    first, second = index(search_engine, doc("x"), doc("x", channel_id=SECOND_CHANNEL))
    hits = search_engine.search(SearchQuery(guild_id=GUILD)).hits
    assert {(h.message_id, h.channel_id) for h in hits} == {(first.message_id, CHANNEL),
                                                             (second.message_id, SECOND_CHANNEL)}


# -- changes ---------------------------------------------------------------------------------------------------

def test_an_edit_replaces_the_old_content_and_an_older_version_never_wins(search_engine):
    original = doc("old words", version=0)
    edited = replace(original, text=index_text("new words"), version=10)
    search_engine.apply([Upsert(original), Upsert(edited)])
    assert found(search_engine, content=content("old")) == []
    assert found(search_engine, content=content("new")) == [original.message_id]
    search_engine.apply([Upsert(original)])  # a late redelivery of the create
    assert found(search_engine, content=content("old")) == []
    assert found(search_engine, content=content("new")) == [original.message_id]


def test_applying_the_same_changes_twice_changes_nothing(search_engine):
    changes = [Upsert(doc("twice", mentions=(BOB,))), Upsert(doc("twice"))]
    search_engine.apply(changes)
    search_engine.apply(changes)
    assert search_engine.search(SearchQuery(guild_id=GUILD, content=content("twice"))).total == 2
    assert search_engine.search(SearchQuery(guild_id=GUILD, mentions=frozenset({BOB}))).total == 1


def test_a_deleted_message_stays_deleted(search_engine):
    gone, kept = index(search_engine, doc("secret"), doc("secret"))
    search_engine.apply([Delete((gone.message_id,))])
    assert found(search_engine, content=content("secret")) == [kept.message_id]
    search_engine.apply([Upsert(gone)])  # the create redelivered late
    assert found(search_engine, content=content("secret")) == [kept.message_id]
    state = search_engine.begin_reindex(GUILD, "owner")
    inserted = search_engine.add_missing(GUILD, [gone, kept], owner="owner", channel_cursor=CHANNEL,
                                         message_cursor=kept.message_id)
    assert (state.state, inserted) == (IndexState.INDEXING, 1)
    assert found(search_engine, content=content("secret")) == [kept.message_id]


def test_changes_apply_in_order_within_a_batch(search_engine):
    message = doc("brief")
    search_engine.apply([Upsert(message), Delete((message.message_id,)), Upsert(doc("later"))])
    assert found(search_engine, content=content("brief")) == []
    assert search_engine.search(SearchQuery(guild_id=GUILD)).total == 1


def test_pins_follow_the_channel(search_engine):
    first, second, elsewhere = index(search_engine, doc("p", pinned=True), doc("p"),
                                     doc("p", channel_id=SECOND_CHANNEL, pinned=True))
    search_engine.apply([SetPins(CHANNEL, frozenset({second.message_id}))])
    assert found(search_engine, pinned=True) == ids(second, elsewhere)


def test_deleting_a_channel_drops_its_documents(search_engine):
    _, kept = index(search_engine, doc("c"), doc("c", channel_id=SECOND_CHANNEL))
    search_engine.apply([DeleteChannel(CHANNEL)])
    assert found(search_engine) == [kept.message_id]


# -- guild states and reindexing -------------------------------------------------------------------------------

def test_guild_states(search_engine):
    assert search_engine.guild_index(GUILD) is None
    queued = search_engine.request_index(GUILD)
    assert (queued.state, queued.documents_indexed) == (IndexState.INDEXING, 0)
    assert search_engine.request_index(GUILD).state is IndexState.INDEXING
    search_engine.apply([GuildCreated(OTHER_GUILD), GuildCreated(GUILD)])
    assert search_engine.guild_index(OTHER_GUILD).state is IndexState.READY
    # A guild already queued keeps its state: its history still has to be rebuilt.
    assert search_engine.guild_index(GUILD).state is IndexState.INDEXING


def test_a_reindex_drops_the_guild_then_counts_and_checkpoints_each_batch(search_engine):
    stale, other = index(search_engine, doc("stale"), doc("other", guild_id=OTHER_GUILD,
                                                         channel_id=OTHER_GUILD_CHANNEL))
    search_engine.begin_reindex(GUILD, "me")
    assert found(search_engine) == []
    assert found(search_engine, guild_id=OTHER_GUILD) == [other.message_id]
    batch = [doc("one"), doc("two")]
    assert search_engine.add_missing(GUILD, batch, owner="me", channel_cursor=CHANNEL,
                                     message_cursor=batch[-1].message_id) == 2
    assert search_engine.add_missing(GUILD, batch, owner="me", channel_cursor=CHANNEL,
                                     message_cursor=batch[-1].message_id) == 0
    state = search_engine.guild_index(GUILD)
    assert (state.state, state.documents_indexed, state.channel_cursor, state.message_cursor, state.owner) == (
        IndexState.INDEXING, 2, CHANNEL, batch[-1].message_id, "me")
    assert search_engine.count_documents(GUILD) == 2
    search_engine.finish_reindex(GUILD)
    assert search_engine.guild_index(GUILD).state is IndexState.READY
    assert found(search_engine) == ids(*batch)
    assert stale.message_id not in found(search_engine)


def test_a_reindex_never_overwrites_what_the_indexer_wrote(search_engine):
    search_engine.begin_reindex(GUILD, "me")
    message = doc("edited text", version=5)
    search_engine.apply([Upsert(message)])
    search_engine.add_missing(GUILD, [replace(message, text=index_text("original text"), version=0)], owner="me",
                              channel_cursor=CHANNEL, message_cursor=message.message_id)
    assert found(search_engine, content=content("original")) == []
    assert found(search_engine, content=content("edited")) == [message.message_id]


def test_claiming_a_rebuild(search_engine):
    search_engine.request_index(GUILD)
    claimed = search_engine.claim_reindex("first", stale_seconds=60)
    assert (claimed.guild_id, claimed.owner) == (GUILD, "first")
    assert search_engine.claim_reindex("second", stale_seconds=60) is None
    # Its owner is silent for longer than the stale time: another takes it over.
    taken = search_engine.claim_reindex("second", stale_seconds=-1)
    assert (taken.guild_id, taken.owner) == (GUILD, "second")
    search_engine.finish_reindex(GUILD)
    assert search_engine.claim_reindex("third", stale_seconds=-1) is None


def test_tombstones_are_pruned_but_not_while_a_rebuild_that_may_need_them_runs(search_engine):
    message = doc("x")
    search_engine.begin_reindex(GUILD, "me")
    search_engine.apply([Upsert(message), Delete((message.message_id,))])
    # The rebuild began before the delete, so it may have read the message: the tombstone must stay.
    assert search_engine.prune_tombstones(datetime.now(timezone.utc) + timedelta(hours=1)) == 0
    search_engine.finish_reindex(GUILD)
    assert search_engine.prune_tombstones(datetime.now(timezone.utc) + timedelta(hours=1)) == 1
    search_engine.apply([Upsert(message)])
    assert found(search_engine) == [message.message_id]


def test_ping(search_engine):
    search_engine.ping()
