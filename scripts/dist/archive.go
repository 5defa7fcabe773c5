package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// archiveFile is one file of a release archive.
type archiveFile struct {
	name string // inside the archive's top directory
	src  string // on disk
	mode int64
}

// ArchiveName is the file name of target t's archive, e.g. spotmax-agent_0.3.0_linux_arm64.tar.gz.
func (r *Release) ArchiveName(t Target) string {
	return fmt.Sprintf("%s_%s_%s_%s.tar.gz", t.Cmd, r.PlainVersion(), t.GOOS, t.GOARCH)
}

// Archive writes target t's archive: a top directory named like the archive holding the binary,
// README.md and, for the agent, its systemd unit and install-agent.sh.
func (r *Release) Archive(t Target, bin string) (string, error) {
	files := []archiveFile{
		{t.Cmd, bin, 0o755},
		{"README.md", filepath.Join(r.Repo, "README.md"), 0o644},
	}
	if t.Cmd == "spotmax-agent" {
		files = append(files,
			archiveFile{"spotmax-agent.service", filepath.Join(r.Repo, "scripts", "spotmax-agent.service"), 0o644},
			archiveFile{"install-agent.sh", filepath.Join(r.Repo, "scripts", "install-agent.sh"), 0o755})
	}
	name := r.ArchiveName(t)
	top := strings.TrimSuffix(name, ".tar.gz")
	var buf bytes.Buffer
	if err := writeTarGz(&buf, top, files, r.Time()); err != nil {
		return "", fmt.Errorf("archiving %s: %w", name, err)
	}
	return name, writeFileAt(filepath.Join(r.Out, name), buf.Bytes(), 0o644, r.Time())
}

// writeTarGz writes a gzip-compressed tar whose bytes depend only on the files' contents, names
// and modes: sorted entries, root-owned, every time mtime, and a gzip header without name or time.
func writeTarGz(w io.Writer, top string, files []archiveFile, mtime time.Time) error {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	hdr := func(name string, mode int64, size int64, typ byte) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: mtime,
			Uname: "root", Gname: "root", Format: tar.FormatUSTAR}
	}
	if err := tw.WriteHeader(hdr(top+"/", 0o755, 0, tar.TypeDir)); err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr(top+"/"+f.name, f.mode, int64(len(b)), tar.TypeReg)); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// sumsFile lists the SHA-256 of every release file, in sha256sum's format.
const sumsFile = "SHA256SUMS"

// WriteSums writes Out/SHA256SUMS over every regular file directly in Out (archives, packages,
// the image, install-agent.sh), sorted by name, so that `sha256sum -c --ignore-missing` checks a
// download.
func (r *Release) WriteSums() error {
	entries, err := os.ReadDir(r.Out)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == sumsFile || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		sum, err := fileSHA256(filepath.Join(r.Out, e.Name()))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, e.Name())
	}
	return writeFileAt(filepath.Join(r.Out, sumsFile), []byte(b.String()), 0o644, r.Time())
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
