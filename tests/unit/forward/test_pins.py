"""Connections live dialogs depend on (pks.forward.pins.DialogPins)."""

from __future__ import annotations

from pks.forward.pins import DialogPins


def test_a_dialog_pins_its_connections_until_it_ends() -> None:
    pins = DialogPins(max_duration=100.0)
    pins.pin("c1", "ft", "tt", (7, None), now=0.0)
    assert pins.pinned(7, 50.0) and not pins.pinned(8, 50.0)
    assert pins.unpin("c1", "tt", "ft")  # the callee's BYE: the tags the other way round
    assert not pins.pinned(7, 50.0) and len(pins) == 0
    assert not pins.unpin("c1", "ft", "tt")


def test_a_connection_stays_pinned_while_any_of_its_dialogs_lives() -> None:
    pins = DialogPins()
    pins.pin("c1", "a", "b", (7, 9), now=0.0)
    pins.pin("c2", "c", "d", (7,), now=1.0)
    pins.pin("c1", "a", "b", (7, 9), now=2.0)  # a retransmitted 2xx counts once
    pins.unpin("c1", "a", "b")
    assert pins.pinned(7, 3.0) and not pins.pinned(9, 3.0)
    pins.unpin("c2", "c", "d")
    assert not pins.pinned(7, 3.0)


def test_udp_only_dialogs_are_not_kept() -> None:
    pins = DialogPins()
    pins.pin("c1", "a", "b", (None, None), now=0.0)
    assert len(pins) == 0


def test_a_pin_ends_after_max_duration_even_without_bye() -> None:
    pins = DialogPins(max_duration=10.0)
    pins.pin("c1", "a", "b", (7,), now=0.0)
    pins.pin("c2", "c", "d", (8,), now=5.0)
    pins.pin("c1", "a", "b", (9,), now=8.0)  # a re-INVITE's 2xx does not extend it
    assert pins.pinned(7, 9.9) and pins.pinned(9, 9.9)
    assert not pins.pinned(7, 10.0) and not pins.pinned(9, 10.0)
    assert pins.pinned(8, 14.9) and not pins.pinned(8, 15.0)
    assert len(pins) == 0
