"""JSON-RPC 2.0 at /RPC against the real server over loopback HTTP: kamcmd names, shapes
and fault texts (kamailio-semantics.md §1.5, §2.6, §3.11)."""

from __future__ import annotations

from typing import Any

import httpx

from pks.server import Server


async def rpc(api: httpx.AsyncClient, method: str, *params: Any) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
    resp = await api.post("/RPC", json=body)
    assert resp.status_code == 200
    answer: dict[str, Any] = resp.json()
    assert answer["id"] == 7 and answer["jsonrpc"] == "2.0"
    return answer


async def test_core_and_tm(api: httpx.AsyncClient) -> None:
    assert (await rpc(api, "core.version"))["result"].startswith("pks-sip-proxy ")
    uptime = (await rpc(api, "core.uptime"))["result"]
    assert set(uptime) == {"now", "up_since", "uptime"} and uptime["uptime"] >= 0
    stats = (await rpc(api, "tm.stats"))["result"]
    assert {"current", "total", "created", "freed", "2xx", "4xx", "6xx"} <= set(stats)
    assert "dispatcher.set_state" in (await rpc(api, "system.listMethods"))["result"]


async def test_permissions(api: httpx.AsyncClient) -> None:
    dump = (await rpc(api, "permissions.addressDump"))["result"]
    assert {"table": 0, "group": 1, "item": {"ip": "10.1.1.1", "port": 5060, "tag": "456"}} in dump
    assert (await rpc(api, "permissions.subnetDump"))["result"] == []
    hit = (await rpc(api, "permissions.testSource", "8.1.2.2", 5060))["result"]
    assert hit["allowed"] and (hit["group"], hit["tag"], hit["id"]) == (2, "20", 2)
    miss = (await rpc(api, "permissions.testSource", "8.1.2.2", 5070))["result"]
    assert miss == {"ip": "8.1.2.2", "port": 5070, "allowed": False}
    assert (await rpc(api, "permissions.addressReload"))["result"] == "Reload OK"


async def test_dialplan(api: httpx.AsyncClient) -> None:
    dump = (await rpc(api, "dialplan.dump", 2))["result"]
    assert dump["DPID"] == 2
    assert [e["ENTRY"]["MATCHEXP"] for e in dump["ENTRIES"]] == [r"^\+33[1-9][0-9]+$"] * 2
    unknown = await rpc(api, "dialplan.dump", 9)
    assert unknown["error"] == {"code": 500, "message": "Dialplan ID not matched"}
    out = (await rpc(api, "dialplan.translate", 1, "s:33202020201"))["result"]
    assert out == {"Output": "0", "Attributes": "23", "Rule": 1}
    # the seed's subst_exp '0' is not in this number: Kamailio's RPC says "No translation"
    failed = await rpc(api, "dialplan.translate", 2, "+33612345678")
    assert failed["error"]["message"] == "No translation"
    assert (await rpc(api, "dialplan.reload"))["result"] is None


async def test_dispatcher_list_and_set_state(api: httpx.AsyncClient, server: Server) -> None:
    listed = (await rpc(api, "dispatcher.list"))["result"]
    assert listed["NRSETS"] == 2
    sets = {r["SET"]["ID"]: r["SET"]["TARGETS"] for r in listed["RECORDS"]}
    dest = sets[21][0]["DEST"]
    assert (dest["URI"], dest["FLAGS"], dest["PRIORITY"]) == ("sip:8.1.1.1:5060", "AX", 0)
    assert dest["ATTRS"]["SOCKNAME"] == "ipbx" and dest["STATE"] == "active"
    ok = await rpc(api, "dispatcher.set_state", "d", 23, "sip:1.1.1.1:5060")
    assert ok["result"] == "Ok. Dispatcher state updated."
    listed = (await rpc(api, "dispatcher.list", "short"))["result"]
    flags = {r["SET"]["ID"]: r["SET"]["TARGETS"][0]["DEST"]["FLAGS"] for r in listed["RECORDS"]}
    assert flags == {21: "AX", 23: "DX"}
    bad = await rpc(api, "dispatcher.set_state", "x", 23, "all")
    assert bad["error"]["message"] == "Unknown State Value"
    missing = await rpc(api, "dispatcher.set_state", "a", 23, "sip:9.9.9.9")
    assert missing["error"]["message"] == "State Update Failed"
    assert (await rpc(api, "dispatcher.set_state", "a", 99, "all"))["result"].startswith("Ok")
    assert (await rpc(api, "dispatcher.ping_active"))["result"] == {"OldPingState": 1}
    assert (await rpc(api, "dispatcher.ping_active", 0))["result"] == {
        "NewPingState": 0,
        "OldPingState": 1,
    }
    assert server.proxy is not None and server.proxy.gateways.ping_active is False
    reloaded = await rpc(api, "dispatcher.reload")
    assert reloaded["result"] == "Ok. Dispatcher successfully reloaded."


async def test_protocol_errors(api: httpx.AsyncClient) -> None:
    assert (await rpc(api, "no.such"))["error"]["code"] == -32601
    resp = await api.post("/RPC", content=b"{not json")
    assert resp.json()["error"]["code"] == -32700
    resp = await api.post("/RPC", json={"id": 1, "method": "core.version"})
    assert resp.json()["error"]["code"] == -32600
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "core.version"},
        {"jsonrpc": "2.0", "method": "core.uptime"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "dialplan.translate", "params": [1]},
    ]
    answers = (await api.post("/RPC", json=batch)).json()
    assert [a["id"] for a in answers] == [1, 2]
    assert answers[1]["error"]["message"] == "Invalid Parameters"
