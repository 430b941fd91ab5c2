"""GET /users/@me (the login probe), GET /oauth2/applications/@me, GET /users/{id}, and token handling."""
import pytest

from app.auth.tokens import _decode_id, revoke_token


def test_current_user_is_the_token_owner(client, make):
    alice = make.actor("alice")
    response = client.get("/api/v10/users/@me", headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == {
        "id": str(alice.id), "username": "alice", "discriminator": "0", "global_name": None, "avatar": None,
        "bot": True, "public_flags": 0, "flags": 0,
    }


def test_v9_serves_the_same_api(client, make):
    alice = make.actor()
    assert client.get("/api/v9/users/@me", headers=alice.headers).json["id"] == str(alice.id)


@pytest.mark.parametrize("header", [
    None, "", "Bot", "Bot ", "Bearer x", "Bot nodot", "Bot MTIz.", "Bot !!!.secret", "Bot MTIz.wrong-secret",
])
def test_missing_or_bad_token_is_401_in_discord_form(client, make, header):
    make.actor()
    headers = {} if header is None else {"Authorization": header}
    response = client.get("/api/v10/users/@me", headers=headers)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json == {"message": "401: Unauthorized", "code": 0}


def test_right_id_with_wrong_secret_is_rejected(client, make):
    alice = make.actor()
    token_part, _, secret = alice.token.partition(".")
    forged = f"{token_part}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert client.get("/api/v10/users/@me", headers={"Authorization": f"Bot {forged}"}).status_code == 401


def test_revoked_token_is_rejected(client, make, resources):
    alice = make.actor()
    assert client.get("/api/v10/users/@me", headers=alice.headers).status_code == 200
    with resources.session() as session:
        assert revoke_token(session, _decode_id(alice.token.split(".")[0]))
        session.commit()
    assert client.get("/api/v10/users/@me", headers=alice.headers).status_code == 401


def test_application_is_derived_from_the_bot(client, make):
    bot = make.actor("helper-bot")
    body = client.get("/api/v10/oauth2/applications/@me", headers=bot.headers).json
    for key in ("id", "name", "description", "icon", "bot_public", "bot_require_code_grant", "owner", "verify_key"):
        assert key in body
    assert body["id"] == str(bot.id) and body["owner"]["id"] == str(bot.id)


def test_get_user_by_id_and_unknown_user(client, make):
    alice, bob = make.actor("alice"), make.actor("bob")
    assert client.get(f"/api/v10/users/{bob.id}", headers=alice.headers).json["username"] == "bob"
    response = client.get("/api/v10/users/12345", headers=alice.headers)
    assert response.status_code == 404 and response.json["code"] == 10013


def test_unknown_route_and_wrong_method_are_json(client, make):
    alice = make.actor()
    response = client.get("/api/v10/no/such/route", headers=alice.headers)
    assert (response.status_code, response.headers["Content-Type"]) == (404, "application/json")
    assert response.json == {"message": "404: Not Found", "code": 0}
    response = client.delete("/api/v10/users/@me", headers=alice.headers)
    assert (response.status_code, response.json["code"]) == (405, 0)
