package awsproto

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Params gives structured access to query-protocol parameters, where lists are flattened as
// Name.1, Name.2 (EC2) or Name.member.1 (other query services) and structures as Name.1.Field.
type Params struct{ v url.Values }

// Get returns a parameter's value or "".
func (p Params) Get(k string) string { return p.v.Get(k) }

// Has reports whether a parameter is present.
func (p Params) Has(k string) bool { _, ok := p.v[k]; return ok }

// List returns the values of prefix.1, prefix.2, ... in index order.
func (p Params) List(prefix string) []string {
	type kv struct {
		n int
		v string
	}
	var items []kv
	pre := prefix + "."
	for k, vs := range p.v {
		if !strings.HasPrefix(k, pre) {
			continue
		}
		n, err := strconv.Atoi(k[len(pre):])
		if err != nil || len(vs) == 0 {
			continue
		}
		items = append(items, kv{n, vs[0]})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].n < items[j].n })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}

// Structs returns the structures prefix.1.*, prefix.2.*, ... in index order, each with its keys
// relative to the structure (prefix.1.Name → Name).
func (p Params) Structs(prefix string) []Params {
	byN := map[int]url.Values{}
	pre := prefix + "."
	for k, vs := range p.v {
		if !strings.HasPrefix(k, pre) {
			continue
		}
		rest := k[len(pre):]
		dot := strings.IndexByte(rest, '.')
		if dot < 0 {
			continue
		}
		n, err := strconv.Atoi(rest[:dot])
		if err != nil {
			continue
		}
		if byN[n] == nil {
			byN[n] = url.Values{}
		}
		byN[n][rest[dot+1:]] = vs
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	out := make([]Params, len(ns))
	for i, n := range ns {
		out[i] = Params{byN[n]}
	}
	return out
}

// Sub returns the parameters under prefix. (prefix.Field → Field).
func (p Params) Sub(prefix string) Params {
	out := url.Values{}
	pre := prefix + "."
	for k, vs := range p.v {
		if strings.HasPrefix(k, pre) {
			out[k[len(pre):]] = vs
		}
	}
	return Params{out}
}

// Int returns an integer parameter; ok is false when it is absent. A malformed value is an
// InvalidParameterValue error.
func (p Params) Int(k string) (n int64, ok bool, err *APIError) {
	s := p.v.Get(k)
	if s == "" {
		return 0, false, nil
	}
	n, e := strconv.ParseInt(s, 10, 64)
	if e != nil {
		return 0, false, Errorf(CodeInvalidParameter, "Invalid value '%s' for %s", s, k)
	}
	return n, true, nil
}

// Bool returns a boolean parameter; ok is false when it is absent.
func (p Params) Bool(k string) (b bool, ok bool, err *APIError) {
	s := p.v.Get(k)
	if s == "" {
		return false, false, nil
	}
	b, e := strconv.ParseBool(s)
	if e != nil {
		return false, false, Errorf(CodeInvalidParameter, "Invalid value '%s' for %s", s, k)
	}
	return b, true, nil
}

// Time returns an ISO 8601 time parameter; ok is false when it is absent.
func (p Params) Time(k string) (t time.Time, ok bool, err *APIError) {
	s := p.v.Get(k)
	if s == "" {
		return time.Time{}, false, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z", "2006-01-02"} {
		if t, e := time.Parse(layout, s); e == nil {
			return t, true, nil
		}
	}
	return time.Time{}, false, Errorf(CodeInvalidParameter, "Invalid value '%s' for %s: not an ISO 8601 time", s, k)
}

// ISOTime formats a time as AWS query responses do.
func ISOTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// RequiredBool returns a boolean parameter that must be present; field is its name in AWS's
// validation message (e.g. shouldDecrementDesiredCapacity).
func (p Params) RequiredBool(k, field string) (bool, *APIError) {
	b, ok, err := p.Bool(k)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, NullMember(CodeValidationError, field)
	}
	return b, nil
}

// Values returns the parameters as a form (for hashing a request or walking every key).
func (p Params) Values() url.Values { return p.v }
