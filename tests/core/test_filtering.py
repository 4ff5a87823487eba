"""The filter parser (AIP-160 subset) and order_by: what parses into what, and every
refusal with the position and the problem it names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.core.errors import InvalidArgument
from services.core.filter_syntax import parse_filter
from services.core.filtering import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    And,
    Comparison,
    Expr,
    Not,
    Op,
    Or,
    Ordering,
    Schema,
    boolean,
    canonical,
    choice,
    integer,
    mapping,
    names_field,
    parse_order_by,
    prefix_bounds,
    repeated,
    string,
    timestamp,
    token_scope,
)

SCHEMA = Schema((
    choice("kind", {"direct": "direct", "group": "group", "KIND_GROUP": "group"}),
    boolean("unread"),
    integer("count"),
    choice("role", {"member": 1, "admin": 3, "owner": 4}, ordered=True),
    string("user_id", prefix=True),
    string("exact"),
    timestamp("create_time"),
    mapping("metadata"),
    repeated("mention_ids"),
))


def parse(text: str) -> Expr | None:
    return parse_filter(text, SCHEMA)


def refusal(text: str) -> str:
    """The field violation's description of a refused filter."""
    with pytest.raises(InvalidArgument) as caught:
        parse(text)
    error = caught.value
    assert error.reason == "REQUEST_INVALID"
    assert [v.field for v in error.field_violations] == ["filter"]
    assert error.message == f"invalid filter: {error.field_violations[0].description}"
    return error.field_violations[0].description


def test_empty_filter_is_none() -> None:
    assert parse("") is None and parse("   ") is None


@pytest.mark.parametrize(("text", "tree"), [
    ("kind = group", Comparison("kind", Op.EQ, "group")),
    ("kind = KIND_GROUP", Comparison("kind", Op.EQ, "group")),
    ('kind != "Group"', Comparison("kind", Op.NE, "group")),
    ("unread = true", Comparison("unread", Op.EQ, True)),
    ("unread=false", Comparison("unread", Op.EQ, False)),
    ("count >= -3", Comparison("count", Op.GE, -3)),
    ("count<10", Comparison("count", Op.LT, 10)),
    ("role > member", Comparison("role", Op.GT, 1)),
    ('user_id = "ali*"', Comparison("user_id", Op.EQ, "ali", prefix=True)),
    ("user_id = ali*", Comparison("user_id", Op.EQ, "ali", prefix=True)),
    ('user_id != "a\\*"', Comparison("user_id", Op.NE, "a*")),
    ('exact = "say \\"hi\\""', Comparison("exact", Op.EQ, 'say "hi"')),
    ('create_time > "2026-04-05T06:07:08.9005Z"',
     Comparison("create_time", Op.GT, datetime(2026, 4, 5, 6, 7, 8, 900_000, tzinfo=UTC))),
    ('create_time <= "2026-04-05t08:07:08+02:00"',
     Comparison("create_time", Op.LE, datetime(2026, 4, 5, 6, 7, 8, tzinfo=UTC))),
    ('metadata.plan = "pro"', Comparison("metadata", Op.EQ, "pro", key="plan")),
    ('metadata.a.b != "x"', Comparison("metadata", Op.NE, "x", key="a.b")),
    ("metadata:plan", Comparison("metadata", Op.HAS, "plan")),
    ('metadata:"team.lead"', Comparison("metadata", Op.HAS, "team.lead")),
    ('mention_ids:"bob"', Comparison("mention_ids", Op.HAS, "bob")),
])
def test_comparisons(text: str, tree: Comparison) -> None:
    assert parse(text) == tree


def test_or_binds_tighter_than_and_and_not_applies_to_one_term() -> None:
    g = Comparison("kind", Op.EQ, "group")
    u = Comparison("unread", Op.EQ, True)
    c = Comparison("count", Op.GT, 0)
    assert parse("kind = group AND unread = true OR count > 0") == And((g, Or((u, c))))
    assert parse("(kind = group AND unread = true) OR count > 0") == Or((And((g, u)), c))
    assert parse("NOT kind = group AND -unread = true") == And((Not(g), Not(u)))
    assert parse("-(kind = group OR unread = true)") == Not(Or((g, u)))
    assert parse("kind = group OR unread = true OR count > 0") == Or((g, u, c))


