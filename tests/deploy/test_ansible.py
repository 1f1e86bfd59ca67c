"""ansible/: offline checks (syntax, ansible-lint's production profile, a --check --diff run) and
a real run of the flp_supernode role on localhost whose SuperNode joins a secured federation
and trains in a real job; a second run changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from fl_runtime.engine import flower_env
from fl_runtime.pki import default_hosts, init_pki
from fl_runtime.processes import ManagedProcess
from tests.auth.helpers import role_headers
from tests.deploy.ansible_run import ANSIBLE, local_inventory, playbook, recap
from tests.deploy.tools import tool


def test_syntax_check() -> None:
    result = playbook("--syntax-check", "-i", "inventory.example.yml", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile() -> None:
    env = {**os.environ, "PATH": os.pathsep.join([str(tool("python").parent), os.environ.get("PATH", "")])}
    result = subprocess.run(
        [str(tool("ansible-lint")), "--profile", "production", "--offline", "site.yml", "playbooks", "roles"],
        cwd=ANSIBLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output


def test_check_diff_run_changes_nothing_on_the_device(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "platform", ["localhost"])
    prefix = tmp_path / "device"
    inventory = local_inventory(tmp_path / "inventory.yml", prefix, pki.ca_cert, "http://127.0.0.1:9", "127.0.0.1:9")
    result = playbook("-i", str(inventory), "playbooks/supernodes.yml", "--check", "--diff")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert recap(output)["failed"] == 0 and recap(output)["changed"] > 0  # it would install the node
    assert "flower-supernode" in output and "--auth-supernode-private-key" in output  # the launcher's diff
    assert not prefix.exists()  # a check run writes nothing


@pytest.mark.flower
@pytest.mark.timeout(900)
async def test_role_installs_a_supernode_that_trains_in_a_real_job(tmp_path: Path) -> None:
    from tests.fl_runtime.conftest import serve_platform
    from tests.fleet.test_secure_fleet import until

    data = tmp_path / "flp"
    pki = init_pki(data, default_hosts())
    prefix = tmp_path / "device"
    async with serve_platform(data, "deployment", supernodes=0, flower_secure=True) as platform:
        settings = platform.server.container.settings
        token = role_headers(settings, "operator")["Authorization"].removeprefix("Bearer ")
        superlink = platform.runtime.engine.control_address
        inventory = local_inventory(tmp_path / "inventory.yml", prefix, pki.ca_cert, platform.server.url, superlink)
        env = {"FLP_OPERATOR_TOKEN": token}
        first = await asyncio.to_thread(playbook, "-i", str(inventory), "playbooks/supernodes.yml", env=env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert recap(first.stdout)["changed"] > 0
        key = prefix / "keys" / "supernode"
        assert key.stat().st_mode & 0o777 == 0o600 and (prefix / "ca.pem").read_bytes() == pki.ca_cert.read_bytes()
        node = (await platform.http.get("/fleet/nodes/edge-1")).json()
        assert node["status"] == "registered" and node["registered_by"].startswith("svc:test-operator")

        launcher = ManagedProcess(
            "device-edge-1", [str(prefix / "bin" / "flp-supernode")], flower_env(prefix / "home"), prefix / "node.log"
        )
        launcher.start()
        try:

            async def connected() -> bool:
                doc = (await platform.http.get("/fleet/nodes/edge-1")).json()
                return bool(doc["status"] == "connected")

            await until("edge-1 connected", connected)
            job_id = await platform.start_job(rounds=1, num_clients=1, min_clients=1)
            detail = await platform.wait_terminal(job_id, timeout_s=180)
            assert detail["status"] == "completed", [e["type"] for e in await platform.events(job_id)]
            node = (await platform.http.get("/fleet/nodes/edge-1")).json()
            assert detail["clients"] == [f"node-{node['flower_node_id']}"] and node["jobs"] == [job_id]

            second = await asyncio.to_thread(playbook, "-i", str(inventory), "playbooks/supernodes.yml", env=env)
            assert second.returncode == 0, second.stdout + second.stderr
            assert recap(second.stdout)["changed"] == 0, second.stdout  # idempotent
            assert launcher.running()  # and the running node was left alone
        finally:
            launcher.stop()


def test_platform_role_renders_a_valid_compose_stack(tmp_path: Path) -> None:
    """flp_platform on localhost (without the Docker steps, there is no engine here): the stack's
    files, its .env and the fleet override, which the Compose binary accepts together; a second
    run changes nothing."""
    from tests.deploy.tools import compose_config

    root = tmp_path / "opt-flp"
    inventory = tmp_path / "platform.yml"
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(tool("python")),
        "ansible_become": False,
        "flp_platform_root": str(root),
        "flp_platform_public_url": "https://flp.example.org",
        "flp_platform_ca_cert_dest": str(tmp_path / "ca.pem"),
    }
    inventory.write_text(json.dumps({"platform": {"hosts": {"localhost": host}}}))
    args = ("-i", str(inventory), "playbooks/platform.yml", "--skip-tags", "docker")
    first = playbook(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    compose = root / "compose"
    assert (compose / "secrets" / "jwt-secret").stat().st_mode & 0o777 == 0o600
    model = compose_config(compose / "docker-compose.yml", compose / "compose.fleet.yml")
    flp = model["services"]["flp"]
    env = flp["environment"]
    assert (env["FLP_FLOWER_SECURE"], env["FLP_FLOWER_HOST"], env["FLP_FLOWER_SUPERNODES"]) == ("true", "0.0.0.0", "0")
    assert [(p["published"], p["target"]) for p in flp["ports"]] == [("9093", 9093)]
    assert any(v["target"] == "/var/lib/flp" for v in flp["volumes"])
    second = playbook(*args)
    assert second.returncode == 0 and recap(second.stdout)["changed"] == 0, second.stdout
