package groupconfig

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// ReasonUnknownTag is the Reason of a Problem about a spotmax: key that is
// not a known tag.
const ReasonUnknownTag = "unknown tag"

// maxValueInMessage is how many bytes of a value or key a message shows.
const maxValueInMessage = 64

// Problem is one reason a group's tags cannot be used.
type Problem struct {
	Group  string // group name given to Parse
	Tag    string // tag key as found on the group
	Value  string // tag value as found on the group, unabridged
	Reason string // what is wrong, e.g. "not a whole number of seconds"
	Hint   string // how to fix it, e.g. "did you mean spotmax:buffer_mins?"; may be ""
}

// String renders the problem on one line naming the group, the tag and the
// value, e.g.
//
//	group "web": tag spotmax:detaching_delay_seconds="abc": not a whole number of seconds
//	group "web": unknown tag spotmax:detach_delay_seconds="30" (did you mean spotmax:detaching_delay_seconds?)
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString("group ")
	b.WriteString(strconv.Quote(p.Group))
	b.WriteString(": ")
	if p.Reason == ReasonUnknownTag {
		b.WriteString("unknown tag ")
		b.WriteString(quoteKey(p.Tag))
		b.WriteString("=")
		b.WriteString(quoteValue(p.Value))
	} else {
		b.WriteString("tag ")
		b.WriteString(quoteKey(p.Tag))
		b.WriteString("=")
		b.WriteString(quoteValue(p.Value))
		b.WriteString(": ")
		b.WriteString(p.Reason)
	}
	if p.Hint != "" {
		b.WriteString(" (")
		b.WriteString(p.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// ValidationError is the error of Parse: every problem found in one group's
// tags, sorted by tag key. A group with a ValidationError must not be acted
// on.
type ValidationError struct {
	Group    string
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *ValidationError) Error() string {
	if e == nil {
		return "groupconfig: <nil>"
	}
	if len(e.Problems) == 0 {
		return "group " + strconv.Quote(e.Group) + ": invalid spotmax tags"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// truncate cuts s to at most n bytes on a rune boundary and says how long it
// was.
func truncate(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}

// quoteValue quotes a value so odd bytes are visible, abridging long ones.
func quoteValue(s string) string {
	t, cut := truncate(s, maxValueInMessage)
	q := strconv.Quote(t)
	if cut {
		q += "…(" + strconv.Itoa(len(s)) + " bytes)"
	}
	return q
}

// quoteKey shows a plain key as is and quotes anything else.
func quoteKey(s string) string {
	plain := s != "" && len(s) <= 2*maxValueInMessage
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = c > ' ' && c < 0x7f && c != '"' && c != '=' && c != '\\'
	}
	if plain {
		return s
	}
	return quoteValue(s)
}
