import argparse


def greet(name: str) -> str:
    return f"Hello, {name}!"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hello")
    parser.add_argument("name", nargs="?", default="world")
    print(greet(parser.parse_args(argv).name))


if __name__ == "__main__":
    main()
