package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image runs `spotmax run` as distroless's "nonroot" user: no shell, no package manager,
// only the CA certificates for the AWS and Kubernetes APIs, a passwd entry, a writable /tmp and
// the binary.
const (
	imageUID        = 65532
	imageBinary     = "/usr/local/bin/spotmax"
	caBundle        = "etc/ssl/certs/ca-certificates.crt"
	imageRefNameKey = "org.opencontainers.image.ref.name"
)

// imageArchs are the platforms of the image index.
var imageArchs = []string{"amd64", "arm64"}

// ImageName is the file name of the image's OCI layout tarball.
func (r *Release) ImageName() string {
	return fmt.Sprintf("spotmax_%s_image.oci.tar", r.PlainVersion())
}

// caBundlePath is the build host's CA bundle copied into the image (Debian and Ubuntu keep it
// there; the ca-certificates package provides it).
var caBundlePath = "/" + caBundle

// Image builds `spotmax` for each of imageArchs, makes one image per architecture from two
// layers (a base with the CA bundle, passwd and /tmp; the binary) and writes an OCI image layout
// holding the multi-arch index, tagged with the version, as a tarball in Out.
func (r *Release) Image(ctx context.Context) (string, error) {
	base, err := r.baseLayer()
	if err != nil {
		return "", err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range imageArchs {
		bin, err := r.Build(ctx, Target{"spotmax", "linux", arch})
		if err != nil {
			return "", err
		}
		img, err := r.archImage(base, bin, arch)
		if err != nil {
			return "", fmt.Errorf("image for linux/%s: %w", arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	dir, err := os.MkdirTemp("", "spotmax-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{imageRefNameKey: r.PlainVersion()})); err != nil {
		return "", fmt.Errorf("writing the OCI layout: %w", err)
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, dir, r); err != nil {
		return "", err
	}
	name := r.ImageName()
	return name, writeFileAt(filepath.Join(r.Out, name), buf.Bytes(), 0o644, r.Time())
}

func (r *Release) archImage(base v1.Layer, bin, arch string) (v1.Image, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	binLayer, err := r.layer([]tarEntry{
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: imageBinary[1:], mode: 0o755, data: b},
	})
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, base, binLayer); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: r.Time()}
	cf.Author = "spotmax"
	cf.Config.User = fmt.Sprintf("%d:%d", imageUID, imageUID)
	cf.Config.Entrypoint = []string{imageBinary}
	cf.Config.Cmd = []string{"run"}
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"SSL_CERT_FILE=/" + caBundle,
		"HOME=/home/nonroot",
	}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "spotmax",
		"org.opencontainers.image.version":  r.Version,
		"org.opencontainers.image.revision": r.Commit,
		"org.opencontainers.image.created":  r.Date(),
		"org.opencontainers.image.source":   "https://github.com/spotmax/spotmax",
	}
	return mutate.ConfigFile(img, cf)
}

// baseLayer is the image's base: what distroless's static image has that spotmax needs.
func (r *Release) baseLayer() (v1.Layer, error) {
	ca, err := os.ReadFile(caBundlePath)
	if err != nil {
		return nil, fmt.Errorf("reading the build host's CA bundle for the image (install ca-certificates): %w", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", imageUID, imageUID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", imageUID)
	return r.layer([]tarEntry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: caBundle, mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: imageUID},
		{name: "tmp/", mode: 0o1777, dir: true},
	})
}

type tarEntry struct {
	name string
	mode int64
	dir  bool
	data []byte
	uid  int
}

// layer makes an OCI layer of the entries, every file dated at the release.
func (r *Release) layer(entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: r.Time(), Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// tarDir writes the files under dir as a tar with sorted names and the release's times.
func tarDir(w io.Writer, dir string, r *Release) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: r.Time(), Format: tar.FormatPAX}
		var data []byte
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		} else {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
