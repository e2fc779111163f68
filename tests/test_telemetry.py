"""OpenTelemetry: which spans reach an OTLP collector, with what, and when tracing stays off.

Tracing is set up once per process (`setup_tracing()` at CLI start installs the global tracer
provider), so every check runs in a subprocess of its own, exporting over real OTLP/HTTP to the
fake collector in tests/helpers/fake_otlp.py; the test process's own provider is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcp_server import __version__
from tests.helpers.fake_otlp import FakeCollector, RecordedSpan, fake_collector
from tests.helpers.gitrepo import init_repo
from tests.helpers.review_site import clean_env
from tests.test_sandbox_tool import needs_bwrap, shipway

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "replays" / "hello-cli-shout.json"
SERVICE = "shipway-test"
DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens; setup alone exports nothing


@pytest.fixture(autouse=True)
def _no_otel_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses inherit os.environ: no OTEL_* setting of the developer's may leak into them."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def otel_env(collector: FakeCollector) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": SERVICE}  # fmt: skip


def python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})  # fmt: skip


# -- setup_tracing(): on, off, refused

SETUP = """
import json, sys
from opentelemetry import trace
from mcp_server.errors import ConfigError
if len(sys.argv) > 1 and sys.argv[1] == "no-grpc":
    sys.modules["opentelemetry.exporter.otlp.proto.grpc.trace_exporter"] = None  # as if not installed
from mcp_server.telemetry import setup_tracing
try:
    on = setup_tracing()
except ConfigError as exc:
    found = {"error": str(exc)}
else:
    found = {"on": on, "again": setup_tracing()}
provider = trace.get_tracer_provider()
found["provider"] = type(provider).__name__
found["resource"] = dict(provider.resource.attributes) if hasattr(provider, "resource") else None
print(json.dumps(found))
"""


def setup(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = python(SETUP, *args, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
        {"OTEL_SERVICE_NAME": SERVICE, "OTEL_BSP_SCHEDULE_DELAY": "100"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": DEAD_ENDPOINT + "/v1/traces", "OTEL_SDK_DISABLED": "TRUE"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"},
    ],
    ids=["nothing", "empty-endpoint", "no-endpoint", "sdk-disabled", "sdk-disabled-upper", "disabled-beats-bogus"],
)
def test_without_an_endpoint_or_with_the_sdk_disabled_tracing_stays_off(env: dict[str, str]) -> None:
    found = setup(env)
    assert (found["on"], found["again"]) == (False, False)
    assert found["provider"] == "ProxyTracerProvider", "no provider is installed"


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": DEAD_ENDPOINT + "/v1/traces"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        # the traces-specific protocol wins over the general one
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        },
    ],
    ids=["endpoint", "traces-endpoint", "http-protobuf", "traces-protocol-wins"],
)
def test_an_endpoint_turns_tracing_on_once(env: dict[str, str]) -> None:
    found = setup(env)
    assert (found["on"], found["again"]) == (True, True)
    assert found["provider"] == "TracerProvider"


def test_the_resource_names_the_service_and_keeps_other_resource_attributes() -> None:
    found = setup(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci"}
    )
    assert found["resource"]["service.name"] == "shipway", "the default name"
    assert found["resource"]["service.version"] == __version__
    assert found["resource"]["deployment.environment"] == "ci"
    named = setup({"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_SERVICE_NAME": SERVICE,
                   "OTEL_RESOURCE_ATTRIBUTES": "service.name=ignored"})  # fmt: skip
    assert named["resource"]["service.name"] == SERVICE, "OTEL_SERVICE_NAME wins, as the spec says"


def test_a_service_name_in_otel_resource_attributes_is_used_when_otel_service_name_is_unset() -> None:
    found = setup({"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_RESOURCE_ATTRIBUTES": "service.name=billing"})
    assert found["resource"]["service.name"] == "billing"


def test_an_unknown_protocol_is_a_config_error_naming_the_supported_ones() -> None:
    found = setup({"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"})
    assert "'bogus' is not supported" in found["error"]
    assert "http/protobuf" in found["error"] and "grpc" in found["error"]
    assert found["provider"] == "ProxyTracerProvider", "a refused setup installs nothing"


def test_grpc_without_its_exporter_package_says_what_to_install() -> None:
    found = setup({"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "no-grpc")
    assert "opentelemetry-exporter-otlp-proto-grpc" in found["error"] and "http/protobuf" in found["error"]
    assert found["provider"] == "ProxyTracerProvider"


def test_the_cli_turns_a_bad_protocol_into_one_line_and_exit_1() -> None:
    proc = shipway("--version", env={"OTEL_EXPORTER_OTLP_ENDPOINT": DEAD_ENDPOINT,
                                     "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus"})  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("shipway: error: ") and proc.stderr.count("\n") == 1
    assert "http/protobuf or grpc" in proc.stderr and "Traceback" not in proc.stderr


# -- tool spans of the server, as an agent's toolbox calls it (in-process MCP client)

CALLS = """
import sys
from pathlib import Path

import anyio
from mcp import Client

