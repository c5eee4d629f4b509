package bouncepipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/senderkit/senderkit/internal/token"
)

var update = flag.Bool("update", false, "rewrite the .result files of testdata")

// Golden tests: every testdata/NN-name.eml (and, when present, every .eml
// under the git-ignored testdata/private/) is parsed and its report and
// classify lines compared with NN-name.result; -update rewrites them. The
// envelope recipient pipe(8) would pass is the sample's X-Original-To; our
// addresses are b+<token> and u+<token> at bounces.example.test, and the
// tokens verify with goldenKeys.

// goldenKeys is the key ring the sample tokens were made with.
func goldenKeys(t testing.TB) *token.Keyring {
	kr, err := token.NewKeyring(token.Key{ID: 1, Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// goldenOptions returns the options for a sample.
func goldenOptions(msg []byte) Options {
	o := Options{
		BounceDomain:      "bounces.example.test",
		VERPPrefix:        "b",
		UnsubscribePrefix: "u",
		UnsubscribeURL:    "https://www.example.test/u/",
	}
	h, _ := readHeader(&memSource{b: msg}, maxHeaderBytes, true)
	o.Recipient = cleanAddress(h.Get("X-Original-To"))
	if strings.TrimSpace(h.Get("Return-Path")) != "<>" {
		o.Sender = cleanAddress(h.Get("Return-Path"))
	}
	return o
}

// goldenResult is what a .result file holds.
type goldenResult struct {
	Report   *Report        `json:"report"`
	Original []Field        `json:"original,omitempty"` // selected fields of Report.Original
	Classify []ClassifyLine `json:"classify"`
}

// originalFields are the fields of the returned original a result shows.
var originalFields = []string{"Return-Path", "From", "To", "Subject", "Message-Id", "List-Unsubscribe"}

func goldenFiles(t *testing.T) []string {
	var out []string
	for _, dir := range []string{"testdata", filepath.Join("testdata", "private")} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && p != dir {
				if dir == "testdata" {
					return filepath.SkipDir // private/ and fuzz/ are walked on their own
				}
				return nil
			}
			if strings.HasSuffix(p, ".eml") {
				out = append(out, p)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return out
}

func TestGolden(t *testing.T) {
	kr := goldenKeys(t)
	status := func(c Candidate) string {
		tok, err := kr.Decode(c.Token)
		switch {
		case err == nil && tok.Kind == token.Copy:
			return TokenVerified
		case errors.Is(err, token.ErrForged) || err == nil:
			return TokenForged
		}
		return TokenNone
	}
	files := goldenFiles(t)
	if len(files) < 12 {
		t.Fatalf("found %d golden samples, want at least 12", len(files))
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			msg, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Parse(bytes.NewReader(msg), goldenOptions(msg))
			if err != nil {
				t.Fatal(err)
			}
			res := goldenResult{Report: rep, Classify: ClassifyLines(filepath.Base(p), rep, status)}
			for _, f := range rep.Original.Fields() {
				for _, want := range originalFields {
					if strings.EqualFold(f.Name, want) {
						res.Original = append(res.Original, f)
					}
				}
			}
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			resPath := strings.TrimSuffix(p, ".eml") + ".result"
			if *update {
				if err := os.WriteFile(resPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(resPath)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (go test -run TestGolden -update rewrites it):\n%s", p, resPath, got)
			}
		})
	}
}
