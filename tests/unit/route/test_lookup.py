"""lookup() / translate(): Kamailio dialplan dp_match and dialplan.translate, §2.2–§2.7."""

from __future__ import annotations

import pytest

from pks.route import DialplanRow, SnapshotError, lookup, translate
from pks.route.lookup import TranslateError


def rule(
    id: int,
    match_exp: str,
    *,
    dpid: int = 1,
    pr: int = 1,
    op: int = 1,
    length: int = 0,
    subst: str = "",
    repl: str = "",
    attrs: str | None = None,
) -> DialplanRow:
    return DialplanRow(id, dpid, pr, op, match_exp, length, subst, repl, attrs or f"r{id}")


def winner(snapshot, user: str, dpid: int = 1) -> int | None:
    match = lookup(snapshot, dpid, user)
    return None if match is None else match.rule_id


def test_length_specific_rules_come_before_every_length_zero_rule(build) -> None:
    # verified: pr 50, len 11 beat pr 10, len 0 for an 11-digit input
    snap = build(dialplan=(rule(1, "^33", pr=10), rule(2, "^33", pr=50, length=11)))
    assert winner(snap, "33123456789") == 2
    assert winner(snap, "3312345678") == 1  # 10 characters: the len-11 rule is not considered


def test_match_len_is_the_whole_input_length_not_a_prefix(build) -> None:
    snap = build(dialplan=(rule(1, "^3320202020[0-9]$", length=1),))  # the seed's defect
    assert winner(snap, "33202020201") is None
    assert winner(snap, "3") is None


def test_priority_ascending_then_id(build) -> None:
    snap = build(
        dialplan=(rule(5, "^1", pr=2), rule(4, "^1", pr=2), rule(9, "^1", pr=1), rule(2, "^2"))
    )
    assert winner(snap, "123") == 9
    snap = build(dialplan=(rule(5, "^1", pr=2), rule(4, "^1", pr=2)))
    assert winner(snap, "123") == 4


def test_first_match_is_final_even_if_its_subst_would_fail(build, seed) -> None:
    snap = build(
        dialplan=(
            rule(1, "^33", pr=1, subst="^99(.*)", repl="\\1", attrs="first"),
            rule(2, "^33", pr=2, subst="^33(.*)", repl="0\\1", attrs="second"),
        )
    )
    match = lookup(snap, 1, "33123")
    assert match is not None and match.attrs == "first"  # dp_match ignores subst/repl
    with pytest.raises(TranslateError, match="No translation"):
        translate(snap, 1, "33123")  # no fall-through to rule 2


def test_regex_search_is_unanchored(build) -> None:
    snap = build(dialplan=(rule(1, "123"),))
    assert winner(snap, "91234") == 1


def test_equal_operator_is_whole_string_and_case_sensitive(build) -> None:
    snap = build(dialplan=(rule(1, "33123", op=0), rule(2, "", op=0), rule(3, "ABC", op=0)))
    assert winner(snap, "33123") == 1
    assert winner(snap, "331234") is None
    assert winner(snap, "3312") is None
    assert winner(snap, "abc") is None
    assert winner(snap, "ABC") == 3


def test_fnmatch_operator(build) -> None:
    snap = build(
        dialplan=(
            rule(1, "45*", op=2),
            rule(2, "[!0]??", op=2),
            rule(3, "\\*9", op=2),
            rule(4, "[^1]x", op=2),
        )
    )
    assert winner(snap, "45abc") == 1
    assert winner(snap, "123") == 2
    assert winner(snap, "023") is None
    assert winner(snap, "*9") == 3
    assert winner(snap, "2x") == 4


def test_empty_input_and_unknown_dpid_never_match(build) -> None:
    snap = build(dialplan=(rule(1, ""), rule(2, "*", op=2)))
    assert winner(snap, "") is None
    assert winner(snap, "x", dpid=7) is None
    assert winner(snap, "x") == 1  # the empty regex matches any non-empty input


