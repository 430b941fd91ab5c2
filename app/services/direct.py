"""DM channels (type 1) between two users, and the guilds a user belongs to.

Discord's rule for bots: a DM can be opened only with a user who shares a guild with the caller (50007
otherwise, as for a user who does not exist, so the answer does not reveal who does). There is one DM channel
per pair of users; opening it again returns the same channel.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.domain import ChannelType, UserSnapshot
from app.errors import CannotMessageUser
from app.services.access import AccessService
from app.services.dispatch import SessionEvents
from app.services.wire import dm_channel_json
from models import Channel, DirectChannel, Guild, Member, User


class DirectService:
    def __init__(self, session: Session, ids, *, events: SessionEvents):
        self.session = session
        self.ids = ids
        self.events = events

    def open_dm(self, user: UserSnapshot, recipient_id: int) -> tuple[Channel, User]:
        low, high = sorted((user.id, recipient_id))
        recipient = self.session.get(User, recipient_id)
        if recipient is None or recipient_id == user.id or not self._share_a_guild(user.id, recipient_id):
            raise CannotMessageUser()
        existing = self._pair(low, high)
        if existing is not None:
            self.session.commit()
            return self.session.get(Channel, existing.channel_id), recipient
        channel = Channel(id=self.ids.next_id(), guild_id=None, type=ChannelType.DM, name="", position=0,
                          nsfw=False, rate_limit_per_user=0)
        self.session.add(channel)
        self.session.flush()
        self.session.add(DirectChannel(channel_id=channel.id, user_low_id=low, user_high_id=high))
        self.events.record(self.session, lambda dispatch: [dispatch.channel(
            "CHANNEL_CREATE", dm_channel_json(channel, [recipient]), guild_id=None, channel_id=channel.id)])
        try:
            self.session.commit()
        except IntegrityError:
            # Both users opened it at once: the other request's channel is the one.
            self.session.rollback()
            pair = self._pair(low, high)
            self.session.commit()
            return self.session.get(Channel, pair.channel_id), recipient
        return channel, recipient

    def _pair(self, low: int, high: int) -> DirectChannel | None:
        return self.session.scalars(select(DirectChannel).where(
            DirectChannel.user_low_id == low, DirectChannel.user_high_id == high)).first()

    def _share_a_guild(self, user_id: int, other_id: int) -> bool:
        theirs = aliased(Member)
        return self.session.execute(
            select(Member.guild_id).join(theirs, (theirs.guild_id == Member.guild_id) & (theirs.user_id == other_id))
            .where(Member.user_id == user_id).limit(1)).first() is not None

    def recipients(self, user: UserSnapshot, channel: Channel) -> list[User]:
        """The other user of a DM the caller may see (AccessService checked it)."""
        pair = self.session.get(DirectChannel, channel.id)
        other = self.session.get(User, pair.other(user.id))
        return [other] if other is not None else []

    def guilds(self, user: UserSnapshot, *, before: int | None, after: int | None, limit: int,
               with_counts: bool) -> list[tuple[Guild, int, int | None]]:
        """The caller's guilds by id (ascending, or the ``limit`` just before ``before``), with the caller's
        guild-wide permissions and, ``with_counts``, member counts."""
        query = select(Guild).join(Member, (Member.guild_id == Guild.id) & (Member.user_id == user.id))
        if after is not None:
            query = query.where(Guild.id > after)
        if before is not None:
            query = query.where(Guild.id < before)
        if before is not None and after is None:
            guilds = list(reversed(self.session.scalars(query.order_by(Guild.id.desc()).limit(limit)).all()))
        else:
            guilds = list(self.session.scalars(query.order_by(Guild.id).limit(limit)))
        counts: dict[int, int] = {}
        if with_counts and guilds:
            counts = dict(self.session.execute(select(Member.guild_id, func.count()).where(
                Member.guild_id.in_([g.id for g in guilds])).group_by(Member.guild_id)).all())
        access = AccessService(self.session)
        result = [(guild, access.guild_access(guild.id, user).permissions,
                   counts.get(guild.id) if with_counts else None) for guild in guilds]
        self.session.commit()
        return result
