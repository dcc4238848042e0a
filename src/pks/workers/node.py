"""One worker process's side of the instance: the glue between the server of this process
(a :class:`Host`: ``pks.server.Server`` is one, and imports this module, never the other way
round) and the other workers (shared store, handoff channel, instance-wide answers).

Worker 0 *leads*: it serves the admin API, watches the database, probes the gateways and
writes the snapshot cache; a reload it makes (API, SIGHUP, database change) is made by every
worker before it answers. Every worker routes calls, resolves gateway names and reads the
tables itself (the snapshots are built from the same rows, so they are the same).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import zlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pks.forward import stopping
from pks.health.state import dest_key
from pks.net import Address, Inbound, Proto, Send, SocketInfo
from pks.reload import ReloadResult
from pks.sip import ParseError, parse
from pks.workers.handoff import Channel, Router, branch_prefix
from pks.workers.journal import (
    Journal,
    LostCall,
    LostInvite,
    journal_path,
    read_journal,
    socket_named,
)
from pks.workers.shared import GatewayShare, PeerShare, RateShare, SharedStore, share_selection

if TYPE_CHECKING:
    from pks.driver import Driver
    from pks.proxy import Proxy
    from pks.route.snapshot import Snapshot
    from pks.transport import Transport

__all__ = ["Host", "WorkerNode"]

log = logging.getLogger("pks.workers")

QUERY_TIMEOUT = 5.0
RELOAD_TIMEOUT = 60.0
TCP_BUCKETS = 4096


class Host(Protocol):
    """What a worker's glue needs of the server running in its process, and nothing more."""

    @property
    def driver(self) -> Driver:
        """Where a message handed over by another worker goes (``handle_message``)."""

    @property
    def proxy(self) -> Proxy | None:
        """The core: its gateway states and call counts are shared, its figures reported."""

    @property
    def transport(self) -> Transport | None:
        """Its bound sockets, its TCP connections (shared), a send relayed from a worker."""

    async def reload(self, reason: str, *, only_if_changed: bool = False) -> ReloadResult:
        """Worker 0 asked this worker to reload."""

    def metrics_report(self) -> dict[str, Any]:
        """Figures for ``/metrics`` beside the stats: call tallies, event-loop lag."""

    def local_stats(self) -> Counter[str]:
        """This process's counters: the proxy's, the edge's drops, bans, call records."""


