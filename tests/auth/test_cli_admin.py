"""`flp users`, `flp token issue` and FLP_TOKEN, as a user runs them against a data dir."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.auth.principal import Role
from api.auth.tokens import decode_token
from config.settings import Settings
from flp.cli import app as cli


def flp(data_dir: Path, *args: str, token: str | None = None, stdin: str | None = None) -> tuple[int, str]:
    env = {"FLP_DATA_DIR": str(data_dir), "FLP_FLOWER_MODE": "off", "COLUMNS": "200"}
    if token is not None:
        env["FLP_TOKEN"] = token
    result = CliRunner().invoke(cli, list(args), env=env, input=stdin)
    return result.exit_code, result.output


def test_users_and_tokens_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "flp"
    code, out = flp(data, "users", "add", "olga", "--role", "operator", "--password-stdin", stdin="olga's password\n")
    assert code == 0 and "olga" in out
    assert (data / "admin-credentials.json").exists()  # the first start generated the admin credential
    code, out = flp(data, "users", "list", "--json")
    assert code == 0
    assert {u["name"]: u["roles"] for u in json.loads(out)} == {"admin": ["admin"], "olga": ["operator"]}

    code, token = flp(data, "token", "issue", "--user", "olga")
    assert code == 0
    settings = Settings(data_dir=data)
    principal = decode_token(settings, token.strip())
    assert principal.subject == "olga" and principal.roles == {Role.OPERATOR}

    code, out = flp(data, "job", "start", "--job-id", "t1", "--runtime", "external", "--json", token=token.strip())
    assert code == 0 and json.loads(out)["events"][0]["metadata"]["actor"] == "olga"
    code, out = flp(data, "users", "list", token=token.strip())  # an operator is not an admin
    assert code == 1 and "403" in out

    code, out = flp(data, "token", "issue", "--service", "grafana", "--role", "viewer", "--json")
    viewer = json.loads(out)["access_token"]
    assert code == 0 and json.loads(out)["sub"] == "svc:grafana"
    code, out = flp(data, "job", "list", "--json", token=viewer)
    assert code == 0 and [j["job_id"] for j in json.loads(out)["items"]] == ["t1"]
    code, out = flp(data, "job", "cancel", "t1", token=viewer)
    assert code == 1 and "403" in out

    code, out = flp(data, "token", "issue", "--job", "t1", "--json")
    runtime = decode_token(settings, json.loads(out)["access_token"])
    assert runtime.kind == "runtime" and runtime.job_id == "t1" and runtime.subject == "runtime:t1"

    code, out = flp(data, "users", "remove", "olga")
    assert code == 0
    code, out = flp(data, "job", "list", token=token.strip())
    assert code == 1 and "401" in out


def test_token_issue_refuses_unknown_users_and_roles(tmp_path: Path) -> None:
    data = tmp_path / "flp"
    assert flp(data, "users", "list")[0] == 0
    assert flp(data, "token", "issue", "--user", "nobody")[0] == 1
    assert flp(data, "token", "issue", "--service", "x", "--role", "root")[0] == 2
    assert flp(data, "token", "issue", "--service", "x", "--role", "runtime")[0] == 2
    assert flp(data, "token", "issue")[0] == 2
