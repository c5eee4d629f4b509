package conf

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

var update = flag.Bool("update", false, "rewrite conf/example.toml")

// TestExample keeps example.toml equal to what the definitions generate,
// and checks that it parses back to exactly the default.
func TestExample(t *testing.T) {
	got, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("example.toml", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("conf/example.toml is out of date: run go test ./conf -run TestExample -update")
	}
	c, err := Parse(want, "example.toml")
	if err != nil {
		t.Fatalf("example.toml does not load: %v", err)
	}
	d, _ := Load("")
	// Compare what a user can see: the exported fields, as TOML (an empty
	// list in the file and a nil one in Go are the same setting).
	cb, _ := toml.Marshal(c)
	db, _ := toml.Marshal(d)
	if !bytes.Equal(cb, db) {
		t.Errorf("example.toml loads as\n%s\nnot the default\n%s", cb, db)
	}
	// Every field is documented, with its default.
	docs, _ := fieldDocs()
	for k, doc := range docs {
		if doc == "" {
			t.Errorf("field %s has no doc comment", k)
		}
	}
}
