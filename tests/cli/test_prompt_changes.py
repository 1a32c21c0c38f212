"""`gateway prompts label|diff|runbook|history|rollback|push` as processes against a
gateway on loopback: what they print, and what they change in the gateway."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from tests.admin.test_runbook import TOKENS, V2, Team, config
from tests.conftest import Gateway, Upstream


@pytest.fixture
async def team(
    gateway_factory: Callable[[str], Awaitable[Gateway]], upstream: Upstream
) -> AsyncIterator[Team]:
    gw = await gateway_factory(config(upstream.base_url))
    async with aiohttp.ClientSession() as session:
        yield Team(gw, session)


async def prompts(
    team: Team, who: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "prompts",
        *args,
        "--url",
        team.gw.url(""),
        "--token",
        TOKENS[who],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=50)
    return process.returncode or 0, out.decode(), err.decode()


async def test_label_set_refused_for_a_protected_label_and_deleted(team: Team) -> None:
    await team.alice.call("POST", "/prompts/support/versions", V2)
    code, _, err = await prompts(team, "alice", "label", "support", "production", "v1")
    assert code == 4 and "403" in err and "needs the approver role" in err
    code, out, _ = await prompts(team, "bob", "label", "support", "production", "v1")
    assert code == 0 and out.startswith("support: production → v1 (h")
    code, out, _ = await prompts(team, "bob", "label", "support", "staging", "v2")  # a draft
    assert code == 0 and "staging → v2" in out
    _, state = await team.carol.call("GET", "/prompts/support")
    assert state["labels"] == {"production": "v1", "staging": "v2"}
    code, out, _ = await prompts(team, "bob", "label", "support", "staging", "--delete")
    assert code == 0 and "staging removed" in out
    _, state = await team.carol.call("GET", "/prompts/support")
    assert state["labels"] == {"production": "v1"}
    code, _, err = await prompts(team, "bob", "label", "support", "staging", "v2", "--delete")
    assert code == 2 and "not both" in err


async def test_diff_prints_the_unified_diff_without_colour_into_a_pipe(team: Team) -> None:
    await team.alice.call("POST", "/prompts/support/versions", V2)
    code, out, _ = await prompts(team, "carol", "diff", "support", "v1", "v2")
    _, answer = await team.carol.call("GET", "/prompts/support/diff?from=v1&to=v2")
    assert code == 0 and out == answer["diff"]
    assert "+  You answer briefly for {{product}}." in out and "\x1b[" not in out
    code, out, _ = await prompts(team, "carol", "diff", "support", "v1", "v1")
    assert code == 0 and out == "support: v1 and v1 are the same\n"
    code, _, err = await prompts(team, "carol", "diff", "support", "v1", "v7")
    assert code == 4 and "404" in err


async def test_diff_is_coloured_on_a_terminal(team: Team) -> None:
    await team.alice.call("POST", "/prompts/support/versions", V2)
    main, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "prompts",
        "diff",
        "support",
        "v1",
        "v2",
        "--url",
        team.gw.url(""),
        "--token",
        TOKENS["carol"],
        stdout=secondary,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    os.close(secondary)
    await asyncio.wait_for(process.wait(), timeout=50)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert process.returncode == 0
    text = shown.decode()
    assert "\x1b[31m-  You answer for {{product}}.\x1b[0m" in text
    assert "\x1b[32m+  You answer briefly for {{product}}.\x1b[0m" in text


async def test_runbook_printed_and_written_to_a_file(team: Team, tmp_path: Path) -> None:
    code, out, _ = await prompts(team, "carol", "runbook", "support")
    assert code == 0 and out.startswith("# Runbook: prompt `support`\n")
    assert "**Owner:** Dana Reyes (support team)" in out
    assert "## Rollback" in out and "# nothing to undo" in out  # one routing so far
    target = tmp_path / "support.md"
    code, out, err = await prompts(team, "carol", "runbook", "support", "-o", str(target))
    assert code == 0 and out == "" and str(target) in err
    _, _, served = await team.carol.text("/prompts/support/runbook")

    def body(text: str) -> list[str]:  # all but the line with the time it was made
        return [line for line in text.splitlines() if not line.startswith("_Generated")]

    assert body(target.read_text()) == body(served)


async def test_history_prints_local_times_ids_kinds_and_reasons(team: Team) -> None:
    await team.alice.call("POST", "/prompts/support/versions", V2)
    _, history = await team.carol.call("GET", "/prompts/support/history")
    india = timezone(timedelta(hours=5, minutes=30))
    code, out, _ = await prompts(team, "carol", "history", "support", env={"TZ": "IST-5:30"})
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(history["history"])
    for entry, line in zip(history["history"], lines, strict=True):
        local = datetime.fromisoformat(entry["at"]).astimezone(india)
        assert line.startswith(local.strftime("%Y-%m-%d %H:%M:%S IST"))
        assert entry["id"] in line and entry["kind"] in line and entry["by"] in line
        assert (entry["reason"] or "") in line
    assert "pushed" in lines[0] and V2["note"] in lines[0] and "alice" in lines[0]


async def test_rollback_undo_and_to_an_entry(team: Team) -> None:
    await team.alice.call("POST", "/prompts/support/versions", V2)
    await team.bob.call("POST", "/prompts/support/versions/v2/approve", {})
    for weights in ({"v1": 50, "v2": 50}, {"v2": 100}):
        status, _ = await team.bob.call("PUT", "/prompts/support/routing", {"weights": weights})
        assert status == 200
    _, history = await team.carol.call("GET", "/prompts/support/history")
    first = [e for e in history["history"] if e["kind"] == "routing"][-1]  # from the config
    code, out, _ = await prompts(team, "bob", "rollback", "support", "--reason", "too slow")
    assert code == 0 and "routing now v1=50 v2=50" in out
    code, out, _ = await prompts(team, "bob", "rollback", "support", "--to", first["id"])
    assert code == 0 and "routing now v1=100" in out
    _, state = await team.carol.call("GET", "/prompts/support")
    assert state["routing"]["weights"] == {"v1": 100}
    _, history = await team.carol.call("GET", "/prompts/support/history")
    assert [e["by"] for e in history["history"][:2]] == ["bob", "bob"]  # from the token
    code, _, err = await prompts(team, "alice", "rollback", "support")
    assert code == 4 and "403" in err
    code, _, err = await prompts(team, "bob", "rollback", "support", "--by", "mallory")
    assert code == 2 and "--by" in err  # who acts is the token's identity, never a flag


async def test_push_sends_every_field_of_the_file(team: Team, tmp_path: Path) -> None:
    file = tmp_path / "prompts.toml"
    file.write_text(
        "[prompts.support]\n"
        'model = "chat"\n'
        'note = "pinned to the spare model"\n'
        'description = "Answers about one product."\n'
        'owner = "Lee (platform)"\n'
        'known_issues = "None known."\n'
        'runbook_notes = "Spare model only."\n'
        'require_suite = "smoke"\n'
        'messages = [{ role = "system", content = "Hi {{product}}." }]\n'
        "params = { temperature = 0.1 }\n"
        'targets = [{ provider = "fake", model = "mock-spare" }]\n'
    )
    code, out, err = await prompts(team, "alice", "push", str(file))
    assert code == 0 and "support: v2 (draft" in out, err
    assert "require_suite not sent" in err  # a config-file gate, said aloud
    _, state = await team.carol.call("GET", "/prompts/support")
    v2 = state["versions"][1]
    assert v2["note"] == "pinned to the spare model"
    assert v2["targets"] == [{"provider": "fake", "model": "mock-spare"}]
    assert v2["params"] == {"temperature": 0.1} and v2["created_by"] == "alice"
    assert (state["description"], state["owner"]) == (
        "Answers about one product.",
        "Lee (platform)",
    )
    assert (state["known_issues"], state["runbook_notes"]) == ("None known.", "Spare model only.")
    file.write_text('[prompts.support]\nmodel = "chat"\nmessages = []\ncolour = "red"\n')
    code, _, err = await prompts(team, "alice", "push", str(file))
    assert code == 4 and "400" in err  # an unknown field reaches the gateway, which names it


async def test_the_abort_command_a_runbook_gives_for_a_running_rollout_works(team: Team) -> None:
    await team.alice.call("POST", "/prompts/support/versions", V2)
    await team.bob.call("POST", "/prompts/support/versions/v2/approve", {})
    plan = {"version": "v2", "steps": [10, 100], "interval_s": 3600}
    status, _ = await team.bob.call("POST", "/prompts/support/rollout", plan)
    assert status in (200, 201)
    _, _, text = await team.carol.text("/prompts/support/runbook")
    assert "# the rollout of v2 is running: abort it, which restores its baseline v1=100" in text
    assert "\ngateway rollout abort support\n" in text
    assert "--to before_rollout" not in text  # refused while it runs
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "rollout",
        "abort",
        "support",
        "--url",
        team.gw.url(""),
        "--token",
        TOKENS["bob"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=50)
    assert process.returncode == 0, err.decode()
    _, state = await team.carol.call("GET", "/prompts/support")
    assert {v: w for v, w in state["routing"]["weights"].items() if w} == {"v1": 100}
    _, history = await team.carol.call("GET", "/prompts/support/history")
    assert history["history"][0]["by"] in ("bob", "rollout")