def test_lengths_and_dots_count_bytes(build) -> None:
    snap = build(dialplan=(rule(1, "^.$", length=2), rule(2, "^..$")))
    assert winner(snap, "é") == 2  # 2 bytes: rule 1's regex sees two characters
    snap = build(dialplan=(rule(1, "^..$", length=2),))
    assert winner(snap, "é") == 1


def test_set_id_is_parsed_from_attrs(build) -> None:
    snap = build(
        dialplan=(
            rule(1, "^1", attrs="23"),
            rule(2, "^2", attrs="-4"),
            rule(3, "^3", attrs=" 23"),
            rule(4, "^4", attrs="set=23"),
        )
    )
    assert [lookup(snap, 1, f"{n}0").set_id for n in (1, 2, 3, 4)] == [23, -4, None, None]


def test_seed_rules(seed) -> None:
    assert lookup(seed, 1, "33202020201").set_id == 23
    assert lookup(seed, 1, "3320202020") is None
    assert lookup(seed, 2, "+33612345678").rule_id == 2  # id 2 before id 3 (same pr)
    assert lookup(seed, 2, "+3361234567") is None  # 11 characters: only len-12 rules exist
    assert lookup(seed, 1, "+33612345678") is None


def test_dump_is_in_evaluation_order(build) -> None:
    snap = build(
        dialplan=(
            rule(1, "a", pr=5),
            rule(2, "b", pr=1, length=11),
            rule(3, "c", pr=9, length=3),
            rule(4, "d", pr=0),
            rule(5, "e", dpid=2),
        )
    )
    assert [r.id for r in snap.dialplan_dump(1)] == [3, 2, 4, 1]
    assert snap.dialplan_dump(3) is None
    assert snap.dialplan_dpids() == (1, 2)


# -- translate: output construction (§2.4), verified examples ---------------------------


@pytest.mark.parametrize(
    ("row", "text", "output"),
    [
        (rule(1, "^33", subst="^33(.*)$", repl="0\\1"), "3312345678", "012345678"),
        (rule(1, "^33", subst="^33(.*)$", repl="0\\1"), "330", "00"),
        (rule(1, "45*", op=2, subst="4(5)(.*)", repl="\\2-\\1"), "45abc", "abc-5"),
        (rule(1, "^6", subst="6.", repl="[\\0]"), "612", "[61]"),
        (rule(1, "^8", subst="8(1)", repl="<\\1>"), "8123", "<1>"),  # only the replacement
        (rule(1, "^1", subst="", repl="L\\0"), "123", "L\\0"),  # empty subst: verbatim
        (rule(1, "^1", subst="", repl="fixed"), "123", "fixed"),
        (rule(1, "^1", subst="^1", repl="fixed"), "123", "fixed"),  # no escapes: verbatim
        (rule(1, "^1", subst="nomatch", repl=""), "123", ""),  # empty repl: not even tested
        (rule(1, "^0", subst="^0(.*)$", repl="+33\\1$rU"), "0612345678", "+33612345678$rU"),
        (rule(1, "^0", subst="^0(.*)$", repl="\\u:\\1"), "012", "\\u:12"),
        (rule(1, "^0", subst="^0(.*)$", repl="$avp(x[1])=\\1"), "012", "$avp(x[1])=12"),
        (rule(1, "^0", subst="^0(x)?", repl="[\\1]"), "012", "[]"),  # unset group: empty
        (rule(1, "^0", subst="^0", repl="\\\\\\n\\t\\$\\q"), "012", "\\\n\t$q"),
        (rule(1, "^0", subst="^0", repl="a\\"), "012", "a\\"),  # trailing backslash kept
    ],
)
def test_translate_output(build, row: DialplanRow, text: str, output: str) -> None:
    snap = build(dialplan=(row,))
    assert translate(snap, 1, text) == (output, row.attrs)


