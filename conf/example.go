package conf

import (
	_ "embed"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

//go:embed config.go
var configSource string

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
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", configSource, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("conf: parse embedded config.go: %w", err)
	}
	docs := map[string]string{}
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
	return docs, nil
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

// writeTable writes the scalar keys of struct v, then its sub-tables.
func writeTable(b *strings.Builder, docs map[string]string, v reflect.Value, path, indent string) {
	t := v.Type()
	type sub struct {
		f reflect.StructField
		v reflect.Value
	}
	var tables []sub
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := tomlName(f)
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct || fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct {
			tables = append(tables, sub{f, fv})
			continue
		}
		b.WriteString("\n")
		comment(b, docs[t.Name()+"."+f.Name], f.Name, key, indent)
		if fv.Kind() == reflect.Map {
			if fv.Len() == 0 {
				fmt.Fprintf(b, "%s# %s = { milter = \"debug\" }\n", indent, key)
				continue
			}
		}
		fmt.Fprintf(b, "%s%s = %s\n", indent, key, tomlValue(fv))
	}
	for _, s := range tables {
		key := tomlName(s.f)
		full := key
		if path != "" {
			full = path + "." + key
		}
		if s.v.Kind() == reflect.Struct {
			b.WriteString("\n")
			comment(b, docs[t.Name()+"."+s.f.Name], s.f.Name, "["+full+"]", indent)
			fmt.Fprintf(b, "%s[%s]\n", indent, full)
			writeTable(b, docs, s.v, full, indent)
			continue
		}
		for j := 0; j < s.v.Len(); j++ {
			b.WriteString("\n")
			if j == 0 {
				comment(b, docs[t.Name()+"."+s.f.Name], s.f.Name, "[["+full+"]]", indent)
			}
			fmt.Fprintf(b, "%s[[%s]]\n", indent, full)
			writeTable(b, docs, s.v.Index(j), full, indent+"  ")
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
