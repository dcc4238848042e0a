"""Kernel steering: each datagram goes straight to the worker that owns it.

Without help the kernel spreads the datagrams of one ``SO_REUSEPORT`` address over the
workers' sockets by a hash of the source and destination addresses, so every message of one
peer socket reaches the same worker, and the receive path (:class:`pks.workers.handoff.Router`)
hands about (N−1)/N of them to their owner over the loopback channel. Here the supervisor
binds the N sockets of each UDP address itself, in worker order (socket index ``i`` of the
group is worker ``i``'s for the whole life of the instance, restarts included), and attaches
to the group a classic BPF program (``SO_ATTACH_REUSEPORT_CBPF``; no privilege needed) that
reads the UDP payload and picks the socket of the owner — the same decision the Router
makes, so it then finds every message already home:

* a **response** (``SIP/`` first): the worker index in the first ``pksW`` + two hex digits
  (our Via branches in worker mode, :func:`pks.workers.handoff.branch_prefix`);
* a **request**: the hash of its ``Call-ID:`` value (:func:`pks.workers.handoff.mix_call_id`,
  FNV-1a over its first 64 bytes, the Router's hash too).

Classic BPF has no loops: the searches are unrolled over the first ``RESPONSE_WINDOW`` and
``REQUEST_WINDOW`` bytes, in blocks whose loads are all checked against the datagram length
first (a load past the end would end the program). Whatever the program cannot place (another
spelling such as ``i:`` or ``Call-Id:``, a header further on, a keep-alive) goes to a random
live worker and the Router hands it off as before: the program only spares hops, it never
decides ownership. While a worker is down the program sends what it owns to the next live
worker (the Router's rule when the owner cannot be reached).
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Sequence

from pks.workers.handoff import FNV_OFFSET, FNV_PRIME, HASHED

__all__ = ["REQUEST_WINDOW", "RESPONSE_WINDOW", "attach", "drain", "program"]


SO_ATTACH_REUSEPORT_CBPF = 51  # asm-generic/socket.h (Linux ≥ 4.5)
MAX_INSNS = 4096  # BPF_MAXINSNS
RESPONSE_WINDOW = 160  # a response's own branch is in its top Via, near the start
REQUEST_WINDOW = 600  # Call-ID: after the start line, Vias, From, To (SIPp: ~250)
_BLOCK = 32

# classic BPF opcodes (linux/filter.h, linux/bpf_common.h)
_LD, _LDX, _ST, _ALU, _JMP, _RET, _MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
_W, _B = 0x00, 0x10
_IMM, _ABS, _IND, _MEM, _LEN = 0x00, 0x20, 0x40, 0x60, 0x80
_ADD, _SUB, _MUL, _LSH, _RSH, _MOD, _XOR = 0x00, 0x10, 0x20, 0x60, 0x70, 0x90, 0xA0
_JA, _JEQ, _JGE = 0x00, 0x10, 0x30
_K, _X = 0x00, 0x08
_RET_A = 0x10
_TAX, _TXA = 0x00, 0x80
_RANDOM = 0xFFFFF000 + 56  # SKF_AD_OFF + SKF_AD_RANDOM


def _word(text: bytes) -> int:
    return int.from_bytes(text, "big")


class _Asm:
    """A tiny assembler: conditional jumps are short (jt/jf counts), ``ja`` takes labels."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int | str]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int | str = 0, jt: int = 0, jf: int = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def ja(self, name: str) -> None:
        self.op(_JMP | _JA, name)

    def build(self) -> bytes:
        out = []
        for at, (code, jt, jf, k) in enumerate(self.code):
            if isinstance(k, str):
                k = self.labels[k] - at - 1
            out.append(struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF))
        if len(out) > MAX_INSNS:
            raise ValueError(f"steering program too long ({len(out)} instructions)")
        return b"".join(out)


def _need(asm: _Asm, length: int) -> None:
    """Go to ``nohint`` unless the datagram has at least ``length`` bytes."""
    asm.op(_LD | _W | _LEN)
    asm.op(_JMP | _JGE | _K, length, jt=1)
    asm.ja("nohint")


def _need_x(asm: _Asm, extra: int) -> None:
    """Go to ``nohint`` unless the datagram has ``X + extra`` bytes (X kept)."""
    asm.op(_MISC | _TXA)
    asm.op(_ST, 1)
    asm.op(_ALU | _ADD | _K, extra)
    asm.op(_MISC | _TAX)
    asm.op(_LD | _W | _LEN)
    asm.op(_JMP | _JGE | _X, jt=1)
    asm.ja("nohint")
    asm.op(_LDX | _MEM, 1)


def _scan(asm: _Asm, first: int, window: int, pattern: bytes, found: str) -> None:
    """X = the first offset of ``pattern`` (4 bytes) in [first, window), then go to ``found``."""
    word = _word(pattern)
    for block in range(first, window, _BLOCK):
        stop = min(window, block + _BLOCK)
        _need(asm, stop + 4)
        for at in range(block, stop):
            asm.op(_LD | _W | _ABS, at)
            asm.op(_JMP | _JEQ | _K, word, jf=2)
            asm.op(_LDX | _IMM, at)
            asm.ja(found)
    asm.ja("nohint")


