"""Beside the data path: request bodies of the admin REST API (pydantic, for OpenAPI).

Only the shape is checked here (types, required fields, no unknown field); meaning — valid
IP and mask, known group, regex compiling under the router's engine, URI parsing, set
existing — is checked by :mod:`pks.provision` against the whole tables before any write.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AddressIn",
    "AddressPatch",
    "CustomerIn",
    "DialplanIn",
    "DialplanPatch",
    "DispatcherIn",
    "DispatcherPatch",
    "GatewayIn",
    "ImportIn",
    "NumberIn",
    "ProviderIn",
    "SetIn",
    "SourceIn",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def values(self, *, partial: bool = False) -> dict[str, Any]:
        return self.model_dump(exclude_unset=partial)


class AddressIn(_Strict):
    """A row of ``address``: requests from ip_addr/mask (port 0 = any) belong to grp/tag."""

    grp: int = Field(description="1 = customer IP-PBX, 2 = provider")
    ip_addr: str
    mask: int = 32
    port: int = 0
    tag: str | None = None


class AddressPatch(_Strict):
    grp: int | None = None
    ip_addr: str | None = None
    mask: int | None = None
    port: int | None = None
    tag: str | None = None


class DialplanIn(_Strict):
    """A row of ``dialplan``; attrs is the dispatcher set id a match routes to."""

    dpid: int = Field(description="1 = DIDs (to customers), 2 = routes to providers")
    pr: int = 0
    match_op: int = Field(1, description="0 equal, 1 regex (PCRE), 2 fnmatch")
    match_exp: str
    match_len: int = Field(0, description="whole number length this rule applies to; 0 = any")
    subst_exp: str = ""
    repl_exp: str = ""
    attrs: str


class DialplanPatch(_Strict):
    dpid: int | None = None
    pr: int | None = None
    match_op: int | None = None
    match_exp: str | None = None
    match_len: int | None = None
    subst_exp: str | None = None
    repl_exp: str | None = None
    attrs: str | None = None


class DispatcherIn(_Strict):
    """A row of ``dispatcher``: a gateway of set setid."""

    setid: int
    destination: str = Field(description="SIP URI, e.g. sip:192.0.2.1:5060;transport=tcp")
    flags: int = 0
    priority: int = 0
    attrs: str = Field("", description="name=value;… e.g. sockname=public;weight=50")
    description: str = ""


class DispatcherPatch(_Strict):
    setid: int | None = None
    destination: str | None = None
    flags: int | None = None
    priority: int | None = None
    attrs: str | None = None
    description: str | None = None


class SetIn(_Strict):
    """A set's overrides; what is left out stays as it was (at least one is needed)."""

    algorithm: str | None = Field(
        None, description="round-robin, priority, weighted, … or a Kamailio number"
    )
    ruri_host: str | None = Field(
        None,
        description="keep: the caller's R-URI host (ds_select_dst, the default); gateway: the"
        " chosen gateway's host, port and transport (ds_select_domain)",
    )


class SourceIn(_Strict):
    ip: str
    mask: int | None = None
    port: int = 0


class GatewayIn(_Strict):
    uri: str
    priority: int = 0
    flags: int = 0
    attrs: str = ""


class NumberIn(_Strict):
    match: str = Field(description="33202020201, 33202020200-209, +33*, re:REGEX, glob:PATTERN")
    pr: int | None = None


class _PeerIn(_Strict):
    name: str
    tag: str | None = Field(None, description="address.tag of its gateways; default: name")
    setid: int | None = Field(None, description="its dispatcher set; default: the next free")
    socket: str | None = Field(None, description="socket name to reach its gateways")
    algorithm: str | None = None
    ruri_host: str | None = Field(None, description="keep (default) or gateway")
    max_calls: int | None = None
    max_cps: int | None = Field(None, description="new calls per second from its sources")
    max_intl_calls: int | None = Field(None, description="concurrent international calls")
    description: str = ""
    sources: list[str | SourceIn] = Field(
        default_factory=list, description="IP, IP/MASK, IP:PORT or IP/MASK:PORT"
    )
    gateways: list[str | GatewayIn] = Field(default_factory=list, description="SIP URIs")

    def spec(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class CustomerIn(_PeerIn):
    """A customer (IP-PBX): its sources (grp 1), gateways and DIDs (dialplan 1)."""

    dids: list[str | NumberIn] = Field(default_factory=list)


class ProviderIn(_PeerIn):
    """A provider (carrier): its sources (grp 2), gateways and routes (dialplan 2)."""

    routes: list[str | NumberIn] = Field(default_factory=list)


class ImportIn(_Strict):
    """dbtext files by name (the table is recognised from each header)."""

    files: dict[str, str]
    check_only: bool = False


class LimitsIn(_Strict):
    """A peer's limits; the keys given are set (null or 0: unlimited), the others kept."""

    max_calls: int | None = None
    max_cps: int | None = None
    max_intl_calls: int | None = None


class BanIn(_Strict):
    """A ban in pks_ban: an address or a network (IPv4 or IPv6)."""

    address: str = Field(description="IP or IP/PREFIX")
    reason: str = ""
    seconds: float | None = Field(None, description="how long; null: for ever")


class BlockIn(_Strict):
    """A blocked destination prefix in pks_block."""

    prefix: str = Field(description="digits (+ * # allowed) a called number starts with")
    tag: str | None = Field(None, description="the peer's tag; null: every peer")
    reason: str = ""
