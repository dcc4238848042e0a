"""pks.cluster.FloodSync against the real Redis (127.0.0.1:6379, or PKS_TEST_REDIS): two
proxies (two instances' cores) share calls per second and bans; Redis unreachable, each
counts alone and says so."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from pks.cluster import FloodSync
from pks.forward.config import CoreConfig
from pks.net import Proto, SocketInfo
from pks.proxy import Proxy
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, PeerRow, TableRows
from pks.route.snapshot import build_snapshot

REDIS = os.environ.get("PKS_TEST_REDIS", "redis://127.0.0.1:6379/0")
PBX = "192.0.2.30"


def rows() -> TableRows:
    return TableRows(
        address=(AddressRow(1, 1, PBX, 32, 0, "pbx1"),),
        dialplan=(DialplanRow(1, 2, 1, 1, "^33", 0, "", "", "21"),),
        dispatcher=(DispatcherRow(1, 21, "sip:192.0.2.21", 0, 0, "", "gw"),),
        peers=(PeerRow(1, "customer", "pbx one", "pbx1", 21, max_cps=4),),
    )


def proxy(**config: object) -> Proxy:
    sock = SocketInfo("public", Proto.UDP, "192.0.2.1", 5060)
    core = Proxy((sock,), CoreConfig(**config), build_snapshot(rows()))  # type: ignore[arg-type]
    core.wall_offset = time.time() - asyncio.get_running_loop().time()
    return core


async def redis_up() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS}: {exc}")
        pytest.skip(f"no Redis at {REDIS}: {exc}")
    finally:
        await client.aclose()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[FloodSync, FloodSync]]:
    await redis_up()
    prefix = f"pks-test-{secrets.token_hex(4)}:"
    one = FloodSync(proxy(rate_peer_limit=3, ban_time=30), REDIS, "one", prefix)
    two = FloodSync(proxy(rate_peer_limit=3, ban_time=30), REDIS, "two", prefix)
    one.start()
    two.start()
    yield one, two
    await one.close()
    await two.close()


async def settle() -> None:
    await asyncio.sleep(0.35)  # three exchanges


def take(sync: FloodSync) -> bool:
    limits = sync.proxy.limits
    return limits.peers.take("pbx1", 4, int(time.time()))


async def test_calls_per_second_hold_for_the_cluster(pair: tuple[FloodSync, FloodSync]) -> None:
    one, two = pair
    while time.time() % 1 > 0.3:  # the whole exchange within one second
        await asyncio.sleep(0.02)
    assert take(one) and take(one) and take(one)
    await settle()
    assert two.reachable and one.reachable
    assert take(two)  # 3 + 1
    assert not take(two)  # the cluster's 5th in this second
    status = two.status()
    assert status["cluster"]["mode"] == "cluster" and status["cps_refused_peers"] == {"pbx1": 1}


async def test_a_ban_decided_by_one_holds_on_the_other(pair: tuple[FloodSync, FloodSync]) -> None:
    one, two = pair
    shield = one.proxy.gate.shield
    loop = asyncio.get_running_loop()
    for _ in range(4):
        stopped = shield.stops(PBX, b"INVITE sip:33 SIP/2.0\r\n", loop.time(), lambda h: True)
    assert stopped and shield.banned(PBX, loop.time())
    await settle()
    other = two.proxy.gate.shield
    assert other.banned(PBX, loop.time())
    assert [(b.address, b.origin) for b in other.bans()] == [(PBX, "cluster")]
    assert one.lift(PBX)  # pks ban rm: the whole cluster
    await settle()
    assert not other.banned(PBX, loop.time()) and not shield.banned(PBX, loop.time())


async def test_redis_unreachable_counts_locally_and_says_so() -> None:
    core = proxy()
    sync = FloodSync(core, "redis://127.0.0.1:1/0", "alone")
    sync.start()
    try:
        await asyncio.sleep(0.3)
        status = sync.status()["cluster"]
        assert status["mode"] == "local (Redis unreachable)" and status["reachable"] is False
        assert status["error"]
        assert all(take(sync) for _ in range(4)) and not take(sync)  # local counters work
    finally:
        await sync.close()
