from hello.cli import main


def test_shout_prints_the_greeting_in_capitals(capsys) -> None:  # type: ignore[no-untyped-def]
    main(["--shout", "grace"])
    assert capsys.readouterr().out.strip() == "HELLO, GRACE!"


def test_without_the_flag_nothing_changes(capsys) -> None:  # type: ignore[no-untyped-def]
    main(["grace"])
    assert capsys.readouterr().out.strip() == "Hello, grace!"
