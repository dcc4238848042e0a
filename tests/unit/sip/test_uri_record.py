"""``Uri`` as a `Record`: equality and hash over its parts, not the text it was parsed from."""

from pks.forward.nat import take_ruri_alias
from pks.sip.uri import Uri, parse_uri


def test_a_uri_equals_the_same_parts_whatever_its_text() -> None:
    parsed = parse_uri("sip:+331@10.0.0.1:5060;user=phone")
    built = Uri("sip", "+331", None, "10.0.0.1", 5060, (("user", "phone"),))
    assert parsed.raw != built.raw
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert parsed != parse_uri("sip:+331@10.0.0.1:5061;user=phone")


def test_replace_params_keeps_every_other_part() -> None:
    uri = parse_uri("sip:bob@192.0.2.7:5070;alias=10.0.0.9~5080~1;transport=udp")
    found = take_ruri_alias(uri)
    assert found is not None
    assert found[2] == "sip:bob@192.0.2.7:5070;transport=udp"
    stripped = uri.replace_params(())
    assert (stripped.user, stripped.host, stripped.port, stripped.params) == (
        "bob",
        "192.0.2.7",
        5070,
        (),
    )
