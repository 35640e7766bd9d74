// tar_oracle prints what Go's archive/tar (the reader Docker and tar-split use) reads from
// each tar given: every entry's name, type, size, link target, mode, owner, mtime, xattrs
// and a sha256 of its data, and the error that stopped the reading, if any. It writes
// NAME.go.json next to each NAME.tar. Run once to record the expected readings; the tests
// only read the JSON (see tests/layerstore/tar_semantics/README.md).
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

type entry struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Size     int64             `json:"size"`
	Linkname string            `json:"linkname"`
	Mode     int64             `json:"mode"`
	UID      int               `json:"uid"`
	GID      int               `json:"gid"`
	Mtime    int64             `json:"mtime"`
	Xattrs   map[string]string `json:"xattrs"`
	DataLen  int64             `json:"data_len"`
	Sha256   string            `json:"sha256"`
}

type reading struct {
	Go      string  `json:"go"`
	Entries []entry `json:"entries"`
	Error   string  `json:"error"`
}

func read(path string) reading {
	res := reading{Go: runtime.Version(), Entries: []entry{}}
	f, err := os.Open(path)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer f.Close()
	r := tar.NewReader(f)
	for {
		h, err := r.Next()
		if err == io.EOF {
			return res
		}
		if err != nil {
			res.Error = err.Error()
			return res
		}
		sum := sha256.New()
		n, err := io.Copy(sum, r)
		e := entry{Name: h.Name, Type: fmt.Sprintf("%c", h.Typeflag), Size: h.Size, Linkname: h.Linkname,
			Mode: h.Mode, UID: h.Uid, GID: h.Gid, Mtime: h.ModTime.Unix(), Xattrs: map[string]string{},
			DataLen: n, Sha256: hex.EncodeToString(sum.Sum(nil))}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") && v != "" {
				e.Xattrs[k[len("SCHILY.xattr."):]] = v
			}
		}
		res.Entries = append(res.Entries, e)
		if err != nil {
			res.Error = err.Error()
			return res
		}
	}
}

func main() {
	for _, path := range os.Args[1:] {
		out, _ := json.MarshalIndent(read(path), "", "  ")
		if err := os.WriteFile(strings.TrimSuffix(path, ".tar")+".go.json", append(out, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
