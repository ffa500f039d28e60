"""Alert message templates: the grammar, save-time validation, rendering and estimates."""

from __future__ import annotations

import inspect
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casereach.alerts import templates
from casereach.alerts.templates import (
    UNKNOWN,
    Estimate,
    Placeholder,
    RenderContext,
    TemplateError,
    blank_languages,
    estimate,
    needed_properties,
    parse_template,
    render,
    unknown_placeholders,
    validate_content,
    validate_template,
)

FAST = settings(max_examples=200, deadline=None, derandomize=True)

FULL = RenderContext(
    case_name="Amina Juma",
    case_properties={"dob": "2024-01-05", "next-visit": "12 March", "_village": "Moshi"},
    owner_name="Nurse Neema",
    parent_name="Mama Amina",
    parent_properties={"phone_village": "Arusha"},
    recipient_name="Baraka",
)


# --- parsing -------------------------------------------------------------------------------


def test_parse_every_placeholder_kind() -> None:
    text = (
        "Hi {recipient.name}: {case.name} ({case.dob}) of {case.parent.name} in "
        "{case.parent.phone_village}, owner {case.owner.name}"
    )
    expected = [
        "Hi ",
        Placeholder("recipient", "name"),
        ": ",
        Placeholder("case", "name"),
        " (",
        Placeholder("case", "dob"),
        ") of ",
        Placeholder("parent", "name"),
        " in ",
        Placeholder("parent", "phone_village"),
        ", owner ",
        Placeholder("owner", "name"),
    ]
    assert expected == parse_template(text)
    assert [p for p in expected if isinstance(p, Placeholder)] == validate_template(text)


@pytest.mark.parametrize(
    "name", ["a", "_x", "next-visit", "dob2", "A_b-C", "x" * 64, "_", "name_", "owner_id"]
)
def test_valid_property_names(name: str) -> None:
    assert [Placeholder("case", name)] == parse_template("{case." + name + "}")
    assert [Placeholder("parent", name)] == parse_template("{case.parent." + name + "}")


def test_empty_and_plain_text() -> None:
    assert [] == parse_template("")
    assert ["no placeholders here"] == parse_template("no placeholders here")
    assert [] == validate_template("no placeholders here")


def test_placeholder_text_round_trips() -> None:
    for text in [
        "{case.name}",
        "{case.dob}",
        "{case.owner.name}",
        "{case.parent.name}",
        "{case.parent.x-y}",
        "{recipient.name}",
    ]:
        (placeholder,) = validate_template(text)
        assert text == placeholder.text == str(placeholder)


# --- save-time rejection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named", "position"),
    [
        ("{case.__class__}", "unknown placeholder {case.__class__} at 1", 1),
        ("{case.parent.__dict__}", "unknown placeholder {case.parent.__dict__} at 1", 1),
        ("{case.__x}", "unknown placeholder {case.__x} at 1", 1),
        ("{__import__}", "unknown placeholder {__import__} at 1", 1),
        ("{{7*7}}", "unknown placeholder {{7*7}} at 1", 1),
        ("{0.__globals__}", "unknown placeholder {0.__globals__} at 1", 1),
        ("{case.name!r}", "unknown placeholder {case.name!r} at 1", 1),
        ("{case.name:>10}", "unknown placeholder {case.name:>10} at 1", 1),
        ("{}", "unknown placeholder {} at 1", 1),
        ("{case.name }", "unknown placeholder {case.name } at 1", 1),
        ("{case..name}", "unknown placeholder {case..name} at 1", 1),
        ("{case.name.}", "unknown placeholder {case.name.} at 1", 1),
        ("{case.1st}", "unknown placeholder {case.1st} at 1", 1),
        ("{case.-x}", "unknown placeholder {case.-x} at 1", 1),
        ("{case.a[0]}", "unknown placeholder {case.a[0]} at 1", 1),
        ("{case.é}", "unknown placeholder {case.é} at 1", 1),
        ("{case." + "x" * 65 + "}", "at 1: property names are at most 64 characters", 1),
        ("{0}", "unknown placeholder {0} at 1", 1),
        ("{case.name", "unclosed placeholder {case.name at 1", 1),
        ("{", "unclosed placeholder { at 1", 1),
        ("}", "unmatched '}' at 1", 1),
        ("{{", "unclosed placeholder {{ at 1", 1),
        ("}}", "unmatched '}' at 1", 1),
        ("{case.name}}", "unmatched '}' at 12", 12),
        ("{{case.name}}", "unknown placeholder {{case.name}} at 1", 1),
        ("{case.{name}}", "unknown placeholder {case.{name}} at 1", 1),
        ("a } b", "unmatched '}' at 3", 3),
        ("a { b", "unclosed placeholder { b at 3", 3),
    ],
)
def test_invalid_templates_rejected_with_name_and_position(
    text: str, named: str, position: int
) -> None:
    with pytest.raises(TemplateError) as info:
        validate_template(text)
    assert named in str(info.value)
    assert position == info.value.position
    with pytest.raises(TemplateError):
        render(text, FULL)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{case.__class__}", "names starting with '__' are not allowed"),
        ("{case.name!r}", "conversions and format specs"),
        ("{{7*7}}", "there is no brace escaping"),
        ("}", "there is no brace escaping"),
        ("{case.a b}", "spaces and line breaks are not allowed"),
    ],
)
def test_rejection_explains_why(text: str, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        validate_template(text)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("{case}", "name what to show"),
        ("{case.owner.phone}", "only {case.owner.name}"),
        ("{case.owner}", "only {case.owner.name}"),
        ("{case.parent}", "write {case.parent.name}"),
        ("{case.parent.owner}", "owner is not available"),
        ("{case.parent.parent.x}", "only one level of parent"),
        ("{case.dob.year}", "no sub-properties"),
        ("{recipient.phone}", "only {recipient.name}"),
        ("{recipient}", "only {recipient.name}"),
        ("{Case.name}", "placeholders start with"),
        ("{name}", "placeholders start with"),
        ("{case.host.village}", "no sub-properties"),
    ],
)
def test_an_unknown_but_well_formed_placeholder_renders_a_question_mark(
    text: str, hint: str
) -> None:
    """SPEC 5, as CommCare: an unknown placeholder renders (?); what is available is said."""
    assert "Hi (?)!" == render(f"Hi {text}!", FULL)
    [found] = unknown_placeholders({"en": f"Hi {text} and {text}", "sw": "Habari"})
    assert (text, "unknown") == (found.text, found.scope)
    assert hint in found.hint


