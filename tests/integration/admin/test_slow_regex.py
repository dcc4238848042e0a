"""Writes through the admin API refuse a rule whose regex can take exponential time, with a
4xx that names the problem, and write nothing (docs/security.md)."""

from __future__ import annotations

import httpx


async def tables(api: httpx.AsyncClient) -> object:
    return (await api.get("/api/v1/dialplan")).json()


async def test_a_rule_that_can_hang_the_proxy_is_refused(api: httpx.AsyncClient) -> None:
    before = await tables(api)
    rule = {"dpid": 2, "match_exp": "^(3+)+$", "attrs": "21"}
    resp = await api.post("/api/v1/dialplan", json=rule)
    assert resp.status_code == 422, resp.text
    assert "can take exponential time to match" in resp.text
    assert await tables(api) == before
    rule = {"dpid": 2, "match_exp": "^3+$", "attrs": "21"}  # the same numbers, matched once
    assert (await api.post("/api/v1/dialplan", json=rule)).status_code == 201


async def test_a_customer_number_that_can_hang_the_proxy_is_refused(
    api: httpx.AsyncClient,
) -> None:
    customer = {
        "name": "acme",
        "sources": ["192.0.2.10:5060"],
        "gateways": ["sip:192.0.2.10:5060"],
        "socket": "ipbx",
        "dids": ["re:^(\\d|\\d\\d)+$"],
    }
    resp = await api.post("/api/v1/customers", json=customer)
    assert 400 <= resp.status_code < 500, resp.text
    assert "can take exponential time to match" in resp.text
    assert (await api.get("/api/v1/customers")).json() == []
