package textutil

import "testing"

func TestCountWords(t *testing.T) {
	if got := CountWords("  one two  three "); got != 3 {
		t.Errorf("CountWords = %d, want 3", got)
	}
}

func TestTitle(t *testing.T) {
	if got := Title("hello go world"); got != "Hello Go World" {
		t.Errorf("Title = %q", got)
	}
}

// A known bug, on purpose: Title keeps the rest of each word as it was.
func TestTitleLowersTheRest(t *testing.T) {
	if got := Title("hELLO"); got != "Hello" {
		t.Errorf("Title(%q) = %q, want %q", "hELLO", got, "Hello")
	}
}

func TestUnicodeTitle(t *testing.T) {
	t.Skip("multi-byte first letters are not handled yet")
}