def test_positions_count_characters_from_one() -> None:
    text = "Habari {recipient.name}, 😀 ሰላም {case.__class__} then {case.name}"
    with pytest.raises(TemplateError) as info:
        validate_template(text)
    expected_position = text.index("{case.__class__}") + 1
    assert 32 == expected_position
    assert f"unknown placeholder {{case.__class__}} at {expected_position}" in str(info.value)
    assert expected_position == info.value.position


def test_first_problem_is_reported() -> None:
    with pytest.raises(TemplateError) as info:
        validate_template("ok {case.name} } and {case.__class__}")
    assert "unmatched '}' at 16" in str(info.value)


def test_control_characters_are_escaped_in_messages() -> None:
    with pytest.raises(TemplateError) as info:
        validate_template("line\n{case.\x00x}")
    assert "unknown placeholder {case.\\x00x} at 6" in str(info.value)


def test_long_snippets_are_shortened() -> None:
    with pytest.raises(TemplateError) as info:
        validate_template("{" + "a" * 500)
    assert len(str(info.value)) < 200


def test_length_limit() -> None:
    assert [] == validate_template("a" * 10_000)
    assert ["a" * 9_989, Placeholder("case", "name")] == parse_template("a" * 9_989 + "{case.name}")
    with pytest.raises(TemplateError) as info:
        validate_template("a" * 10_001)
    assert "too long: 10,001 characters, at most 10,000" in str(info.value)
    assert 10_001 == info.value.position
    with pytest.raises(TemplateError):
        parse_template("a" * 10_001)


@pytest.mark.parametrize(
    ("scope", "name"),
    [
        ("case", "__class__"),
        ("case", "owner"),
        ("parent", "parent"),
        ("owner", "phone"),
        ("recipient", "phone"),
        ("sender", "name"),
        ("case", ""),
        ("case", "a.b"),
        ("case", "a}"),
    ],
)
def test_placeholder_cannot_be_built_invalid(scope: str, name: str) -> None:
    with pytest.raises(TemplateError):
        Placeholder(scope, name)  # type: ignore[arg-type]


# --- content maps --------------------------------------------------------------------------


def test_validate_content_prefixes_language() -> None:
    content = {"en": "Hello {case.name}", "sw": "Habari ya, {case.__class__}"}
    with pytest.raises(TemplateError) as info:
        validate_content(content, what="content.sms")
    assert str(info.value).startswith("content.sms[sw]: unknown placeholder {case.__class__} at 12")
    assert 12 == info.value.position


def test_validate_content_returns_placeholders_per_language() -> None:
    content = {"en": "Hello {case.name}", "sw": "Habari {recipient.name}", "fr": ""}
    expected = {
        "en": [Placeholder("case", "name")],
        "sw": [Placeholder("recipient", "name")],
        "fr": [],
    }
    assert expected == validate_content(content, what="content.sms")
    assert ["fr"] == blank_languages(content)


