package textutil

import "strings"

// CountWords counts the whitespace-separated words in s.
func CountWords(s string) int {
	return len(strings.Fields(s))
}

// Title upper-cases the first letter of every word.
func Title(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}
