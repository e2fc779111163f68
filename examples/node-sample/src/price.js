export function withTax(cents, ratePercent) {
  return Math.round(cents * (1 + ratePercent / 100));
}

export function formatCents(cents) {
  return `$${(cents / 100).toFixed(2)}`;
}
