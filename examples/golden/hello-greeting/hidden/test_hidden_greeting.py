from hello.cli import main


def test_the_greeting_word_can_be_changed(capsys) -> None:  # type: ignore[no-untyped-def]
    main(["--greeting", "Hi", "Ada"])
    assert capsys.readouterr().out.strip() == "Hi, Ada!"


def test_the_default_greeting_is_still_hello(capsys) -> None:  # type: ignore[no-untyped-def]
    main([])
    assert capsys.readouterr().out.strip() == "Hello, world!"
