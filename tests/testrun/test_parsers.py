"""The report parsers on real recorded outputs of the sample repos, and on hostile or broken input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.testrun import junit
from tools.testrun.cargo_text import parse_cargo_output
from tools.testrun.go_json import package_dir, parse_go_json
from tools.testrun.junit import ReportUnreadable, parse_junit, pytest_node_id, relative_to_workdir
from tools.testrun.report import (
    MESSAGE_CHARS,
    TRACEBACK_CHARS,
    TRACEBACK_LINES,
    CaseResult,
    Totals,
    trim_message,
    trim_traceback,
)

FIXTURES = Path(__file__).parent / "fixtures"
GO_MODULE = "example.com/gosample"
GO_PACKAGE = "example.com/gosample/textutil"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def rows(cases: list[CaseResult]) -> list[tuple[str, str, str, str | None, int | None]]:
    return [(c.id, c.outcome, c.phase, c.file, c.line) for c in cases]


def by_id(cases: list[CaseResult]) -> dict[str, CaseResult]:
    return {c.id: c for c in cases}


# -- pytest (JUnit XML, xunit1) -----------------------------------------------------------------------------------


@pytest.fixture
def pytest_cases() -> list[CaseResult]:
    return parse_junit(fixture_bytes("pytest-junit.xml"), "pytest", "/w/pytest-sample")


def test_pytest_report_lists_every_case_with_outcome_phase_file_and_line(pytest_cases: list[CaseResult]) -> None:
    assert rows(pytest_cases) == [
        ("tests/test_broken_import.py", "error", "collection", "tests/test_broken_import.py", 1),
        ("tests/test_arith.py::test_add_small_numbers", "passed", "call", "tests/test_arith.py", 4),
        ("tests/test_arith.py::test_add_negative", "passed", "call", "tests/test_arith.py", 8),
        ("tests/test_arith.py::test_mean_of_three", "passed", "call", "tests/test_arith.py", 12),
        ("tests/test_fixtures.py::test_reads_config", "error", "setup", "tests/test_fixtures.py", 6),
        ("tests/test_stats.py::test_spread_of_constant_is_zero", "passed", "call", "tests/test_stats.py", 4),
        ("tests/test_stats.py::test_spread_of_two_points", "passed", "call", "tests/test_stats.py", 8),
        ("tests/test_text.py::test_slug_lowercases_and_joins", "passed", "call", "tests/test_text.py", 8),
        ("tests/test_text.py::test_slug_keeps_unicode_letters", "failed", "call", "tests/test_text.py", 14),
        ("tests/test_text.py::test_slug_is_truncated", "skipped", "call", "tests/test_text.py", 17),
        ("tests/test_text.py::test_slug_windows_paths", "skipped", "call", "tests/test_text.py", 22),
        ("tests/test_text.py::test_slug_rejects_empty", "skipped", "call", "tests/test_text.py", 27),
    ]


def test_pytest_collection_error_names_the_missing_module(pytest_cases: list[CaseResult]) -> None:
    broken = by_id(pytest_cases)["tests/test_broken_import.py"]
    assert broken.message == "ModuleNotFoundError: No module named 'calc.missing'"
    assert broken.traceback is not None
    assert broken.traceback.endswith("E   ModuleNotFoundError: No module named 'calc.missing'")


def test_pytest_fixture_error_is_a_setup_error_at_the_raising_line(pytest_cases: list[CaseResult]) -> None:
    case = by_id(pytest_cases)["tests/test_fixtures.py::test_reads_config"]
    assert (case.outcome, case.phase, case.file, case.line) == ("error", "setup", "tests/test_fixtures.py", 6)
    assert case.message is not None
    assert "settings.ini is missing from the fixture data" in case.message


def test_pytest_failure_keeps_the_assertion_and_a_traceback(pytest_cases: list[CaseResult]) -> None:
    case = by_id(pytest_cases)["tests/test_text.py::test_slug_keeps_unicode_letters"]
    assert case.message is not None
    assert case.message.startswith("AssertionError: assert 'cr-me-br-l-e' == 'crème-brûlée'")
    assert case.traceback is not None
    assert case.traceback.startswith("tests/test_text.py:14: in test_slug_keeps_unicode_letters")
    assert case.duration_ms == 1


def test_pytest_skips_and_xfails_count_as_skipped_with_their_reasons(pytest_cases: list[CaseResult]) -> None:
    cases = by_id(pytest_cases)
    assert cases["tests/test_text.py::test_slug_is_truncated"].message == "slug has no length limit yet"
    assert cases["tests/test_text.py::test_slug_windows_paths"].message == "Windows-only path handling"
    xfail = cases["tests/test_text.py::test_slug_rejects_empty"]
    assert (xfail.outcome, xfail.message) == ("skipped", "empty titles are not rejected yet")
    assert all(c.traceback is None for c in pytest_cases if c.outcome in ("passed", "skipped"))


def test_pytest_totals_match_the_sample_run(pytest_cases: list[CaseResult]) -> None:
    assert Totals.of(pytest_cases) == Totals(passed=6, failed=1, errors=2, skipped=3, total=12)


# -- node:test (JUnit XML) ----------------------------------------------------------------------------------------


def test_node_report_lists_every_case_and_finds_the_failing_line_in_the_stack() -> None:
    cases = parse_junit(fixture_bytes("node-junit.xml"), "suites", "/w/node-sample")
    assert rows(cases) == [
        ("adds tax and rounds to a cent", "passed", "call", None, None),
        ("formats cents as dollars", "passed", "call", None, None),
        ("formats negative amounts with the sign first", "failed", "call", "test/price.test.js", 15),
        ("rounds half cents away from zero", "skipped", "call", None, None),
    ]
    failed = cases[2]
    assert failed.message is not None
    assert failed.message.startswith("Expected values to be strictly equal:")
    assert "'-$5.00'" in failed.message
    assert cases[3].message == "not decided yet"
    assert [c.duration_ms for c in cases] == [2, 0, 3, 0]


def test_a_js_stack_frame_outside_the_tested_tree_or_in_node_modules_is_not_the_failure_site() -> None:
    text = (
        "Error: boom\n"
        "    at lib (file:///w/app/node_modules/lib/index.js:3:1)\n"
        "    at other (/elsewhere/x.js:9:9)\n"
        "    at t (file:///w/app/test/a.test.mjs:7:5)\n"
    )
    xml = f'<testsuites><testcase name="t"><failure message="boom">{text}</failure></testcase></testsuites>'
    [case] = parse_junit(xml.encode(), "suites", "/w/app")
    assert (case.file, case.line, case.message) == ("test/a.test.mjs", 7, "boom")


def test_nested_testsuites_become_suite_path_ids_in_the_suites_style() -> None:
    xml = b"""<?xml version="1.0"?>
    <testsuites name="all">
      <testsuite name="price">
        <testsuite name="formatting">
          <testcase name="negative amounts"/>
          <testcase name="zero"><skipped/></testcase>
        </testsuite>
        <testcase name="tax"/>
      </testsuite>
      <testsuite name="">
        <testcase name="anonymous suite case"/>
      </testsuite>
      <testcase name="top level"/>
    </testsuites>"""
    cases = parse_junit(xml, "suites", "/w")
    assert [(c.id, c.outcome) for c in cases] == [
        ("price > formatting > negative amounts", "passed"),
        ("price > formatting > zero", "skipped"),
        ("price > tax", "passed"),
        ("anonymous suite case", "passed"),
        ("top level", "passed"),
    ]


def test_a_root_testsuite_names_its_cases_like_a_nested_one() -> None:
    xml = (
        b'<testsuite name="com.example.FooTest"><testcase classname="com.example.FooTest" name="testAdd"/></testsuite>'
    )
    [case] = parse_junit(xml, "suites", "/w")
    assert case.id == "com.example.FooTest > testAdd"


def test_error_failure_and_skip_elements_set_the_outcome_and_bad_times_count_as_zero() -> None:
    xml = b"""<testsuites>
      <testcase name="e" time="abc"><error message="crashed">Traceback</error></testcase>
      <testcase name="f" time="-3"><failure message="wrong"/></testcase>
      <testcase name="s" time="0.25"><skipped message="later"/></testcase>
    </testsuites>"""
    cases = parse_junit(xml, "suites", "/w")
    assert [(c.id, c.outcome, c.message, c.duration_ms) for c in cases] == [
        ("e", "error", "crashed", 0),
        ("f", "failed", "wrong", 0),
        ("s", "skipped", "later", 250),
    ]


# -- pytest node ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "classname", "name", "expected"),
    [
        ("tests/test_x.py", "tests.test_x", "test_b", "tests/test_x.py::test_b"),
        ("tests/test_x.py", "tests.test_x.TestA", "test_b", "tests/test_x.py::TestA::test_b"),
        (
            "tests/test_x.py",
            "tests.test_x.TestA.TestInner",
            "test_b[1.5]",
            "tests/test_x.py::TestA::TestInner::test_b[1.5]",
        ),
        ("tests/test_x.py", "tests.test_x", "test_p[a::b-c/d]", "tests/test_x.py::test_p[a::b-c/d]"),
        ("test_root.py", "test_root.TestA", "test_b[x-1]", "test_root.py::TestA::test_b[x-1]"),
        ("tests/test_broken.py", "", "tests.test_broken", "tests/test_broken.py"),
        (None, "tests.test_x", "test_b", "tests.test_x::test_b"),
        (None, "", "test_b", "test_b"),
    ],
)
def test_pytest_node_id_is_rebuilt_from_xunit1_attributes(
    file: str | None, classname: str, name: str, expected: str
) -> None:
    assert pytest_node_id(file, classname, name) == expected


# Recorded with pytest 9 (-o junit_family=xunit1 --tb=short): TestOne and TestTwo inherit test_a from tests/base.py.
INHERITED_XML = b"""<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" \
errors="0" failures="1" skipped="0" tests="2" time="0.050"><testcase classname="tests.test_x.TestOne" name="test_a" \
file="tests/base.py" line="1" time="0.001" /><testcase classname="tests.test_x.TestTwo" name="test_a" \
file="tests/base.py" line="1" time="0.000"><failure message="AssertionError">tests/base.py:3: in test_a
    assert self.value == 1
           ^^^^^^^^^^^^^^^
