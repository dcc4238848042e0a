"""REST resources against the real server over loopback HTTP: validation before any write
(a refused request changes nothing), writes live right after commit, customers and
providers whole, explanations that do not move round-robin counters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pks.admin.serve import AdminError, start_admin
from pks.config import Settings
from pks.server import Server
from servers import free_tcp_port

from .conftest import SEED_ADDRESS, SEED_DIALPLAN


async def export(api: httpx.AsyncClient) -> dict[str, str]:
    resp = await api.get("/api/v1/export")
    assert resp.status_code == 200
    return dict(resp.json())


async def refused(api: httpx.AsyncClient, method: str, path: str, body: Any, status: int) -> str:
    """Send a request that must be refused with ``status``; the tables must be unchanged."""
    before = await export(api)
    resp = await api.request(method, path, json=body)
    assert resp.status_code == status, resp.text
    assert await export(api) == before
    answer = resp.json()
    return "\n".join([str(answer["detail"]), *map(str, answer.get("problems", []))])


async def explain(api: httpx.AsyncClient, source: str, number: str) -> dict[str, Any]:
    resp = await api.get("/api/v1/explain", params={"source": source, "number": number})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_status_and_openapi(api: httpx.AsyncClient) -> None:
    status = (await api.get("/status")).json()
    assert status["routing_loaded"] is True and status["version"] and status["uptime"] >= 0
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/RPC", "/api/v1/address", "/api/v1/customers", "/api/v1/explain"} <= set(paths)


async def test_table_rows_are_listed_with_their_owner(api: httpx.AsyncClient) -> None:
    rows = (await api.get("/api/v1/address")).json()
    assert [(r["id"], r["ip_addr"], r["owner"]) for r in rows] == [
        (1, "10.1.1.1", None),
        (2, "8.1.2.2", None),
    ]
    assert (await api.get("/api/v1/dialplan/2")).json()["match_exp"] == r"^\+33[1-9][0-9]+$"
    assert (await api.get("/api/v1/dialplan/99")).status_code == 404


async def test_invalid_rows_are_refused_with_the_reason(api: httpx.AsyncClient) -> None:
    why = await refused(
        api, "POST", "/api/v1/address", {"grp": 3, "ip_addr": "10.0.0.300", "mask": 40}, 422
    )
    assert "not an IP address" in why and "grp 3 is unknown" in why
    why = await refused(
        api, "POST", "/api/v1/address", {"grp": 1, "ip_addr": "10.0.0.0", "mask": 40}, 422
    )
    assert "mask 40" in why
    rule = {"dpid": 2, "match_exp": "+44[0-9]+", "attrs": "21"}
    assert "does not compile" in await refused(api, "POST", "/api/v1/dialplan", rule, 422)
    rule = {"dpid": 2, "match_exp": "^\\+44", "attrs": "77"}
    assert "set 77 has no gateway" in await refused(api, "POST", "/api/v1/dialplan", rule, 422)
    rule = {"dpid": 1, "match_exp": "^33[0-9]{9}$", "match_len": 10, "attrs": "23"}
    assert "can never match" in await refused(api, "POST", "/api/v1/dialplan", rule, 422)
    gateway = {"destination": "sip:not a uri"}
    why = await refused(api, "PATCH", "/api/v1/dispatcher/1", gateway, 422)
    assert "is not a SIP URI" in why
    why = await refused(api, "DELETE", "/api/v1/dispatcher/1", None, 422)
    assert "set 23 has no gateway" in why  # dialplan rule 1 still routes to set 23
    gateway = {"setid": 21, "destination": "sip:8.1.1.9", "attrs": "sockname=nope"}
    assert "'nope' is not ours" in await refused(api, "POST", "/api/v1/dispatcher", gateway, 422)
    assert "match_exp" in await refused(api, "POST", "/api/v1/dialplan", {"dpid": 1}, 422)
    await refused(api, "PATCH", "/api/v1/address/42", {"port": 5}, 404)


async def test_a_write_is_live_after_commit(api: httpx.AsyncClient, server: Server) -> None:
    before = server.snapshot
    resp = await api.post(
        "/api/v1/dialplan", json={"dpid": 2, "pr": 0, "match_exp": "^\\+44", "attrs": "21"}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["applied"] is True and body["data"]["id"] == 4
    assert server.snapshot is not before
    route = await explain(api, "10.1.1.1:5060", "+447700900123")
    assert route["verdict"] == "forward" and route["setid"] == 21
    assert route["dialplan"][-1]["rule"]["id"] == 4
    resp = await api.patch("/api/v1/dialplan/4", json={"match_exp": "^\\+49"})
    assert resp.status_code == 200 and resp.json()["data"]["match_exp"] == "^\\+49"
    assert (await explain(api, "10.1.1.1:5060", "+447700900123"))["verdict"] == "reply"
    assert (await api.delete("/api/v1/dialplan/4")).status_code == 200
    assert len((await api.get("/api/v1/dialplan")).json()) == 3


async def test_customer_lifecycle(api: httpx.AsyncClient, server: Server) -> None:
    customer = {
        "name": "acme",
        "sources": ["192.0.2.10:5060", {"ip": "198.51.100.0", "mask": 24}],
        "gateways": ["sip:192.0.2.10:5060", {"uri": "sip:192.0.2.11:5060", "priority": 5}],
        "socket": "ipbx",
        "dids": ["33140000000-33140000999", "33199999999", {"match": "glob:3317*", "pr": 50}],
    }
    resp = await api.post("/api/v1/customers", json=customer)
    assert resp.status_code == 201, resp.text
    acme = resp.json()["data"]
    assert (acme["tag"], acme["setid"]) == ("acme", 202)  # 201 is used by seed rule 3
    assert [s["ip"] for s in acme["sources"]] == ["192.0.2.10", "198.51.100.0"]
    assert [g["attrs"] for g in acme["gateways"]] == ["sockname=ipbx"] * 2
    assert [n["match_exp"] for n in acme["numbers"]] == [
        "^33140000[0-9]{3}$",
        "33199999999",
        "3317*",
    ]
    listed = (await api.get("/api/v1/customers")).json()
    assert [c["name"] for c in listed] == ["acme"] and listed[0]["gateways"] == acme["gateways"]
    owners = {r["id"]: r["owner"] for r in (await api.get("/api/v1/address")).json()}
    assert owners[1] is None and owners[3] == {"kind": "customer", "name": "acme"}

    route = await explain(api, "8.1.2.2:5060", "33140000555")  # from the seed's provider
    assert route["verdict"] == "forward" and route["setid"] == 202
    assert [g["uri"] for g in route["gateways"]] == ["sip:192.0.2.11:5060", "sip:192.0.2.10:5060"]
    assert route["gateways"][0]["socket"] == "ipbx" and route["gateways"][0]["state"] == "active"
    assert (await explain(api, "198.51.100.7:6000", "+33612345678"))["address"]["tag"] == "acme"

    why = await refused(api, "POST", "/api/v1/customers", {**customer, "tag": "x"}, 409)
    assert "name 'acme' is already used" in why
    why = await refused(
        api, "POST", "/api/v1/customers", {"name": "beta", "tag": "456", "setid": 23}, 409
    )
    assert "tag '456' is already used (address rows 1)" in why and "set 23" in why
    bad = {
        "name": "gamma",
        "sources": ["10.9.9.9/33"],
        "gateways": ["sip:10.9.9.9"],
        "socket": "nope",
        "dids": ["1-22"],
    }
    why = await refused(api, "POST", "/api/v1/customers", bad, 422)
    assert "mask 33" in why and "same number of digits" in why

    resp = await api.delete("/api/v1/customers/acme")
    assert resp.status_code == 200 and resp.json()["applied"] is True
    assert (await api.get("/api/v1/customers/acme")).status_code == 404
    assert len((await api.get("/api/v1/address")).json()) == 2
    assert (await explain(api, "8.1.2.2:5060", "33140000555"))["verdict"] == "reply"


async def test_provider_routes(api: httpx.AsyncClient) -> None:
    provider = {
        "name": "carrier-uk",
        "sources": ["203.0.113.5"],
        "setid": 300,
        "gateways": ["sip:203.0.113.5:5060;transport=tcp"],
        "routes": ["+44*", "+4420*"],
        "algorithm": "priority",
        "ruri_host": "gateway",
    }
    resp = await api.post("/api/v1/providers", json=provider)
    assert resp.status_code == 201, resp.text
    data = resp.json()["data"]
    assert [(n["dpid"], n["pr"], n["match_exp"]) for n in data["numbers"]] == [
        (2, 97, "^\\+44"),
        (2, 95, "^\\+4420"),
    ]
    assert (data["algorithm"], data["ruri_host"]) == ("priority", "gateway")
    route = await explain(api, "10.1.1.1:5060", "+442071234567")
    assert route["setid"] == 300 and route["dialplan"][-1]["rule"]["match_exp"] == "^\\+4420"
    assert route["gateways"][0]["transport"] == "tcp"
    sets = {s["setid"]: s for s in (await api.get("/api/v1/sets")).json()}
    assert sets[300]["algorithm"] == "priority" and sets[300]["owner"]["name"] == "carrier-uk"
    assert sets[300]["ruri_host"] == "gateway"
    assert (await api.delete("/api/v1/providers/carrier-uk")).status_code == 200
    assert 300 not in {s["setid"] for s in (await api.get("/api/v1/sets")).json()}


async def test_sets(api: httpx.AsyncClient) -> None:
    resp = await api.put("/api/v1/sets/21", json={"algorithm": "9"})
    assert resp.status_code == 200
    assert resp.json()["data"] == {"setid": 21, "algorithm": "weighted", "ruri_host": "keep"}
    await refused(api, "PUT", "/api/v1/sets/999", {"algorithm": "priority"}, 404)
    assert "unknown dispatcher algorithm" in await refused(
        api, "PUT", "/api/v1/sets/21", {"algorithm": "fastest"}, 422
    )
    assert (await api.delete("/api/v1/sets/21")).status_code == 200


async def test_set_ruri_host(api: httpx.AsyncClient, server: Server) -> None:
    resp = await api.put("/api/v1/sets/21", json={"ruri_host": "gateway"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"setid": 21, "algorithm": None, "ruri_host": "gateway"}
    assert resp.json()["applied"]
    sets = {s["setid"]: s for s in (await api.get("/api/v1/sets")).json()}
    assert (sets[21]["algorithm"], sets[21]["ruri_host"]) == (None, "gateway")
    assert sets[23]["ruri_host"] == "keep"
    assert server.snapshot is not None
    live = {s.setid: s for s in server.snapshot.dispatcher_sets()}
    assert live[21].ruri_host == "gateway"
    assert live[21].targets[0].ruri_host == "8.1.1.1:5060"  # precomputed in the live snapshot
    route = await explain(api, "10.1.1.1:5060", "+33612345678")
    assert route["setid"] == 21 and route["gateways"][0]["ruri_host"] == "8.1.1.1:5060"
    body = {"jsonrpc": "2.0", "id": 1, "method": "dispatcher.list", "params": []}
    listed = (await api.post("/RPC", json=body)).json()["result"]
    assert {r["SET"]["ID"]: r["SET"]["RURI_HOST"] for r in listed["RECORDS"]} == {
        21: "gateway",
        23: "keep",
    }
    resp = await api.put("/api/v1/sets/21", json={"algorithm": "priority"})  # the host stays
    assert resp.json()["data"] == {"setid": 21, "algorithm": "priority", "ruri_host": "gateway"}
    why = await refused(api, "PUT", "/api/v1/sets/21", {"ruri_host": "domain"}, 422)
    assert "ruri_host 'domain' is not one of: keep" in why
    assert "nothing to set" in await refused(api, "PUT", "/api/v1/sets/21", {}, 422)
    gone = (await api.delete("/api/v1/sets/21")).json()["data"]
    assert gone == {"setid": 21, "algorithm": "priority", "ruri_host": "gateway"}
    assert server.snapshot is not None
    live = {s.setid: s for s in server.snapshot.dispatcher_sets()}
    assert (live[21].ruri_host, live[21].targets[0].ruri_host) == ("keep", "")


async def test_import_reports_the_seed_defects_and_loads_nothing(api: httpx.AsyncClient) -> None:
    why = await refused(api, "POST", "/api/v1/import", {"files": {"dialplan": SEED_DIALPLAN}}, 422)
    assert "dialplan id 2: match_exp '+33[1-9][0-9]+$' does not compile" in why
    assert "dialplan id 1: match_len 1 can never match" in why


async def test_explain_does_not_move_round_robin(api: httpx.AsyncClient, server: Server) -> None:
    resp = await api.post("/api/v1/dispatcher", json={"setid": 21, "destination": "sip:8.1.1.2"})
    assert resp.status_code == 201
    firsts = {
        (await explain(api, "10.1.1.1:5060", "+33612345678"))["gateways"][0]["uri"]
        for _ in range(3)
    }
    assert len(firsts) == 1
    assert server.snapshot is not None and server.snapshot.rr.last == {}


async def test_token_required_off_loopback(server: Server) -> None:
    port = free_tcp_port()
    server.settings = Settings(listen=server.settings.listen, admin_listen=f"0.0.0.0:{port}")
    with pytest.raises(AdminError, match="PKS_ADMIN_TOKEN"):
        await start_admin(server)
    server.settings = Settings(
        listen=server.settings.listen, admin_listen=f"127.0.0.1:{port}", admin_token="s3cret"
    )
    web = await start_admin(server)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/status")).status_code == 401
            ok = await client.get("/status", headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200
    finally:
        web.should_exit = True
        await web.shutdown()


async def test_a_port_the_database_cannot_hold_is_refused_clearly(
    api: httpx.AsyncClient, server: Server
) -> None:
    row = {"grp": 1, "ip_addr": "198.51.100.9", "mask": 32, "port": 70000}
    assert "port 70000" in await refused(api, "POST", "/api/v1/address", row, 422)
    row["port"] = 40000  # a valid port; PostgreSQL's SMALLINT (Kamailio's schema) stops at 32767
    resp = await api.post("/api/v1/address", json=row)
    if server.settings.db_url.startswith("postgresql"):
        assert resp.status_code == 422, resp.text
        assert "32767" in resp.text
    else:
        assert resp.status_code == 201, resp.text
    resp = await api.get("/api/v1/address")
    assert resp.status_code == 200  # the tables still read, the API still answers
    # the same port through an import of the address table
    table = SEED_ADDRESS.replace("8.1.2.2 32 5060 20", "8.1.2.2 32 40000 20")
    resp = await api.post("/api/v1/import", json={"files": {"address": table}})
    if server.settings.db_url.startswith("postgresql"):
        assert resp.status_code == 422 and "port 40000" in resp.text, resp.text
    else:
        assert resp.status_code == 200, resp.text
