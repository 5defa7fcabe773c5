package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// layerFiles reads an image layer's files.
func layerFiles(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
	}
}

// layerFile reads one file of an image layer.
func layerFile(t *testing.T, l v1.Layer, name string) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("layer has no %s: %v", name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// The image tarball of `make image` is an OCI layout with one multi-arch index (amd64, arm64)
// tagged with the version; each image runs `spotmax run` as 65532 from a binary built for its
// architecture, with the CA bundle and nothing else; and a second build is the same image.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds spotmax for two architectures")
	}
	rel := newRelease(t, "v1.2.3", t.TempDir())
	name, err := rel.Image(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if name != "spotmax_1.2.3_image.oci.tar" {
		t.Errorf("image file %s", name)
	}
	dir := t.TempDir()
	hdrs, data := untar(t, filepath.Join(rel.Out, name))
	for n, h := range hdrs {
		if !h.ModTime.Equal(rel.Time()) {
			t.Errorf("%s in the tarball dated %s, want %s", n, h.ModTime, rel.Time())
		}
		p := filepath.Join(dir, n)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data[n], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("the tarball is not an OCI layout: %v", err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations[imageRefNameKey] != "1.2.3" {
		t.Fatalf("index.json: %+v, want one index named 1.2.3", im.Manifests)
	}
	idx, err := top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index media type %s", mt)
	}
	children, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, d := range children.Manifests {
		archs = append(archs, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("%s: config says %s/%s", d.Platform.Architecture, cf.OS, cf.Architecture)
		}
		if cf.Config.User != "65532:65532" {
			t.Errorf("%s: user %q, want 65532:65532 (non-root)", cf.Architecture, cf.Config.User)
		}
		if strings.Join(cf.Config.Entrypoint, " ") != "/usr/local/bin/spotmax" || strings.Join(cf.Config.Cmd, " ") != "run" {
			t.Errorf("%s: entrypoint %q cmd %q, want spotmax run", cf.Architecture, cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if !cf.Created.Time.Equal(rel.Time()) || cf.Config.Labels["org.opencontainers.image.revision"] != rel.Commit {
			t.Errorf("%s: created %s, revision %q", cf.Architecture, cf.Created.Time, cf.Config.Labels["org.opencontainers.image.revision"])
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("%s: %d layers (%v), want base and binary", cf.Architecture, len(layers), err)
		}
		base := layerFiles(t, layers[0])
		for _, f := range []string{"etc/passwd", "etc/group", caBundle, "tmp/", "home/nonroot/"} {
			if _, ok := base[f]; !ok {
				t.Errorf("%s: base layer has no %s", cf.Architecture, f)
			}
		}
		if base["tmp/"] != nil && base["tmp/"].Mode != 0o1777 {
			t.Errorf("/tmp mode %o", base["tmp/"].Mode)
		}
		if !strings.Contains(string(layerFile(t, layers[0], "etc/passwd")), "nonroot:x:65532:65532:") {
			t.Errorf("%s: /etc/passwd has no nonroot 65532", cf.Architecture)
		}
		if files := layerFiles(t, layers[1]); len(files) != 4 {
			t.Errorf("%s: binary layer holds %d entries, want the binary and its 3 directories", cf.Architecture, len(files))
		}
		ef, err := elf.NewFile(bytes.NewReader(layerFile(t, layers[1], "usr/local/bin/spotmax")))
		if err != nil {
			t.Fatalf("%s: the binary is not ELF: %v", cf.Architecture, err)
		}
		want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[cf.Architecture]
		if ef.Machine != want {
			t.Errorf("%s image holds a binary for %v, want %v", cf.Architecture, ef.Machine, want)
		}
	}
	if strings.Join(archs, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", archs)
	}

	again := newRelease(t, "v1.2.3", t.TempDir())
	if _, err := again.Image(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, _ := fileSHA256(filepath.Join(rel.Out, name))
	b, _ := fileSHA256(filepath.Join(again.Out, name))
	if a != b {
		t.Errorf("two image builds of one commit differ: %s, %s", a, b)
	}
}