@pytest.mark.parametrize("content", [{}, {"en": ""}, {"en": "  ", "sw": "\n\t"}])
def test_validate_content_rejects_empty_or_blank(content: dict[str, str]) -> None:
    with pytest.raises(TemplateError) as info:
        validate_content(content, what="content.email")
    assert str(info.value).startswith("content.email: ")
    assert info.value.position is None


def test_validate_content_rejects_non_text() -> None:
    with pytest.raises(TemplateError) as info:
        validate_content({"en": 7}, what="content.sms")  # type: ignore[dict-item]
    assert "content.sms[en]: must be text" in str(info.value)


def test_needed_properties() -> None:
    content = {
        "en": "{case.name}: {case.dob} {case.parent.village} {recipient.name}",
        "sw": "{case.next-visit} {case.owner.name} {case.parent.name}",
        "fr": "",
    }
    expected = ({"dob", "next-visit"}, {"village"}, True, True)
    assert expected == needed_properties(content)


def test_needed_properties_minimal() -> None:
    assert (set(), set(), False, False) == needed_properties({"en": "Hi {recipient.name}"})
    assert (set(), set(), False, True) == needed_properties({"en": "{case.parent.name}"})


def test_needed_properties_rejects_invalid() -> None:
    with pytest.raises(TemplateError) as info:
        needed_properties({"en": "{case.x}", "sw": "{case.__class__}"})
    assert str(info.value).startswith("content[sw]: unknown placeholder {case.__class__} at 1")


# --- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{case.name}", "Amina Juma"),
        ("{case.dob}", "2024-01-05"),
        ("{case.next-visit}", "12 March"),
        ("{case._village}", "Moshi"),
        ("{case.owner.name}", "Nurse Neema"),
        ("{case.parent.name}", "Mama Amina"),
        ("{case.parent.phone_village}", "Arusha"),
        ("{recipient.name}", "Baraka"),
        (
            "Habari {recipient.name}, {case.name} ana miadi {case.next-visit}.",
            "Habari Baraka, Amina Juma ana miadi 12 March.",
        ),
        ("{case.name}{case.name}", "Amina JumaAmina Juma"),
        ("", ""),
    ],
)
def test_render_every_kind(text: str, expected: str) -> None:
    assert expected == render(text, FULL)
    assert expected == render(parse_template(text), FULL)


@pytest.mark.parametrize(
    "text",
    [
        "{case.name}",
        "{case.missing}",
        "{case.owner.name}",
        "{case.parent.name}",
        "{case.parent.x}",
        "{recipient.name}",
    ],
)
def test_render_unknown_values(text: str) -> None:
    assert UNKNOWN == "(?)" == render(text, RenderContext())


@pytest.mark.parametrize("value", ["", " ", "\n\t "])
def test_render_empty_values_are_unknown(value: str) -> None:
    ctx = RenderContext(
        case_name=value,
        case_properties={"x": value},
        owner_name=value,
        parent_name=value,
        parent_properties={"x": value},
        recipient_name=value,
    )
    text = (
        "{case.name}|{case.x}|{case.owner.name}|{case.parent.name}|{case.parent.x}|{recipient.name}"
    )
    assert "(?)|(?)|(?)|(?)|(?)|(?)" == render(text, ctx)


def test_render_without_parent() -> None:
    ctx = RenderContext(case_name="Amina", case_properties={"x": "1"}, parent_properties=None)
    assert "Amina 1 (?) (?)" == render(
        "{case.name} {case.x} {case.parent.name} {case.parent.x}", ctx
    )


def test_render_parent_with_name_only() -> None:
    ctx = RenderContext(parent_name="Mama Amina")
    assert "Mama Amina (?)" == render("{case.parent.name} {case.parent.x}", ctx)


def test_render_parent_missing_property() -> None:
    ctx = RenderContext(parent_properties={"a": "1"})
    assert "1 (?)" == render("{case.parent.a} {case.parent.b}", ctx)


def test_render_numbers_from_json() -> None:
    ctx = RenderContext(case_properties={"age": 5, "weight": 3.5, "flag": True, "d": {}})  # type: ignore[dict-item]
    assert "5 3.5 (?) (?)" == render("{case.age} {case.weight} {case.flag} {case.d}", ctx)


