"""Factories that build rows through the same code paths the service uses, and an authenticated client."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import count

from app.auth.permissions import Permission
from app.auth.tokens import issue_access_token, issue_token
from app.services.dispatch import NO_EVENTS
from app.services.guilds import GuildService
from models import Channel, Member, MemberRole, PermissionOverwrite, Role, User

_names = count(1)


@dataclass
class Actor:
    """A user with a live token; ``headers`` authenticate requests as them."""

    user: User
    token: str

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bot {self.token}"}


class Factory:
    def __init__(self, resources):
        self.resources = resources

    def session(self):
        return self.resources.session()

    def actor(self, username: str | None = None, bot: bool = True) -> Actor:
        with self.session() as session:
            user = User(id=self.resources.ids.next_id(), username=username or f"user{next(_names)}", bot=bot,
                        created_at=datetime.now(timezone.utc))
            session.add(user)
            session.flush()
            issued = issue_token(session, self.resources.ids.next_id(), user.id)
            session.commit()
            return Actor(user=user, token=issued.value)

    def grant(self, user: Actor, client: Actor, scopes: tuple[str, ...] = ("guilds.join",),
              lifetime: timedelta = timedelta(days=7)) -> str:
        """An access token by which ``user`` lets ``client`` act for them within ``scopes``."""
        with self.session() as session:
            issued = issue_access_token(session, self.resources.ids.next_id(), user.id, client.id, scopes, lifetime)
            session.commit()
            return issued.value

    def guild(self, owner: Actor, name: str = "test guild", everyone: int | None = None):
        """A guild owned by ``owner``; returns (guild_id, general_channel_id)."""
        with self.session() as session:
            guilds = GuildService(session, self.resources.ids, events=NO_EVENTS)
            guild = guilds.create_guild(session.get(User, owner.id), name)
            if everyone is not None:
                session.get(Role, guild.id).permissions = everyone
            channel_id = session.query(Channel.id).filter(Channel.guild_id == guild.id).scalar()
            session.commit()
            return guild.id, channel_id

    def member(self, guild_id: int, actor: Actor, roles: list[int] = ()) -> None:
        with self.session() as session:
            session.add(Member(guild_id=guild_id, user_id=actor.id, joined_at=datetime.now(timezone.utc)))
            session.flush()
            session.add_all(MemberRole(guild_id=guild_id, user_id=actor.id, role_id=r) for r in roles)
            session.commit()

    def role(self, guild_id: int, permissions: int = 0, position: int = 1, name: str = "role") -> int:
        with self.session() as session:
            role = Role(id=self.resources.ids.next_id(), guild_id=guild_id, name=name, permissions=int(permissions),
                        position=position)
            session.add(role)
            session.commit()
            return role.id

    def channel(self, guild_id: int, name: str = "channel", type_: int = 0) -> int:
        with self.session() as session:
            channel = Channel(id=self.resources.ids.next_id(), guild_id=guild_id, name=name, type=type_)
            session.add(channel)
            session.commit()
            return channel.id

    def overwrite(self, channel_id: int, target_id: int, type_: int, allow: int = 0, deny: int = 0) -> None:
        with self.session() as session:
            session.merge(PermissionOverwrite(channel_id=channel_id, target_id=target_id, type=type_,
                                              allow=int(allow), deny=int(deny)))
            session.commit()


ALL = Permission.ALL
