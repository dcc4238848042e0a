"""RFC 4475 torture messages, verbatim (copied from the RFC's archive), with their verdicts.

Each file goes through parse (step ②) and sanity (step ③). VALID messages must pass both, or
end in the application-level answer the RFC names (416, 420); INVALID ones must be rejected with
the stated code (requests) or refused (responses). Never any other exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pks.sanity import check_request, check_response
from pks.sip import ParseError, parse

HERE = Path(__file__).parent / "rfc4475"

ACCEPT = "accept"
# file → ACCEPT, or the reply code a request gets, or "drop" for a response we refuse.
VERDICTS: dict[str, str | int] = {
    "wsinv": ACCEPT, "intmeth": ACCEPT, "esc01": ACCEPT, "escnull": ACCEPT, "esc02": ACCEPT,
    "lwsdisp": ACCEPT, "longreq": ACCEPT, "dblreq": ACCEPT, "semiuri": ACCEPT,
    "transports": ACCEPT, "mpart01": ACCEPT, "unreason": ACCEPT, "noreason": ACCEPT,
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "scalarlg": "drop",
    "quotbal": 400, "ltgtruri": 400, "lwsruri": 400, "lwsstart": 400, "trws": 400,
    "escruri": 400, "regbadct": 400, "badaspec": 400, "baddn": 400, "badvers": 505,
    "mismatch01": 400, "mismatch02": 400, "bigcode": "drop", "badbranch": ACCEPT,
    "insuf": 400, "unkscm": 416, "novelsc": 416, "unksm2": ACCEPT, "bext01": 420,
    "invut": ACCEPT, "regaut01": ACCEPT, "multi01": 400, "mcl01": 400, "bcast": ACCEPT,
    "zeromf": ACCEPT, "cparam01": ACCEPT, "cparam02": ACCEPT, "regescrt": ACCEPT,
    "sdp01": ACCEPT, "inv2543": ACCEPT,
    "baddate": ACCEPT,  # lenient verdict: a proxy that ignores Date may forward it
}  # fmt: skip


def verdict(data: bytes) -> str | int:
    try:
        msg = parse(data)
    except ParseError as exc:
        return "drop" if data.startswith(b"SIP/") else exc.status
    if not msg.is_request:
        return ACCEPT if check_response(msg) is None else "drop"
    rejected = check_request(msg)
    return ACCEPT if rejected is None else rejected.code


def test_every_vector_has_a_verdict() -> None:
    assert sorted(p.stem for p in HERE.glob("*.sip")) == sorted(VERDICTS)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_vector(name: str) -> None:
    data = (HERE / f"{name}.sip").read_bytes()
    assert verdict(data) == VERDICTS[name]


@pytest.mark.parametrize("name", sorted(n for n, v in VERDICTS.items() if v == ACCEPT))
def test_valid_vectors_round_trip(name: str) -> None:
    data = (HERE / f"{name}.sip").read_bytes()
    msg = parse(data)
    out = msg.to_bytes()
    if name in ("dblreq", "inv2543"):
        assert data.startswith(out[: len(out) - len(msg.body)])
    else:
        assert out == data


def test_dblreq_ignores_trailing_invite() -> None:
    msg = parse((HERE / "dblreq.sip").read_bytes())
    assert msg.method == "REGISTER" and msg.body == b""


def test_esc01_routes_on_decoded_user() -> None:
    msg = parse((HERE / "esc01.sip").read_bytes())
    assert msg.uri.user_decoded == "sips:user@example.com"


def test_semiuri_host() -> None:
    msg = parse((HERE / "semiuri.sip").read_bytes())
    assert msg.uri.host == "example.com"
    assert msg.uri.user == "user;par=u%40example.net"


def test_wsinv_folding_and_compact_forms() -> None:
    msg = parse((HERE / "wsinv.sip").read_bytes())
    assert msg.max_forwards == 68
    assert msg.cseq.number == 9 and msg.cseq.method == "INVITE"
    assert len(msg.vias) == 3
    assert msg.to.tag == "1918181833n" and msg.from_.tag == "98asjd8"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"


def test_cparam01_is_header_param() -> None:
    msg = parse((HERE / "cparam01.sip").read_bytes())
    c = msg.contacts[0]
    assert c.param("unknownparam") == "" and not c.uri.params


def test_cparam02_is_uri_param() -> None:
    msg = parse((HERE / "cparam02.sip").read_bytes())
    assert msg.contacts[0].uri.has_param("unknownparam")