E   AssertionError</failure></testcase></testsuite></testsuites>"""


def test_inherited_pytest_tests_keep_the_node_id_of_the_module_that_collected_them() -> None:
    cases = parse_junit(INHERITED_XML, "pytest", "/w/inherit")
    assert [c.id for c in cases] == ["tests/test_x.py::TestOne::test_a", "tests/test_x.py::TestTwo::test_a"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/w/repo/tests/test_a.py", "tests/test_a.py"),
        ("/w/repo-other/tests/test_a.py", None),
        ("/usr/lib/python3/x.py", None),
        ("tests/test_a.py", "tests/test_a.py"),
        ("../outside.py", None),
    ],
)
def test_paths_are_made_relative_to_the_workdir_or_dropped(path: str, expected: str | None) -> None:
    assert relative_to_workdir(path, "/w/repo/") == expected


# -- hostile and broken XML ---------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuites><testcase name="&lol9;"/></testsuites>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuites><testcase name="t"><failure message="&xxe;"/></testcase></testsuites>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
@pytest.mark.parametrize("style", ["pytest", "suites"])
def test_entity_tricks_are_refused_as_unreadable(data: bytes, style: junit.IdStyle) -> None:
    with pytest.raises(ReportUnreadable, match="not valid XML.*EntitiesForbidden"):
        parse_junit(data, style, "/w")


@pytest.mark.parametrize("data", [b"", b"not xml at all", b'{"tests": []}', b"<testsuites><testcase>"])
def test_text_that_is_not_xml_is_refused_as_unreadable(data: bytes) -> None:
    with pytest.raises(ReportUnreadable, match="not valid XML"):
        parse_junit(data, "pytest", "/w")


def test_a_report_over_the_size_limit_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = fixture_bytes("node-junit.xml")
    monkeypatch.setattr(junit, "MAX_XML_BYTES", len(data) - 1)
    with pytest.raises(ReportUnreadable, match="the limit is"):
        parse_junit(data, "suites", "/w/node-sample")
    monkeypatch.setattr(junit, "MAX_XML_BYTES", len(data))
    assert len(parse_junit(data, "suites", "/w/node-sample")) == 4


def test_reportunreadable_is_a_valueerror() -> None:
    assert issubclass(ReportUnreadable, ValueError)


# -- go test -json ------------------------------------------------------------------------------------------------


def test_go_stream_gives_every_test_with_the_failing_file_line_and_message() -> None:
    cases = parse_go_json(fixture_text("go-test.jsonl"), GO_MODULE)
    assert rows(cases) == [
        (f"{GO_PACKAGE}::TestCountWords", "passed", "call", None, None),
        (f"{GO_PACKAGE}::TestTitle", "passed", "call", None, None),
        (f"{GO_PACKAGE}::TestTitleLowersTheRest", "failed", "call", "textutil/words_test.go", 20),
        (f"{GO_PACKAGE}::TestUnicodeTitle", "skipped", "call", "textutil/words_test.go", 25),
    ]
    failed, skipped = cases[2], cases[3]
    assert failed.message == 'Title("hELLO") = "HELLO", want "Hello"'
    assert failed.traceback is not None
    assert "--- FAIL: TestTitleLowersTheRest" in failed.traceback
    assert "=== RUN" not in failed.traceback
    assert skipped.message == "multi-byte first letters are not handled yet"
    assert cases[0].message is None
    assert cases[0].traceback is None


def test_go_build_failure_is_one_collection_error_naming_the_compiler_message() -> None:
    cases = parse_go_json(fixture_text("go-build-failed.stdout"), GO_MODULE, fixture_text("go-build-failed.stderr"))
    assert rows(cases) == [(GO_PACKAGE, "error", "collection", "textutil/broken.go", 2)]
    assert cases[0].message == "textutil/broken.go:2:28: undefined: undefinedThing"
    assert cases[0].traceback is not None
    assert "undefinedThing" in cases[0].traceback


def test_go_build_failure_without_stderr_still_reports_the_package() -> None:
    cases = parse_go_json(fixture_text("go-build-failed.stdout"), GO_MODULE)
    assert rows(cases) == [(GO_PACKAGE, "error", "collection", "textutil", None)]
    assert cases[0].message == "package failed to build"


def test_go_json_with_garbage_lines_interleaved_is_still_parsed() -> None:
    garbage = [
        "go: downloading example.com/dep v1.0.0",
        "{not json",
        '["a", "list"]',
        "42",
        "",
        '{"Action": "output"',
        "\x00\xff binary noise",
    ]
    lines = fixture_text("go-test.jsonl").splitlines()
    mixed = "\n".join(f"{garbage[i % len(garbage)]}\n{line}" for i, line in enumerate(lines))
    assert rows(parse_go_json(mixed, GO_MODULE)) == rows(parse_go_json(fixture_text("go-test.jsonl"), GO_MODULE))


def test_go_tests_of_the_module_root_package_have_bare_file_names() -> None:
    events = [
        {"Action": "output", "Package": "example.com/m", "Test": "TestA", "Output": "    a_test.go:7: nope\n"},
        {"Action": "fail", "Package": "example.com/m", "Test": "TestA", "Elapsed": 0.25},
        {"Action": "fail", "Package": "example.com/m", "Elapsed": 0.3},
    ]
    stream = "\n".join(json.dumps(e) for e in events)
    [case] = parse_go_json(stream, "example.com/m")
    assert rows([case]) == [("example.com/m::TestA", "failed", "call", "a_test.go", 7)]
    assert (case.message, case.duration_ms) == ("nope", 250)


@pytest.mark.parametrize(
    ("package", "module", "expected"),
    [
        ("example.com/m/a/b", "example.com/m", "a/b"),
        ("example.com/m", "example.com/m", ""),
        ("example.com/mother/a", "example.com/m", ""),
        ("example.com/m/a", None, ""),
    ],
)
def test_package_dir_is_relative_to_the_module(package: str, module: str | None, expected: str) -> None:
    assert package_dir(package, module) == expected


def test_go_1_24_build_failures_name_the_compiler_error_from_build_output_events() -> None:
    import_path = f"{GO_PACKAGE} [{GO_PACKAGE}.test]"
    events = [
        {"ImportPath": import_path, "Action": "build-output", "Output": f"# {import_path}\n"},
        {
            "ImportPath": import_path,
            "Action": "build-output",
            "Output": "textutil/broken.go:2:28: undefined: undefinedThing\n",
        },
        {"ImportPath": import_path, "Action": "build-fail"},
        {"Action": "start", "Package": GO_PACKAGE},
        {"Action": "output", "Package": GO_PACKAGE, "Output": f"FAIL\t{GO_PACKAGE} [build failed]\n"},
        {"Action": "fail", "Package": GO_PACKAGE, "Elapsed": 0, "FailedBuild": import_path},
    ]
    cases = parse_go_json("\n".join(json.dumps(e) for e in events), GO_MODULE)
    assert rows(cases) == [(GO_PACKAGE, "error", "collection", "textutil/broken.go", 2)]
    assert cases[0].message is not None
    assert "undefinedThing" in cases[0].message


# -- cargo test ---------------------------------------------------------------------------------------------------


def test_cargo_output_gives_every_test_with_the_panic_site_and_message() -> None:
    cases = parse_cargo_output(fixture_text("cargo-test.txt"))
    assert rows(cases) == [
        ("src/lib.rs::tests::it_works", "passed", "call", None, None),
        ("src/lib.rs::tests::it_fails", "failed", "call", "src/lib.rs", 9),
        ("src/lib.rs::tests::slow", "skipped", "call", None, None),
    ]
    failed = cases[1]
    assert failed.message is not None
    assert "math is hard" in failed.message
    assert failed.traceback is not None
    assert failed.traceback.startswith("thread 'tests::it_fails'")
    assert "right: 5" in failed.traceback
    assert cases[2].message is None


def test_cargo_targets_doctests_and_old_style_panics_are_told_apart() -> None:
    text = """\
     Running tests/api.rs (target/debug/deps/api-1234)