def test_canonical_form_ignores_spelling() -> None:
    one = parse('kind=KIND_GROUP AND  user_id = "al*"')
    other = parse('kind = "group" AND user_id = al*')
    assert canonical(one) == canonical(other) == '(kind = "group" AND user_id = "al*")'
    assert canonical(parse('user_id = "a\\*"')) == 'user_id = "a\\*"'
    assert canonical(parse("metadata:x")) == 'metadata:"x"'
    assert canonical(None) == ""


def test_names_field() -> None:
    tree = parse("kind = group AND NOT (unread = true OR metadata:x)")
    assert isinstance(tree, And)
    assert names_field(tree, "unread") and names_field(tree, "metadata")
    assert not names_field(tree, "count") and not names_field(None, "kind")


@pytest.mark.parametrize(("text", "description"), [
    ("colour = red", 'at 1: unknown field "colour"; allowed: kind, unread, count, role, '
                     "user_id, exact, create_time, metadata, mention_ids"),
    ("kind = group AND colour = red", 'at 18: unknown field "colour"'),
    ("kind = purple", "at 8: kind takes one of direct, group, not \"purple\""),
    ("kind > group", "at 6: kind takes = !=, not >"),
    ("kind", "at 5: expected an operator after kind (= !=), found the end of the filter"),
    ("kind group", 'at 6: expected an operator after kind (= !=), found "group"'),
    ("kind =", "at 7: expected a value after =, found the end of the filter"),
    ("kind = AND", 'at 8: expected a value after =, found "AND"'),
    ("unread = yes", 'at 10: unread takes true or false, not "yes"'),
    ('unread = "true"', 'at 10: unread takes true or false, not "true"'),
    ("count = 1.5", 'at 9: count takes an integer, not "1.5"'),
    ("count = 99999999999999999999", "at 9: count takes an integer"),
    ("create_time > 2026", 'at 15: create_time takes an RFC 3339 timestamp in double quotes, '
                           'such as "2026-01-02T15:04:05Z", not "2026"'),
    ('create_time > "2026-01-02"', "at 15: create_time takes an RFC 3339 timestamp"),
    ('create_time > "2026-01-02T10:00:00"', "at 15: create_time takes an RFC 3339"),
    ('create_time > "2026-13-02T10:00:00Z"', 'at 15: "2026-13-02T10:00:00Z" is no valid time'),
    ("exact = ab*", "at 9: exact takes no wildcard (*)"),
    ("user_id = a*b", "at 12: a * matches by prefix only at the end of a value"),
    ('user_id = "*a"', "at 12: a * matches by prefix only at the end of a value"),
    ("metadata = x", "at 12: name a key: metadata.<key> = value, or metadata:<key>"),
    ("metadata.k:x", "at 12: metadata:<key> tests for a key"),
    ("metadata.k > x", "at 12: metadata takes = != :, not >"),
    ('metadata.a/b = "x"', "at 16: metadata keys are 1 to 64 letters, digits, _, . and -"),
    ("metadata:a*", "at 10: metadata takes no wildcard (*)"),
    ('mention_ids = "bob"', "at 13: mention_ids takes :, not ="),
    ("kind.x = group", "at 1: kind has no fields of its own"),
    ("kind = group and unread = true", 'at 14: expected AND, OR or the end of the filter, '
                                       'found "and" (AND, OR and NOT are upper case)'),
    ("kind = group unread = true", 'at 14: expected AND, OR or the end of the filter, '
                                   'found "unread"'),
    ("kind = group AND", "at 17: expected a comparison, found the end of the filter"),
    ("AND kind = group", 'at 1: expected a comparison, found "AND"'),
    ("(kind = group", 'at 1: this "(" is never closed'),
    ("(kind = group unread = true)", 'at 15: expected AND, OR or ")", found "unread"'),
    ("kind = group)", 'at 13: this ")" closes no "("'),
    ("()", 'at 2: expected a comparison, found ")"'),
    ('"hello"', 'at 1: expected a field name, found "hello": free-text search is not '
                "supported"),
    ("user_id = 'x'", "at 11: strings are in double quotes"),
    ('user_id = "x', 'at 11: this string is never closed'),
    ("kind = group ! x", 'at 14: unexpected "!": write != or NOT'),
    ("- kind = group", "at 1: a - negates the term right after it, with no space between"),
    ("kind = group\x00", "at 13: control characters are not allowed"),
    ("NOT NOT kind = group", 'at 5: expected a comparison, found "NOT"'),
    ('user_id = "a\x01"', "at 13: control characters are not allowed"),
])
def test_refusals_name_the_position_and_the_problem(text: str, description: str) -> None:
    assert refusal(text).startswith(description)


