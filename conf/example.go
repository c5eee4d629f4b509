package conf

import (
	"embed"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// The definitions whose doc comments document the keys.
//
//go:embed config.go bounce.go milter.go policy.go http.go doctor.go store.go vetting.go
var sources embed.FS

// Example returns the commented example configuration: every key with
// its documentation and default value. conf/example.toml is this output.
func Example() ([]byte, error) {
	docs, err := fieldDocs()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(`# senderkit configuration: every key, its meaning and its default.
#
# Generated from conf/config.go by "go test ./conf -run TestExample -update";
# edit the comments there, not here. A file needs only the keys it changes;
# "senderkit check -c FILE" validates one.
`)
	writeTable(&b, docs, reflect.ValueOf(Default()).Elem(), "", "")
	return []byte(b.String()), nil
}

// fieldDocs maps "Type.Field" to the field's doc comment.
func fieldDocs() (map[string]string, error) {
	docs := map[string]string{}
	ents, err := sources.ReadDir(".")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		src, err := sources.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("conf: parse embedded %s: %w", e.Name(), err)
		}
		collectDocs(f, docs)
	}
	return docs, nil
}

func collectDocs(f *ast.File, docs map[string]string) {
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return true
		}
		for _, fl := range st.Fields.List {
			for _, name := range fl.Names {
				if name.IsExported() {
					docs[ts.Name.Name+"."+name.Name] = fl.Doc.Text()
				}
			}
		}
		return true
	})
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

func comment(b *strings.Builder, doc, goName, key, indent string) {
	doc = strings.TrimSpace(doc)
	if rest, ok := strings.CutPrefix(doc, goName+" "); ok {
		doc = key + " " + rest
	}
	for _, line := range strings.Split(doc, "\n") {
		b.WriteString(strings.TrimRight(indent+"# "+line, " ") + "\n")
	}
}

// field is one key of a table, with the type that documents it.
type field struct {
	owner string // the Go type the field is declared in
	f     reflect.StructField
	v     reflect.Value
}

// fields lists the keys of struct v, flattening embedded structs (the
// per-part settings of a scope or stream) as TOML does.
func fields(v reflect.Value) []field {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, fields(v.Field(i))...)
			continue
		}
		if key := tomlName(f); f.IsExported() && key != "" && key != "-" {
			out = append(out, field{t.Name(), f, v.Field(i)})
		}
	}
	return out
}

// writeTable writes the scalar keys of struct v, then its sub-tables.
func writeTable(b *strings.Builder, docs map[string]string, v reflect.Value, path, indent string) {
	var tables []field
	for _, fl := range fields(v) {
		key, fv := tomlName(fl.f), fl.v
		if fv.Kind() == reflect.Struct || fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct {
			tables = append(tables, fl)
			continue
		}
		b.WriteString("\n")
		comment(b, docs[fl.owner+"."+fl.f.Name], fl.f.Name, key, indent)
		if fv.Kind() == reflect.Map && fv.Len() == 0 {
			fmt.Fprintf(b, "%s# %s = { milter = \"debug\" }\n", indent, key)
			continue
		}
		fmt.Fprintf(b, "%s%s = %s\n", indent, key, tomlValue(fv))
	}
	for _, fl := range tables {
		key := tomlName(fl.f)
		full := key
		if path != "" {
			full = path + "." + key
		}
		doc := docs[fl.owner+"."+fl.f.Name]
		if fl.v.Kind() == reflect.Struct {
			b.WriteString("\n")
			comment(b, doc, fl.f.Name, "["+full+"]", indent)
			fmt.Fprintf(b, "%s[%s]\n", indent, full)
			writeTable(b, docs, fl.v, full, indent)
			continue
		}
		if fl.v.Len() == 0 {
			b.WriteString("\n")
			comment(b, doc, fl.f.Name, "[["+full+"]]", indent)
			fmt.Fprintf(b, "%s# [[%s]]: none by default; INSTALL.md shows one.\n", indent, full)
			continue
		}
		for j := 0; j < fl.v.Len(); j++ {
			b.WriteString("\n")
			if j == 0 {
				comment(b, doc, fl.f.Name, "[["+full+"]]", indent)
			}
			fmt.Fprintf(b, "%s[[%s]]\n", indent, full)
			writeTable(b, docs, fl.v.Index(j), full, indent+"  ")
		}
	}
}

func tomlValue(v reflect.Value) string {
	if s, ok := v.Interface().(fmt.Stringer); ok && v.Kind() == reflect.Int64 {
		return strconv.Quote(s.String()) // Duration
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case reflect.Slice:
		var parts []string
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, tomlValue(v.Index(i)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		var parts []string
		for _, k := range keys {
			parts = append(parts, k.String()+" = "+tomlValue(v.MapIndex(k)))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	panic(fmt.Sprintf("conf: no TOML form for %s", v.Type()))
}
