from calc.missing import nothing  # a collection error, on purpose


def test_never_collected() -> None:
    assert nothing
