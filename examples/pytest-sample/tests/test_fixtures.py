import pytest


@pytest.fixture
def config_file(tmp_path):  # type: ignore[no-untyped-def]
    raise FileNotFoundError("settings.ini is missing from the fixture data")


def test_reads_config(config_file) -> None:  # type: ignore[no-untyped-def]
    assert config_file.read_text()
