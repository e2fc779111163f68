from calc.arith import add, mean


def test_add_small_numbers() -> None:
    assert add(2, 3) == 5


def test_add_negative() -> None:
    assert add(-2, 2) == 0


def test_mean_of_three() -> None:
    assert mean([1, 2, 3]) == 2
