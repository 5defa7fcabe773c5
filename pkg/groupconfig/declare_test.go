package groupconfig

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEveryTagDeclaredOnce keeps each tag's declaration in one place, its row in defs: every
// Tag* constant of keys.go names a row's key (or alias), every row of a supported tag sets a
// Config field of the type its Kind parses to, no two rows set the same field, and every Config
// field but Warnings is set by a row. A tag added as a constant, a row or a field alone fails
// here.
func TestEveryTagDeclaredOnce(t *testing.T) {
	keys := map[string]bool{}
	for _, d := range defs {
		keys[d.Key] = true
		for _, a := range d.Aliases {
			keys[a] = true
		}
	}
	consts := tagConstants(t)
	if len(consts) < len(defs) {
		t.Errorf("found %d Tag* constants in keys.go for %d rows: the parse of keys.go is off", len(consts), len(defs))
	}
	for name, key := range consts {
		if !keys[key] {
			t.Errorf("constant %s = %q has no row in defs (keys.go): add the tag's row", name, key)
		}
	}

	var c Config
	cv := reflect.ValueOf(&c).Elem()
	fieldAt := map[uintptr]string{}
	for i := 0; i < cv.NumField(); i++ {
		fieldAt[cv.Field(i).Addr().Pointer()] = cv.Type().Field(i).Name
	}
	setBy := map[string]string{}
	for _, d := range defs {
		if d.Unsupported != "" {
			if d.field != nil {
				t.Errorf("%s is unsupported but sets a Config field", d.Key)
			}
			continue
		}
		if d.field == nil {
			t.Errorf("%s sets no Config field: give its row a field", d.Key)
			continue
		}
		p := reflect.ValueOf(d.field(&c))
		if p.Kind() != reflect.Pointer {
			t.Errorf("%s: field returns a %s, want a pointer into Config", d.Key, p.Type())
			continue
		}
		name, ok := fieldAt[p.Pointer()]
		if !ok {
			t.Errorf("%s: field does not point into the Config it is given", d.Key)
			continue
		}
		if other, dup := setBy[name]; dup {
			t.Errorf("Config.%s is set by both %s and %s", name, other, d.Key)
		}
		setBy[name] = d.Key
		if want := fieldType(d); p.Type().Elem() != want {
			t.Errorf("%s (kind %s) sets Config.%s of type %s, want %s", d.Key, d.Kind, name, p.Type().Elem(), want)
		}
	}
	for i := 0; i < cv.NumField(); i++ {
		if name := cv.Type().Field(i).Name; name != "Warnings" && setBy[name] == "" {
			t.Errorf("Config.%s is set by no tag: add the tag's row to defs (keys.go)", name)
		}
	}
}

// fieldType is the Config field type a tag of d's kind parses to (Config.set).
func fieldType(d Def) reflect.Type {
	if d.Pattern != "" {
		return reflect.TypeFor[[]string]() // spotmax:alt<N>: AltTypes, in order
	}
	switch d.Kind {
	case KindBool:
		return reflect.TypeFor[bool]()
	case KindInt, KindPort:
		return reflect.TypeFor[int]()
	case KindSeconds, KindMinutes, KindHours:
		return reflect.TypeFor[time.Duration]()
	case KindDeviceList, KindPathList:
		return reflect.TypeFor[[]string]()
	}
	return reflect.TypeFor[string]()
}

// tagConstants returns the Tag* string constants of keys.go by name.
func tagConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := goparser.ParseFile(token.NewFileSet(), "keys.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Tag") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Errorf("constant %s is not a string literal: spell the key in keys.go", n.Name)
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out[n.Name] = v
			}
		}
	}
	return out
}
