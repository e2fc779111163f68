from hello.cli import greet, main


def test_greet_names_the_person() -> None:
    assert greet("Ada") == "Hello, Ada!"


def test_main_defaults_to_world(capsys) -> None:  # type: ignore[no-untyped-def]
    main([])
    assert capsys.readouterr().out == "Hello, world!\n"
