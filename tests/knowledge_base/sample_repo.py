"""A small real git repository with code in several languages, docs and tests, for search tests."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.gitrepo import git, init_repo

FILES = {
    "src/shop/config.py": '''"""Loading the shop's settings."""
import tomllib


class ConfigError(Exception):
    """The settings file is broken."""


def parse_config(path):
    """Read a TOML settings file into a dict."""
    with open(path, "rb") as handle:
        return tomllib.load(handle)
''',
    "src/shop/cart.py": '''"""The shopping cart."""
from shop.config import parse_config


class ShoppingCart:
    def __init__(self):
        self.items = []

    def add_item(self, sku, quantity=1):
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.items.append((sku, quantity))

    def total_price(self, prices):
        return sum(prices[sku] * quantity for sku, quantity in self.items)
''',
    "src/shop/discounts.py": '''"""Discount rules applied at checkout."""


def apply_coupon(total, coupon_code):
    """Take a percentage off the total for a valid coupon code."""
    percent = {"SAVE10": 10, "SAVE20": 20}.get(coupon_code, 0)
    return total * (100 - percent) / 100
''',
    "web/checkout.js": """// Checkout page logic
export class CheckoutForm {
  submitOrder(cart) {
    return fetchPayment(cart.total);
  }
}

export function fetchPayment(amount) {
  return fetch("/pay", { method: "POST", body: String(amount) });
}
""",
    "server/inventory.go": """package server

type Inventory struct {
	Stock map[string]int
}

func (inv *Inventory) Reserve(sku string, n int) bool {
	if inv.Stock[sku] < n {
		return false
	}
	inv.Stock[sku] -= n
	return true
}
""",
    "tests/test_cart.py": """from shop.cart import ShoppingCart


def test_add_item_rejects_zero_quantity():
    cart = ShoppingCart()
    cart.add_item("apple", 2)
    assert cart.total_price({"apple": 3}) == 6
""",
    "docs/adr/0001-use-toml.md": "# Use TOML for settings\n\nWe chose TOML because it is readable and in the stdlib.\n",
    "README.md": "# Shop\n\nA sample shop with a cart, coupons and an inventory service.\n",
    "vendor/lib/big.py": "def vendored_helper():\n    return 'parse_config'\n",
    "assets/logo.png": "\x89PNG\r\n\x1a\n\x00\x00binary",
    "static/app.min.js": "var a=1;" * 400,
    "web/bundle.js": "var b=2;" * 400,
    "legacy/latin1.py": "# caf\xe9 menu\ndef brew_coffee():\n    return 'espresso'\n",
}


def make_sample_repo(path: Path) -> Path:
    init_repo(path, commit=False)
    for name, text in FILES.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("latin-1") if name.startswith(("legacy/", "assets/")) else text.encode()
        target.write_bytes(data)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "sample shop")
    return path
