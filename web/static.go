package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
)

//go:embed static
var staticFS embed.FS

// staticFile is one embedded static file and the short hash of its content
// that makes its URL: /static/{hash}/{name}. A changed file gets a new URL,
// so browsers may cache every URL forever.
type staticFile struct {
	hash string
	typ  string
	body []byte
}

type staticFiles struct {
	files map[string]staticFile
}

func mustStatic() *staticFiles {
	s := &staticFiles{files: map[string]staticFile{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		typ := mime.TypeByExtension(path.Ext(p))
		if typ == "" {
			typ = "text/plain; charset=utf-8"
		}
		s.files[path.Base(p)] = staticFile{hash: hex.EncodeToString(sum[:])[:12], typ: typ, body: body}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return s
}

// url is the template func "static": the hashed URL of a static file.
func (s *staticFiles) url(name string) (string, error) {
	f, ok := s.files[name]
	if !ok {
		return "", &fs.PathError{Op: "static", Path: name, Err: fs.ErrNotExist}
	}
	return "/static/" + f.hash + "/" + name, nil
}

func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := u.static.files[r.PathValue("name")]
	if !ok || f.hash != r.PathValue("hash") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.typ)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	if r.Method != http.MethodHead {
		w.Write(f.body)
	}
}