class WorkerNode:
    """Worker ``store.index`` of ``store.workers``."""

    def __init__(self, store: SharedStore, udp_sockets: Sequence[socket.socket] = ()) -> None:
        self.store = store
        self.udp_sockets = list(udp_sockets)  # bound by the supervisor (pks.workers.steer)
        self.index = store.index
        self.workers = store.workers
        self.leads = store.index == 0
        self.prefix = branch_prefix(self.index, secrets.token_hex(2))
        self.server: Host | None = None
        self.channel: Channel | None = None
        self.router = Router(self.index, self.workers)  # the transport's on_message
        self.journal: Journal | None = None
        self._buckets: dict[int, int] = {}

    # -- wiring (called by the server) ----------------------------------------------------
    def adopt(self, snapshot: Snapshot) -> None:
        """A snapshot was built: its selection state becomes instance-wide."""
        share_selection(snapshot, self.store)

    async def start(self, server: Host) -> None:
        """The transport is bound and the proxy built: share its state, open the channel."""
        self.server = server
        self.router.local = server.driver.handle_message
        proxy = server.proxy
        assert proxy is not None and server.transport is not None
        proxy.gateways.share = GatewayShare(self.store)
        proxy.limits.peers.share = RateShare(self.store, "cps-peer")  # max_cps, instance-wide
        proxy.limits.gateways.share = RateShare(self.store, "cps-gateway")
        proxy.snapshot = proxy.snapshot  # re-sync: the states bind to their shared slots
        # what a predecessor of the same index left (it died): read, then our own journal
        self.journal = Journal(journal_path(self.store.path, self.index))
        lost = read_journal(self.journal.path)
        self.journal.open()
        proxy.relay.journal = self.journal
        proxy.calls.share = PeerShare(self.store, self._missed_bye, self.journal)
        if not self.leads:
            proxy.gateways.ping_active = False  # worker 0 alone probes the gateways
        self.channel = Channel(
            self.store,
            list(server.transport.bound),
            server.driver.handle_message,
            self._on_query,
            self._on_notice,
            self._relayed,
        )
        await self.channel.open()
        self.router.channel = self.channel
        server.transport.share_connections(self)
        self._take_over(server, proxy, *lost)

    def _take_over(
        self, server: Host, proxy: Proxy, invites: list[LostInvite], calls: list[LostCall]
    ) -> None:
        """Answer the callers of a dead predecessor's unanswered INVITEs (500) and cancel
        their branches; count its answered calls again (docs/workers.md)."""
        if not invites and not calls:
            return
        now = asyncio.get_running_loop().time()
        out: list[Send] = []
        answered = 0
        for lost in invites:
            sock = socket_named(proxy.sockets, lost.socket, lost.proto)
            if sock is None or sock.proto.reliable:
                continue  # its TCP connection died with the worker: the caller saw it close
            try:
                request = parse(lost.request)
                sent = parse(lost.sent) if lost.sent is not None else None
            except ParseError:
                continue
            out_sock = None
            if sent is not None and lost.dest_socket is not None:
                out_sock = socket_named(proxy.sockets, lost.dest_socket, lost.dest_proto)
            dest = lost.dest or lost.source
            inbound = Inbound(sock, lost.source, None)
            stopping.adopt_lost(
                proxy.relay,
                lost.key,
                request,
                inbound,
                sent,
                dest,
                Proto(lost.dest_proto),
                out_sock,
                now,
                out,
            )
            answered += 1
        snapshot = proxy.snapshot
        for call in calls:
            target = None
            if call.gateway is not None and snapshot is not None:
                dset = snapshot.dispatcher.sets.get(call.gateway[0])
                for t in dset.targets if dset is not None else ():
                    if dest_key(t) == call.gateway:
                        dns = t.dns and call.gateway_host is not None
                        target = t.at(call.gateway_host or "", call.gateway_port) if dns else t
                        break
            expires = call.expires if call.expires is not None else now + proxy.calls.max_duration
            proxy.calls.restore(
                call.call_id, call.from_tag, call.to_tag, call.peer, call.caller, target, expires
            )
        server.driver.send_all(out)
        log.warning(
            "pks: worker %d took over from its dead predecessor: %d unanswered call(s) answered"
            " 500 and cancelled, %d answered call(s) counted again",
            self.index,
            answered,
            len(calls),
        )

    def ready(self) -> None:
        self.store.set_worker(self.index, pid=os.getpid(), ready=True)

    def close(self) -> None:
        self.store.set_worker(self.index, port=0, ready=False)
        self.router.channel = None  # from now on every message is handled here
        if self.channel is not None:
            self.channel.close()
        if self.journal is not None:
            self.journal.close()

    # -- TCP connections of the instance (pks.transport.tcp.PeerRegistry) -----------------
    # A fixed table of buckets: (our socket, peer) hashes to a bucket that holds the hash's
    # upper bits and the index of the worker that last opened or accepted such a connection.
    def _bucket(self, socket: SocketInfo, peer: Address) -> tuple[int, int]:
        digest = zlib.crc32(f"{socket.host}|{socket.port}|{peer.host}|{peer.port}".encode())
        bucket = digest % TCP_BUCKETS
        word = self._buckets.get(bucket)
        if word is None:
            word = self._buckets[bucket] = self.store.slot(("tcp", bucket))
        return word, (digest // TCP_BUCKETS) << 8

    def claim(self, socket: SocketInfo, peer: Address) -> None:
        word, check = self._bucket(socket, peer)
        self.store.put(word, check | (self.index + 1))

    def release(self, socket: SocketInfo, peer: Address) -> None:
        word, check = self._bucket(socket, peer)
        if self.store.get(word) == check | (self.index + 1):
            self.store.put(word, 0)

    def relay(self, effect: Send) -> bool:
        """A TCP send with no connection here: through the worker holding one, if any."""
        channel = self.channel
        if channel is None:
            return False
        word, check = self._bucket(effect.socket, effect.dest)
        value = self.store.get(word)
        holder = (value & 0xFF) - 1
        if value & ~0xFF != check or holder in (-1, self.index) or not channel.alive(holder):
            return False
        return channel.relay_send(holder, effect)

    def _relayed(self, effect: Send) -> None:
        server = self.server
        if server is not None and server.transport is not None:
            server.transport.send(effect, relay=False)

    def _missed_bye(
        self, call_id: str, from_tag: str | None, to_tag: str | None, source: str | None
    ) -> None:
        if self.channel is not None:
            args = {"call_id": call_id, "from_tag": from_tag, "to_tag": to_tag, "source": source}
            self.channel.notify("bye", args)

    # -- control --------------------------------------------------------------------------
    def _on_notice(self, op: str, args: dict[str, Any]) -> None:
        proxy = self.server.proxy if self.server is not None else None
        if op == "bye" and proxy is not None:
            tags = (args.get("from_tag"), args.get("to_tag"))
            now = asyncio.get_running_loop().time()  # the call record's end
            proxy.calls.close_dialog(str(args["call_id"]), *tags, args.get("source"), now)

    async def _on_query(self, op: str, args: dict[str, Any]) -> Any:
        server = self.server
        if server is None:
            return None
        if op == "reload":
            result = await server.reload(
                str(args.get("reason", "reload by worker 0")),
                only_if_changed=bool(args.get("only_if_changed")),
            )
            return {"ok": result.ok, "message": result.message}
        if op == "stats":
            return self.local_stats()
        raise ValueError(f"unknown query {op!r}")

    def local_stats(self) -> dict[str, Any]:
        proxy = self.server.proxy if self.server is not None else None
        channel = self.channel
        stats = self.server.local_stats() if self.server is not None else Counter()
        return {
            "index": self.index,
            "pid": os.getpid(),
            "stats": dict(stats),
            "transactions": proxy.transactions if proxy is not None else 0,
            "calls": len(proxy.calls) if proxy is not None else 0,
            "by_peer": dict(proxy.calls.by_peer) if proxy is not None else {},
            "handed_off": channel.sent if channel is not None else 0,
            "handed_in": channel.received if channel is not None else 0,
            "handoff_failed": channel.dropped if channel is not None else 0,
            "metrics": self.server.metrics_report() if self.server is not None else {},
        }

    async def all_stats(self) -> list[dict[str, Any]]:
        """Every worker's :meth:`local_stats`, ours first (a silent worker is left out)."""
        mine = [self.local_stats()]
        if self.channel is None:
            return mine
        others = await self.channel.ask_all("stats", {}, QUERY_TIMEOUT)
        return mine + [others[i] for i in sorted(others) if isinstance(others[i], dict)]

    async def reload_others(
        self, mine: ReloadResult, reason: str, only_if_changed: bool
    ) -> ReloadResult:
        """Worker 0 reloaded: every other worker reloads too; one result for the instance."""
        if self.channel is None:
            return mine
        args = {"reason": f"{reason}, through worker 0", "only_if_changed": only_if_changed}
        answers = await self.channel.ask_all("reload", args, RELOAD_TIMEOUT)
        failed = [
            f"worker {i}: {a.get('message') if isinstance(a, dict) else a}"
            for i, a in sorted(answers.items())
            if not (isinstance(a, dict) and a.get("ok"))
        ]
        missing = [
            str(i) for i in range(1, self.workers) if i not in answers and self.channel.alive(i)
        ]
        if missing:
            failed.append(f"worker(s) {', '.join(missing)} did not answer")
        if not failed or not mine.ok:
            return mine
        return ReloadResult(False, f"{mine.message}; but {'; '.join(failed)}")

    async def limit_counts(self, proxy: Proxy) -> dict[str, object]:
        """``Proxy.limit_counts`` for the whole instance."""
        everyone = await self.all_stats()
        # read after every worker answered: a call a worker counted has its gateway load in
        # the shared store by then (read before, a call arriving meanwhile was counted in the
        # calls and not in its gateway's load)
        mine = proxy.limit_counts()
        by_peer: Counter[str] = Counter()
        calls = 0
        for worker in everyone:
            by_peer.update({str(k): int(v) for k, v in worker.get("by_peer", {}).items()})
            calls += int(worker.get("calls", 0))
        peers = mine["peers"]
        assert isinstance(peers, dict)
        merged = {
            tag: {"calls": by_peer.get(tag, 0), "max_calls": peers.get(tag, {}).get("max_calls")}
            for tag in sorted(set(by_peer) | set(peers))
        }
        return {**mine, "calls": calls, "peers": merged}
