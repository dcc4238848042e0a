"""Scenario 4: an authorized customer floods at 10× its ``max_cps`` while another calls steadily.

Two customers, each an ``address`` row (grp 1) of its own loopback address: the flooder
(``tables.FLOODER_IP``, ``pks_peer.max_cps`` = ``PeerPlan.max_cps``) places calls at
``factor`` times that rate, the steady customer (``tables.STEADY_IP``, no limit) at
``steady_rate``, both for ``seconds``, at the same time, through the same proxy to the same
callee. Per proxy configuration, on fresh processes and its own database
(``tables.peer_flood_tables``: scenario 1's rows plus theirs):

- the steady customer's calls placed, succeeded, failed (SIPp's counters, ``sipp/call.xml``);
- the flooder's calls by outcome, from its message trace (``sipp/flooder.xml`` acknowledges a
  503 and ends the call): answered (200), refused (503), another final answer, none at all;
- the proxy CPU from the start of the two callers until the proxy is idle again.

pks applies the customer's ``max_cps`` (503 with Retry-After beyond it, docs/security.md);
Kamailio runs ``kamailio.cfg`` with ``WITH_PIKE``, P-KISS-SBC's flood guard (pike, then a
300 s ban in an htable): pike counts requests per *source address* — every request, INVITE,
ACK, BYE and retransmissions alike — over units of 2 s, one threshold for every source. To be
fair to it, the threshold (``reqs_density_per_unit``) is set by default to let the steady
customer through with room: ``PIKE_HEADROOM`` × its requests per unit
(``REQUESTS_PER_CALL`` × ``steady_rate`` × ``PIKE_UNIT_S``); ``--pike-density`` sets it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pksbench import procs, sipp
from pksbench.measure import GATEWAYS, start_callees
from pksbench.tables import CALLED, FLOODER_IP, STEADY_IP
from pksbench.targets import Kamailio, Pks, Target

REQUESTS_PER_CALL = 3  # INVITE, ACK, BYE: what pike counts per call
PIKE_UNIT_S = 2  # sampling_time_unit, as P-KISS-SBC
PIKE_HEADROOM = 2  # default density: twice the steady customer's requests per unit
FLOODER_SCENARIO = sipp.SCENARIOS / "flooder.xml"

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class PeerPlan:
    max_cps: int = 20  # the flooder's pks_peer.max_cps
    factor: float = 10  # it places calls at factor × max_cps
    steady_rate: float = 50  # the other customer's calls/s
    seconds: float = 15  # how long both place calls
    pike_density: int | None = None  # Kamailio's reqs_density_per_unit (None: see density)
    recv_timeout_ms: int = 4000
    ready_timeout: float = 60.0
    settle_timeout: float = 10.0
    buff_size: int = sipp.BUFF_SIZE

    @property
    def flood_rate(self) -> float:
        return self.max_cps * self.factor

    @property
    def density(self) -> int:
        """pike's requests per source per 2 s unit: given, or room for the steady customer."""
        if self.pike_density:
            return self.pike_density
        return math.ceil(PIKE_HEADROOM * REQUESTS_PER_CALL * self.steady_rate * PIKE_UNIT_S)


@dataclass
class PeerFloodResult:
    name: str
    label: str
    max_cps: int
    flood_rate: float
    steady_rate: float
    seconds: float
    guard: str = ""  # what limits the flooder in this proxy
    steady_planned: int = 0
    steady_successful: int | None = None
    steady_failed: int | None = None
    steady_retrans: int | None = None
    steady_failure_kinds: dict[str, int] = field(default_factory=dict)
    flood_planned: int = 0
    flood_answered: int | None = None  # 200
    flood_refused: int | None = None  # 503
    flood_other: dict[str, int] = field(default_factory=dict)  # other final answers
    flood_unanswered: int | None = None  # no final answer (dropped)
    flood_last_answer_s: float | None = None  # the last 200, after the flooder's first INVITE
    flood_retrans: int | None = None
    flood_achieved_rate: float | None = None
    cpu_s: float | None = None  # proxy CPU from the callers' start until idle again
    wall_s: float | None = None
    error: str | None = None

    @property
    def cpu_share(self) -> float | None:
        """Proxy CPU over the callers' run, in cores (1.0 = one core busy)."""
        if self.cpu_s is None or not self.wall_s:
            return None
        return self.cpu_s / self.wall_s

    @property
    def answered_per_s(self) -> float | None:
        if self.flood_answered is None or not self.seconds:
            return None
        return self.flood_answered / self.seconds

    def as_dict(self) -> dict[str, object]:
        data = dict(vars(self))
        data["cpu_share_cores"] = self.cpu_share
        data["flood_answered_per_s"] = self.answered_per_s
        return data


