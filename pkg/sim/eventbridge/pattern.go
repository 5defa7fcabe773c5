package eventbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// eventPattern is a compiled EventBridge event pattern. The simulated subset: exact values
// (strings, numbers, booleans, null), nested objects (detail.*), and the content filters prefix,
// suffix, equals-ignore-case, anything-but, exists, numeric and wildcard. $or and cidr are
// rejected as not simulated, so a rule never silently matches differently than on AWS.
type eventPattern struct {
	fields map[string]*patternField
}

// patternField is one key of a pattern: either a nested pattern or a list of matchers, one of
// which must match.
type patternField struct {
	sub      *eventPattern
	matchers []valueMatcher
}

type valueMatcher struct {
	op     string // equals, prefix, suffix, equals-ignore-case, anything-but, exists, numeric, wildcard
	lit    any    // equals: string, float64, bool or nil
	s      string // prefix, suffix, equals-ignore-case, wildcard
	fold   bool   // prefix and suffix with equals-ignore-case
	exists bool
	nums   []numericCond
	but    []valueMatcher // anything-but: equals, prefix, suffix or equals-ignore-case
}

type numericCond struct {
	op string // <, <=, =, >=, >
	n  float64
}

// parseEventPattern compiles a pattern; the error says what is wrong in AWS's terms.
func parseEventPattern(text string) (*eventPattern, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the pattern is not JSON: %v", err)
	}
	if dec.More() {
		return nil, errors.New("the pattern has text after its JSON object")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("Filter is not an object")
	}
	if len(obj) == 0 {
		return nil, errors.New("the pattern is an empty object")
	}
	return compilePattern(obj, "")
}

func compilePattern(obj map[string]any, path string) (*eventPattern, error) {
	p := &eventPattern{fields: map[string]*patternField{}}
	for k, v := range obj {
		name := path + k
		if k == "$or" {
			return nil, fmt.Errorf("\"$or\" at %q: the simulated region does not simulate $or", name)
		}
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				return nil, fmt.Errorf("%q is an empty object", name)
			}
			sub, err := compilePattern(v, name+".")
			if err != nil {
				return nil, err
			}
			p.fields[k] = &patternField{sub: sub}
		case []any:
			if len(v) == 0 {
				return nil, fmt.Errorf("Empty arrays are not allowed (at %q)", name)
			}
			f := &patternField{}
			for _, el := range v {
				m, err := compileMatcher(el, name)
				if err != nil {
					return nil, err
				}
				f.matchers = append(f.matchers, m)
			}
			p.fields[k] = f
		default:
			return nil, fmt.Errorf("%q must be an object or an array", name)
		}
	}
	return p, nil
}

func compileMatcher(el any, name string) (valueMatcher, error) {
	switch el := el.(type) {
	case string, float64, bool, nil:
		return valueMatcher{op: "equals", lit: el}, nil
	case []any:
		return valueMatcher{}, fmt.Errorf("Match value must be String, number, true, false, or null (at %q)", name)
	case map[string]any:
		if len(el) != 1 {
			return valueMatcher{}, fmt.Errorf("a content filter at %q must have exactly one key", name)
		}
		for op, arg := range el {
			return compileFilter(op, arg, name)
		}
	}
	return valueMatcher{}, fmt.Errorf("unrecognized match value at %q", name)
}

