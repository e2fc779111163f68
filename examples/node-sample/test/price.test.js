import { test } from "node:test";
import assert from "node:assert/strict";
import { withTax, formatCents } from "../src/price.js";

test("adds tax and rounds to a cent", () => {
  assert.equal(withTax(1000, 8.25), 1083);
});

test("formats cents as dollars", () => {
  assert.equal(formatCents(1999), "$19.99");
});

test("formats negative amounts with the sign first", () => {
  // A known bug, on purpose.
  assert.equal(formatCents(-500), "-$5.00");
});

test("rounds half cents away from zero", { skip: "not decided yet" }, () => {});
