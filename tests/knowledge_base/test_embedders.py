from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from knowledge_base.embedders import (
    Embedder,
    EmbedderUnavailable,
    MiniLMEmbedder,
    OpenAIEmbedder,
    ToyEmbedder,
    code_tokens,
    load_embedder,
)
from tests.helpers.fake_openai import FakeOpenAI, fake_openai_server, fake_vector

SECRET = "sk-test-0123456789abcdef"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


def assert_unit(vector: list[float]) -> None:
    assert math.hypot(*vector) == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------------- module


def test_importing_the_module_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, knowledge_base.embedders; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'onnxruntime', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_implementation_satisfies_the_embedder_protocol() -> None:
    with fake_openai_server() as server:
        assert isinstance(ToyEmbedder(), Embedder)
        assert isinstance(OpenAIEmbedder(server.base_url, "m", None), Embedder)


# --------------------------------------------------------------------------- toy


def test_code_tokens_split_snake_case_and_camel_case_identifiers() -> None:
    assert code_tokens("def parse_config(HTTPServerError2):") == [
        "def",
        "parse",
        "config",
        "parse_config",
        "http",
        "server",
        "error",
        "2",
        "httpservererror2",
    ]


def test_toy_embedder_is_deterministic_across_processes() -> None:
    code = "from knowledge_base.embedders import ToyEmbedder; print(ToyEmbedder().embed_query('def load_yaml(path):'))"
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in "ab"
    }
    assert len(runs) == 1
    assert runs.pop().strip() == str(ToyEmbedder().embed_query("def load_yaml(path):"))


def test_toy_embedder_returns_unit_vectors_of_its_dimension_even_for_empty_text() -> None:
    toy = ToyEmbedder(dimension=32)
    vectors = toy.embed_documents(["def f(x): return x", "", "!!!"])
    assert toy.name == "toy-32" and toy.dimension == 32
    assert [len(v) for v in vectors] == [32, 32, 32]
    for vector in vectors:
        assert_unit(vector)


def test_toy_embedder_puts_texts_sharing_identifiers_closer_than_unrelated_ones() -> None:
    toy = ToyEmbedder()
    query = toy.embed_query("parse config file")
    related = toy.embed_query("def parse_config_file(path): return parseConfig(open(path).read())")
    unrelated = toy.embed_query("class HttpRetryPolicy: backoff_seconds = 2.5")
    assert cosine(query, related) > cosine(query, unrelated) + 0.2


# --------------------------------------------------------------------------- OpenAI-compatible


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as running:
        yield running


def expected(text: str) -> list[float]:
    vector = fake_vector(text)
    norm = math.hypot(*vector)
    return [x / norm for x in vector]


def test_openai_embedder_batches_inputs_and_orders_results_by_index(server: FakeOpenAI) -> None:
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    embedder = OpenAIEmbedder(server.base_url, "text-embedding-3-small", None, batch_size=2)
    vectors = embedder.embed_documents(texts)
    assert [r["body"]["input"] for r in server.requests] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert {r["path"] for r in server.requests} == {"/v1/embeddings"}
    assert {r["body"]["model"] for r in server.requests} == {"text-embedding-3-small"}
    assert vectors == [pytest.approx(expected(t)) for t in texts]
    assert embedder.name == "openai:text-embedding-3-small"
    assert embedder.dimension == 3


def test_openai_embedder_sends_a_bearer_header_only_when_given_a_key(server: FakeOpenAI) -> None:
    OpenAIEmbedder(server.base_url, "m", None).embed_query("x")
    OpenAIEmbedder(server.base_url, "m", SECRET).embed_query("x")
    without, with_key = (r["headers"] for r in server.requests)
    assert "Authorization" not in without
    assert with_key["Authorization"] == f"Bearer {SECRET}"


def test_openai_embedder_learns_its_dimension_with_one_probe_when_asked_first(server: FakeOpenAI) -> None:
    embedder = OpenAIEmbedder(server.base_url + "/", "m", None)
    assert embedder.dimension == 3
    assert embedder.dimension == 3
    assert len(server.requests) == 1


def test_openai_embedder_rejects_vectors_of_another_dimension_than_configured(server: FakeOpenAI) -> None:
    with pytest.raises(EmbedderUnavailable, match="3-dimensional vector, expected 8"):
        OpenAIEmbedder(server.base_url, "m", None, dimension=8).embed_query("x")


