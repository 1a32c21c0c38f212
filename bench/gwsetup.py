"""The gateway under test: its configs (from configs/*.in), its prompt canary and shadow
(set through the admin API, as an operator would), and what its /metrics says."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from procs import Abort, http

HERE = Path(__file__).resolve().parent
PROMPT = "bench-prompt"
PROMPT_EXTRA = '"prompt_variables":{"product":"Acme"}'
V2_MESSAGES = [
    {"role": "system", "content": "You answer questions about {{product}}, briefly and kindly."}
]
CANARY = {"v1": 90, "v2": 10}


@dataclass
class GatewayRun:
    """One gateway process (or supervisor) and how to reach it."""

    name: str
    port: int
    config: Path
    pid: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_url(self) -> str:
        return self.base + "/v1/chat/completions"


def render(values: dict[str, str], out: Path, workers: int = 1, capture: bool = False) -> Path:
    text = (HERE / "configs" / "gateway.toml.in").read_text()
    if capture:
        text += "\n" + (HERE / "configs" / "capture.toml").read_text()
    for key, value in {**values, "WORKERS": str(workers)}.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ValueError(f"unfilled placeholders in the config template: {sorted(set(left))}")
    out.write_text(text)
    return out


def check_config(path: Path) -> tuple[bool, str]:
    """`gateway check-config`: (accepted, the first line of its answer)."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    message = (done.stderr or done.stdout).strip().splitlines()
    return done.returncode == 0, message[0] if message else f"exit {done.returncode}"


def _admin(gw: GatewayRun, token: str, method: str, path: str, body: object) -> object:
    data = json.dumps(body).encode() if body is not None else None
    status, answer = http(method, gw.base + "/admin" + path, data, token, timeout=10)
    if status >= 300:
        raise Abort(f"{gw.name}: {method} /admin{path} -> HTTP {status}: {answer[:300]!r}")
    return json.loads(answer) if answer else None


def setup_canary(gw: GatewayRun, token: str) -> None:
    """v2 pushed and approved, then weights v1=90 v2=10 (no shadow yet)."""
    pushed = _admin(
        gw,
        token,
        "POST",
        f"/prompts/{PROMPT}/versions",
        {"model": "bench-model", "messages": V2_MESSAGES, "params": {"temperature": 0.2}},
    )
    version = pushed["version"] if isinstance(pushed, dict) else None
    if version != "v2":
        raise Abort(f"{gw.name}: expected the pushed version to be v2, got {pushed!r}")
    _admin(gw, token, "POST", f"/prompts/{PROMPT}/versions/v2/approve", {"by": "bench"})
    set_shadow(gw, token, 0.0)


def set_shadow(gw: GatewayRun, token: str, sample_rate: float) -> None:
    body: dict[str, object] = {"weights": CANARY, "reason": "make bench", "by": "bench"}
    if sample_rate > 0:
        body["shadow"] = {"versions": ["v2"], "sample_rate": sample_rate}
    _admin(gw, token, "PUT", f"/prompts/{PROMPT}/routing", body)


def reset_routing(gw: GatewayRun, token: str) -> None:
    """Back to v1 only, no shadow: the memory runs measure the plain path."""
    body = {"weights": {"v1": 100}, "reason": "make bench done", "by": "bench"}
    _admin(gw, token, "PUT", f"/prompts/{PROMPT}/routing", body)


def metric_total(gw: GatewayRun, name: str) -> float | None:
    """Sum of a metric's samples on /metrics; None when it has no samples at all."""
    status, text = http("GET", gw.base + "/metrics", timeout=10)
    if status != 200:
        return None
    total, seen = 0.0, False
    for line in text.decode(errors="replace").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            seen = True
            total += float(line.rsplit(" ", 1)[1])
    return total if seen else None


def captured(directory: Path) -> int:
    """Records in the capture files (JSON lines) under `directory`."""
    total = 0
    for f in directory.glob("*.jsonl*"):
        with f.open("rb") as fh:
            total += sum(1 for _ in fh)
    return total
