from calc.stats import spread


def test_spread_of_constant_is_zero() -> None:
    assert spread([4, 4, 4]) == 0


def test_spread_of_two_points() -> None:
    assert spread([0, 2]) == 1