def test_openai_embedder_sends_no_request_for_no_texts(server: FakeOpenAI) -> None:
    assert OpenAIEmbedder(server.base_url, "m", None).embed_documents([]) == []
    assert server.requests == []


@pytest.mark.parametrize(("mode", "reason"), [(401, "HTTP 401"), (500, "HTTP 500"), ("garbled", "invalid JSON")])
def test_openai_embedder_failures_raise_unavailable_without_the_api_key(
    server: FakeOpenAI, mode: str | int, reason: str
) -> None:
    server.mode = mode
    with pytest.raises(EmbedderUnavailable) as caught:
        OpenAIEmbedder(server.base_url, "m", SECRET).embed_documents(["def f(): pass"])
    message = str(caught.value)
    assert reason in message
    assert SECRET not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    if mode == 401:
        assert "check the API key" in message and "Bearer ***" in message


def test_openai_embedder_reports_an_unreachable_server_without_the_api_key() -> None:
    with fake_openai_server() as stopped:
        url = stopped.base_url
    with pytest.raises(EmbedderUnavailable, match="unreachable") as caught:
        OpenAIEmbedder(url, "m", SECRET, timeout_s=5).embed_query("x")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [{"data": [{"index": 0, "embedding": [1.0]}]}, {"data": "nope"}, {"error": "x"}, [1, 2]],
)
def test_openai_embedder_rejects_answers_that_are_not_one_embedding_per_input(payload: Any) -> None:
    embedder = OpenAIEmbedder("http://127.0.0.1:9/v1", "m", None)
    with pytest.raises(EmbedderUnavailable):
        embedder._parse(payload, expected=2)


# --------------------------------------------------------------------------- factory


def test_load_embedder_builds_each_kind_and_explains_missing_openai_settings(server: FakeOpenAI) -> None:
    assert load_embedder("toy").name == "toy-64"
    openai = load_embedder("openai", openai_base_url=server.base_url, openai_model="nomic-embed-text")
    assert openai.name == "openai:nomic-embed-text"
    with pytest.raises(EmbedderUnavailable, match="base URL"):
        load_embedder("openai", openai_model="m")
    with pytest.raises(EmbedderUnavailable, match="model name"):
        load_embedder("openai", openai_base_url=server.base_url)
    with pytest.raises(ValueError, match="unknown embedder kind 'bert'"):
        load_embedder("bert")


def test_minilm_embedder_names_the_pip_command_when_torch_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "torch" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(EmbedderUnavailable, match=r"needs torch; run: pip install torch sentence-transformers"):
        load_embedder("minilm")


# --------------------------------------------------------------------------- MiniLM, the real model


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    try:
        return MiniLMEmbedder()
    except EmbedderUnavailable as exc:
        print(f"MiniLM unavailable: {exc}")
        pytest.skip(f"MiniLM unavailable: {exc}")


CONFIG_PARSER = '''def load_config(path: str) -> dict[str, str]:
    """Read a key = value settings file, skipping comments."""
    settings = {}
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings
'''
UNRELATED = '''def draw_histogram(values: list[int]) -> None:
    """Print one row of stars per value."""
    for value in values:
        print("*" * value)
'''


def test_minilm_embeds_to_384_dimensional_unit_vectors(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed_documents([CONFIG_PARSER, UNRELATED, "x" * 5000])
    assert minilm.name == "minilm-l6-v2" and minilm.dimension == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert_unit(vector)


def test_minilm_puts_a_config_parsing_query_closest_to_the_config_parser(minilm: MiniLMEmbedder) -> None:
    query = minilm.embed_query("parse a config file")
    parser, unrelated = minilm.embed_documents([CONFIG_PARSER, UNRELATED])
    assert cosine(query, parser) > cosine(query, unrelated) + 0.1


def test_minilm_gives_the_same_vectors_when_first_used_from_several_threads(minilm: MiniLMEmbedder) -> None:
    texts = [CONFIG_PARSER, UNRELATED, "def main(): pass"]
    sequential = minilm.embed_documents(texts)
    fresh = MiniLMEmbedder()  # not loaded yet: the threads race to load it
    results: list[list[list[float]]] = []
    threads = [threading.Thread(target=lambda: results.append(fresh.embed_documents(texts))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        for got, want in zip(result, sequential, strict=True):
            assert cosine(got, want) > 0.9999
