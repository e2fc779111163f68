from calc.arith import mean


def spread(values: list[float]) -> float:
    """Mean absolute deviation."""
    centre = mean(values)
    return mean([abs(v - centre) for v in values])