def _hex_digit(asm: _Asm, offset: int) -> None:
    """A = the value of the hex digit at X + offset (a non-digit gives a large value)."""
    asm.op(_LD | _B | _IND, offset)
    asm.op(_JMP | _JGE | _K, 0x61, jf=2)
    asm.op(_ALU | _SUB | _K, 87)
    asm.op(_JMP | _JA, 1)
    asm.op(_ALU | _SUB | _K, 48)


def program(workers: int, live: Sequence[bool] | None = None) -> bytes:
    """The steering program of ``workers`` sockets (``live[i]`` False: worker i is down)."""
    alive = [True] * workers if live is None else list(live)
    if len(alive) != workers or not any(alive):
        raise ValueError("at least one live worker is needed")
    asm = _Asm()
    _need(asm, 16)
    asm.op(_LD | _W | _ABS, 0)
    asm.op(_JMP | _JEQ | _K, _word(b"SIP/"), jf=1)
    asm.ja("response")

    # a request: the first "\nCall-ID:" (scanning for "-ID:"), its value hashed
    _scan(asm, 5, REQUEST_WINDOW, b"-ID:", "call_id")
    asm.label("call_id")
    _need_x(asm, 4 + 2)  # "-ID:", two blanks at most
    asm.op(_MISC | _TXA)
    asm.op(_ALU | _SUB | _K, 5)
    asm.op(_MISC | _TAX)
    asm.op(_LD | _B | _IND, 0)
    asm.op(_JMP | _JEQ | _K, 0x0A, jt=1)
    asm.ja("nohint")
    asm.op(_LD | _W | _IND, 1)
    asm.op(_JMP | _JEQ | _K, _word(b"Call"), jt=1)
    asm.ja("nohint")
    asm.op(_MISC | _TXA)
    asm.op(_ALU | _ADD | _K, 9)  # X = just after the colon
    asm.op(_MISC | _TAX)
    for _ in range(2):  # skip a blank (space or tab), twice at most
        asm.op(_LD | _B | _IND, 0)
        asm.op(_JMP | _JEQ | _K, 0x20, jt=1)
        asm.op(_JMP | _JEQ | _K, 0x09, jf=3)
        asm.op(_MISC | _TXA)
        asm.op(_ALU | _ADD | _K, 1)
        asm.op(_MISC | _TAX)
    asm.op(_MISC | _TXA)
    asm.op(_ST, 1)  # M[1] = the value's offset
    asm.op(_LD | _IMM, FNV_OFFSET)
    asm.op(_ST, 0)  # M[0] = the hash
    for at in range(HASHED):  # FNV-1a over the value, up to a blank or control byte
        if at % 8 == 0:
            _need_x(asm, at + 8)
        asm.op(_LD | _B | _IND, at)
        asm.op(_JMP | _JGE | _K, 0x21, jt=1)
        asm.ja("hashed")
        asm.op(_LDX | _MEM, 0)
        asm.op(_ALU | _XOR | _X)
        asm.op(_ALU | _MUL | _K, FNV_PRIME)
        asm.op(_ST, 0)
        asm.op(_LDX | _MEM, 1)
    asm.label("hashed")
    asm.op(_LD | _MEM, 0)
    asm.op(_ALU | _RSH | _K, 16)  # the high half: it depends on every byte
    asm.op(_ALU | _MOD | _K, workers)
    asm.ja("owner")

    # a response: the worker index after the first "pksW"
    asm.label("response")
    _scan(asm, 8, RESPONSE_WINDOW, b"pksW", "branch")
    asm.label("branch")
    _need_x(asm, 6)
    _hex_digit(asm, 4)
    asm.op(_ALU | _LSH | _K, 4)
    asm.op(_ST, 0)
    _hex_digit(asm, 5)
    asm.op(_LDX | _MEM, 0)
    asm.op(_ALU | _ADD | _X)
    asm.op(_JMP | _JGE | _K, workers, jf=1)
    asm.ja("nohint")

    # A = the owner: its socket, or the next live one while it is down
    asm.label("owner")
    if all(alive):
        asm.op(_RET | _RET_A)
    else:
        for owner in range(workers):
            asm.op(_JMP | _JEQ | _K, owner, jf=1)
            asm.op(_RET | _K, _next_live(alive, owner))
        asm.op(_RET | _K, _next_live(alive, 0))

    # no owner found in the bytes: a random live worker (the Router hands it off)
    asm.label("nohint")
    targets = [i for i, up in enumerate(alive) if up]
    asm.op(_LD | _W | _ABS, _RANDOM)
    asm.op(_ALU | _MOD | _K, len(targets))
    if len(targets) == workers:
        asm.op(_RET | _RET_A)
    else:
        for slot, target in enumerate(targets):
            asm.op(_JMP | _JEQ | _K, slot, jf=1)
            asm.op(_RET | _K, target)
        asm.op(_RET | _K, targets[0])
    return asm.build()


def _next_live(alive: Sequence[bool], owner: int) -> int:
    for step in range(len(alive)):
        candidate = (owner + step) % len(alive)
        if alive[candidate]:
            return candidate
    raise ValueError("no live worker")


def attach(sock: socket.socket, code: bytes) -> None:
    """Attach ``code`` to the reuseport group of ``sock`` (replacing its program)."""
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def drain(sock: socket.socket, limit: int = 100_000) -> int:
    """Discard what waits on ``sock`` (a dead worker's queue); the number of datagrams."""
    count = 0
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while count < limit:
            sock.recv(65535, socket.MSG_DONTWAIT)
            count += 1
    return count
