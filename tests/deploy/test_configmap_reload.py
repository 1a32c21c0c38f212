"""A mounted ConfigMap changes the way the kubelet writes it (its atomic writer): the
files go into a new hidden `..<timestamp>` folder, a `..data_tmp` symlink to it is
renamed over `..data`, then the old folder is removed. `gateway.toml` itself is a
symlink to `..data/gateway.toml` and never changes: the watcher must see through it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import aiohttp

from tests.config.test_reload import AiohttpServer, config_text, models, start, wait_for_models
from tests.conftest import Upstream


def kubelet_write(volume: Path, generation: int, text: str) -> None:
    """One update of the volume, step by step as the kubelet does it."""
    folder = volume / f"..2026_12_02_00_00_{generation:02d}.{1000 + generation}"
    folder.mkdir()
    (folder / "gateway.toml").write_text(text)
    data = volume / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    (volume / "..data_tmp").symlink_to(folder.name)
    os.rename(volume / "..data_tmp", data)
    if not (volume / "gateway.toml").is_symlink():
        (volume / "gateway.toml").symlink_to("..data/gateway.toml")
    if old is not None:
        shutil.rmtree(volume / old)


def generations(volume: Path) -> list[str]:
    return sorted(p.name for p in volume.iterdir() if p.name.startswith("..2026"))


async def test_each_configmap_update_is_reloaded(
    aiohttp_server: AiohttpServer, tmp_path: Path, upstream: Upstream
) -> None:
    kubelet_write(tmp_path, 1, config_text(upstream.base_url, "a"))
    server = await start(aiohttp_server, tmp_path / "gateway.toml", 0.1)
    async with aiohttp.ClientSession() as session:
        assert await models(session, server) == ["a"]
        kubelet_write(tmp_path, 2, config_text(upstream.base_url, "a,b"))
        await wait_for_models(session, server, ["a", "b"])
        # The next update, after the first one's folder is gone.
        kubelet_write(tmp_path, 3, config_text(upstream.base_url, "c"))
        await wait_for_models(session, server, ["c"])
        assert generations(tmp_path) == ["..2026_12_02_00_00_03.1003"]