func compileFilter(op string, arg any, name string) (valueMatcher, error) {
	m := valueMatcher{op: op}
	switch op {
	case "prefix", "suffix":
		switch a := arg.(type) {
		case string:
			m.s = a
		case map[string]any:
			s, ok := a["equals-ignore-case"].(string)
			if len(a) != 1 || !ok {
				return m, fmt.Errorf("%s match pattern at %q must be a string or {\"equals-ignore-case\": string}", op, name)
			}
			m.s, m.fold = s, true
		default:
			return m, fmt.Errorf("%s match pattern must be a string (at %q)", op, name)
		}
	case "equals-ignore-case", "wildcard":
		s, ok := arg.(string)
		if !ok {
			return m, fmt.Errorf("%s match pattern must be a string (at %q)", op, name)
		}
		m.s = s
		if op == "wildcard" && strings.Contains(s, "**") {
			return m, fmt.Errorf("consecutive wildcard characters at %q are not allowed", name)
		}
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return m, fmt.Errorf("exists match pattern must be either true or false (at %q)", name)
		}
		m.exists = b
	case "anything-but":
		var items []any
		switch a := arg.(type) {
		case []any:
			if len(a) == 0 {
				return m, fmt.Errorf("Empty arrays are not allowed (anything-but at %q)", name)
			}
			items = a
		default:
			items = []any{a}
		}
		for _, it := range items {
			switch it := it.(type) {
			case string, float64:
				m.but = append(m.but, valueMatcher{op: "equals", lit: it})
			case map[string]any:
				if len(it) != 1 || len(items) != 1 {
					return m, fmt.Errorf("anything-but at %q takes a value, a list of values, or one prefix, suffix or equals-ignore-case filter", name)
				}
				for op2, arg2 := range it {
					if op2 != "prefix" && op2 != "suffix" && op2 != "equals-ignore-case" {
						return m, fmt.Errorf("anything-but at %q does not take %q", name, op2)
					}
					inner, err := compileFilter(op2, arg2, name)
					if err != nil {
						return m, err
					}
					m.but = append(m.but, inner)
				}
			default:
				return m, fmt.Errorf("Inside anything-but list, start|null|boolean is not supported (at %q)", name)
			}
		}
	case "numeric":
		a, ok := arg.([]any)
		if !ok || len(a) == 0 || len(a)%2 != 0 || len(a) > 4 {
			return m, fmt.Errorf("Value of numeric must be an array of one or two operator-number pairs (at %q)", name)
		}
		for i := 0; i < len(a); i += 2 {
			op2, ok1 := a[i].(string)
			n, ok2 := a[i+1].(float64)
			if !ok1 || !ok2 {
				return m, fmt.Errorf("numeric at %q: want an operator and a number", name)
			}
			switch op2 {
			case "<", "<=", "=", ">=", ">":
			default:
				return m, fmt.Errorf("Unrecognized numeric range operator: %s (at %q)", op2, name)
			}
			m.nums = append(m.nums, numericCond{op2, n})
		}
	case "cidr":
		return m, fmt.Errorf("cidr at %q: the simulated region does not simulate cidr matching", name)
	default:
		return m, fmt.Errorf("Unrecognized match type %s (at %q)", op, name)
	}
	return m, nil
}

// match reports whether an event (its decoded JSON envelope, or a nested object of it) matches.
func (p *eventPattern) match(obj map[string]any) bool {
	for k, f := range p.fields {
		v, present := obj[k]
		if f.sub != nil {
			m, _ := v.(map[string]any)
			if !f.sub.match(m) {
				return false
			}
			continue
		}
		if !matchField(f.matchers, v, present) {
			return false
		}
	}
	return true
}

func matchField(ms []valueMatcher, v any, present bool) bool {
	for _, m := range ms {
		if m.op == "exists" {
			if m.exists == present {
				return true
			}
			continue
		}
		if !present {
			continue
		}
		if arr, ok := v.([]any); ok {
			for _, el := range arr {
				if m.matchValue(el) {
					return true
				}
			}
			continue
		}
		if m.matchValue(v) {
			return true
		}
	}
	return false
}

func (m valueMatcher) matchValue(v any) bool {
	switch m.op {
	case "equals":
		return v == m.lit
	case "prefix":
		s, ok := v.(string)
		if m.fold {
			return ok && len(s) >= len(m.s) && strings.EqualFold(s[:len(m.s)], m.s)
		}
		return ok && strings.HasPrefix(s, m.s)
	case "suffix":
		s, ok := v.(string)
		if m.fold {
			return ok && len(s) >= len(m.s) && strings.EqualFold(s[len(s)-len(m.s):], m.s)
		}
		return ok && strings.HasSuffix(s, m.s)
	case "equals-ignore-case":
		s, ok := v.(string)
		return ok && strings.EqualFold(s, m.s)
	case "wildcard":
		s, ok := v.(string)
		return ok && awsproto.Glob(m.s, s, false)
	case "anything-but":
		for _, b := range m.but {
			if b.matchValue(v) {
				return false
			}
		}
		return true
	case "numeric":
		n, ok := v.(float64)
		if !ok {
			return false
		}
		for _, c := range m.nums {
			var pass bool
			switch c.op {
			case "<":
				pass = n < c.n
			case "<=":
				pass = n <= c.n
			case "=":
				pass = n == c.n
			case ">=":
				pass = n >= c.n
			case ">":
				pass = n > c.n
			}
			if !pass {
				return false
			}
		}
		return true
	}
	return false
}
