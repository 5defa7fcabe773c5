package awsproto

import (
	"regexp"
	"sync"
)

// LazyRegexp compiles expr on first use: a bounded repetition such as {1,255} compiles to a
// large program, and the spotmax binary links the simulator, so compiling them at package init
// cost every command's start-up (docs/benchmarks.md, "Start-up cost").
func LazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