running 2 tests
test shared_name ... FAILED
test ignored_with_reason ... ignored, needs the network

failures:

---- shared_name stdout ----
thread 'shared_name' panicked at 'boom', tests/api.rs:12:5

failures:
    shared_name

test result: FAILED. 0 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out

     Running unittests src/main.rs (target/debug/deps/app-5678)

running 1 test
test shared_name ... ok

   Doc-tests app

running 1 test
test src/lib.rs - add (line 5) ... ok
"""
    cases = parse_cargo_output(text)
    assert rows(cases) == [
        ("tests/api.rs::shared_name", "failed", "call", "tests/api.rs", 12),
        ("tests/api.rs::ignored_with_reason", "skipped", "call", None, None),
        ("src/main.rs::shared_name", "passed", "call", None, None),
        ("doc:app::src/lib.rs - add (line 5)", "passed", "call", None, None),
    ]
    assert cases[0].message == "boom"


def test_cargo_output_without_results_gives_no_cases() -> None:
    assert parse_cargo_output("error[E0425]: cannot find value `x` in this scope\nerror: could not compile") == []


# -- trimming -----------------------------------------------------------------------------------------------------


def test_trim_traceback_keeps_the_last_lines_and_says_how_many_it_dropped() -> None:
    text = "\n".join(f"line {i}" for i in range(1, 41))
    trimmed = trim_traceback(text)
    assert trimmed is not None
    lines = trimmed.splitlines()
    assert lines[0] == "... 10 earlier lines ..."
    assert lines[1:] == [f"line {i}" for i in range(11, 41)]
    assert len(lines) == TRACEBACK_LINES + 1


def test_trim_traceback_caps_the_length_keeping_the_end() -> None:
    text = "\n".join(f"{i:04d}" + "x" * 995 for i in range(10))
    trimmed = trim_traceback(text)
    assert trimmed is not None
    assert len(trimmed) == TRACEBACK_CHARS + 3
    assert trimmed.startswith("...")
    assert trimmed.endswith("0009" + "x" * 995)


def test_trim_traceback_leaves_short_text_alone_and_empty_text_is_none() -> None:
    assert trim_traceback("\nE   boom\n") == "E   boom"
    assert trim_traceback("") is None
    assert trim_traceback(None) is None


def test_trim_message_strips_and_caps_at_the_limit() -> None:
    assert trim_message("  short  ") == "short"
    assert trim_message("") is None
    long = trim_message("y" * (MESSAGE_CHARS + 50))
    assert long is not None
    assert len(long) == MESSAGE_CHARS
    assert long.endswith("…")