from agents.toolbox import Toolbox
from mcp_server.app import open_deps
from mcp_server.config import load_settings
from mcp_server.server import create_server
from mcp_server.telemetry import setup_tracing

assert setup_tracing(), "tracing did not switch on"


async def main() -> None:
    deps = open_deps(load_settings(repo=Path(sys.argv[1])))
    try:
        async with Client(create_server(deps)) as client:
            box = await Toolbox.open(client, ["read_file", "get_task"], {})
            missing = await box.call("read_file", {"path": "no/such/file.py"})
            found = await box.call("read_file", {"path": "README.md"})
            unknown = await client.call_tool("get_task", {"task_id": "abcd1234"})
            print(missing.ok, found.ok, unknown.is_error)
    finally:
        deps.ci.close()
        deps.tasks.store.close()


anyio.run(main)
"""


@dataclass
class Calls:
    collector: FakeCollector
    stdout: str

    def one(self, name: str, status: str) -> RecordedSpan:
        [span] = [s for s in self.collector.named(name) if s.status == status]
        return span


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calls]:
    repo = init_repo(tmp_path_factory.mktemp("otel-calls") / "repo")
    with clean_env(), fake_collector() as collector, pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                patch.delenv(name)
        proc = python(CALLS, str(repo), env=otel_env(collector))
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield Calls(collector, proc.stdout)


def test_every_server_tool_call_gets_a_tool_span_named_after_the_tool(calls: Calls) -> None:
    assert calls.stdout.split() == ["False", "True", "True"]
    assert calls.collector.bad_requests == 0
    spans = calls.collector.named("tool read_file")
    assert sorted(s.status for s in spans) == ["ERROR", "UNSET"]
    for span in spans:
        assert span.attributes["gen_ai.tool.name"] == "read_file"
        assert span.resource["service.name"] == SERVICE and span.scope == "shipway.server"


def test_a_refused_call_leaves_an_error_span_on_both_sides_of_the_call(calls: Calls) -> None:
    server = calls.one("tool read_file", "ERROR")
    agent = calls.one("execute_tool read_file", "ERROR")
    assert agent.attributes == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_file"}
    assert agent.status_message == "tool error" and agent.scope == "shipway.agents"
    assert server.trace_id == agent.trace_id, "the server's span belongs to the agent's call"
    assert calls.one("execute_tool read_file", "UNSET").trace_id == calls.one("tool read_file", "UNSET").trace_id


def test_a_task_tool_span_names_the_task(calls: Calls) -> None:
    span = calls.one("tool get_task", "ERROR")
    assert span.attributes == {"gen_ai.tool.name": "get_task", "shipway.task_id": "abcd1234"}


def test_a_refused_tool_span_is_described_by_the_error_type(calls: Calls) -> None:
    assert calls.one("tool read_file", "ERROR").status_message == "ToolInputError"


# -- the demo: agents, toolbox and server, all in one traced process


@dataclass
class Demo:
    collector: FakeCollector
    script: dict[str, Any]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("otel-demo")
    with clean_env(), fake_collector() as collector, pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                patch.delenv(name)
        proc = shipway("demo", "--dir", str(workdir / "demo"), env=otel_env(collector))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "chain verified" in proc.stdout
        yield Demo(collector, json.loads(SCRIPT.read_text(encoding="utf-8")))


@pytest.mark.slow
@needs_bwrap
def test_the_demo_exports_a_chat_span_per_model_call_with_its_token_counts(demo: Demo) -> None:
    assert demo.collector.requests > 0 and demo.collector.bad_requests == 0
    model = demo.script["model"]
    chats = demo.collector.named(f"chat {model}")
    chats.sort(key=lambda s: (s.attributes["shipway.round"], s.attributes["shipway.step"]))
    got = [(s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"]) for s in chats]
    assert got == [(step["usage"]["input_tokens"], step["usage"]["output_tokens"]) for step in demo.script["steps"]]
    for span in chats:
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.request.model"] == model and span.scope == "shipway.agents"
    assert [s.attributes["shipway.agent"] for s in chats] == ["planner"] * 3 + ["coder"] * 3


@pytest.mark.slow
@needs_bwrap
def test_the_demo_exports_the_agents_tool_calls_and_the_servers_tool_spans(demo: Demo) -> None:
    names = demo.collector.names()
    for tool in ("propose_plan", "apply_edit", "search_repo", "read_file", "run_tests"):
        assert f"execute_tool {tool}" in names, tool
    for tool in ("propose_plan", "apply_edit", "open_pr", "ci_status"):
        [agent] = demo.collector.named(f"execute_tool {tool}")
        [server] = demo.collector.named(f"tool {tool}")
        assert agent.attributes["gen_ai.tool.name"] == server.attributes["gen_ai.tool.name"] == tool
        assert (agent.status, server.status) == ("UNSET", "UNSET"), tool
        assert server.trace_id == agent.trace_id, tool
        assert server.attributes["shipway.task_id"], "every one of these works on the demo's task"
    for span in demo.collector.spans:
        assert span.resource["service.name"] == SERVICE and span.resource["service.version"] == __version__