def test_translate_faults(build, seed) -> None:
    snap = build(dialplan=(rule(1, "^1", subst="^(1)", repl="x\\1"),))
    with pytest.raises(TranslateError, match=r"^Dialplan ID not matched$"):
        translate(snap, 9, "1")
    with pytest.raises(TranslateError, match=r"^Empty input parameter$"):
        translate(snap, 1, "")
    with pytest.raises(TranslateError, match=r"^No translation$"):
        translate(snap, 1, "2")
    # the seed's placeholder subst_exp '0' on a number without a 0: dp_match succeeds,
    # translate fails
    assert lookup(seed, 2, "+33612345678") is not None
    assert translate(seed, 2, "+33612345608") == ("0", "21")
    with pytest.raises(TranslateError, match=r"^No translation$"):
        translate(seed, 2, "+33612345678")


def test_translate_output_limit(build) -> None:
    snap = build(dialplan=(rule(1, "", subst="(.*)", repl="\\1"),))
    assert translate(snap, 1, "1" * 126) == ("1" * 126, "r1")
    with pytest.raises(TranslateError):
        translate(snap, 1, "1" * 127)


# -- load errors (§2.2): the whole table is rejected, naming each row ------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (rule(7, "x", op=3), "match_op 3 is not 0 (equal), 1 (regex) or 2 (fnmatch)"),
        (rule(7, "x", length=-1), "match_len -1 is negative"),
        (
            rule(7, "+33[1-9][0-9]+$"),
            "match_exp '+33[1-9][0-9]+$' does not compile: nothing to repeat at position 0",
        ),
        (rule(7, "x", subst="(a", repl="b"), "subst_exp '(a' does not compile: missing )"),
        (rule(7, "x", subst="", repl="\\1"), "repl_exp '\\\\1' refers to \\1 but subst_exp"),
        (rule(7, "x", subst="(a)", repl="\\2"), "repl_exp '\\\\2' refers to \\2"),
        (rule(7, "x", subst="(a)", repl="\\1" * 10), "more than 9 escapes"),
        (rule(7, "x", repl="a$"), "repl_exp 'a$' is invalid: bad $pv spec"),
        (rule(7, "x", repl="$avp(x"), "is invalid: bad $pv spec"),
        (rule(7, "x", subst="()" * 11, repl="a"), "has 11 groups (at most 10)"),
        (rule(7, "x", attrs="a" * 255), "attrs is 255 bytes (at most 254)"),
        (rule(7, "^(3+)+$"), "match_exp '^(3+)+$' can take exponential time to match"),
        (rule(7, "x", subst="(\\d+)*\\d", repl="\\1"), "subst_exp '(\\\\d+)*\\\\d' can take"),
        (rule(7, "*1*1*1*2", op=2), "match_exp '*1*1*1*2' (fnmatch) can take too long"),
    ],
)
def test_invalid_rule_rejects_the_build(build, row: DialplanRow, reason: str) -> None:
    with pytest.raises(SnapshotError) as err:
        build(dialplan=(rule(1, "^1"), row))
    assert err.value.problems[0].startswith("dialplan id 7: ")
    assert reason in err.value.problems[0]


def test_seed_original_rows_are_rejected(build) -> None:
    original = (
        DialplanRow(1, 1, 1, 1, "^3320202020[0-9]$", 1, "0", "0", "23"),
        DialplanRow(2, 2, 1, 1, "+33[1-9][0-9]+$", 12, "0", "0", "21"),
        DialplanRow(3, 2, 1, 1, r"^\+33[1-9][0-9]+$", 12, "1", "1", "201"),
    )
    with pytest.raises(SnapshotError) as err:
        build(dialplan=original)
    assert err.value.problems == (
        "dialplan id 2: match_exp '+33[1-9][0-9]+$' does not compile:"
        " nothing to repeat at position 0",
    )