def test_render_pre_parsed_never_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_template("Hi {recipient.name}, {case.name}")

    def boom(*args: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(templates, "_parse_cached", boom)
    monkeypatch.setattr(templates, "parse_template", boom)
    for i in range(1_000):
        ctx = RenderContext(case_name=f"case {i}", recipient_name="Baraka")
        assert f"Hi Baraka, case {i}" == render(parsed, ctx)


def test_render_pre_parsed_literals_are_literal() -> None:
    assert "{x} (?)" == render(["{x} ", Placeholder("case", "y")], RenderContext())


def test_module_uses_no_format_or_eval() -> None:
    source = inspect.getsource(templates)
    for forbidden in [".format(", "format_map", "eval(", "exec(", "import string", "Template("]:
        assert forbidden not in source


# --- estimates -----------------------------------------------------------------------------


def test_estimate_gsm_and_ucs2() -> None:
    content = {
        "sw": "Habari {recipient.name}, tafadhali mlete {case.name} kliniki {case.next-visit}.",
        "am": "ሰላም {recipient.name}",
        "en": "Hi 😀 {case.name}",
        "fr": "",
    }
    expected = [
        Estimate("sw", 65, "GSM", 1, 3),
        Estimate("am", 14, "UCS2", 1, 1),
        Estimate("en", 16, "UCS2", 1, 1),
        Estimate("fr", 0, "GSM", 0, 0),
    ]
    assert expected == estimate(content)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 150 + "{case.name}", Estimate("en", 160, "GSM", 1, 1)),
        ("a" * 151 + "{case.name}", Estimate("en", 161, "GSM", 2, 1)),
        ("€{case.name}", Estimate("en", 12, "GSM", 1, 1)),
        ("я" * 60 + "{case.name}", Estimate("en", 70, "UCS2", 1, 1)),
        ("я" * 61 + "{case.name}", Estimate("en", 71, "UCS2", 2, 1)),
    ],
)
def test_estimate_boundaries(text: str, expected: Estimate) -> None:
    assert [expected] == estimate({"en": text})


def test_estimate_rejects_invalid() -> None:
    with pytest.raises(TemplateError) as info:
        estimate({"sw": "{{7*7}}"})
    assert str(info.value).startswith("content[sw]: unknown placeholder {{7*7}} at 1")


# --- properties ----------------------------------------------------------------------------

_FIRST = "ABCXYZabcxyz_"
_REST = _FIRST + "0129-"
NAMES = st.builds(
    operator.add, st.sampled_from(_FIRST), st.text(st.sampled_from(_REST), max_size=63)
).filter(lambda n: not n.startswith("__") and n not in {"owner", "parent"})
PLACEHOLDERS = st.one_of(
    st.builds(Placeholder, st.just("case"), NAMES),
    st.builds(Placeholder, st.just("parent"), NAMES),
    st.just(Placeholder("owner", "name")),
    st.just(Placeholder("recipient", "name")),
)
NO_BRACES = st.text(st.characters(blacklist_characters="{}"), max_size=50)
BRACEY = st.lists(
    st.sampled_from([*"{}.:!_-[] \n0aZé😀", "case", "parent", "owner", "name", "recipient"]),
    max_size=30,
).map("".join)


@FAST
@given(NO_BRACES)
def test_text_without_braces_is_identity(text: str) -> None:
    assert ([text] if text else []) == parse_template(text)
    assert text == render(text, FULL)
    assert text == render(text, RenderContext())


@FAST
@given(st.one_of(st.text(max_size=200), BRACEY))
def test_parse_only_ever_raises_template_error(text: str) -> None:
    try:
        parts = parse_template(text)
    except TemplateError as exc:
        assert exc.position is not None
        assert 1 <= exc.position <= len(text)
        assert f"at {exc.position}" in str(exc)
    else:
        assert text == "".join(p if isinstance(p, str) else p.text for p in parts)


@FAST
@given(st.lists(st.one_of(NO_BRACES, PLACEHOLDERS), max_size=8))
def test_valid_templates_parse_back(pieces: list[str | Placeholder]) -> None:
    text = "".join(p if isinstance(p, str) else p.text for p in pieces)
    expected: list[str | Placeholder] = []
    for piece in pieces:
        if isinstance(piece, str):
            if not piece:
                continue
            if expected and isinstance(expected[-1], str):
                expected[-1] += piece
                continue
        expected.append(piece)
    assert expected == parse_template(text)


TRICKY_VALUES = st.one_of(
    st.sampled_from(
        ["{case.name}", "{{7*7}}", "{0.__globals__}", "{case.__class__}", "}", "{", "%s", "$x"]
    ),
    st.text(max_size=40),
)


@FAST
@given(TRICKY_VALUES, TRICKY_VALUES, TRICKY_VALUES, TRICKY_VALUES)
def test_render_inserts_values_literally(name: str, prop: str, parent: str, who: str) -> None:
    ctx = RenderContext(
        case_name=name,
        case_properties={"x": prop},
        owner_name=who,
        parent_name=parent,
        parent_properties={"x": parent},
        recipient_name=who,
    )

    def shown(value: str) -> str:
        return value if value.strip() else "(?)"

    text = "{case.name}|{case.x}|{case.parent.x}|{case.owner.name}|{recipient.name}"
    expected = "|".join([shown(name), shown(prop), shown(parent), shown(who), shown(who)])
    assert expected == render(text, ctx)
    assert expected == render(parse_template(text), ctx)
