// Command dist builds spotmax's release artifacts: versioned archives of `spotmax` and
// `spotmax-agent`, the agent's .deb and .rpm (nfpm, from packaging/nfpm.yaml), the OCI image of
// `spotmax run` (go-containerregistry, no Docker daemon) and SHA256SUMS. `make dist` and `make
// image` run it; see docs/install.md.
//
//	go run . [-repo DIR] [-out DIR] [-targets LIST] [-formats deb,rpm] dist
//	go run . [-repo DIR] [-out DIR] image
//
// The builds are reproducible: -trimpath, an empty build id, no VCS stamp, and every file time
// in archives, packages and image layers set to SOURCE_DATE_EPOCH (default: the commit time of
// HEAD). Two builds of one commit give the same bytes (TestDistIsReproducible).
//
// It is a module of its own so that nfpm and go-containerregistry, with what they bring, stay out
// of the main go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dist", flag.ContinueOnError)
	repo := fs.String("repo", "../..", "root of the spotmax repository")
	out := fs.String("out", "", "output directory (default REPO/dist)")
	targets := fs.String("targets", "", "comma-separated CMD/GOOS/GOARCH to build (default: all release targets)")
	formats := fs.String("formats", "deb,rpm", "agent package formats (empty: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one command: dist or image")
	}
	root, err := filepath.Abs(*repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "spotmax-agent")); err != nil {
		return fmt.Errorf("-repo %s is not the spotmax repository: %w", root, err)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(root, "dist")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	rel, err := releaseFromEnv(ctx, root, os.Getenv)
	if err != nil {
		return err
	}
	rel.Out = dir
	fmt.Fprintf(stdout, "spotmax %s (commit %s, source date %s)\n", rel.Version, rel.Commit, rel.Date())
	switch fs.Arg(0) {
	case "dist":
		ts := allTargets
		if *targets != "" {
			if ts, err = parseTargets(*targets); err != nil {
				return err
			}
		}
		var fm []string
		if *formats != "" {
			fm = strings.Split(*formats, ",")
		}
		files, err := rel.Dist(ctx, ts, fm)
		if err != nil {
			return err
		}
		for _, f := range files {
			fmt.Fprintln(stdout, "  ", filepath.Join(dir, f))
		}
	case "image":
		f, err := rel.Image(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "  ", filepath.Join(dir, f))
	default:
		return fmt.Errorf("unknown command %q: want dist or image", fs.Arg(0))
	}
	if err := rel.WriteSums(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "  ", filepath.Join(dir, sumsFile))
	return nil
}
