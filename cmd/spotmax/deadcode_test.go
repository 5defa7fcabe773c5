package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestLinkerDropsUnusedMethods builds both shipped binaries as the release does and fails when
// anything in them reaches reflect's Method or MethodByName with a name the linker cannot see
// (text/template's field evaluation is the usual one, e.g. through cobra's SetVersionTemplate).
// Then the linker keeps every exported method of every reachable type: all of the AWS SDK
// clients' operations, which made spotmax 60 MB instead of 22 MB and every command's start-up
// 27 MB of memory instead of 20 (docs/benchmarks.md, "Issue 16, fourth pass").
func TestLinkerDropsUnusedMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("links two binaries")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, pkg := range []string{"./cmd/spotmax", "./cmd/spotmax-agent"} {
		t.Run(filepath.Base(pkg), func(t *testing.T) {
			cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "bin"), pkg)
			cmd.Dir = filepath.Join("..", "..")
			cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
			var deps bytes.Buffer
			cmd.Stderr = &deps
			if err := cmd.Run(); err != nil {
				t.Fatalf("go build -ldflags=-dumpdep %s: %v\n%.2000s", pkg, err, deps.String())
			}
			parent := map[string]string{}
			var marked []string
			edges := 0
			sc := bufio.NewScanner(&deps)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				from, to, ok := strings.Cut(sc.Text(), " -> ")
				if !ok {
					continue
				}
				edges++
				from, to = strings.TrimSpace(from), strings.TrimSpace(to)
				for _, s := range []*string{&from, &to} {
					if name, ok := strings.CutSuffix(*s, " <ReflectMethod>"); ok {
						*s = name
						marked = append(marked, name)
					}
				}
				if _, seen := parent[to]; !seen {
					parent[to] = from
				}
			}
			if edges < 1000 {
				t.Fatalf("-dumpdep printed %d edges: not the linker's dependency graph", edges)
			}
			if len(marked) == 0 {
				return
			}
			// One chain from the entry point down to the first reflective call, to name the culprit.
			chain := []string{marked[0]}
			for s := marked[0]; parent[s] != "" && len(chain) < 40; s = parent[s] {
				chain = append(chain, parent[s])
			}
			t.Errorf("%s reaches a reflective method lookup (%s), so the linker keeps every exported method; reached through:\n  %s",
				pkg, marked[0], strings.Join(chain, "\n  <- "))
		})
	}
}
