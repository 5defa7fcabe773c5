package awsproto

// Glob matches s against a pattern where * matches any run of characters (EventBridge's
// wildcard filter and IAM's ARN patterns); with question, ? matches one character too (IAM).
func Glob(pattern, s string, question bool) bool {
	// Iterative matching with backtracking to the last star.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == s[i] || (question && pattern[p] == '?')):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
