package groupconfig

import (
	"strings"
	"unicode/utf8"
)

// candidates are the keys Suggest chooses from: every key and alias but the
// numbered alternatives, which Suggest handles apart.
var candidates = func() []string {
	var out []string
	for _, d := range defs {
		if d.Key != TagAlt {
			out = append(out, d.Key)
			out = append(out, d.Aliases...)
		}
	}
	return out
}()

// maxSuggestLen bounds the work Suggest does on absurd keys (ASG tag keys
// are at most 128 characters).
const maxSuggestLen = 128

// Suggest returns the known key closest to an unknown key, or "" when
// nothing is close. It forgives case, '-', '.' and ' ' for '_', small edit
// distances, a unique fragment ("consul" → spotmax:consul_port), the
// `spotmax group tag` flag name used as a key ("spotmax:od-fallback") and
// numbered alternatives written like "alt_2". The key may carry the prefix
// in any case ("SpotMax:group"); keys without it get no suggestion.
func Suggest(key string) string {
	if len(key) > maxSuggestLen+len(Prefix) || len(key) < len(Prefix) ||
		!strings.EqualFold(key[:len(Prefix)], Prefix) {
		return ""
	}
	if _, known := Lookup(key); known {
		return ""
	}
	name := normaliseName(key[len(Prefix):])
	if name == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(name, "alt"); ok {
		rest = strings.TrimLeft(rest, "_")
		rest = strings.TrimLeft(rest, "0")
		if allDigits(rest) {
			if alt := TagAlt + rest; alt != key {
				if _, ok := ParseAltKey(alt); ok {
					return alt
				}
			}
		}
	}
	for _, c := range candidates {
		if c[len(Prefix):] == name && c != key {
			return c
		}
	}
	for _, d := range defs {
		if d.Key != TagAlt && normaliseName(d.Flag) == name {
			return d.Key // the flag name used as a key
		}
	}
	best, bestDist := "", len(name)/3
	if bestDist < 1 {
		bestDist = 1
	}
	bestDist++ // accept distances up to the threshold inclusive
	nameLen := utf8.RuneCountInString(name)
	for _, c := range candidates {
		cn := c[len(Prefix):]
		if c == key || abs(nameLen-len(cn)) >= bestDist {
			continue // the length difference alone is too far
		}
		if d := levenshtein(name, cn); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	if len(name) >= 4 {
		var found string
		for _, c := range candidates {
			if strings.Contains(c[len(Prefix):], name) && c != key {
				if found != "" {
					return "" // ambiguous
				}
				found = c
			}
		}
		return found
	}
	return ""
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func normaliseName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', ' ':
			return '_'
		}
		return r
	}, s)
}

// levenshtein is the edit distance between a and b, in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Closest returns the candidate closest to s by edit distance, or "" when
// none is within a third of s's length (2 edits are always forgiven); ties go
// to the candidate first in sort order. It is the "did you mean" of values
// checked against a list only AWS knows, e.g. instance types ("m5.lage" →
// "m5.large").
func Closest(s string, candidates []string) string {
	best, bestDist := "", max(len(s)/3, 2)
	for _, c := range candidates {
		if c == s || abs(len(c)-len(s)) > bestDist {
			continue
		}
		d := levenshtein(s, c)
		if d < bestDist || (d == bestDist && (best == "" || c < best)) {
			best, bestDist = c, d
		}
	}
	return best
}