class PeerFloodRunner:
    """Runs scenario 4 on one proxy configuration after another (``run(target)``)."""

    def __init__(self, plan: PeerPlan, db: Path, workdir: Path, log: Log) -> None:
        self.plan = plan
        self.db = db
        self.workdir = workdir
        self.log = log

    def extra(self, target: Target) -> tuple[str, ...]:
        if isinstance(target, Kamailio):
            return ("WITH_PIKE", f"PIKE_DENSITY={self.plan.density}")
        return ()

    def guard(self, target: Target) -> str:
        if isinstance(target, Kamailio):
            return (
                f"pike {self.plan.density} requests per source per {PIKE_UNIT_S} s,"
                " then a 300 s ban (htable)"
            )
        guard = f"pks_peer.max_cps {self.plan.max_cps} (503, Retry-After)"
        if isinstance(target, Pks) and target.workers > 1:
            # workers count apart without PKS_REDIS_URL, and calls are steered by Call-ID
            guard += f", counted by each of {target.workers} workers (no Redis)"
        return guard

    def run(self, target: Target) -> PeerFloodResult:
        plan = self.plan
        r = PeerFloodResult(
            target.name, target.label, plan.max_cps, plan.flood_rate, plan.steady_rate,
            plan.seconds, self.guard(target),
        )  # fmt: skip
        r.steady_planned = max(1, math.ceil(plan.steady_rate * plan.seconds))
        r.flood_planned = max(1, math.ceil(plan.flood_rate * plan.seconds))
        workdir = self.workdir / f"{target.name}-peer-flood"
        callees: list[procs.Proc] = []
        t0 = time.monotonic()
        try:
            callees = start_callees(GATEWAYS, workdir, plan.buff_size)
            target.start(self.db, workdir, plan.ready_timeout, self.extra(target))
            check = sipp.finish_uac(self._uac(target, workdir, "check", STEADY_IP, 10, 10))
            if check.successful != check.planned:
                raise RuntimeError(f"the steady customer's check calls failed: {check.summary()}")
            self._settle(target)
            before = procs.cpu_seconds(target.pids())
            started = time.monotonic()
            steady = self._uac(target, workdir, "steady", STEADY_IP, plan.steady_rate,
                               r.steady_planned)  # fmt: skip
            flood = self._uac(target, workdir, "flood", FLOODER_IP, plan.flood_rate,
                              r.flood_planned, scenario=FLOODER_SCENARIO, trace=True)  # fmt: skip
            sres = sipp.finish_uac(steady)
            fres = sipp.finish_uac(flood)
            self._settle(target)
            r.wall_s = time.monotonic() - started
            r.cpu_s = procs.cpu_delta(before, procs.cpu_seconds(target.pids()))
            r.steady_successful = sres.successful
            r.steady_failed = sres.planned - sres.successful
            r.steady_retrans = sres.retransmissions
            r.steady_failure_kinds = {k: v for k, v in sres.failure_kinds.items() if v}
            assert flood.short is not None
            codes, none, r.flood_last_answer_s = sipp.invite_outcomes(flood.short)
            r.flood_answered = codes.pop("200", 0)
            r.flood_refused = codes.pop("503", 0)
            r.flood_other = dict(codes)
            r.flood_unanswered = none + max(0, r.flood_planned - fres.created)
            r.flood_retrans = fres.retransmissions
            r.flood_achieved_rate = fres.achieved_rate
            self.log(f"  {target.label}: steady {sres.summary()}")
            self.log(f"  {target.label}: flooder {fres.summary()}")
        except RuntimeError as exc:
            r.error = str(exc)
        finally:
            target.stop()
            for proc in callees:
                procs.stop(proc)
        self.log(
            f"  {target.label}: customer flood ({r.guard}): steady {plan.steady_rate:g} cps"
            f" {r.steady_successful}/{r.steady_planned} ok; flooder {plan.flood_rate:g} cps"
            f" x {r.flood_planned}: {r.flood_answered} answered, {r.flood_refused} refused"
            f" (503), {r.flood_unanswered} unanswered"
            + (f", other {r.flood_other}" if r.flood_other else "")
            + f", the last answered {_fmt(r.flood_last_answer_s)} s in"
            + f"; proxy CPU {_fmt(r.cpu_s)} s in {_fmt(r.wall_s)} s"
            + (f"; ERROR {r.error}" if r.error else "")
            + f" ({time.monotonic() - t0:.0f}s)"
        )
        return r

    def _uac(
        self,
        target: Target,
        workdir: Path,
        kind: str,
        ip: str,
        rate: float,
        calls: int,
        *,
        scenario: Path | None = None,
        trace: bool = False,
    ) -> sipp.Uac:
        return sipp.start_uac(
            target.address,
            rate,
            calls,
            0,
            CALLED,
            workdir,
            f"{kind}-{rate:g}",
            uac_ip=ip,
            recv_timeout_ms=self.plan.recv_timeout_ms,
            trace_messages=trace,
            buff_size=self.plan.buff_size,
            scenario_file=scenario,
        )

    def _settle(self, target: Target) -> None:
        """Wait (bounded) until the proxy's process tree is nearly idle."""
        deadline = time.monotonic() + self.plan.settle_timeout
        prev = procs.cpu_seconds(target.pids())
        while time.monotonic() < deadline:
            time.sleep(0.5)
            cur = procs.cpu_seconds(target.pids())
            if procs.cpu_delta(prev, cur) < 0.05:  # < 10 % of one core over 0.5 s
                return
            prev = cur


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"