def test_positions_count_characters_not_bytes() -> None:
    assert refusal('user_id = "é" AND colour = 1').startswith('at 19: unknown field "colour"')


def test_length_limit() -> None:
    longest = "user_id = " + '"' + "x" * (MAX_FILTER_LENGTH - 12) + '"'
    assert len(longest) == MAX_FILTER_LENGTH
    assert parse(longest) == Comparison("user_id", Op.EQ, "x" * (MAX_FILTER_LENGTH - 12))
    assert refusal(longest + " ") == (f"at {MAX_FILTER_LENGTH + 1}: a filter has at most "
                                      f"{MAX_FILTER_LENGTH} characters")


def test_comparison_limit() -> None:
    most = " OR ".join(f"count = {i}" for i in range(MAX_COMPARISONS))
    tree = parse(most)
    assert isinstance(tree, Or) and len(tree.terms) == MAX_COMPARISONS
    over = most + " OR count = 99"
    assert refusal(over) == f"at {len(most) + 5}: more than {MAX_COMPARISONS} comparisons"


def test_nesting_limit() -> None:
    deepest = "(" * MAX_DEPTH + "unread = true" + ")" * MAX_DEPTH
    assert parse(deepest) == Comparison("unread", Op.EQ, True)
    assert refusal("(" + deepest + ")") == (f"at {MAX_DEPTH + 1}: parentheses and NOT nested "
                                            f"deeper than {MAX_DEPTH}")
    assert refusal("-" * 1 + deepest).startswith(f"at {MAX_DEPTH + 1}: parentheses and NOT")


def test_prefix_bounds() -> None:
    assert prefix_bounds("ali") == ("ali", "alj")
    assert prefix_bounds("a\U0010ffff") == ("a\U0010ffff", "b")
    assert prefix_bounds("\U0010ffff") == ("\U0010ffff", None)
    assert prefix_bounds("a\ud7ff") == ("a\ud7ff", "a\ue000")
    assert prefix_bounds("") == ("", None)


ORDERINGS = (
    Ordering("pinned desc, time desc", ("pinned", "time", "id"), ("flag", "time", "id"), True),
    Ordering("time", ("time", "id"), ("time", "id")),
    Ordering("time desc", ("time", "id"), ("time", "id"), True),
)


@pytest.mark.parametrize(("text", "index"), [
    ("", 0), ("  ", 0), ("pinned desc, time desc", 0), ("pinned DESC,time   desc", 0),
    ("time", 1), ("time asc", 1), ("time ASC", 1), ("time desc", 2), (" time  Desc ", 2),
])
def test_order_by(text: str, index: int) -> None:
    assert parse_order_by(text, ORDERINGS) is ORDERINGS[index]


@pytest.mark.parametrize(("text", "description"), [
    ("title", '"title" is not an order of this list; it takes "pinned desc, time desc"; '
              '"time"; "time desc" (the first is the default)'),
    ("time desc, pinned desc", '"time desc, pinned desc" is not an order of this list'),
    ("time sideways", '"time sideways" is not "field", "field asc" or "field desc"'),
    ("time,", '"" is not "field", "field asc" or "field desc"'),
    ("x" * 129, "at most 128 characters"),
])
def test_bad_order_by(text: str, description: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_order_by(text, ORDERINGS)
    violation, = caught.value.field_violations
    assert violation.field == "order_by" and violation.description.startswith(description)


def test_token_scope_is_empty_for_the_defaults() -> None:
    assert token_scope(None, ORDERINGS[0], ORDERINGS[0]) == []
    tree = parse("unread = true")
    assert token_scope(tree, ORDERINGS[1], ORDERINGS[0]) == ["filter=unread = true",
                                                            "order_by=time"]
